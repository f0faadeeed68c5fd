// The plan of a run: which source measures each phase on this kernel.
#include <linux/types.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "forkscope/error.h"
#include "forkscope/probes.h"
#include "forkscope/untrusted.h"

namespace forkscope {

namespace {

// Kernel functions whose allocations are landmarks, and the phases that need them.
struct SiteSpec {
  const char* function;
  __u32 landmark;  // 0: copy_process, classified by the slab cache
  std::vector<int> phases;
};

const std::vector<SiteSpec>& site_specs() {
  static const std::vector<SiteSpec> specs = {
      {"copy_process",
       0,
       {FS_PH_COPY_PROCESS, FS_PH_DUP_TASK_STRUCT, FS_PH_COPY_SIGHAND, FS_PH_COPY_SIGNAL, FS_PH_DUP_MM}},
      {"prepare_creds", FS_LM_CREDS, {FS_PH_COPY_CREDS}},
      {"dup_fd", FS_LM_FILES, {FS_PH_COPY_FILES}},
      {"copy_fs_struct", FS_LM_FS, {FS_PH_COPY_FS}},
      {"vm_area_dup", FS_LM_VMA_DUP, {FS_PH_VMA_SETUP, FS_PH_COPY_PAGE_RANGE}},
      {"anon_vma_clone", FS_LM_ANON_VMA, {}},
      {"anon_vma_fork", FS_LM_ANON_VMA, {FS_PH_COPY_PAGE_RANGE}},  // which VMAs copy page tables
      {"alloc_pid", FS_LM_PID, {FS_PH_ALLOC_PID}},
  };
  return specs;
}

int phase_by_name(const std::string& name) {
  for (const CatalogEntry& e : catalog())
    if (!is_user_slot(e.id) && name == e.name) return e.id;
  return FS_PH_NONE;
}

void measure_by_function(RunPlan& plan, int id, int source, const std::string& function) {
  plan.cfg.measured |= FS_BIT(id);
  plan.cfg.landmarks &= ~FS_BIT(id);
  plan.source[id] = source;
  plan.function[id] = function;
  plan.reason[id].clear();
}

// Landmark allocations are told apart by their call site: [start, end) of each
// landmark function in /proc/kallsyms.  A phase whose function is not there
// (inlined) loses its landmark.
void resolve_sites(RunPlan& plan) {
  Kallsyms ks = Kallsyms::load();
  if (!ks.readable()) {
    throw privilege_error(
        "/proc/kallsyms hides kernel addresses, so allocation call sites cannot be "
        "resolved; run as root with kernel.kptr_restrict <= 1");
  }
  for (const auto& spec : site_specs()) {
    auto r = ks.find(spec.function);
    if (!r) {
      for (int ph : spec.phases) {
        if (!(plan.cfg.landmarks & FS_BIT(ph))) continue;
        plan.cfg.measured &= ~FS_BIT(ph);
        plan.cfg.landmarks &= ~FS_BIT(ph);
        plan.reason[ph] = std::string("landmark function ") + spec.function + " not in /proc/kallsyms (inlined?)";
      }
      continue;
    }
    if (!landmark_at_depth(spec.landmark == 0 ? static_cast<__u32>(FS_LM_TASK_STRUCT) : spec.landmark, plan.depth))
      continue;
    if (plan.sites.size() >= FS_MAX_SITES) break;
    plan.sites.push_back({r->start, r->end, spec.landmark, 0});
  }
}

// The syscall functions as the syscall hooks: each hooked syscall's function
// (__x64_sys_clone ...) with the backend's kind of probe where it attaches (auto:
// fentry), else the other kind (Debian's 6.1 has no ftrace location on the
// argument-less fork and vfork, where kprobes still attach), each tried for real.
// All or nothing: when one cannot be hooked, the syscall tracepoints run them all
// (any one of those puts every syscall on the tracing path anyway).
void plan_syscall_functions(RunPlan& plan, const FunctionProber& prober, bool kprobe_first) {
  std::vector<int> source;
  for (const HookedSyscall& s : hooked_syscalls()) {
    const std::string fn = std::string("__x64_sys_") + s.name;
    std::string why;
    for (const int kind :
         {kprobe_first ? FS_SRC_KPROBE : FS_SRC_FENTRY, kprobe_first ? FS_SRC_FENTRY : FS_SRC_KPROBE}) {
      const std::string r = kind == FS_SRC_FENTRY ? prober.try_fentry(fn) : prober.try_kprobe(fn);
      if (r.empty()) {
        source.push_back(kind);
        why.clear();
        break;
      }
      why += (why.empty() ? fn + ": " : "; ") + r;
    }
    if (!why.empty()) {
      plan.syscall_hooks_why = why;
      return;
    }
  }
  plan.syscall_hooks = SyscallHooks::kFunctions;
  plan.syscall_source = std::move(source);
  plan.syscall_hooks_why.clear();
}

// The phases function probes can measure with the chosen backend, tried for real,
// the syscall hooks, and the probe-cost calibration's target; landmarks for the rest.  Throws
// privilege_error when a forced backend cannot work at all.
RunPlan function_plan(BackendChoice choice, const std::vector<UserPhase>& user_phases, bool probe_cost, Depth depth) {
  RunPlan plan = tracepoint_plan();
  plan.syscall_hooks_why = "no function probes with --backend tracepoint";
  if (user_phases.size() > FS_USER_PHASES)
    throw usage_error("at most " + std::to_string(FS_USER_PHASES) + " --phase options per run");
  if (choice == BackendChoice::kTracepoint) {
    if (!user_phases.empty())
      throw usage_error("--phase needs function probes; it cannot work with --backend tracepoint");
    return plan;
  }

  FunctionProber prober;
  // One real attempt on copy_process tells whether the kind works at all here.
  std::string fentry_why = choice == BackendChoice::kKprobe ? "not chosen (--backend kprobe)"
                                                            : prober.try_fentry("copy_process");
  std::string kprobe_why = choice == BackendChoice::kFentry ? "not chosen (--backend fentry)"
                                                            : prober.try_kprobe("copy_process");
  const bool fentry = fentry_why.empty(), kprobe = kprobe_why.empty();
  if (choice == BackendChoice::kFentry && !fentry)
    throw privilege_error("--backend fentry cannot work on this kernel: " + fentry_why + "; try --backend auto");
  if (choice == BackendChoice::kKprobe && !kprobe)
    throw privilege_error("--backend kprobe cannot work on this kernel: " + kprobe_why + "; try --backend auto");

  auto probe = [&](int id, const std::vector<std::string>& functions) {
    std::string why;
    for (const std::string& fn : functions) {
      std::string f = fentry ? prober.try_fentry(fn) : fentry_why;
      if (f.empty()) return measure_by_function(plan, id, FS_SRC_FENTRY, fn), std::string();
      std::string k = kprobe ? prober.try_kprobe(fn) : kprobe_why;
      if (k.empty()) return measure_by_function(plan, id, FS_SRC_KPROBE, fn), std::string();
      why += (why.empty() ? "" : "; ") + fn + ": " + f + (kprobe ? "; kprobe: " + k : "");
    }
    return why;
  };
  for (const CatalogEntry& e : catalog()) {
    if (is_user_slot(e.id) || e.functions.empty() || phase_depth(e.id) > depth) continue;
    std::string why = probe(e.id, e.functions);
    if (!plan.measured(e.id)) {
      plan.reason[e.id] = why + (fentry || kprobe ? "" : "; no function probes on this kernel");
    } else if ((fentry || kprobe) && !why.empty()) {
      // Function probes work here, but not on this phase's function (dup_mmap is
      // inlined on 6.12): its landmarks measure it, and phases_available says why.
      plan.reason[e.id] = why;
    }
  }
  for (size_t i = 0; i < user_phases.size(); i++) {
    const int id = FS_PH_USER0 + static_cast<int>(i);
    plan.name[id] = user_phases[i].function;
    plan.cfg.parent[id] = phase_by_name(user_phases[i].parent);
    std::string why = probe(id, {user_phases[i].function});
    if (!plan.measured(id))
      throw privilege_error("--phase " + user_phases[i].function + ": cannot probe it here (" + why + ")");
  }
  if (fentry || kprobe) plan_syscall_functions(plan, prober, choice == BackendChoice::kKprobe);
  else plan.syscall_hooks_why = "no function probes on this kernel";
  // The probe-cost calibration's target: sched_getscheduler's kernel entry point
  // (named by architecture), which every kind in use must attach to.  A cheap
  // syscall with an argument: the wrappers of argument-less ones (getppid) are no
  // ftrace location on Debian's 6.1, so fentry cannot attach there and a kprobe
  // would trap instead of taking the ftrace path it takes on the phase functions.
  const bool uses_fentry = std::count(plan.source.begin(), plan.source.end(), FS_SRC_FENTRY) > 0;
  const bool uses_kprobe = std::count(plan.source.begin(), plan.source.end(), FS_SRC_KPROBE) > 0;
  if (probe_cost && (uses_fentry || uses_kprobe)) {
    for (const char* fn :
         {"__x64_sys_sched_getscheduler", "__arm64_sys_sched_getscheduler", "__s390x_sys_sched_getscheduler",
          "__riscv_sys_sched_getscheduler", "sys_sched_getscheduler"}) {
      if ((!uses_fentry || prober.try_fentry(fn).empty()) && (!uses_kprobe || prober.try_kprobe(fn).empty())) {
        plan.calibration_function = fn;
        break;
      }
    }
  }
  return plan;
}

}  // namespace

BackendChoice parse_backend(const std::string& name) {
  if (name == "auto") return BackendChoice::kAuto;
  if (name == "fentry") return BackendChoice::kFentry;
  if (name == "kprobe") return BackendChoice::kKprobe;
  if (name == "tracepoint") return BackendChoice::kTracepoint;
  throw usage_error("unknown --backend '" + safe_text(name) + "'; choose auto, fentry, kprobe or tracepoint");
}

UserPhase parse_user_phase(const std::string& spec) {
  UserPhase u;
  auto colon = spec.find(':');
  u.function = spec.substr(0, colon);
  u.parent = colon == std::string::npos ? "copy_process" : spec.substr(colon + 1);
  auto valid = [](const std::string& s) {
    return !s.empty() &&
           s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.") == std::string::npos;
  };
  if (!valid(u.function))
    throw usage_error("--phase '" + safe_text(spec) +
                      "': expected FUNC[:PARENT], a kernel function name, e.g. anon_vma_fork:dup_mmap");
  if (is_libc_fork_phase(phase_by_name(u.parent)))
    throw usage_error("--phase '" + safe_text(spec) + "': " + safe_text(u.parent) +
                      " is user space (the C library's fork); give a kernel phase as the parent");
  if (phase_by_name(u.parent) == FS_PH_NONE)
    throw usage_error("--phase '" + safe_text(spec) + "': unknown parent phase '" + safe_text(u.parent) +
                      "'; use a phase `forkscope doctor` lists");
  // A name the kernel does not have is the user's mistake (exit 2), told apart
  // here from a function it has but will not let be probed (exit 3, later).
  // Neither list is readable without BTF and kallsyms: then the probe decides.
  const Kallsyms ks = Kallsyms::load();
  const FunctionProber btf;
  if ((btf.has_btf() || !ks.empty()) && !btf.in_btf(u.function) && !ks.has(u.function))
    throw usage_error("--phase " + u.function + ": no such kernel function (not in kernel BTF or /proc/kallsyms)");
  return u;
}

void libc_fork_unmeasured(RunPlan& plan, const std::string& why) {
  for (int id : kLibcForkPhases) {
    plan.cfg.measured &= ~FS_BIT(id);
    plan.source[id] = FS_SRC_NONE;
    plan.function[id].clear();
    plan.reason[id] = why;
  }
}

// The C library forkscope itself runs on (/proc/self/maps): the one the machine's
// dynamically linked programs share, outside containers with their own.
std::string own_libc() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    const size_t slash = line.find('/');
    if (slash == std::string::npos) continue;
    const std::string path = line.substr(slash);
    const std::string file = path.substr(path.rfind('/') + 1);
    if (file.rfind("libc.so", 0) == 0 || file.rfind("libc-", 0) == 0) return path;
  }
  return "";
}

