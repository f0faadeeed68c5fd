// The probe-cost measurement: what one entry+exit pair of our function-probe
// programs costs, per kind in use.
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "probes/tracer_impl.h"

namespace forkscope {

std::map<std::string, double> Tracer::probe_costs() {
  std::map<std::string, double> costs;
  if (impl_->cal_slot < 0) return costs;
  forkscope_bpf* skel = impl_->skel;
  const std::string& fn = plan_.calibration_function;
  auto prog = [&](const char* kind) { return slot_program(skel, kind, impl_->cal_slot); };
  std::vector<std::string> kinds = {""};  // "": nothing attached to fn
  if (bpf_program__autoload(prog("fs_fentry_"))) kinds.push_back("fentry");
  if (bpf_program__autoload(prog("fs_kprobe_"))) kinds.push_back("kprobe");

  std::vector<Link> links;
  auto detach = [&] { links.clear(); };
  auto attach = [&](const std::string& kind) {
    if (kind == "fentry") {
      links.emplace_back(bpf_program__attach_trace(prog("fs_fentry_")));
      links.emplace_back(bpf_program__attach_trace(prog("fs_fexit_")));
    } else if (kind == "kprobe") {
      links.emplace_back(bpf_program__attach_kprobe(prog("fs_kprobe_"), false, fn.c_str()));
      links.emplace_back(bpf_program__attach_kprobe(prog("fs_kretprobe_"), true, fn.c_str()));
    }
    return std::none_of(links.begin(), links.end(), [](const Link& l) { return l == nullptr; });
  };
  auto mono = [] {
    timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return static_cast<double>(t.tv_sec) * 1e9 + static_cast<double>(t.tv_nsec);
  };
  // A block: kBatches batches of kBatch sched_getscheduler(0) calls, each batch
  // timed as a whole (clock reads can cost more than the call: a VM's HPET), and
  // the median batch's time per call, robust to interrupts landing in a block.
  constexpr int kRounds = 5, kBatches = 31, kBatch = 16;
  std::vector<double> per_call(kBatches);
  auto block = [&] {
    for (double& v : per_call) {
      const double a = mono();
      for (int i = 0; i < kBatch; i++) syscall(SYS_sched_getscheduler, 0);
      v = (mono() - a) / kBatch;
    }
    std::nth_element(per_call.begin(), per_call.begin() + kBatches / 2, per_call.end());
    return per_call[kBatches / 2];
  };

  // The slot programs pass their tgid filter only in the traced process: this one.
  // One CPU for all blocks: CPUs (a VM's vCPUs above all) need not run alike.
  const __u32 old_target = __atomic_load_n(&skel->bss->target_tgid, __ATOMIC_SEQ_CST);
  set_target(getpid());
  cpu_set_t old_cpus, one_cpu;
  const int cpu = sched_getcpu();
  const bool pinned = cpu >= 0 && sched_getaffinity(0, sizeof old_cpus, &old_cpus) == 0;
  if (pinned) {
    CPU_ZERO(&one_cpu);
    CPU_SET(cpu, &one_cpu);
    sched_setaffinity(0, sizeof one_cpu, &one_cpu);
  }
  // A launch record of this thread's own, which no syscall ends (FS_LF_CALIB): the
  // slot's programs then do what a phase's do inside a launch (find the record,
  // open and close a phase), not just miss the lookup.
  const __u32 tid = static_cast<__u32>(gettid());
  fs_launch record{};
  fs_launch_begin(&record, FS_NO_CELL, 0, 0);
  record.flags = FS_LF_CALIB;
  record.tid = tid;
  const int launches_fd = bpf_map__fd(skel->maps.launches);
  const bool recorded = bpf_map_update_elem(launches_fd, &tid, &record, BPF_ANY) == 0;
  // The programs see launch records only while the gate counts one (maps.bpf.h).
  if (recorded) __atomic_add_fetch(&skel->bss->launches_in_flight, 1, __ATOMIC_SEQ_CST);
  block();  // warm-up
  // Rounds: an untraced block, then one block per kind; one more untraced block
  // closes the last round.  A kind's cost in a round is its block minus the mean
  // of the untraced blocks around it, so slow drift of the machine cancels, and
  // no kind is attached right after its own detach.
  std::vector<double> untraced{block()};
  std::map<std::string, std::vector<double>> deltas;
  std::map<std::string, std::vector<double>> traced;
  std::map<std::string, bool> failed;
  for (int r = 0; r < kRounds; r++) {
    for (size_t i = 1; i < kinds.size(); i++) {
      const std::string& kind = kinds[i];
      if (failed[kind]) continue;
      if (attach(kind)) traced[kind].push_back(block());
      else failed[kind] = true;
      detach();
    }
    untraced.push_back(block());
    for (auto& [kind, t] : traced) {
      if (t.size() == static_cast<size_t>(r) + 1)
        deltas[kind].push_back(t.back() - (untraced[r] + untraced[r + 1]) / 2);
    }
  }
  if (recorded && bpf_map_delete_elem(launches_fd, &tid) == 0)
    __atomic_sub_fetch(&skel->bss->launches_in_flight, 1, __ATOMIC_SEQ_CST);
  if (pinned) sched_setaffinity(0, sizeof old_cpus, &old_cpus);
  set_target(static_cast<pid_t>(old_target));
  for (auto& [kind, d] : deltas) {
    if (failed[kind] || d.empty()) continue;
    std::nth_element(d.begin(), d.begin() + d.size() / 2, d.end());
    costs[kind] = d[d.size() / 2];
  }
  return costs;
}

}  // namespace forkscope
