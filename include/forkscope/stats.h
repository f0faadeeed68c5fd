#pragma once
// Latency statistics: exact summaries of samples taken in user space, and
// percentiles estimated from the kernel side's log-linear histograms.
#include <cstdint>
#include <vector>

namespace forkscope {

struct Summary {
  uint64_t n = 0;
  uint64_t min = 0;
  double mean = 0;
  uint64_t p50 = 0;
  uint64_t p90 = 0;
  uint64_t p99 = 0;
  uint64_t max = 0;

  bool operator==(const Summary&) const = default;
};

// Nearest-rank percentile (q in [0,1]) of sorted samples: the smallest value with
// at least q*n samples at or below it.  Empty input gives 0.
uint64_t percentile_sorted(const std::vector<uint64_t>& sorted, double q);
Summary summarize(std::vector<uint64_t> samples);

// Histogram slots as the BPF side fills them (shared/hist.h fs_hist_slot).
uint64_t hist_slot_low(uint32_t slot);   // smallest value in the slot
uint64_t hist_slot_high(uint32_t slot);  // one past the largest value
// Percentile estimate from slot counts, interpolating linearly inside the slot.
uint64_t hist_percentile(const std::vector<uint64_t>& hist, double q);

// Ratio of two samples' medians (a / b) with a bootstrap confidence interval:
// both samples resampled with replacement `resamples` times (fixed seed, so a
// result file is reproducible), the interval is the central `level` of the ratios.
struct RatioEstimate {
  double ratio = 0;
  double low = 0;
  double high = 0;
};
RatioEstimate median_ratio(const std::vector<uint64_t>& a, const std::vector<uint64_t>& b, int resamples = 400,
                           double level = 0.95);

}  // namespace forkscope
