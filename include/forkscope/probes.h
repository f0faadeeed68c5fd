#pragma once
// The kernel side: host facts, privilege and feature checks, kernel symbols, and
// the tracepoint backend that loads the BPF skeleton.  The only place that knows
// about libbpf.
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "forkscope/catalog.h"
#include "forkscope/huge_pages.h"
#include "forkscope/mappings.h"
#include "forkscope/results.h"

namespace forkscope {

struct KsymRange {
  std::string name;
  uint64_t start = 0;
  uint64_t end = 0;  // start of the next text symbol
};

// Text symbols of /proc/kallsyms.  Addresses read as zero (kptr_restrict) make
// every lookup fail, which the caller reports.
class Kallsyms {
 public:
  static Kallsyms load();
  std::optional<KsymRange> find(const std::string& name) const;
  // Whether a text symbol of this name is listed (names show even when addresses are hidden).
  bool has(const std::string& name) const;
  bool empty() const { return syms_.empty(); }
  bool readable() const { return readable_; }

 private:
  std::vector<std::pair<uint64_t, std::string>> syms_;  // sorted by address
  bool readable_ = false;
};

Host read_host();

// Each throws privilege_error (exit 3) with what is missing and what to do.
void check_privileges();
// CAP_BPF and CAP_PERFMON are not enough to load forkscope's programs: the kernel
// refuses them without CAP_SYS_ADMIN.  Checked after the mounts, whose own
// messages say more when those fail too.
void check_cap_sys_admin();
// Mounts tracefs at /sys/kernel/tracing when it is not mounted; returns false
// (and says why in *why) when that fails.
bool ensure_tracefs(std::string* why);

// One line of `forkscope doctor`.
struct FeatureCheck {
  std::string name;
  bool ok = false;
  std::string detail;
};
std::vector<FeatureCheck> probe_features();

bool kprobes_available(std::string* why);

// The syscall tracepoints this kernel offers: the per-syscall ones when tracefs
// lists every one forkscope needs, else the raw sys_enter/sys_exit (*why says
// why).  The plan prefers the syscall functions (plan_run); Tracer::open falls
// back from those to these, and from the per-syscall ones to the raw ones, when
// they fail to load or attach.
SyscallHooks choose_syscall_hooks(std::string* why);
// Those tracepoints, by tracefs name ("sys_enter_clone", ...).
const std::vector<std::string>& hooked_syscall_events();

// Tries function probes for real: loads a minimal program and attaches it.
// Each try returns "" when it works, otherwise the reason.
class FunctionProber {
 public:
  FunctionProber();
  ~FunctionProber();
  FunctionProber(const FunctionProber&) = delete;
  FunctionProber& operator=(const FunctionProber&) = delete;
  bool in_btf(const std::string& function) const;
  bool has_btf() const { return btf_ != nullptr; }
  std::string try_fentry(const std::string& function) const;
  std::string try_kprobe(const std::string& function) const;

