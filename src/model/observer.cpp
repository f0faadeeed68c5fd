#include "forkscope/observer.h"

namespace forkscope {

double observer_cost_ns(const Phase& p, const Calibration& cal, const std::string& backend) {
  const std::string& kind = p.source == "fentry" || p.source == "kprobe" ? p.source : backend;
  auto it = cal.probe_cost_ns.find(kind);
  const double per_fn_run = it != cal.probe_cost_ns.end() ? it->second / 2 : 0.0;
  return static_cast<double>(p.events) * cal.ns_per_event + static_cast<double>(p.fn_events) * per_fn_run;
}

double observer_cost_per_launch(const Cell& cell, const Calibration& cal, const std::string& backend) {
  const Phase* sys = cell.phase("syscall");
  if (!sys || sys->count == 0) return 0;
  double cost = 0;
  for (const Phase& p : cell.phases)
    if (p.path.starts_with("syscall")) cost += observer_cost_ns(p, cal, backend);
  return cal.ns_per_launch + cost / static_cast<double>(sys->count);
}

void correct_for_observer(Cell& cell, const Calibration& cal, const std::string& backend) {
  const Phase* sys = cell.phase("syscall");
  if (!cell.overhead || cell.overhead->untraced.p50 == 0 || !sys || sys->count == 0) return;
  Overhead& oh = *cell.overhead;
  const double cost = observer_cost_per_launch(cell, cal, backend);
  const auto untraced = static_cast<double>(oh.untraced.p50);
  oh.corrected_kernel_ns = static_cast<double>(sys->p50_ns) - cost;
  oh.corrected_error = oh.corrected_kernel_ns / untraced - 1;
  oh.corrected_launch_ns = static_cast<double>(cell.user.call_to_return.p50) - cost;
  oh.corrected_launch_error = oh.corrected_launch_ns / untraced - 1;
}

}  // namespace forkscope
