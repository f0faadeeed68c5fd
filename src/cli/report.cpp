#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli/commands.h"
#include "cli/preflight.h"
#include "forkscope/error.h"
#include "forkscope/terminal.h"
#include "forkscope/session.h"
#include "forkscope/formats.h"

namespace forkscope {

std::string save_and_print(const Run& run, const std::string& out, bool color) {
  const auto [path, report] = save_outputs(run, out);
  render_text_report(run, featured_cell(run), std::cout, color);
  std::cout << "\n";
  render_overhead(run, std::cout);
  std::cout << "\nresults: " << path << "\nreport: " << report << "\n";
  return path;
}

namespace {

struct ReportOptions {
  std::string input;
  std::string format = "table";
  std::string out;
  std::string cell;
  bool no_color = false;
};

const Cell& chosen_cell(const Run& run, const ReportOptions& o) {
  return o.cell.empty() ? *featured_cell(run) : find_cell(run, o.cell);
}

bool has_samples(const Run& run) {
  for (const Cell& c : run.cells) {
    if (!c.samples.empty()) return true;
  }
  return false;
}

std::string render_table(const Run& run, const ReportOptions& o) {
  std::ostringstream text;
  const Cell* tree = o.cell.empty() ? featured_cell(run) : &find_cell(run, o.cell);
  // Colour only for a terminal, never into a file.
  render_text_report(run, tree, text, !o.no_color && o.out.empty() && stdout_is_tty());
  return text.str();
}

std::string render_trace(const Run& run, const ReportOptions& o) {
  if (!has_samples(run))
    throw usage_error(o.input +
                      " has no sampled launches (cells[].samples) to draw a timeline from; use a run "
                      "whose backend records samples");
  return trace_events(run);
}

// Every format `report` knows: the help text, the --format check and the dispatch
// all read this table.
struct Format {
  const char* name;
  const char* description;  // lines after the first are indented under it in --help
  std::string (*render)(const Run& run, const ReportOptions& o);
};

const std::vector<Format>& formats() {
  static const std::vector<Format> table = {
      {"table", "what `forkscope run` prints: summary, growth with the heap, one cell's phase tree", render_table},
      {"folded",
       "one cell's phases as folded stacks (a;b;c <self ns summed over launches>) for\nflamegraph.pl or speedscope",
       [](const Run& run, const ReportOptions& o) { return folded_stacks(chosen_cell(run, o)); }},
      {"flame", "one cell's flame graph as a self-contained SVG (click to zoom, search)",
       [](const Run& run, const ReportOptions& o) { return flame_svg(run, chosen_cell(run, o)); }},
      {"trace", "the sampled launches as Chrome trace-event JSON (Perfetto UI, speedscope)", render_trace},
      {"html", "the self-contained HTML report `run` writes as report.html",
       [](const Run& run, const ReportOptions& o) { return html_report(run, &chosen_cell(run, o)); }},
      {"csv", "one row per cell and phase", [](const Run& run, const ReportOptions&) { return phases_csv(run); }},
      {"mappings-csv", "one row per cell and mapping: where dup_mmap's time went",
       [](const Run& run, const ReportOptions&) { return mappings_csv(run); }},
      {"json", "the results file itself, re-validated",
       [](const Run& run, const ReportOptions&) { return to_json(run) + "\n"; }},
  };
  return table;
}

std::string render(const Run& run, const ReportOptions& o) {
  for (const Format& f : formats()) {
    if (o.format == f.name) return f.render(run, o);
  }
  throw usage_error("unknown report format '" + o.format + "'");  // --format's check lets none through
}

// "  name    description", continuation lines indented under the description.
std::string formats_help() {
  std::string help;
  for (const Format& f : formats()) {
    std::string line = fmt::format("  {:<8}", f.name);
    for (const char* c = f.description; *c != '\0'; ++c) {
      line += *c;
      if (*c == '\n') line += std::string(10, ' ');
    }
    help += line + "\n";
  }
  return help;
}

std::vector<std::string> format_names() {
  std::vector<std::string> names;
  for (const Format& f : formats()) names.emplace_back(f.name);
  return names;
}

int report_command(const ReportOptions& o) {
  if (!o.out.empty()) check_out_file(o.out, "-o");
  const Run run = load_results(o.input);
  // Every format refuses a file without cells alike (one with nothing to show).
  if (run.cells.empty())
    throw usage_error(o.input + " has no cells; report a results file of a run that finished a cell");
  const std::string text = render(run, o);
  if (o.out.empty()) {
    std::cout << text << std::flush;
  } else {
    write_atomically(o.out, text, "report");
  }
  return kExitOk;
}

}  // namespace

void add_report_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<ReportOptions>();
  CLI::App* sub = app.add_subcommand(
      "report", "Render a results file.  Formats:\n" + formats_help() +
                    "Example: forkscope report forkscope-out/results.json --format flame --cell fork:64M -o fork.svg");
  sub->add_option("results", opts->input, "results.json written by forkscope run (or merge)")->required();
  sub->add_option("--format", opts->format, fmt::format("{}", fmt::join(format_names(), ", ")))
      ->check(CLI::IsMember(format_names()))
      ->capture_default_str();
  sub->add_option("-o,--output", opts->out, "Write to this file (atomically) instead of stdout");
  sub->add_option("--cell", opts->cell,
                  "MODE:HEAP, e.g. fork:64M: the cell for table (tree), folded, flame and html (flame graph);\n"
                  "HOST/MODE:HEAP in merged results (HOST: hostname, or \"hostname kernel\")\n"
                  "[default: the largest fork cell, as run chooses]");
  sub->add_flag("--no-color", opts->no_color, "No colour even on a terminal");
  sub->callback([opts, &exit_code] { exit_code = report_command(*opts); });
}

}  // namespace forkscope
