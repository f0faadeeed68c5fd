#pragma once
// What `run` and `trace` share around their results.
#include <string>
#include <utility>

#include "forkscope/probes.h"
#include "forkscope/results.h"

namespace forkscope {

// The results' header: tool version, start time, host, backend, phase availability, map memory.
Run start_results(const Tracer& tracer);
// A cell's kernel side, read from the tracer: counts, phases (with --detail the
// copy-on-write faults counted into post_launch_cow), failed phases, samples.
void read_kernel_side(Tracer& tracer, uint32_t index, Cell& cell);
// results.json and report.html in dir, written atomically; returns their paths.
std::pair<std::string, std::string> save_outputs(const Run& run, const std::string& dir);

}  // namespace forkscope
