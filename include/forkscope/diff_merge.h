#pragma once
// Working across results files: `forkscope diff` compares two runs cell by cell and
// phase by phase, `forkscope merge` joins runs from several hosts or kernels.
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "forkscope/results.h"

namespace forkscope {

// Where run-to-run noise leaves a phase's median, judged from its histogram of
// per-launch time: the distribution-free 95% confidence interval of the median
// (the order statistics at ranks n/2 -+ 0.98 sqrt(n)), widened to the edges of the
// histogram slots those ranks fall in.  Two medians differ beyond noise when their
// intervals neither overlap nor touch (neighbouring slots are the resolution).
struct MedianInterval {
  uint64_t n = 0;
  uint64_t p50 = 0;
  uint64_t low = 0;   // ns, inclusive
  uint64_t high = 0;  // ns, exclusive
};
// Fewer launches than this in a histogram give no verdict.
inline constexpr uint64_t kMinLaunchesForVerdict = 5;
std::optional<MedianInterval> median_interval(const std::vector<uint64_t>& hist);

enum class Verdict { kNoise, kSlower, kFaster, kUnknown };

struct PhaseDiff {
  std::string path;
  const Phase* a = nullptr;  // null: only in B
  const Phase* b = nullptr;  // null: only in A
  Verdict verdict = Verdict::kUnknown;
};

// One mapping identity (name, permissions, size) of a cell in A and B.
struct MappingDiff {
  const Mapping* a = nullptr;  // null: only in B
  const Mapping* b = nullptr;  // null: only in A
};

// Cells are matched by mode, heap size, VMA count and (for merged results) host.
struct CellDiff {
  const Cell* a = nullptr;            // null: only in B
  const Cell* b = nullptr;            // null: only in A
  std::vector<PhaseDiff> phases;      // A's tree order, then phases only in B
  std::vector<MappingDiff> mappings;  // A's order (most time first), then mappings only in B
};

// Throws usage_error when the two runs have no cell in common.
std::vector<CellDiff> diff_runs(const Run& a, const Run& b, const std::string& a_name, const std::string& b_name);
// Per cell (trace: under a line with the launcher's huge pages, page tables and
// RSS in A and B, where either side has huge pages) a table of phases (mean per
// launch in A and B, delta, ratio, verdict) and, where either side attributed dup_mmap by mapping, the top mappings' time per
// fork with its delta; then the cells found on one side only.
void render_diff(const std::vector<CellDiff>& diff, const std::string& a_name, const std::string& b_name,
                 std::ostream& out, bool color);

// One run holding every input's cells, each labelled with its host
// ("hostname kernel"); the rest (host, backend, phases_available) is the first
// input's.  Throws usage_error for fewer than two inputs, differing schemas or a
// cell (mode, heap, VMA count, host) present twice.
Run merge_runs(const std::vector<Run>& runs, const std::vector<std::string>& names);

}  // namespace forkscope
