#pragma once
// Sessions: what `run` and `trace` do once their options are valid.  A session
// builds the one plan, owns the tracer (and, for trace, the traced command), and
// returns a model run; the caller saves and prints it.
#include <sys/types.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "forkscope/probes.h"
#include "forkscope/results.h"
#include "forkscope/runner.h"

namespace forkscope {

struct RunSessionOptions {
  SweepOptions sweep;
  PlanOptions plan;      // exec is set from the sweep's modes
  bool verbose = false;  // libbpf's log
  // After each cell: the run so far, marked incomplete (run saves it, so that even
  // a kill leaves what was measured).
  std::function<void(const Run& so_far)> cell_done;
};

// The sweep, traced: opens the tracer, measures the probe costs (and with
// sweep.overhead calibrates the cost of our programs), runs every cell and
// collects its kernel side.  The first SIGINT/SIGTERM ends the sweep early: the
// run comes back marked incomplete.
Run run_session(const RunSessionOptions& options);

struct TraceSessionOptions {
  std::vector<std::string> command;  // run this (as the invoking user under sudo) and follow it
  pid_t pid = 0;                     // or follow this process (a thread group id)
  std::string cgroup;                // or every task of this cgroup v2 directory
  bool all = false;                  // or every task
  double duration = 0;               // seconds; 0: until the target exits or a signal
  PlanOptions plan;                  // exec and probe_cost are trace's own
  bool quiet = false;
  bool verbose = false;           // also: each launching process's mappings snapshot, on stderr
  bool mappings = true;           // per-mapping attribution (--no-mappings turns it off)
  std::string group_by = "comm";  // --group-by: comm, exe, pid or cgroup (validated)
};

// Follows the target until it exits, the duration ends or SIGINT/SIGTERM comes,
// then returns one cell per group of launches (run.trace says what was traced).
Run trace_session(const TraceSessionOptions& options);

// results.json and report.html in dir, written atomically; returns their paths.
std::pair<std::string, std::string> save_outputs(const Run& run, const std::string& dir);

}  // namespace forkscope
