#pragma once
// One file per subcommand.  Each registers itself on the app; its callback runs
// the command and stores the exit code.  Failures are thrown as forkscope::Error.
#include <CLI/CLI.hpp>

#include "forkscope/results.h"

namespace forkscope {

// The check of every count option (--iterations, --threads, --cpu, -p, ...):
// decimal digits only, as parse_whole_number reads them.
CLI::Validator whole_number();

// From a catch (...) block: the one line on stderr for what was thrown and its
// exit code (usage errors from CLI11 made safe and pointed at `HELP --help`).
int failure_exit(const CLI::App& app, const std::string& help);

// How run and trace end: results.json and report.html saved in OUT (made by
// prepare_out_dir), the text report and the observer effect printed, then the two
// paths.  Returns the results file's path.
std::string save_and_print(const Run& run, const std::string& out, bool color);

void add_run_command(CLI::App& app, int& exit_code);
void add_doctor_command(CLI::App& app, int& exit_code);
void add_report_command(CLI::App& app, int& exit_code);
void add_diff_command(CLI::App& app, int& exit_code);
void add_merge_command(CLI::App& app, int& exit_code);
void add_trace_command(CLI::App& app, int& exit_code);
void add_serve_command(CLI::App& app, int& exit_code);

}  // namespace forkscope
