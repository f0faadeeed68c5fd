#include <cstdio>

#include "cli/commands.h"
#include "cli/preflight.h"
#include "forkscope/diff_merge.h"
#include "forkscope/error.h"
#include "forkscope/untrusted.h"

namespace forkscope {
namespace {

struct MergeOptions {
  std::vector<std::string> inputs;
  std::string out;
};

int merge_command(const MergeOptions& o) {
  check_out_file(o.out, "-o");
  std::vector<Run> runs;
  for (const std::string& path : o.inputs) runs.push_back(load_results(path));
  const Run merged = merge_runs(runs, o.inputs);
  save_results(merged, o.out);
  std::fprintf(stderr,
               "forkscope: merged %zu files (%zu cells) into %s; each cell names its host, the top-level host, "
               "backend and phases_available are %s's\n",
               runs.size(), merged.cells.size(), safe_text(o.out).c_str(), safe_text(o.inputs.front()).c_str());
  return kExitOk;
}

}  // namespace

void add_merge_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<MergeOptions>();
  CLI::App* sub =
      app.add_subcommand("merge",
                         "Join results files from several hosts or kernels into one.  Each cell is labelled with\n"
                         "its host (\"hostname kernel\", cells[].host); the top-level host, backend and\n"
                         "phases_available are the first file's.  The same cell (mode, heap, host) twice is an error.\n"
                         "Example: forkscope merge laptop.json server.json -o all.json");
  sub->add_option("results", opts->inputs, "Two or more results.json files")->required();
  sub->add_option("-o,--output", opts->out, "The merged results file (written atomically)")->required();
  sub->callback([opts, &exit_code] { exit_code = merge_command(*opts); });
}

}  // namespace forkscope
