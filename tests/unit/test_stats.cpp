#include "forkscope/stats.h"

#include <gtest/gtest.h>
#include <linux/types.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "forkscope/shared/catalog.h"
#include "forkscope/shared/hist.h"
#include "forkscope/shared/machine.h"

namespace forkscope {
namespace {

// The definition itself, in integers: the smallest sample with at least
// percent% of the samples at or below it.
uint64_t reference_percentile(const std::vector<uint64_t>& sorted, uint64_t percent) {
  for (size_t i = 0; i < sorted.size(); ++i) {
    if ((i + 1) * 100 >= percent * sorted.size()) return sorted[i];
  }
  return sorted.back();
}

std::vector<uint64_t> random_samples(std::mt19937& rng, size_t n, uint64_t range) {
  std::uniform_int_distribution<uint64_t> dist(0, range);
  std::vector<uint64_t> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// Launch times spread over many powers of two, as kernel phases are.
std::vector<uint64_t> log_spread_samples(std::mt19937& rng, size_t n) {
  std::uniform_real_distribution<double> exponent(0, 34);
  std::vector<uint64_t> v(n);
  for (auto& x : v) x = static_cast<uint64_t>(std::exp2(exponent(rng)));
  return v;
}

TEST(Summarize, EmptyIsAllZero) {
  const Summary s = summarize({});
  EXPECT_EQ(s.n, 0u);
  EXPECT_EQ(s.max, 0u);
  EXPECT_EQ(s.p99, 0u);
  EXPECT_EQ(percentile_sorted({}, 0.5), 0u);
}

TEST(Summarize, SingleSample) {
  const Summary s = summarize({42});
  EXPECT_EQ(s.n, 1u);
  EXPECT_EQ(s.min, 42u);
  EXPECT_EQ(s.max, 42u);
  EXPECT_DOUBLE_EQ(s.mean, 42.0);
  EXPECT_EQ(s.p50, 42u);
  EXPECT_EQ(s.p90, 42u);
  EXPECT_EQ(s.p99, 42u);
}

TEST(Summarize, MatchesReferenceOnRandomSamples) {
  std::mt19937 rng(12345);
  for (size_t n : {1, 2, 3, 7, 10, 50, 99, 100, 101, 1000, 1234, 10007}) {
    // A small range forces many duplicates, a large one almost none.
    for (uint64_t range : {uint64_t{3}, uint64_t{100}, uint64_t{1} << 40}) {
      SCOPED_TRACE(testing::Message() << "n=" << n << " range=" << range);
      const std::vector<uint64_t> samples = random_samples(rng, n, range);
      std::vector<uint64_t> sorted = samples;
      std::sort(sorted.begin(), sorted.end());
      const Summary s = summarize(samples);
      EXPECT_EQ(s.n, n);
      EXPECT_EQ(s.min, sorted.front());
      EXPECT_EQ(s.max, sorted.back());
      const double sum = std::accumulate(sorted.begin(), sorted.end(), 0.0);
      EXPECT_NEAR(s.mean, sum / static_cast<double>(n), 1e-9 * std::max(1.0, s.mean));
      EXPECT_EQ(s.p50, reference_percentile(sorted, 50));
      EXPECT_EQ(s.p90, reference_percentile(sorted, 90));
      EXPECT_EQ(s.p99, reference_percentile(sorted, 99));
    }
  }
}

TEST(PercentileSorted, RanksAreNotThrownOffByDecimalFractions) {
  std::vector<uint64_t> sorted(100);
  std::iota(sorted.begin(), sorted.end(), 1);
  // 0.07 * 100 is 7.000000000000001 in doubles; the 7th sample is still the answer.
  EXPECT_EQ(percentile_sorted(sorted, 0.07), 7u);
  EXPECT_EQ(percentile_sorted(sorted, 0.0), 1u);
  EXPECT_EQ(percentile_sorted(sorted, 1.0), 100u);
  for (uint64_t p = 1; p <= 100; ++p) EXPECT_EQ(percentile_sorted(sorted, p / 100.0), p) << p;
}

TEST(HistSlots, BoundsInvertFsHistSlot) {
  const uint64_t limit = hist_slot_high(FS_HIST_SLOTS - 1);
  std::vector<uint64_t> values;
  for (uint64_t v = 0; v < 5000; ++v) values.push_back(v);
  for (int b = 3; b < 64 && (uint64_t{1} << b) < limit; ++b) {
    const uint64_t p = uint64_t{1} << b;
    values.insert(values.end(), {p - 1, p, p + 1, p + p / 2});
  }
  std::mt19937_64 rng(99);
  for (int i = 0; i < 100000; ++i) values.push_back((rng() >> (rng() % 64)) % limit);
  std::sort(values.begin(), values.end());

  uint32_t previous = 0;
  for (uint64_t v : values) {
    const uint32_t slot = fs_hist_slot(v);
    ASSERT_LT(slot, static_cast<uint32_t>(FS_HIST_SLOTS));
    ASSERT_LE(hist_slot_low(slot), v) << "slot " << slot;
    ASSERT_LT(v, hist_slot_high(slot)) << "slot " << slot;
    ASSERT_GE(slot, previous) << "slots are monotone in the value, at " << v;
    previous = slot;
  }
}

TEST(HistSlots, AreContiguousAndExactBelowEight) {
  for (uint32_t s = 0; s < 8; ++s) {
    EXPECT_EQ(hist_slot_low(s), s);
    EXPECT_EQ(hist_slot_high(s), s + 1);
  }
  for (uint32_t s = 0; s + 1 < FS_HIST_SLOTS; ++s) {
    EXPECT_EQ(hist_slot_high(s), hist_slot_low(s + 1)) << s;
    EXPECT_EQ(fs_hist_slot(hist_slot_low(s)), s);
    EXPECT_EQ(fs_hist_slot(hist_slot_high(s) - 1), s);
  }
}

TEST(HistPercentile, EmptyHistogramGivesZero) {
  EXPECT_EQ(hist_percentile({}, 0.5), 0u);
  EXPECT_EQ(hist_percentile(std::vector<uint64_t>(FS_HIST_SLOTS, 0), 0.99), 0u);
}

TEST(HistPercentile, ExactForSmallValues) {
  std::vector<uint64_t> hist(FS_HIST_SLOTS, 0);
  hist[3] = 10;
  hist[5] = 10;
  EXPECT_EQ(hist_percentile(hist, 0.5), 3u);
  EXPECT_EQ(hist_percentile(hist, 0.51), 5u);
}

TEST(HistPercentile, LiesInTheSlotOfTheExactPercentile) {
  std::mt19937 rng(2024);
  for (size_t n : {1, 2, 5, 100, 1000, 20000}) {
    for (int round = 0; round < 5; ++round) {
      std::vector<uint64_t> samples = log_spread_samples(rng, n);
      std::vector<uint64_t> hist(FS_HIST_SLOTS, 0);
      for (uint64_t v : samples) ++hist[fs_hist_slot(v)];
      std::sort(samples.begin(), samples.end());
      for (double q : {0.0, 0.01, 0.5, 0.9, 0.99, 1.0}) {
        SCOPED_TRACE(testing::Message() << "n=" << n << " q=" << q);
        const uint64_t exact = percentile_sorted(samples, q);
        const uint32_t slot = fs_hist_slot(exact);
        const uint64_t estimate = hist_percentile(hist, q);
        EXPECT_GE(estimate, hist_slot_low(slot));
        EXPECT_LT(estimate, hist_slot_high(slot));
      }
    }
  }
}

}  // namespace
}  // namespace forkscope

namespace forkscope {
namespace {

TEST(MedianRatio, FindsTheRatioAndBracketsIt) {
  std::mt19937 rng(7);
  std::normal_distribution<double> noise(0, 50);
  std::vector<uint64_t> base, slow;
  for (int i = 0; i < 2000; ++i) {
    base.push_back(static_cast<uint64_t>(1000 + noise(rng)));
    slow.push_back(static_cast<uint64_t>(1230 + noise(rng)));
  }
  const RatioEstimate r = median_ratio(slow, base);
  EXPECT_NEAR(r.ratio, 1.23, 0.01);
  EXPECT_LT(r.low, r.ratio);
  EXPECT_GT(r.high, r.ratio);
  EXPECT_GT(r.low, 1.2);
  EXPECT_LT(r.high, 1.26);
  // Same distribution: the interval contains 1.
  const RatioEstimate same = median_ratio(base, base);
  EXPECT_DOUBLE_EQ(same.ratio, 1.0);
  EXPECT_LE(same.low, 1.0);
  EXPECT_GE(same.high, 1.0);
}

TEST(MedianRatio, EmptyOrZeroGivesZero) {
  EXPECT_EQ(median_ratio({}, {1, 2}).ratio, 0);
  EXPECT_EQ(median_ratio({1, 2}, {0, 0, 0}).ratio, 0);
}

}  // namespace
}  // namespace forkscope
