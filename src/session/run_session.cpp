// The run session: the sweep of the runner, traced by the probes.
#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>

#include "forkscope/mappings.h"
#include "forkscope/observer.h"
#include "forkscope/session.h"
#include "forkscope/size.h"
#include "session/calibration.h"
#include "session/outputs.h"
#include "session/signals.h"

namespace forkscope {

Run run_session(const RunSessionOptions& o) {
  const SweepOptions& sweep = o.sweep;
  PlanOptions plan = o.plan;
  plan.exec = std::any_of(sweep.modes.begin(), sweep.modes.end(),
                          [](const LaunchSpec& m) { return m.mode == "posix_spawn" || m.mode.ends_with("-exec"); });
  plan.reattaches = sweep.overhead;
  // Cells 0..n-1 are the sweep's, cells n and n+1 the calibration's.
  const auto sweep_cells = static_cast<uint32_t>(sweep_cells_count(sweep));
  // From before the load: the first SIGINT/SIGTERM/SIGHUP/SIGQUIT ends the sweep
  // cleanly; a second one, e.g. during a slow heap set-up, takes effect at once
  // (the kernel still detaches everything).
  catch_stop_signals(/*second_ends=*/true);
  const std::atomic<bool>* stop = stop_requested();
  std::unique_ptr<Tracer> tracer = Tracer::open(plan_run(plan), o.verbose, sweep_cells + 2);
  tracer->set_target(getpid());
  // Loading parsed kallsyms and BTF: give the freed memory back, so the runner's
  // own footprint (copied by every fork) is as small as it can be.
  malloc_trim(0);

  if (stop->load()) throw interrupted_at_start();
  Run run = start_results(*tracer);
  // What one function probe costs, per kind in use: a fraction of a second, so
  // always (results of different backends can then be compared phase by phase).
  std::map<std::string, double> costs = tracer->probe_costs();
  // The per-run calibration costs seconds under emulation; only --overhead reports it.
  if (sweep.overhead) {
    if (!sweep.quiet) std::fprintf(stderr, "forkscope: calibrating the cost of its own programs (--overhead)...\n");
    run.calibration = calibrate(*tracer, sweep.child_program, std::move(costs), sweep_cells, sweep_cells + 1, stop);
  } else if (!costs.empty()) {
    run.calibration = Calibration{};
    run.calibration->probe_cost_ns = std::move(costs);
  }

  CellHooks hooks;
  // The runner's mappings are stable during a cell: one snapshot at its start is what
  // each of its forks copies (per-mapping attribution, mappings.h).
  std::vector<MappingInfo> snapshot;
  hooks.begin = [&](uint32_t cell) {
    snapshot = read_smaps(getpid());
    tracer->set_cell(cell);
  };
  hooks.end = [&] { tracer->set_cell(FS_NO_CELL); };
  hooks.sample = [&](uint32_t seq) { tracer->sample_next(seq); };
  hooks.trace = [&](bool traced) { tracer->set_attached(traced); };
  if (o.cell_done) {
    hooks.done = [&](const std::vector<Cell>& cells) {
      Run so_far = run;
      so_far.cells = cells;
      so_far.incomplete = true;
      o.cell_done(so_far);
    };
  }
  hooks.collect = [&](Cell& cell, uint32_t index) {
    tracer->wait_children_gone(index, 1000);
    tracer->read_cell(index, cell);
    attribute_mappings(snapshot, tracer->read_mappings(index), cell);
    if (run.calibration) correct_for_observer(cell, *run.calibration, run.backend);
  };
  if (!sweep.quiet) {
    std::fprintf(stderr,
                 "forkscope: %s backend attached (%s of BPF maps); %zu cells, up to %llu launches or %gs each\n",
                 run.backend.c_str(), format_bytes(static_cast<double>(run.bpf_map_bytes)).c_str(),
                 sweep_cells_count(sweep), static_cast<unsigned long long>(sweep.iterations), sweep.cell_seconds);
  }
  if (stop->load()) throw interrupted_at_start();
  run.cells = run_sweep(sweep, hooks, stop);
  run.incomplete = stop->load();
  // Stopped before a single launch: there is nothing to save.
  if (run.incomplete && run.cells.empty()) throw interrupted_at_start();
  return run;  // the tracer goes here: everything is detached before anything is written
}

}  // namespace forkscope
