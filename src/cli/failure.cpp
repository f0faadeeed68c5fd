#include <cstdio>

#include "cli/commands.h"
#include "forkscope/error.h"
#include "forkscope/untrusted.h"

namespace forkscope {

int failure_exit(const CLI::App& app, const std::string& help) {
  try {
    throw;
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    // The arguments are the user's: made safe before they are echoed.
    std::string what = safe_text(e.what());
    // CLI11 says "--out: At Most 1 required but received 2" of a repeated option.
    if (const size_t at = what.find(": At Most 1 required"); at != std::string::npos)
      what = what.substr(0, at) + " is given more than once; give it once";
    std::fprintf(stderr, "forkscope: %s; see %s --help\n", what.c_str(), help.c_str());
    return kExitUsage;
  } catch (const Error& e) {
    std::fprintf(stderr, "forkscope: %s\n", e.what());
    return e.exit_code();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "forkscope: %s\n", e.what());
    return kExitFailure;
  }
}

}  // namespace forkscope
