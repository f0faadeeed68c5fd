#pragma once
// C++ view of the shared phase catalog (include/forkscope/shared/catalog.h), the
// plan of one run (which source measures each phase), and the tree built from
// per-phase aggregates.
#include <linux/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "forkscope/results.h"
#include "forkscope/shared/catalog.h"
#include "forkscope/shared/machine.h"

namespace forkscope {

struct CatalogEntry {
  int id;
  const char* name;
  int parent;                          // FS_PH_NONE for roots
  int tp_source;                       // enum fs_source for the tracepoint backend
  std::vector<std::string> functions;  // kernel functions that are the phase, preferred first
  const char* how;                     // how the tracepoint backend bounds it
};

const std::vector<CatalogEntry>& catalog();
const char* source_name(int source);  // "tracepoint", "derived", "fentry", "kprobe", "uprobe", ""
bool is_user_slot(int id);            // USER0..USER3
// libc_fork and its two children: uprobes on the C library, trace only.
inline constexpr int kLibcForkPhases[] = {FS_PH_LIBC_FORK, FS_PH_FORK_PREPARE, FS_PH_FORK_PARENT};
bool is_libc_fork_phase(int id);

// --depth: how far into a launch the programs look.  syscall: the launch syscall,
// the wakeup, the child's first run, its teardown and reaping, execve (a handful
// of events per launch: no allocation or lock programs); process: adds the
// copy_process phases, dup_mmap and the exec phases (no per-VMA work); full:
// everything (the default).
enum class Depth { kSyscall, kProcess, kFull };
Depth parse_depth(const std::string& name);  // throws usage_error
const char* depth_name(Depth depth);         // "syscall", "process", "full"
// The shallowest depth that measures a phase (user slots: syscall).
Depth phase_depth(int id);

// Which syscall hooks run the syscall programs (bpf/forkscope.bpf.c), best first:
// the syscall functions themselves (__x64_sys_clone ...), each by fentry/fexit or
// else kprobe/kretprobe, so other syscalls run nothing at all; their per-syscall
// tracepoints (syscalls:sys_enter_clone ...: no program runs for other syscalls,
// but every syscall of every task takes the kernel's syscall-tracing path); or,
// as the last resort, the raw sys_enter/sys_exit (a program for every syscall).
enum class SyscallHooks { kFunctions, kPerSyscall, kRaw };
// The syscalls hooked, by name ("clone", "exit_group"): launch, exec, exit and
// wait.  exit and exit_group never return, so they have an entry hook only.
struct HookedSyscall {
  const char* name;
  bool returns;
};
const std::vector<HookedSyscall>& hooked_syscalls();

// What one run measures: the configuration the BPF side gets, plus what user
// space needs to name and explain each phase.
struct RunPlan {
  fs_config cfg{};
  std::vector<int> source;            // per phase: FS_SRC_*
  std::vector<std::string> name;      // the catalog's; a --phase slot gets its function's name
  std::vector<std::string> function;  // the function probed, when fentry/kprobe measure it
  std::vector<std::string> reason;    // why a phase is not measured
  // Per-fault and per-page events (copy-on-write faults, page-table pages): costly
  // on every launch and buying no phase of the launch itself, so only on request.
  bool detail = false;
  // Exec phases: the first instruction after execve is seen as a user page fault,
  // so the per-fault program loads whenever launches may exec.
  bool exec = true;
  // Probe-cost calibration (Tracer::probe_costs): the kernel function of a cheap
  // syscall (sched_getscheduler) that every function-probe kind this plan uses
  // could attach to, tried for real; empty when none is used or none could.
  std::string calibration_function;
  // Landmark call sites ([start, end) of each landmark function in /proc/kallsyms).
  std::vector<fs_site> sites;
  Depth depth = Depth::kFull;
  SyscallHooks syscall_hooks = SyscallHooks::kPerSyscall;
  // kFunctions: per hooked_syscalls() entry, FS_SRC_FENTRY or FS_SRC_KPROBE.
  std::vector<int> syscall_source;
  // Why better syscall hooks than the chosen ones are not used ("" when none are).
  std::string syscall_hooks_why;
  // libc_fork (trace, --depth full): the C library whose fork() the uprobes are on.
  std::string libc_path;

  // The programs each depth loads: allocation landmarks (kmem_cache_alloc) and
  // mmap_lock events from process on.
  bool allocation_programs() const { return depth != Depth::kSyscall; }
  bool mmap_lock_programs() const { return depth != Depth::kSyscall; }

  bool measured(int id) const { return cfg.measured & FS_BIT(id); }
};

// --detail: also count post-launch copy-on-write faults and page-table pages.
void set_detail(RunPlan& plan, bool detail);
// --depth: the phases deeper than depth are not measured ("not at --depth X").
void set_depth(RunPlan& plan, Depth depth);
// The syscall hooks a plan uses, in words: "fentry/fexit on the syscall
// functions", "... kprobe/kretprobe on fork, vfork", "per-syscall tracepoints"...
std::string syscall_hooks_text(const RunPlan& plan);
// Does an allocation landmark (FS_LM_*) belong to depth?  Per-VMA ones only at full.
bool landmark_at_depth(__u32 landmark, Depth depth);

// Landmarks only: what the tracepoint backend measures by itself.
RunPlan tracepoint_plan();
// "syscall;copy_process;dup_mm": names of the measured ancestors and the phase.
std::string phase_path(const RunPlan& plan, int id);
// phases_available of the results file: every catalog phase but unused --phase slots.
std::vector<PhaseAvailability> availability(const RunPlan& plan);

// Per-phase aggregate as read from the kernel, summed over CPUs.
struct PhaseAgg {
  uint64_t count = 0, calls = 0, total_ns = 0, self_ns = 0, events = 0, fn_events = 0;
  std::vector<uint64_t> hist;  // FS_HIST_SLOTS entries, or empty
};

// Phases with count > 0, in catalog (tree) order, with paths, means and percentiles.
std::vector<Phase> build_phases(const std::vector<PhaseAgg>& by_id, const RunPlan& plan);

}  // namespace forkscope