// libc_fork and its children: uprobes on the C library's fork(), where the kernel
// has them (the tracer attaches them for real and says why when it cannot).
void plan_libc_fork(RunPlan& plan) {
  std::string why;
  if (access("/sys/bus/event_source/devices/uprobe/type", F_OK) != 0)
    why = "no uprobes on this kernel (no uprobe PMU; CONFIG_UPROBE_EVENTS not set)";
  else if ((plan.libc_path = own_libc()).empty())
    why = "forkscope runs on no shared C library (statically linked): no libc to probe";
  if (!why.empty()) return libc_fork_unmeasured(plan, why);
  for (int id : kLibcForkPhases) {
    plan.cfg.measured |= FS_BIT(id);
    plan.source[id] = FS_SRC_UPROBE;
    plan.function[id] = "fork";
    plan.reason[id].clear();
  }
}

RunPlan plan_run(const PlanOptions& o) {
  RunPlan plan = function_plan(o.backend, o.user_phases, o.probe_cost, o.depth);
  set_detail(plan, o.detail);
  if (o.libc_fork && o.depth == Depth::kFull) plan_libc_fork(plan);
  set_depth(plan, o.depth);
  plan.exec = o.exec;
  if (plan.syscall_hooks != SyscallHooks::kFunctions) {
    std::string why;
    plan.syscall_hooks = o.reattaches ? SyscallHooks::kRaw : choose_syscall_hooks(&why);
    if (o.reattaches)
      why = "--overhead detaches and attaches the programs again: per-syscall tracepoints detach slowly";
    if (!why.empty()) plan.syscall_hooks_why += "; " + why;
  }
  if (plan.depth != Depth::kSyscall) resolve_sites(plan);
  return plan;
}

std::string backend_name(const RunPlan& plan) {
  bool kprobe = false;
  for (int s : plan.source) {
    if (s == FS_SRC_FENTRY) return "fentry";
    kprobe |= s == FS_SRC_KPROBE;
  }
  return kprobe ? "kprobe" : "tracepoint";
}

}  // namespace forkscope
