#pragma once
// Per-mapping attribution of followed launches (trace, serve at --depth full): the
// launching processes' snapshots, polled while following, and each group's
// attribution against them (mappings.h).
#include <cstdint>

#include "forkscope/mappings.h"
#include "forkscope/probes.h"

namespace forkscope {

class FollowedMappings {
 public:
  explicit FollowedMappings(bool verbose) : verbose_(verbose) {}
  // Every 100 ms at most while following (a launching process's snapshot waits no
  // longer): reads each launching process's mappings when it is first seen and again
  // when the count of VMAs its launches copy changes.
  void poll(const Tracer& tracer);
  // A group's per-mapping attribution into cell (mapping_method, _unattributed,
  // mappings): kernel is its cell's Tracer::read_mappings (or read_all_mappings's).
  void attribute(const KernelMappings& kernel, Cell& cell) const;

 private:
  ProcessSnapshots snapshots_;
  bool verbose_;
};

}  // namespace forkscope
