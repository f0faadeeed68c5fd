#include <cstdio>

#include "cli/commands.h"
#include "forkscope/error.h"
#include "forkscope/untrusted.h"
#include "forkscope/version.h"

int main(int argc, char** argv) {
  CLI::App app{
      "forkscope: where the Linux kernel spends the time of a process or thread launch.\n"
      "Launches fork/vfork/clone/pthread/posix_spawn over a sweep of heap sizes, times each\n"
      "launch from user space and attributes the kernel's share to phases of copy_process\n"
      "with CO-RE BPF programs.  Start with `forkscope doctor`, then `forkscope run`;\n"
      "`forkscope trace -- CMD` gives the same breakdown for any workload.\n\n"
      "Exit codes: 0 success, 1 failure or interrupted, 2 bad usage or input,\n"
      "3 missing privilege or kernel feature.",
      "forkscope"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "forkscope " FORKSCOPE_VERSION);
  int exit_code = forkscope::kExitOk;
  forkscope::add_run_command(app, exit_code);
  forkscope::add_doctor_command(app, exit_code);
  forkscope::add_report_command(app, exit_code);
  forkscope::add_diff_command(app, exit_code);
  forkscope::add_merge_command(app, exit_code);
  forkscope::add_trace_command(app, exit_code);
  forkscope::add_serve_command(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::string sub = app.get_subcommands().empty() ? "" : app.get_subcommands()[0]->get_name() + " ";
    // The arguments are the user's: made safe before they are echoed.
    std::string what = forkscope::safe_text(e.what());
    // CLI11 says "--out: At Most 1 required but received 2" of a repeated option.
    if (const size_t at = what.find(": At Most 1 required"); at != std::string::npos)
      what = what.substr(0, at) + " is given more than once; give it once";
    std::fprintf(stderr, "forkscope: %s; see forkscope %s--help\n", what.c_str(), sub.c_str());
    return forkscope::kExitUsage;
  } catch (const forkscope::Error& e) {
    std::fprintf(stderr, "forkscope: %s\n", e.what());
    return e.exit_code();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "forkscope: %s\n", e.what());
    return forkscope::kExitFailure;
  }
  return exit_code;
}
