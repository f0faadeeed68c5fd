#include "forkscope/catalog.h"

#include <algorithm>
#include <iterator>
#include <sstream>

#include "forkscope/error.h"
#include "forkscope/stats.h"

namespace forkscope {

namespace {

std::vector<std::string> words(const char* text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

}  // namespace

const std::vector<CatalogEntry>& catalog() {
  static const std::vector<CatalogEntry> entries = {
#define FS_X_ENTRY(id, name, parent, src, fns, how) {FS_PH_##id, #name, FS_PH_##parent, FS_SRC_##src, words(fns), how},
      FS_PHASES(FS_X_ENTRY)
#undef FS_X_ENTRY
  };
  return entries;
}

const char* source_name(int source) {
  switch (source) {
    case FS_SRC_TP: return "tracepoint";
    case FS_SRC_DERIVED: return "derived";
    case FS_SRC_FENTRY: return "fentry";
    case FS_SRC_KPROBE: return "kprobe";
    case FS_SRC_UPROBE: return "uprobe";
    default: return "";
  }
}

bool is_user_slot(int id) { return id >= FS_PH_USER0 && id < FS_PH_USER0 + FS_USER_PHASES; }

bool is_libc_fork_phase(int id) {
  return std::find(std::begin(kLibcForkPhases), std::end(kLibcForkPhases), id) != std::end(kLibcForkPhases);
}

RunPlan tracepoint_plan() {
  RunPlan plan;
  fs_config_tracepoint(&plan.cfg);
  for (const CatalogEntry& e : catalog()) {
    plan.source.push_back(e.tp_source);
    plan.name.push_back(e.name);
    plan.function.emplace_back();
    plan.reason.emplace_back(is_libc_fork_phase(e.id)
                                 ? "user space: forkscope trace measures it with uprobes on the C library's fork"
                             : e.tp_source == FS_SRC_NONE ? "no tracepoint marks it"
                                                          : "");
  }
  return plan;
}

void set_detail(RunPlan& plan, bool detail) {
  plan.detail = detail;
  const uint64_t cow = FS_BIT(FS_PH_POST_LAUNCH_COW);
  if (detail) {
    plan.cfg.measured |= cow;
    plan.cfg.landmarks |= cow;
    plan.reason[FS_PH_POST_LAUNCH_COW].clear();
  } else {
    plan.cfg.measured &= ~cow;
    plan.cfg.landmarks &= ~cow;
    plan.reason[FS_PH_POST_LAUNCH_COW] = "a page_fault_user event per fault: run with --detail to count them";
  }
}

Depth parse_depth(const std::string& name) {
  if (name == "syscall") return Depth::kSyscall;
  if (name == "process") return Depth::kProcess;
  if (name == "full") return Depth::kFull;
  throw usage_error("unknown --depth '" + name + "'; choose syscall, process or full");
}

const char* depth_name(Depth depth) {
  switch (depth) {
    case Depth::kSyscall: return "syscall";
    case Depth::kProcess: return "process";
    case Depth::kFull: return "full";
  }
  return "full";
}

const std::vector<HookedSyscall>& hooked_syscalls() {
  static const std::vector<HookedSyscall> syscalls = {{"clone", true}, {"clone3", true},      {"fork", true},
                                                      {"vfork", true}, {"execve", true},      {"execveat", true},
                                                      {"exit", false}, {"exit_group", false}, {"wait4", true},
                                                      {"waitid", true}};
  return syscalls;
}

std::string syscall_hooks_text(const RunPlan& plan) {
  if (plan.syscall_hooks == SyscallHooks::kRaw) return "raw sys_enter/sys_exit";
  if (plan.syscall_hooks == SyscallHooks::kPerSyscall) return "per-syscall tracepoints";
  // The kind most syscalls use, then the others by name.
  const long fentry = std::count(plan.syscall_source.begin(), plan.syscall_source.end(), FS_SRC_FENTRY);
  const bool mostly_fentry = fentry * 2 >= static_cast<long>(plan.syscall_source.size());
  std::string text = std::string(mostly_fentry ? "fentry/fexit" : "kprobe/kretprobe") + " on the syscall functions";
  std::string others;
  for (size_t i = 0; i < plan.syscall_source.size() && i < hooked_syscalls().size(); i++) {
    if ((plan.syscall_source[i] == FS_SRC_FENTRY) != mostly_fentry)
      others += (others.empty() ? "" : ", ") + std::string(hooked_syscalls()[i].name);
  }
  if (!others.empty())
    text += std::string(", ") + (mostly_fentry ? "kprobe/kretprobe" : "fentry/fexit") + " on " + others;
  return text;
}

Depth phase_depth(int id) {
  switch (id) {
    case FS_PH_VMA_SETUP:
    case FS_PH_COPY_PAGE_RANGE:
    case FS_PH_LIBC_FORK:
    case FS_PH_FORK_PREPARE:
    case FS_PH_FORK_PARENT: return Depth::kFull;
    case FS_PH_COPY_PROCESS:
    case FS_PH_DUP_TASK_STRUCT:
    case FS_PH_COPY_CREDS:
    case FS_PH_SCHED_FORK:
    case FS_PH_COPY_FILES:
    case FS_PH_COPY_FS:
    case FS_PH_COPY_SIGHAND:
    case FS_PH_COPY_SIGNAL:
    case FS_PH_DUP_MM:
    case FS_PH_DUP_MMAP:
    case FS_PH_COPY_NAMESPACES:
    case FS_PH_COPY_THREAD:
    case FS_PH_ALLOC_PID:
    case FS_PH_EXIT_MM:
    case FS_PH_EXEC_BPRM:
    case FS_PH_EXEC_MMAP:
    case FS_PH_EXEC_OLD_MM:
    case FS_PH_EXEC_LOAD: return Depth::kProcess;
    default: return Depth::kSyscall;
  }
}

void set_depth(RunPlan& plan, Depth depth) {
  plan.depth = depth;
  for (int id = 0; id < FS_NPHASES; id++) {
    if (is_user_slot(id) || phase_depth(id) <= depth) continue;
    plan.cfg.measured &= ~FS_BIT(id);
    plan.cfg.landmarks &= ~FS_BIT(id);
    plan.source[id] = FS_SRC_NONE;
    plan.function[id].clear();
    plan.reason[id] = std::string("not at --depth ") + depth_name(depth);
  }
}

bool landmark_at_depth(__u32 landmark, Depth depth) {
  if (depth == Depth::kSyscall) return false;  // no allocation program at all
  if (landmark == FS_LM_VMA_DUP || landmark == FS_LM_ANON_VMA) return depth == Depth::kFull;
  return true;
}

std::string phase_path(const RunPlan& plan, int id) {
  std::string path = plan.name.at(id);
  int p = plan.cfg.parent[id];
  for (int depth = 0; p != FS_PH_NONE && depth < FS_NPHASES; depth++, p = plan.cfg.parent[p]) {
    if (plan.measured(p)) path = plan.name.at(p) + ";" + path;
  }
  return path;
}

std::vector<PhaseAvailability> availability(const RunPlan& plan) {
  std::vector<PhaseAvailability> out;
  for (const CatalogEntry& e : catalog()) {
    if (is_user_slot(e.id) && !plan.measured(e.id)) continue;
    PhaseAvailability a;
    a.name = plan.name[e.id];
    if (plan.measured(e.id)) {
      a.source = source_name(plan.source[e.id]);
      a.how = plan.function[e.id].empty() || plan.source[e.id] == FS_SRC_UPROBE
                  ? e.how
                  : "entry .. exit of " + plan.function[e.id];
      if (plan.source[e.id] == FS_SRC_UPROBE) a.how += " (uprobes on fork in " + plan.libc_path + ")";
      // A catalog function this kernel cannot probe (inlined): its landmarks stand in.
      if (plan.function[e.id].empty() && !plan.reason[e.id].empty())
        a.how += " (no function probe: " + plan.reason[e.id] + ")";
      // The syscall phases' boundaries are the syscall hooks' (RunPlan::syscall_hooks).
      if (a.how.starts_with("sys_enter .. sys_exit") && plan.syscall_hooks == SyscallHooks::kFunctions)
        a.how += " (seen at the syscall functions' entry and return: " + syscall_hooks_text(plan) + ")";
    } else {
      a.how = e.how;
      a.reason = plan.reason[e.id];
    }
    out.push_back(std::move(a));
  }
  return out;
}

std::vector<Phase> build_phases(const std::vector<PhaseAgg>& by_id, const RunPlan& plan) {
  std::vector<Phase> out;
  for (const CatalogEntry& e : catalog()) {
    if (e.id >= static_cast<int>(by_id.size())) break;
    const PhaseAgg& a = by_id[e.id];
    if (a.count == 0) continue;
    Phase p;
    p.name = plan.name[e.id];
    p.path = phase_path(plan, e.id);
    p.source = source_name(plan.source[e.id]);
    p.count = a.count;
    p.calls = a.calls;
    p.total_ns = a.total_ns;
    p.self_ns = a.self_ns;
    p.events = a.events;
    p.fn_events = a.fn_events;
    p.mean_ns = static_cast<double>(a.total_ns) / static_cast<double>(a.count);
    p.p50_ns = hist_percentile(a.hist, 0.50);
    p.p99_ns = hist_percentile(a.hist, 0.99);
    p.hist = a.hist;
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace forkscope
