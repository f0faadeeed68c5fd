#pragma once
// The file formats of `forkscope report`: folded stacks and a flame graph of one
// cell's phase tree, a trace-event timeline of the sampled launches, SVG charts,
// CSV, and the self-contained HTML report `forkscope run` writes.  Each returns
// the whole document; none of them refers to anything outside itself.
#include <string>

#include "forkscope/analysis.h"
#include "forkscope/results.h"

namespace forkscope {

// "syscall;copy_process;dup_mm <self ns>" per phase path with self time, self ns
// summed over the cell's launches: what flamegraph.pl and speedscope read.
std::string folded_stacks(const Cell& cell);

// A flame graph of the cell's phases (width by time, root at the bottom) with
// inline script for click-to-zoom and search.  The title names mode, heap and host.
std::string flame_svg(const Run& run, const Cell& cell);

// Chrome trace-event JSON (Perfetto UI, speedscope, chrome://tracing): per cell a
// process, per sampled launch a parent and a child task track, phases as nested
// complete events.  Each launch's events are relative to its sys_enter.
std::string trace_events(const Run& run);

// User-side launch time (call_to_return p50, p99 as a whisker) against heap size,
// one line per mode; log-log.
std::string latency_chart_svg(const Run& run);
// For one fork-like mode (cells that ran dup_mm): each phase's self time per launch
// against heap size.  Empty when the series has no such cells.
std::string phase_chart_svg(const Series& series);

// trace results: per (command, kind) group, the mean time of each part of a
// launch (syscall, child's first run, execve, first instruction, teardown, reap).
std::string group_chart_svg(const Run& run);
// Merged results of several kernels: `phase` of `mode` (mean per launch; "untraced"
// for the untraced launch p50 of --overhead) against the swept variable, VMA count
// when the cells have several, else heap size, a line per kernel (cell host).
// "" when no kernel has two points or the phase was not measured.
std::string kernel_chart_svg(const Run& run, const std::string& mode, const std::string& phase);

// One row per cell and phase.
std::string phases_csv(const Run& run);
// One row per cell and mapping (per-mapping attribution of dup_mmap).
std::string mappings_csv(const Run& run);
// The HTML section of a cell's per-mapping table with bars; "" without mappings.
std::string mappings_html(const Cell& cell, size_t top = 10);

// The whole report as one HTML file: summary, phase availability, per-cell
// breakdowns, growth, charts and the flame graph of `flame_cell`.
std::string html_report(const Run& run, const Cell* flame_cell);

}  // namespace forkscope
