#pragma once
// The results model: one Run, its Cells, each with user-side latency summaries
// and the kernel phase tree.  Serialized as the versioned JSON results file
// (schema "forkscope.results/1"), the one interchange format.
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "forkscope/stats.h"

namespace forkscope {

inline constexpr const char* kSchema = "forkscope.results/1";

struct Host {
  std::string hostname;
  std::string kernel;  // uname -r
  std::string arch;
  int cpus = 0;
  std::string thp;  // transparent_hugepage/enabled, the bracketed choice

  bool operator==(const Host&) const = default;
};

struct PhaseAvailability {
  std::string name;
  std::string source;  // "tracepoint", "derived", "fentry", "kprobe", "uprobe" or "" when not measured
  std::string how;     // what bounds it
  std::string reason;  // why it is not measured (empty when it is)

  bool operator==(const PhaseAvailability&) const = default;
};

struct Phase {
  std::string name;
  std::string path;  // "syscall;copy_process;dup_mm"
  std::string source;
  uint64_t count = 0;     // launches in which it was seen
  uint64_t calls = 0;     // spans (VMAs for copy_page_range)
  uint64_t total_ns = 0;  // inclusive, summed over launches
  uint64_t self_ns = 0;   // inclusive minus measured children
  double mean_ns = 0;     // total_ns / count: per launch
  uint64_t p50_ns = 0;    // of per-launch inclusive time, from the histogram
  uint64_t p99_ns = 0;
  std::vector<uint64_t> hist;  // per-launch inclusive ns, slots of stats.h; may be empty
  // Our own BPF programs that ran while this phase was innermost, over all launches:
  // times the calibrated cost per program, the observer effect inside its self time.
  uint64_t events = 0;     // tracepoint programs
  uint64_t fn_events = 0;  // fentry/kprobe programs

  bool operator==(const Phase&) const = default;
};

// One span of a sampled launch, for timelines.  Times are relative to the
// launch's sys_enter; spans in the child (child_first_run, teardown) too.
struct SampleSpan {
  std::string name;
  std::string path;
  int64_t start_ns = 0;
  uint64_t dur_ns = 0;
  std::string task;  // "parent" or "child"

  bool operator==(const SampleSpan&) const = default;
};

// A launch recorded span by span (a few per cell, spread over the cell).
struct Sample {
  uint64_t seq = 0;  // launch number within the cell, from 1
  int parent_tid = 0;
  int child_pid = 0;
  uint64_t start_ns = 0;  // CLOCK_MONOTONIC of the sys_enter
  std::vector<SampleSpan> spans;

  bool operator==(const Sample&) const = default;
};

struct Backing {
  uint64_t heap_bytes_touched = 0;
  uint64_t anon_huge_bytes = 0;  // AnonHugePages of the whole runner: huge pages mapped by a PMD
  uint64_t vm_pte_bytes = 0;     // VmPTE: page tables fork has to copy
  uint64_t vm_rss_bytes = 0;
  uint64_t vmas = 0;  // lines of /proc/self/maps
  // Heap bytes in large folios however mapped (kpageflags THP; --thp layouts only):
  // with --thp pte these are mapped by PTEs, so AnonHugePages leaves them out.
  uint64_t large_folio_bytes = 0;

  bool operator==(const Backing&) const = default;
};

struct KernelCounts {
  uint64_t launches = 0;  // successful launches the BPF side saw
  uint64_t failed = 0;
  uint64_t pt_pages = 0;       // pages allocated during dup_mm (page tables)
  uint64_t faults_parent = 0;  // write faults after launches
  uint64_t faults_child = 0;
  uint64_t lost = 0;
  uint64_t samples_lost = 0;      // sampled-launch records the ring buffer had no room for
  uint64_t first_run_missed = 0;  // children whose first switch-in was not seen (child_first_run lacks them)
  uint64_t execs = 0;             // execve/execveat that succeeded in the launched children
  uint64_t exec_failed = 0;
  // The launching process's mm when its launches returned, mean over launches.
  uint64_t mm_vmas = 0;
  uint64_t mm_vm_bytes = 0;
  uint64_t mm_rss_bytes = 0;
  uint64_t mm_pgtables_bytes = 0;
  // trace: its anonymous memory mapped by huge pages (smaps_rollup AnonHugePages, read
  // at a poll after its launches: huge_pages.h), mean over the launches
  // valued: mm_anon_huge_launches of them (launches of a process that ended before it
  // was read have no value).  0 and 0 in run results: backing.anon_huge_bytes has the runner's.
  uint64_t mm_anon_huge_bytes = 0;
  uint64_t mm_anon_huge_launches = 0;

  bool operator==(const KernelCounts&) const = default;
};

struct UserSpans {
  Summary call_to_return;  // launch call -> return in the parent
  Summary call_to_child;   // launch call -> child running (stamped by the child)
  Summary call_to_reaped;  // launch call -> child reaped / thread joined

