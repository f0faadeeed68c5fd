// libFuzzer target: the results-file parser that report, diff and merge run on
// files from anywhere.  Any input must either parse or be refused with a
// one-line usage error (exit code 2); nothing else may escape, crash or hang.
// What parses must survive a write and a second read unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "forkscope/error.h"
#include "forkscope/results.h"
#include "refusal.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  forkscope::Run run;
  try {
    run = forkscope::run_from_json(text);
  } catch (const forkscope::Error& e) {
    check_refusal(e);
    return 0;
  }
  const std::string once = forkscope::to_json(run);
  const std::string twice = forkscope::to_json(forkscope::run_from_json(once));
  if (once != twice) {
    std::fprintf(stderr, "round trip changed the document:\n%s\n---\n%s\n", once.c_str(), twice.c_str());
    std::abort();
  }
  return 0;
}
