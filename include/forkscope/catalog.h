#pragma once
// C++ view of the shared phase catalog (include/forkscope/shared/catalog.h) and
// the tree built from per-phase aggregates.
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
  int parent;  // FS_PH_NONE for roots
  int tp_source;  // enum fs_source for the tracepoint backend
  const char* how;
};

const std::vector<CatalogEntry>& catalog();
const char* source_name(int source);  // "tracepoint", "derived", "fentry", "kprobe", ""
// Bitmask of phases a backend measures.
uint32_t measured_mask(int backend_source);
// "syscall;copy_process;dup_mm": names of the measured ancestors and the phase.
std::string phase_path(int id, uint32_t mask);

// Per-phase aggregate as read from the kernel, summed over CPUs.
struct PhaseAgg {
  uint64_t count = 0, calls = 0, total_ns = 0, self_ns = 0;
  std::vector<uint64_t> hist;  // FS_HIST_SLOTS entries
};

// Phases with count > 0, in catalog (tree) order, with paths, means and percentiles.
std::vector<Phase> build_phases(const std::vector<PhaseAgg>& by_id, uint32_t mask);

}  // namespace forkscope