  bool operator==(const UserSpans&) const = default;
};

// --overhead: blocks of untraced launches (every program detached) interleaved
// with the traced ones in the same cell.
struct Overhead {
  Summary untraced;      // call_to_return of the untraced launches
  double ratio = 0;      // traced p50 / untraced p50
  double ratio_low = 0;  // 95% bootstrap interval
  double ratio_high = 0;
  // Median kernel time per launch with our programs' calibrated cost taken out,
  // and how far that is from the untraced launch time (medians, ns).
  double corrected_kernel_ns = 0;
  double corrected_error = 0;  // corrected_kernel_ns / untraced p50 - 1
  // The traced launch (call to return, p50) with the same cost taken out: compared
  // with the untraced launch, like with like, it checks the calibration itself.
  double corrected_launch_ns = 0;
  double corrected_launch_error = 0;  // corrected_launch_ns / untraced p50 - 1

  bool operator==(const Overhead&) const = default;
};

// The cost of our programs, measured at start-up (--overhead) from fork launches
// untraced, traced, and traced without the allocation landmarks, interleaved: per
// tracepoint program run, plus a fixed part per launch.
struct Calibration {
  double ns_per_event = 0;
  double ns_per_launch = 0;
  double events_per_launch = 0;  // of the fork launches
  uint64_t launches = 0;         // calibration launches, untraced and traced
  // Per function-probe kind the run used ("fentry", "kprobe"): ns one entry+exit
  // pair of our programs adds to a cheap syscall (sched_getscheduler) called by
  // the traced process.
  // Measured whenever function probes are in use, with or without --overhead
  // (the fields above stay 0 without it); empty when not measured.
  std::map<std::string, double> probe_cost_ns;

  bool operator==(const Calibration&) const = default;
};

// Where dup_mmap's time went, per mapping of the launching process: the VMAs of one
// identity (name, permissions, size of each) summed over the launches attributed.
// trace: over the group's launching processes; the snapshot fields are then means
// over the snapshots that have the mapping, weighted by the launches matched to each.
struct Mapping {
  std::string name;        // file path (untrusted, safe_text), [heap], [stack], [anon], [vdso]..., (other mappings)
  std::string kind;        // file, heap, stack, anon, special, other
  std::string perms;       // rwxp as in /proc/PID/maps; empty for (other mappings)
  uint64_t vmas = 0;       // VMAs of this identity in the snapshot
  uint64_t bytes = 0;      // their size, summed
  uint64_t rss_bytes = 0;  // smaps Rss, summed
  // Last-level page tables spanned where resident: 4 KiB per 2 MiB block a VMA with
  // resident pages covers (an estimate from Rss and the VMA's extent).
  uint64_t page_table_bytes = 0;
  uint64_t launches = 0;      // the cell's attributed launches (the same in every row)
  uint64_t calls = 0;         // VMAs copied: launches x vmas (trace: those that had it)
  uint64_t vma_setup_ns = 0;  // summed over launches
  uint64_t copy_page_range_ns = 0;

  bool operator==(const Mapping&) const = default;
};

// trace: the execs of one program in a group.
struct ExecProgram {
  std::string program;  // the filename execve was given (untrusted, safe_text), cut at 127 bytes
  uint64_t execs = 0;

  bool operator==(const ExecProgram&) const = default;
};

struct Cell {
  std::string mode;         // fork, vfork, clone, clone-vm, pthread, posix_spawn, clone:<FLAGS>
  std::string clone_flags;  // what the kernel was asked for, e.g. "VM|FS|FILES|SIGHAND"
  uint64_t heap_bytes = 0;
  uint64_t vmas = 0;        // extra one-page VMAs mapped for this cell (--vmas)
  std::string vma_touch;    // "none" when those VMAs were never faulted (--vma-touch none); empty: touched
  std::string thp;          // heap layout asked for: "pmd" (--thp), "pte" (--thp pte); empty: small pages
  uint64_t iterations = 0;  // requested
  uint64_t launches = 0;    // counted (not warm-up)
  uint64_t failed = 0;
  std::string failed_errno;  // e.g. "EAGAIN" of the first failure
  bool time_capped = false;  // stopped by --cell-seconds before --iterations
  double seconds = 0;
  UserSpans user;
  Backing backing;
  KernelCounts kernel;
  std::vector<Phase> phases;  // tree order: parents before children
  // The same for the attempts whose syscall failed (no histograms): kept apart
  // so failures neither vanish nor dilute the phases of real launches.
  std::vector<Phase> failed_phases;
  std::vector<Sample> samples;       // may be empty
  std::optional<Overhead> overhead;  // with --overhead
  std::string host;                  // "hostname kernel" when merged from several hosts; empty otherwise
  // trace: the launching command (comm) of this group; its mode is the launch kind.
  // Grouped by exe, pid or cgroup (TraceInfo::group_by): the command of the group's
  // first launch, and group the group: the executable's path, the pid, the cgroup's path.
  std::string comm;
  std::string group;
  // trace: the execs the group counts, by program, most first; execs past the
  // kernel's table of programs (FS_EXEC_PROGRAMS) count in exec_programs_other.
  std::vector<ExecProgram> exec_programs;
  uint64_t exec_programs_other = 0;
  // Per-mapping attribution of dup_mmap: how ("order": the k-th VMA copied matched to
  // the k-th copyable mapping of a maps snapshot; "exact": copy_page_range's source
  // VMA matched by its start address; empty when nothing was attributed), what could
  // not be matched (order: launches that copied another number of VMAs; exact: VMA
  // copies whose start is not in the snapshot), and the mappings, most time first.
  std::string mapping_method;
  uint64_t mapping_unattributed = 0;
  std::vector<Mapping> mappings;

