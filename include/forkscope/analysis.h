#pragma once
// What every report format reads from results: choosing and naming cells,
// grouping them by mode, how a mode's launch grows with the heap, and a cell's
// phase tree as rows.
#include <optional>
#include <string>
#include <vector>

#include "forkscope/observer.h"
#include "forkscope/results.h"

namespace forkscope {

// The cell whose tree explains the most: the largest fork cell, else the largest cell.
const Cell* featured_cell(const Run& run);
// "fork:64M" (MODE:HEAP, split at the last colon; MODE:HEAP@VMAS picks a VMA
// count, MODE:HEAP alone matches any; COMM:KIND for trace results),
// "HOST/fork:64M" in merged results, HOST being "hostname kernel" or the hostname.
// Throws usage_error listing the cells there are, or the hosts' cells when several match.
const Cell& find_cell(const Run& run, const std::string& spec);
// --overhead: the cell's untraced launch (call to return) p50, "-" without.
std::string untraced_label(const Cell& cell);
// " +1000 VMAs" for a cell with extra VMAs; "" without.
std::string vmas_label(uint64_t vmas);
// "fork 64M", " +N VMAs" with extra VMAs, and " on HOST" for cells of merged results;
// trace: "GROUP KIND".
std::string cell_label(const Cell& cell);
// trace: a group as reports name it: its command, or --group-by's executable path,
// pid or cgroup path, with the command in brackets where the name does not end in it.
std::string group_label(const Cell& cell);
// trace: what --cell's GROUP is: "COMM", "EXECUTABLE", "PID" or "CGROUP".
std::string group_spec(const Run& run);
// trace: the heading of the groups' column: "command", "executable", "pid", "cgroup".
std::string group_heading(const Run& run);
// trace: the programs a group's execs ran, by file name: "make", "true, echo",
// "cc1, as +2"; "" when it exec'd nothing.
std::string exec_targets(const Cell& cell);
// trace: the groups' column: group_label, and " → " exec_targets when it exec'd.
std::string group_column(const Cell& cell);
// trace: execs by program over every group, most first; the execs the kernel's
// table had no room for last, as "(other programs)" (other set).
struct ProgramExecs {
  std::string program;
  uint64_t execs = 0;
  std::vector<std::string> from;  // "GROUP KIND" of the groups that exec'd it
  bool other = false;
};
std::vector<ProgramExecs> execs_by_program(const Run& run);
// "sh vfork, make fork +2 more"
std::string from_label(const ProgramExecs& p);
// The same cell of two runs: mode, heap size, VMA count and host agree (trace:
// command and group too).
bool same_cell(const Cell& a, const Cell& b);
// "fork", or "fork on HOST" when the host is set.
std::string mode_label(const std::string& mode, const std::string& host);

// The cells of one mode (on one host, for merged results; with one VMA count) by
// increasing heap.
struct Series {
  std::string mode;
  std::string host;
  uint64_t vmas = 0;
  std::vector<const Cell*> cells;
  std::string label() const;  // "fork", "fork +N VMAs", "fork on HOST"
};
// In the order the modes first appear.
std::vector<Series> series_by_mode(const Run& run);

// How a mode's kernel time per launch changes from its smallest to its largest heap,
// and which phases' self time per launch takes the difference.
struct HeapGrowth {
  const Series* series = nullptr;
  const Cell* small = nullptr;
  const Cell* large = nullptr;
  double before_ns = 0;  // syscall mean per launch
  double after_ns = 0;
  bool flat = false;  // grew by at most a quarter
  struct Phase {
    std::string name;  // "unattributed (syscall self)" for the syscall's own time
    double ns = 0;
  };
  std::vector<Phase> phases;  // the phases that grew, most first
};
// One entry per series with at least two heaps and a syscall phase at both ends.
// The entries point into `series`.
std::vector<HeapGrowth> heap_growth(const std::vector<Series>& series);
// "flat: ...", or the three phases that grew most: "copy_page_range +1.21 ms (100%), ...".
std::string growth_summary(const HeapGrowth& growth);

// "812 (time-capped), 3 failed (EAGAIN)"
std::string launches_label(const Cell& cell);
// The two phases inside the syscall with the most self time, as shares of the
// syscall: where a launch's kernel time actually goes.  "" without a syscall phase.
std::string top_phases(const Cell& cell);

// The hosts of merged results in the order their cells first appear ("hostname
// kernel" each); empty for a single run.
std::vector<std::string> cell_hosts(const Run& run);

// trace: the launching process's RSS, VM, VMAs, page tables and huge pages
// (AnonHugePages, "n of N" when not every launch was valued) at its launches,
// formatted ("-" each for a group that only exec'd; "-" huge pages when none was valued).
std::vector<std::string> launcher_mm_columns(const Cell& cell);

// post_launch_cow: the catalog counts its faults (calls) without timing them.
bool counted_only(const Phase& phase);

// One row of a cell's phase tree, as the terminal and HTML reports show it.
struct TreeRow {
  const Phase* phase = nullptr;
  size_t depth = 0;             // of the phase path: 0 for roots
  double calls_per_launch = 0;  // per launch in which the phase ran, as mean_ns is
  double self_ns = 0;           // per launch in which the phase ran
  bool counted_only = false;    // post_launch_cow: faults counted, not timed
  std::optional<double> share;  // of the launch syscall; none for phases outside it
  // With a calibration: self_ns minus the calibrated cost of our programs that ran
  // while the phase was innermost (they ran inside its self time).
  std::optional<double> corrected_self_ns;
  // The calls column: "x1", "x2.5" per launch in which the phase ran, and "n of N"
  // when it was seen in fewer launches (execs, for exec phases) than the group has.
  std::string calls;
};
// How many times a group could have seen a phase: its launches, or its execs for
// the phases of the exec'd image (execve and under it, exec_first_insn).
uint64_t phase_base(const Cell& cell, const std::string& phase_name);
// cal: the run's calibration (and backend, for the function-probe cost), if any.
std::vector<TreeRow> phase_tree_rows(const Cell& cell, const Calibration* cal = nullptr,
                                     const std::string& backend = "");

// Per-mapping attribution of dup_mmap (Cell::mappings).
// "[anon] rw-p 256M", "(other mappings) (12 VMAs)".
std::string mapping_label(const Mapping& m);
// The mapping that holds most (over half) of copy_page_range, as measured, and what
// typically cuts it; "" when no mapping does.
std::string mapping_finding(const Cell& cell);
// What the cell could not attribute, in the method's unit: "3 launches" (order),
// "2 VMA copies" (exact).
std::string mapping_unattributed_text(const Cell& cell);
// How the cell's method matched the kernel's times to the maps snapshot, one sentence.
std::string mapping_method_text(const Cell& cell);

}  // namespace forkscope
