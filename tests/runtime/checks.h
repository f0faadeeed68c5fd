#pragma once
// Assertions on results that several runtime suites share.
#include <gtest/gtest.h>

#include <string>

#include "forkscope/results.h"

namespace forkscope::test {

// The breakdown adds up: every phase's self time plus the totals of the phases
// directly under it equals its total, within 1%.
inline void expect_phases_add_up(const Cell& c) {
  for (const Phase& parent : c.phases) {
    uint64_t children = 0;
    for (const Phase& child : c.phases) {
      if (child.path.rfind(parent.path + ";", 0) == 0 &&
          child.path.find(';', parent.path.size() + 1) == std::string::npos)
        children += child.total_ns;
    }
    EXPECT_LE(children, parent.total_ns) << c.comm << " " << c.mode << " " << parent.path;
    EXPECT_NEAR(static_cast<double>(parent.self_ns + children), static_cast<double>(parent.total_ns),
                0.01 * static_cast<double>(parent.total_ns) + 1)
        << c.comm << " " << c.mode << " " << parent.path;
  }
}

}  // namespace forkscope::test