 private:
  struct btf* btf_ = nullptr;
};

enum class BackendChoice { kAuto, kFentry, kKprobe, kTracepoint };
BackendChoice parse_backend(const std::string& name);  // throws usage_error

// --phase FUNC[:PARENT]
struct UserPhase {
  std::string function;
  std::string parent;  // a catalog phase name; default copy_process
};
UserPhase parse_user_phase(const std::string& spec);  // throws usage_error

// What a run asks of its plan.
struct PlanOptions {
  BackendChoice backend = BackendChoice::kAuto;
  std::vector<UserPhase> user_phases;
  bool detail = false;     // --detail: copy-on-write faults and page-table pages
  bool exec = true;        // launches may exec (the exec phases' per-fault program loads)
  bool probe_cost = true;  // find a target for Tracer::probe_costs (trace measures no probe cost)
  Depth depth = Depth::kFull;
  // The programs are detached and attached again every few dozen launches
  // (--overhead's untraced blocks): detaching a per-syscall tracepoint's program
  // waits for a grace period (20-90 ms each on 6.18, one after another), so such
  // runs use the raw sys_enter/sys_exit, whose programs return at once for the
  // syscalls that are none of ours, where the syscall functions cannot be hooked.
  bool reattaches = false;
  // trace: the user-space part of fork (libc_fork) with uprobes on the C library.
  bool libc_fork = false;
};

// The one plan of a run, complete: which source measures each phase on this
// kernel (function probes where the chosen backend can attach them, tried for
// real; landmarks for the rest, their call sites from /proc/kallsyms), detail and
// exec.  Nothing edits it afterwards: the tracer holds it (Tracer::plan).
// Throws privilege_error when a forced backend cannot work at all or kernel
// addresses are hidden, usage_error for --phase options that cannot work.
RunPlan plan_run(const PlanOptions& options);
// libc_fork's phases not measured, for the reason given (no uprobes, the attach refused).
void libc_fork_unmeasured(RunPlan& plan, const std::string& why);
// "fentry", "kprobe" or "tracepoint": the function-probe kind used, if any.
std::string backend_name(const RunPlan& plan);

// trace: launches are grouped per (command, executable, process or cgroup; clone
// flags), one cell each.
inline constexpr uint32_t kTraceGroups = 60;  // cells 0..59; 60 gathers the rest

// trace: whom the BPF side follows instead of the runner.
struct Follow {
  pid_t root = 0;                  // a process and every process it launches from now on
  int cgroup_fd = -1;              // an open cgroup v2 directory: tasks in it and its descendants
  bool all = false;                // every task but forkscope
  uint32_t samples_per_group = 4;  // launches recorded span by span per group, for timelines
  uint32_t groups = kTraceGroups;  // group cells (at most kTraceGroups); groups past them count in the overflow cell
  bool mappings = false;           // per-mapping attribution (map_launchers for ProcessSnapshots)
  uint32_t group_by = 0;       // enum fs_group_by (shared/records.h; 0: comm): what groups launches besides clone flags
  bool exec_programs = false;  // count execs by program (trace; serve does not read them)
};

struct TraceGroup {
  uint32_t cell = 0;
  std::string comm;         // the command (--group-by comm), else the command of the group's first launch
  std::string exe;          // --group-by exe: the executable's path ("" when it had none or it was not read)
  uint64_t id[2] = {0, 0};  // fs_group_key's: exe device and inode, pid and start time, cgroup id
  uint64_t flags = 0;       // clone flags with signal/tid/tls bits off; FS_GROUP_EXEC_ONLY
  bool other = false;       // the overflow cell
};

// The kernel side of a run: loads the BPF skeleton as the plan says, attaches
// every program, aggregates per (cell, phase); destroying it detaches everything.
class Tracer {
 public:
  // Loads and attaches what plan (plan_run's) says, and keeps it as is.
  // cells: how many cells (0..cells-1) the caller uses, at most FS_MAX_CELLS; the
  // per-CPU aggregate maps are sized for them, so their memory follows the run.
  // following: trace's maps of followed processes are sized for many tasks; the
  // runner's for its own few threads.
  static std::unique_ptr<Tracer> open(RunPlan plan, bool verbose, uint32_t cells, bool following = false);
  ~Tracer();
  Tracer(const Tracer&) = delete;
  Tracer& operator=(const Tracer&) = delete;