  const Phase* phase(const std::string& name) const;
  bool operator==(const Cell&) const = default;
};

// trace: a process that launched, with what it launched.
struct TraceParent {
  int pid = 0;
  std::string comm;  // at its first launch
  uint64_t launches = 0;
  uint64_t execs = 0;
  std::string exec_comm;  // after its last exec since then; empty when it did not exec

  bool operator==(const TraceParent&) const = default;
};

// trace: what was followed, for how long, and who launched.
struct TraceInfo {
  std::string target;  // "-- CMD ARGS", "-p PID", "--cgroup PATH" or "-a"
  double seconds = 0;
  int command_exit = -1;             // the command's exit status (-- CMD), -1 otherwise or when killed
  std::vector<TraceParent> parents;  // most launches first
  std::string group_by = "comm";     // --group-by: "comm", "exe", "pid" or "cgroup"

  bool operator==(const TraceInfo&) const = default;
};

struct Run {
  std::string schema = kSchema;
  std::string tool_version;
  std::string started;  // ISO 8601 UTC
  Host host;
  std::string backend;         // "tracepoint"
  std::string depth = "full";  // --depth: "syscall", "process" or "full"
  bool incomplete = false;
  uint64_t bpf_map_bytes = 0;  // kernel memory the BPF maps took (0: not known)
  std::vector<PhaseAvailability> phases_available;
  std::optional<Calibration> calibration;
  std::optional<TraceInfo> trace;  // forkscope trace; absent for forkscope run
  std::vector<Cell> cells;

  bool operator==(const Run&) const = default;
};

// What a results file may hold: far above anything forkscope writes, so that a
// crafted file is refused (exit 2) in bounded time and memory instead of being
// rendered.  The README's results-format section states them.
inline constexpr size_t kMaxResultsBytes = size_t{256} << 20;  // the file
inline constexpr size_t kMaxJsonDepth = 16;                    // nested arrays and objects (forkscope writes 7)
inline constexpr size_t kMaxStringBytes = 64 << 10;            // any string but trace.target
inline constexpr size_t kMaxCommandBytes = 16 << 20;           // trace.target: a traced command line
inline constexpr size_t kMaxCells = 10000;
inline constexpr size_t kMaxPhases = 1024;         // phases_available, and phases/failed_phases per cell
inline constexpr size_t kMaxPathParts = 64;        // parts of a phase or span path
inline constexpr size_t kMaxSamples = 1024;        // per cell (forkscope records at most 16)
inline constexpr size_t kMaxSpans = 65536;         // per sample
inline constexpr size_t kMaxParents = 100000;      // trace.parents
inline constexpr size_t kMaxMappings = 65536;      // per cell (a process has at most vm.max_map_count VMAs)
inline constexpr size_t kMaxExecPrograms = 65536;  // per cell (forkscope records at most 1024 in all)

// JSON round trip.  run_from_json throws usage_error naming the source (a file
// name, or "results") and the path of the first bad field.  Beyond the types and
// limits, a file holds each cell (mode, heap, vmas, comm, group, host) once, each phase name
// once per list, only phase names phases_available lists, paths ending in their
// phase's name, and no JSON key twice in one object.
std::string to_json(const Run& run, int indent = 2);
Run run_from_json(const std::string& text, const std::string& source = "results");
// Reads at most kMaxResultsBytes of the file (results_io.cpp).
Run load_results(const std::string& path);
// Under sudo (root with SUDO_UID and SUDO_GID set) the user who ran sudo: files
// forkscope writes are given to them.  Throws usage_error when the variables are
// set but are not ids.
struct FileOwner {
  uint32_t uid = 0;
  uint32_t gid = 0;
};
std::optional<FileOwner> invoking_user();

// Writes atomically: a temporary file in the same directory, then rename; the
// file is 0644 and belongs to invoking_user() when there is one.
void save_results(const Run& run, const std::string& path);
// The same for any output (reports); `what` names it in the error ("report").
void write_atomically(const std::string& path, const std::string& text, const std::string& what);

}  // namespace forkscope
