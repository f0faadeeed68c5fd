#include "cli/commands.h"
#include "forkscope/error.h"
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
  } catch (...) {
    const std::string sub = app.get_subcommands().empty() ? "" : " " + app.get_subcommands()[0]->get_name();
    return forkscope::failure_exit(app, "forkscope" + sub);
  }
  return exit_code;
}
