#include "session/followed_mappings.h"

#include <cstdio>

namespace forkscope {

void FollowedMappings::poll(const Tracer& tracer) {
  snapshots_.update(tracer.read_map_launchers(), [&](uint32_t tgid, size_t copyable, uint32_t nvmas) {
    if (verbose_)
      std::fprintf(stderr, "forkscope: mappings of pid %u read: %zu copyable, its last launch copied %u\n", tgid,
                   copyable, nvmas);
  });
}

void FollowedMappings::attribute(const KernelMappings& kernel, Cell& cell) const {
  attribute_mappings([&](uint32_t tgid, uint32_t nvmas) { return snapshots_.find(tgid, nvmas); }, kernel, cell);
}

}  // namespace forkscope
