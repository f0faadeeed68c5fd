// `forkscope merge`: runs from several hosts or kernels in one results file.
#include <fmt/format.h>

#include <algorithm>

#include "forkscope/diff_merge.h"
#include "forkscope/error.h"
#include "forkscope/analysis.h"

namespace forkscope {

Run merge_runs(const std::vector<Run>& runs, const std::vector<std::string>& names) {
  if (runs.size() < 2)
    throw usage_error(
        "merge needs at least two results files; name them all, e.g. forkscope merge a.json b.json -o all.json");
  Run merged = runs.front();
  merged.cells.clear();
  for (size_t i = 0; i < runs.size(); ++i) {
    const Run& r = runs[i];
    if (r.schema != merged.schema)
      throw usage_error(
          fmt::format("{} has schema {:?} but {} has {:?}; merge files written by the same forkscope "
                      "version",
                      names[i], r.schema, names[0], merged.schema));
    // A trace section describes one traced target: merging would drop all but one.
    if (r.trace)
      throw usage_error(
          fmt::format("{} holds forkscope trace results; merge combines forkscope run results only "
                      "(report each trace on its own)",
                      names[i]));
    merged.incomplete = merged.incomplete || r.incomplete;
    // Every input's phases stay listed: user phases (--phase FUNC) may differ between runs.
    for (const PhaseAvailability& a : r.phases_available) {
      if (std::none_of(merged.phases_available.begin(), merged.phases_available.end(),
                       [&](const PhaseAvailability& m) { return m.name == a.name; }))
        merged.phases_available.push_back(a);
    }
    for (const Cell& c : r.cells) {
      Cell labelled = c;
      // Cells of an already merged file keep the host they were labelled with.
      if (labelled.host.empty()) labelled.host = r.host.hostname + " " + r.host.kernel;
      const auto twin = std::find_if(merged.cells.begin(), merged.cells.end(),
                                     [&](const Cell& m) { return same_cell(m, labelled); });
      if (twin != merged.cells.end())
        throw usage_error(
            fmt::format("{}: cell {} is already in an earlier input; merge runs of different hosts, "
                        "kernels, heap sizes or VMA counts",
                        names[i], cell_label(labelled)));
      merged.cells.push_back(std::move(labelled));
    }
  }
  return merged;
}

}  // namespace forkscope
