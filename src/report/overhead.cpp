#include <algorithm>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "forkscope/terminal.h"
#include "forkscope/size.h"

namespace forkscope {

void render_overhead(const Run& run, std::ostream& out) {
  if (run.calibration && run.calibration->events_per_launch > 0) {
    out << fmt::format(
        "observer cost (calibrated at start-up): {} per run of one of our tracepoint programs, {} per "
        "launch besides ({:.0f} tracepoint runs inside a fork here)\n",
        format_ns(run.calibration->ns_per_event), format_ns(run.calibration->ns_per_launch),
        run.calibration->events_per_launch);
  }
  if (run.calibration && !run.calibration->probe_cost_ns.empty()) {
    out << "function-probe cost (calibrated at start-up on sched_getscheduler, per entry+exit pair):";
    const char* sep = " ";
    for (const auto& [kind, ns] : run.calibration->probe_cost_ns) {
      out << sep << (kind == "fentry" ? "fentry/fexit " : kind == "kprobe" ? "kprobe/kretprobe " : "") << format_ns(ns);
      sep = ", ";
    }
    out << '\n';
  }
  bool any = false;
  for (const Cell& c : run.cells) {
    if (!c.overhead) continue;
    any = true;
    const Overhead& o = *c.overhead;
    out << fmt::format("overhead {} {}: traced/untraced p50 x{:.2f} [{:.2f}, {:.2f}]", c.mode,
                       format_size(c.heap_bytes) + vmas_label(c.vmas), o.ratio, o.ratio_low, o.ratio_high);
    if (o.corrected_kernel_ns > 0) {
      out << fmt::format(
          "; untraced launch p50 {}: corrected traced launch {} ({:+.1f}%), corrected kernel {} ({:+.1f}%)",
          format_ns(static_cast<double>(o.untraced.p50)), format_ns(o.corrected_launch_ns),
          100 * o.corrected_launch_error, format_ns(o.corrected_kernel_ns), 100 * o.corrected_error);
    }
    out << '\n';
  }
  if (any) return;
  // No untraced baseline: say at least how many of our programs ran inside each
  // launch, per launch kind (at its first heap size: the count does not grow with
  // the heap's pages, only with its VMAs).
  std::vector<std::string> kinds;
  for (const Cell& c : run.cells) {
    if (c.launches == 0) continue;
    const std::string kind = run.trace ? group_label(c) + " " + c.mode : c.mode;
    if (std::any_of(kinds.begin(), kinds.end(), [&](const std::string& k) { return k.starts_with(kind + " "); }))
      continue;
    uint64_t runs = 0;
    for (const Phase& p : c.phases)
      if (p.path.starts_with("syscall")) runs += p.events + p.fn_events;
    kinds.push_back(fmt::format("{} {:.0f}", kind, static_cast<double>(runs) / static_cast<double>(c.launches)));
    if (kinds.size() == 8) break;
  }
  out << (run.trace ? "overhead not measured: a trace has no untraced baseline"
                    : "overhead not measured (run with --overhead to measure traced/untraced launch time)");
  if (!kinds.empty())
    out << fmt::format("; runs of forkscope's BPF programs inside each launch: {}", fmt::join(kinds, ", "));
  out << (run.trace ? "; `forkscope run --overhead` measures their cost on this kernel\n" : "\n");
}

}  // namespace forkscope
