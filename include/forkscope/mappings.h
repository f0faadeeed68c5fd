#pragma once
// Per-mapping attribution of dup_mmap (issue 14): a snapshot of the launching
// process's mappings (/proc/PID/smaps) taken while they are stable (run: the runner's
// at each cell's start; trace: each launching process's when it is first seen and
// again when the count of VMAs it copies changes), and the match of what the kernel
// aggregated to it: by order with tracepoints (the k-th copied VMA is the k-th
// copyable mapping), by address with function probes in run (copy_page_range's
// source VMA starts where a mapping of the snapshot starts).
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <functional>
#include <map>
#include <string_view>
#include <vector>

#include "forkscope/results.h"

namespace forkscope {

// One VMA of a snapshot, in address order.
struct MappingInfo {
  std::string name;   // safe_text of the path, or [heap], [stack], [anon], [anon:NAME], [vdso]...
  std::string kind;   // file, heap, stack, anon, special
  std::string perms;  // rwxp
  uint64_t start = 0;
  uint64_t end = 0;
  uint64_t rss_bytes = 0;
  bool dontcopy = false;  // VmFlags dc (VM_DONTCOPY, MADV_DONTFORK): fork skips it

  bool operator==(const MappingInfo&) const = default;
};

// The VMAs of smaps text in order; [vsyscall] (the gate page, not a VMA of the mm) left out.
std::vector<MappingInfo> parse_smaps(std::string_view text);
// /proc/PID/smaps of pid; empty when it cannot be read.
std::vector<MappingInfo> read_smaps(pid_t pid);

// What the kernel aggregated for one cell: per (VMAs a launch copied, k-th VMA,
// launching process).
struct MappingSlot {
  uint32_t nvmas = 0;
  uint32_t idx = 0;  // FS_MAP_OTHER (1024) for every VMA past the first 1024
  uint64_t calls = 0;
  uint64_t setup_ns = 0;
  uint64_t cpr_ns = 0;
  uint32_t tgid = 0;  // trace: the launching process; run: 0
};
inline constexpr uint32_t kMappingSlots = 1024;  // FS_MAP_SLOTS of shared/records.h
// Exact method: what the kernel aggregated per source VMA (copy_page_range's
// src_vma), keyed by its start address; start 0: VMAs whose copy was not seen.
struct MappingVma {
  uint64_t start = 0;
  uint64_t calls = 0;  // copies of it: one per launch
  uint64_t setup_ns = 0;
  uint64_t cpr_ns = 0;
};
struct KernelMappings {
  bool exact = false;              // run, copy_page_range function-probed: vmas, not slots
  std::vector<MappingSlot> slots;  // order method
  std::vector<MappingVma> vmas;    // exact method
  uint64_t lost = 0;               // order: launches, exact: VMA copies, that had no room in the kernel's maps
};

// The snapshot to match the launches of process tgid that copied nvmas VMAs against
// (its copyable count nvmas), or null: those launches are counted unattributed.
using SnapshotFor = std::function<const std::vector<MappingInfo>*(uint32_t tgid, uint32_t nvmas)>;

// Fills cell.mapping_method, mapping_unattributed and mappings: launches whose process
// has a snapshot of their copied VMA count are attributed slot by slot to its
// mappings, grouped by identity (name, permissions, size) across processes; the
// others, and the kernel's lost ones, are counted unattributed.  Each row's launches
// are the cell's attributed launches (its VMAs/fork a mean over them); its vmas,
// bytes, rss and page tables the snapshots' that have it, weighted by the launches
// matched to each.
// Nothing copied: the cell is left as it is.
void attribute_mappings(const SnapshotFor& snapshot_for, const KernelMappings& kernel, Cell& cell);
// run: the runner's one snapshot.  With kernel.exact, each source VMA whose start is
// a copyable mapping's start goes to that mapping's row (rows as above); the others
// (an address not in the snapshot, start 0) and the kernel's lost ones are counted
// unattributed, in VMA copies; each row's launches is the kernel's count of launches.
void attribute_mappings(const std::vector<MappingInfo>& snapshot, const KernelMappings& kernel, Cell& cell);

// trace: a launching process as the kernel saw it (map_launchers).
struct LauncherLayout {
  uint32_t tgid = 0;
  uint32_t nvmas = 0;     // VMAs its last launch copied
  uint64_t launches = 0;  // that copied VMAs
  uint64_t start_ns = 0;  // its start: another value means the pid was reused
};

// trace: the snapshots of the launching processes, one per copyable count seen.  A
// process is read when first seen, and again while its last launch copied a count
// none of its snapshots has (once per new launch, so a layout that keeps changing
// costs one read per poll at most).  A pid reused by another process keeps no
// snapshot: its launches are counted unattributed, as are those of a process that
// exited first.  Bounded: past kMaxProcesses new processes, past kMaxLayouts a
// process's new layouts, are not read (their launches counted unattributed).
class ProcessSnapshots {
 public:
  static constexpr size_t kMaxProcesses = 4096;
  static constexpr size_t kMaxLayouts = 64;
  using Reader = std::function<std::vector<MappingInfo>(pid_t)>;
  explicit ProcessSnapshots(Reader read = read_smaps) : read_(std::move(read)) {}
  // Reads what launchers call for; on_read(tgid, copyable, nvmas) after each read.
  void update(const std::vector<LauncherLayout>& launchers,
              const std::function<void(uint32_t, size_t, uint32_t)>& on_read = {});
  const std::vector<MappingInfo>* find(uint32_t tgid, uint32_t nvmas) const;
  size_t reads() const { return reads_; }

 private:
  struct Process {
    uint64_t start_ns = 0;
    uint64_t tried_at = 0;  // launches when last read
    bool reused = false;
    std::map<uint32_t, std::vector<MappingInfo>> by_count;
  };
  Reader read_;
  std::map<uint32_t, Process> procs_;
  size_t reads_ = 0;
};

}  // namespace forkscope
