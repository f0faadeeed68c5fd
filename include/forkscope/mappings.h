#pragma once
// Per-mapping attribution of dup_mmap (issue 14): a snapshot of the launching
// process's mappings (/proc/PID/smaps) taken while they are stable, and the match of
// what the kernel aggregated to it: by order with tracepoints (the k-th copied VMA is
// the k-th copyable mapping), by address with function probes (copy_page_range's
// source VMA starts where a mapping of the snapshot starts).
#include <sys/types.h>

#include <cstdint>
#include <string>
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

// What the kernel aggregated for one cell: per (VMAs a launch copied, k-th VMA).
struct MappingSlot {
  uint32_t nvmas = 0;
  uint32_t idx = 0;  // FS_MAP_OTHER (1024) for every VMA past the first 1024
  uint64_t calls = 0;
  uint64_t setup_ns = 0;
  uint64_t cpr_ns = 0;
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
  bool exact = false;              // copy_page_range was function-probed: vmas, not slots
  std::vector<MappingSlot> slots;  // order method
  std::vector<MappingVma> vmas;    // exact method
  uint64_t lost = 0;               // order: launches, exact: VMA copies, that had no room in the kernel's maps
};

// Fills cell.mapping_method, mapping_unattributed and mappings, whose rows group the
// snapshot's copyable mappings by name, permissions and size (the 1,024th on in one
// "(other mappings)" row, for both methods).
//  - order: launches whose copied VMA count equals the snapshot's copyable count are
//    attributed slot by slot; the others, and the kernel's lost ones, are counted
//    unattributed (launches).
//  - exact: each source VMA whose start is a copyable mapping's start of the snapshot
//    goes to that mapping; the others (an address not in the snapshot, start 0) and
//    the kernel's lost ones are counted unattributed (VMA copies).  launches is the
//    cell's launches that returned a child (the kernel's count).
// Nothing copied: the cell is left as it is.
void attribute_mappings(const std::vector<MappingInfo>& snapshot, const KernelMappings& kernel, Cell& cell);

}  // namespace forkscope
