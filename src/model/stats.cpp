#include "forkscope/stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "forkscope/shared/catalog.h"

namespace forkscope {
namespace {

// 1-based nearest rank of the q-percentile among n > 0 samples.  q*n is binary
// floating point, where 0.07 * 100 comes out as 7.000000000000001; a product within
// rounding error of an integer is taken as that integer so the rank is not one too high.
uint64_t nearest_rank(double q, uint64_t n) {
  double r = std::fmin(std::fmax(q, 0.0), 1.0) * static_cast<double>(n);
  const double whole = std::round(r);
  if (std::fabs(r - whole) <= 1e-9 * std::fmax(1.0, r)) r = whole;
  return std::clamp<uint64_t>(static_cast<uint64_t>(std::ceil(r)), 1, n);
}

// The BPF side clamps large values into the last slot; clamping here keeps the
// shifts below in range for any slot number.
uint32_t valid_slot(uint32_t slot) { return std::min<uint32_t>(slot, FS_HIST_SLOTS - 1); }

}  // namespace

uint64_t percentile_sorted(const std::vector<uint64_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  return sorted[nearest_rank(q, sorted.size()) - 1];
}

Summary summarize(std::vector<uint64_t> samples) {
  Summary s;
  if (samples.empty()) return s;
  std::sort(samples.begin(), samples.end());
  s.n = samples.size();
  s.min = samples.front();
  s.max = samples.back();
  // long double: a sum of many large ns values must not lose the low digits.
  const long double sum = std::accumulate(samples.begin(), samples.end(), 0.0L);
  s.mean = static_cast<double>(sum / static_cast<long double>(s.n));
  s.p50 = percentile_sorted(samples, 0.50);
  s.p90 = percentile_sorted(samples, 0.90);
  s.p99 = percentile_sorted(samples, 0.99);
  return s;
}

// Inverse of fs_hist_slot: slot s >= 8 holds the values whose top bit is
// msb = s/8 + 2 and whose next three bits are s%8.
uint64_t hist_slot_low(uint32_t slot) {
  const uint32_t s = valid_slot(slot);
  if (s < 8) return s;
  const uint32_t msb = s / 8 + 2;
  return static_cast<uint64_t>(8 + s % 8) << (msb - 3);
}

uint64_t hist_slot_high(uint32_t slot) {
  const uint32_t s = valid_slot(slot);
  if (s < 8) return s + 1;
  const uint32_t msb = s / 8 + 2;
  return static_cast<uint64_t>(9 + s % 8) << (msb - 3);
}

uint64_t hist_percentile(const std::vector<uint64_t>& hist, double q) {
  const uint64_t total = std::accumulate(hist.begin(), hist.end(), uint64_t{0});
  if (total == 0) return 0;
  const uint64_t target = nearest_rank(q, total);
  // target <= total, so the slot holding it exists.
  size_t slot = 0;
  uint64_t before = 0;
  while (before + hist[slot] < target) before += hist[slot++];
  // The samples of a slot are taken as spread evenly over it: the k-th of c sits at
  // (k - 0.5) / c of the slot's width, which stays strictly inside the slot.
  const uint64_t low = hist_slot_low(static_cast<uint32_t>(slot));
  const uint64_t high = hist_slot_high(static_cast<uint32_t>(slot));
  const double pos = (static_cast<double>(target - before) - 0.5) / static_cast<double>(hist[slot]);
  const uint64_t offset = static_cast<uint64_t>(static_cast<double>(high - low) * pos);
  return std::min(low + offset, high - 1);
}

namespace {

uint64_t median_of(std::vector<uint64_t>& v) {
  auto mid = v.begin() + static_cast<std::ptrdiff_t>((v.size() - 1) / 2);
  std::nth_element(v.begin(), mid, v.end());
  return *mid;
}

}  // namespace

RatioEstimate median_ratio(const std::vector<uint64_t>& a, const std::vector<uint64_t>& b, int resamples,
                           double level) {
  RatioEstimate r;
  if (a.empty() || b.empty()) return r;
  std::vector<uint64_t> x = a, y = b;
  const uint64_t mb = median_of(y);
  if (mb == 0) return r;
  r.ratio = static_cast<double>(median_of(x)) / static_cast<double>(mb);
  std::mt19937_64 rng(0x5eed);
  std::vector<double> ratios;
  ratios.reserve(static_cast<size_t>(resamples));
  for (int i = 0; i < resamples; i++) {
    for (auto& v : x) v = a[rng() % a.size()];
    for (auto& v : y) v = b[rng() % b.size()];
    const uint64_t d = median_of(y);
    if (d) ratios.push_back(static_cast<double>(median_of(x)) / static_cast<double>(d));
  }
  if (ratios.empty()) return r;
  std::sort(ratios.begin(), ratios.end());
  const double tail = (1 - level) / 2;
  r.low = ratios[static_cast<size_t>(tail * static_cast<double>(ratios.size() - 1))];
  r.high = ratios[static_cast<size_t>((1 - tail) * static_cast<double>(ratios.size() - 1))];
  return r;
}

}  // namespace forkscope
