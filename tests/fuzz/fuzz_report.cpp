// libFuzzer target: the report renderers fed by the validating results reader,
// as `forkscope report` feeds them files from anywhere.  Whatever the reader
// accepts, every format must render into a string (or be refused with a one-line
// usage error, exit code 2); nothing may crash, hang or escape as another error.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>

#include "forkscope/analysis.h"
#include "forkscope/diff_merge.h"
#include "forkscope/error.h"
#include "forkscope/formats.h"
#include "forkscope/results.h"
#include "refusal.h"
#include "forkscope/terminal.h"

namespace {

void render_everything(const forkscope::Run& run) {
  using namespace forkscope;
  std::ostringstream text;
  for (const bool color : {false, true}) {
    render_text_report(run, featured_cell(run), text, color);
    render_overhead(run, text);
  }
  // The HTML report once (it holds the charts and every cell's tree); each cell's own formats after.
  std::string out = html_report(run, featured_cell(run)) + phases_csv(run) + trace_events(run);
  for (const Cell& cell : run.cells) {
    out += folded_stacks(cell) + flame_svg(run, cell);
    render_phase_tree(cell, text, false, run.calibration ? &*run.calibration : nullptr, run.backend);
  }
  render_diff(diff_runs(run, run, "a", "b"), "a", "b", text, false);
  if (out.empty() && text.str().empty()) std::abort();  // keeps the work observable
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  forkscope::Run run;
  try {
    run = forkscope::run_from_json(std::string(reinterpret_cast<const char*>(data), size));
  } catch (const forkscope::Error&) {
    return 0;  // fuzz_results holds the reader to its refusals
  }
  // report refuses a file without cells before rendering anything.
  if (run.cells.empty()) return 0;
  try {
    render_everything(run);
  } catch (const forkscope::Error& e) {
    check_refusal(e);
  }
  return 0;
}
