#pragma once
// One file per subcommand.  Each registers itself on the app; its callback runs
// the command and stores the exit code.  Failures are thrown as forkscope::Error.
#include <CLI/CLI.hpp>

namespace forkscope {

// The check of every count option (--iterations, --threads, --cpu, -p, ...):
// decimal digits only, as parse_whole_number reads them.
CLI::Validator whole_number();

void add_run_command(CLI::App& app, int& exit_code);
void add_doctor_command(CLI::App& app, int& exit_code);
void add_report_command(CLI::App& app, int& exit_code);
void add_diff_command(CLI::App& app, int& exit_code);
void add_merge_command(CLI::App& app, int& exit_code);
void add_trace_command(CLI::App& app, int& exit_code);
void add_serve_command(CLI::App& app, int& exit_code);

}  // namespace forkscope
