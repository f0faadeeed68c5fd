#include <iostream>

#include "cli/commands.h"
#include "forkscope/diff_merge.h"
#include "forkscope/error.h"
#include "forkscope/terminal.h"

namespace forkscope {
namespace {

struct DiffOptions {
  std::string a;
  std::string b;
  bool no_color = false;
};

int diff_command(const DiffOptions& o) {
  const Run a = load_results(o.a);
  const Run b = load_results(o.b);
  render_diff(diff_runs(a, b, o.a, o.b), o.a, o.b, std::cout, !o.no_color && stdout_is_tty());
  return kExitOk;
}

}  // namespace

void add_diff_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<DiffOptions>();
  CLI::App* sub = app.add_subcommand(
      "diff",
      "Compare two results files.  Cells match by mode and heap size (and host, for merged\n"
      "files); per phase: mean time per launch in A and B, delta, ratio, and whether B differs\n"
      "from A beyond run-to-run noise.  The noise rule: from each phase's histogram of per-launch\n"
      "time, the median's distribution-free 95% confidence interval (the values at ranks\n"
      "n/2 -+ 0.98*sqrt(n)), widened to the edges of the histogram slots they fall in (slots are\n"
      "1/8 of a power of two wide); \"slower\" or \"faster\" only when A's and B's intervals neither\n"
      "overlap nor touch, \"within noise\" otherwise, no verdict under 5 launches or without a histogram.\n"
      "Cells and phases found on one side only are listed as such.\n"
      "Example: forkscope diff before/results.json after/results.json");
  sub->add_option("a", opts->a, "results.json of the baseline (A)")->required();
  sub->add_option("b", opts->b, "results.json to compare with it (B)")->required();
  sub->add_flag("--no-color", opts->no_color, "No colour even on a terminal");
  sub->callback([opts, &exit_code] { exit_code = diff_command(*opts); });
}

}  // namespace forkscope