  void set_target(pid_t tgid);
  void set_cell(uint32_t cell);  // FS_NO_CELL stops attribution
  // trace: follow these tasks (instead of the runner's launches by cell).
  void follow(const Follow& f);
  void add_followed(pid_t tgid);
  std::vector<TraceGroup> read_groups() const;
  // serve's eviction of an idle group, in two steps around the caller's last read
  // of the cell, which waits until programs that found the key before unlink_cell
  // have returned: unlink_cell deletes the group key (the command's next launch
  // takes a free cell) and bumps the cell's generation (records begun under the
  // group count nowhere from then on: stale_records); recycle_cell bumps it again
  // (for a record stamped between the key's lookup and the first bump), zeroes the
  // cell and returns it to the free cells.
  void unlink_cell(uint32_t cell);
  void recycle_cell(uint32_t cell);
  uint64_t stale_records() const;
  std::vector<TraceParent> read_parents() const;
  // trace (Follow::exec_programs): per cell of [0, cells), its execs by program, most
  // first, and those past the kernel's table (exec_programs_other).
  struct ExecPrograms {
    std::vector<ExecProgram> programs;
    uint64_t other = 0;
  };
  std::map<uint32_t, ExecPrograms> read_exec_programs(uint32_t cells) const;
  void reset_cell(uint32_t cell);  // zero a cell's aggregates, counts and per-mapping times
  // Detach every program (untraced launches) or attach them again.
  void set_attached(bool attached);
  // Detach or re-attach the allocation-landmark program alone (kmem_cache_alloc):
  // the calibration varies our runs per launch with the kernel's work unchanged.
  // Nothing to do at --depth syscall, which loads no such program.
  void set_allocation_landmarks(bool attached);
  // The programs loaded and attached, by name (doctor, the tests).
  std::vector<std::string> attached_programs() const;
  void sample_next(uint32_t seq);  // record the next launch span by span as number seq; 0: don't
  // The sampled launches of a cell, with their children's spans (drains the ring buffer).
  std::vector<Sample> drain_samples(uint32_t cell);
  // Moves what the ring buffer holds into memory (trace: called while tracing, so
  // the buffer does not fill).
  void consume_samples();
  std::vector<PhaseAgg> read_phases(uint32_t cell) const;
  // Phases of the launches whose syscall failed (no histograms).
  std::vector<PhaseAgg> read_failed_phases(uint32_t cell) const;
  KernelCounts read_counts(uint32_t cell) const;
  // A cell's failed launches by the error returned: "EAGAIN", ... or "other" (the
  // kernel's FS_LAUNCH_ERRNOS); only errors that occurred.
  std::map<std::string, uint64_t> read_failed_errnos(uint32_t cell) const;
  // A cell's per-mapping aggregates (bpf/mappings.bpf.h), for attribute_mappings.
  KernelMappings read_mappings(uint32_t cell) const;
  // The same for every cell in one pass over the per-mapping map (serve's scrapes:
  // not one pass per group); cells with nothing copied or lost are left out.
  std::map<uint32_t, KernelMappings> read_all_mappings() const;
  // trace (Follow::mappings): each launching process's count of VMAs its last launch
  // copied, for ProcessSnapshots::update.
  std::vector<LauncherLayout> read_map_launchers() const;
  // trace: successful launches per (launching process, cell), for LauncherHugePages.
  std::vector<CellLauncher> read_huge_launchers() const;
  // A cell's kernel side: counts, phases (with --detail the copy-on-write faults
  // counted into post_launch_cow), failed phases, samples.
  void read_cell(uint32_t index, Cell& cell);
  // A thread can finish exiting after it was joined: wait (up to timeout_ms) until
  // every child of the cell has been seen exiting, so its teardown is counted.
  void wait_children_gone(uint32_t cell, int timeout_ms) const;
  const RunPlan& plan() const { return plan_; }
  uint64_t map_bytes() const;  // memory of the BPF maps, for the report
  // What one entry+exit pair of our function-probe programs costs, per kind the
  // plan uses ("fentry", "kprobe"), in ns: sched_getscheduler(0) timed in this
  // (the traced) process with nothing attached to its kernel function and with one
  // function slot of each kind, in interleaved blocks; medians.  Empty when the
  // plan uses no function probes or the calibration target could not be probed.
  // Call it with no launch in flight; it leaves the target as it found it.
  std::map<std::string, double> probe_costs();

 private:
  Tracer() = default;
  static int on_record(void* ctx, void* data, size_t size);
  struct Impl;
  std::unique_ptr<Impl> impl_;
  RunPlan plan_;
  bool attached_ = true;
};

void set_libbpf_verbose(bool verbose);

}  // namespace forkscope
