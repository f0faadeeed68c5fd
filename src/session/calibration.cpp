#include "session/calibration.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "forkscope/calibration.h"
#include "forkscope/catalog.h"
#include "forkscope/observer.h"
#include "forkscope/runner.h"
#include "forkscope/stats.h"

namespace forkscope {

// Our programs' cost, measured at start-up on fork launches, in interleaved blocks
// of three kinds: untraced, traced, and traced without the allocation landmarks
// (kmem_cache_alloc, most of our tracepoint runs inside a fork).  The launch is
// the same in all three, so the traced kinds differ from each other only by the
// tracepoint runs counted in the fork call: their difference in median time over
// their difference in runs is the cost of a run.  What the full kind costs beyond
// its counted runs (function-probe runs priced by `probe_costs`) is a fixed cost
// per launch: programs that ran inside the call for it but outside its record.
// Both are taken per round, from the three blocks' medians side by side, and the
// median over the rounds is kept: a shared machine's drift between rounds cancels.
// 30 rounds take half a second on the host; under emulation, where every detach
// and attach is slow, the rounds stop after 3 s (8 at least).
Calibration calibrate(Tracer& tracer, const std::string& child_program, std::map<std::string, double> probe_costs,
                      uint32_t full_cell, uint32_t lean_cell, const std::atomic<bool>* stop) {
  const RunPlan& plan = tracer.plan();
  const std::string backend = backend_name(plan);
  constexpr int kRounds = kCalibrationRounds, kMinRounds = kCalibrationMinRounds, kBlock = kCalibrationBlock;
  constexpr double kBudgetSeconds = 3;
  const uint64_t t0 = now_ns();
  auto launcher = make_launcher(parse_mode("fork"), child_program);
  launch_block(*launcher, kBlock);  // warm-up
  uint64_t launches = 0;
  std::vector<double> med_u, med_full, med_lean;  // per round with all three blocks
  tracer.reset_cell(full_cell);
  tracer.reset_cell(lean_cell);
  const auto attach = [&](bool attached) { tracer.set_attached(attached); };
  const auto traced_block = [&](uint32_t cell, bool landmarks) {
    tracer.set_allocation_landmarks(landmarks);
    tracer.set_cell(cell);
    std::vector<uint64_t> block = launch_block(*launcher, kBlock);
    tracer.set_cell(FS_NO_CELL);
    return block;
  };
  // An even number of rounds, so both orders of the traced blocks count alike.
  for (int r = 0; r < kRounds && !(stop && stop->load()); r++) {
    if (r >= kMinRounds && r % 2 == 0 && static_cast<double>(now_ns() - t0) / 1e9 > kBudgetSeconds) break;
    const std::vector<uint64_t> u = untraced_block(*launcher, kBlock, attach);
    // Alternate the order, so neither traced kind always follows the untraced one.
    std::vector<uint64_t> f, l;
    for (bool landmarks : {r % 2 == 0, r % 2 != 0})
      (landmarks ? f : l) = traced_block(landmarks ? full_cell : lean_cell, landmarks);
    launches += u.size() + f.size() + l.size();
    if (u.empty() || f.empty() || l.empty()) continue;  // a round is compared within itself
    med_u.push_back(static_cast<double>(summarize(u).p50));
    med_full.push_back(static_cast<double>(summarize(f).p50));
    med_lean.push_back(static_cast<double>(summarize(l).p50));
  }
  tracer.set_allocation_landmarks(true);

  Calibration c;
  c.probe_cost_ns = std::move(probe_costs);
  // Per launch, inside the fork call: tracepoint runs, and what the function-probe
  // runs cost (observer_cost_ns with no price per tracepoint run yet).
  const auto counted = [&](uint32_t cell) {
    const uint64_t launches = std::max<uint64_t>(1, tracer.read_counts(cell).launches);
    double events = 0, fn_ns = 0;
    for (const Phase& p : build_phases(tracer.read_phases(cell), plan)) {
      if (!p.path.starts_with("syscall")) continue;
      events += static_cast<double>(p.events);
      fn_ns += observer_cost_ns(p, c, backend);
    }
    return std::pair{events / static_cast<double>(launches), fn_ns / static_cast<double>(launches)};
  };
  const auto [n_full, fn_full] = counted(full_cell);
  const auto [n_lean, fn_lean] = counted(lean_cell);
  c.launches = launches;
  c.events_per_launch = n_full;
  const size_t rounds = med_u.size();
  const auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  };
  std::vector<double> per_run, fixed;
  if (!plan.allocation_programs()) {
    // --depth syscall loads no allocation landmarks: both traced kinds are the same
    // handful of runs, so per-run and fixed costs cannot be told apart.  The whole
    // cost is priced per run (ns_per_launch 0): the correction still removes it.
    if (n_full < 1 || rounds == 0) return c;
    for (size_t r = 0; r < rounds; r++) per_run.push_back((med_full[r] - fn_full - med_u[r]) / n_full);
    c.ns_per_event = std::max(0.0, median(per_run));
    return c;
  }
  if (n_full - n_lean < 1 || rounds == 0) return c;
  for (size_t r = 0; r < rounds; r++)
    per_run.push_back((med_full[r] - fn_full - (med_lean[r] - fn_lean)) / (n_full - n_lean));
  c.ns_per_event = std::max(0.0, median(per_run));
  for (size_t r = 0; r < rounds; r++) fixed.push_back(med_full[r] - med_u[r] - fn_full - c.ns_per_event * n_full);
  c.ns_per_launch = std::max(0.0, median(fixed));
  return c;
}

}  // namespace forkscope
