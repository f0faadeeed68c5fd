#pragma once
// Shared by the unit tests that feed bad input: what a usage error says.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "forkscope/error.h"

namespace forkscope::test {

// The message of the usage error f raises; fails the test on anything else,
// and on a message of more than one line.
inline std::string usage_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), kExitUsage) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "accepted";
  return "";
}

}  // namespace forkscope::test
