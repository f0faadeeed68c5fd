#pragma once
// What the fuzz targets accept as a refusal: a usage error (exit code 2) in one
// line, as the binary prints it.  Anything else aborts, which libFuzzer reports.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "forkscope/error.h"

inline void check_refusal(const forkscope::Error& e) {
  const std::string what = e.what();
  if (e.exit_code() != forkscope::kExitUsage || what.find('\n') != std::string::npos) {
    std::fprintf(stderr, "refused with exit code %d and message: %s\n", e.exit_code(), e.what());
    std::abort();
  }
}
