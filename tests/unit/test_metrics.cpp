// serve's exporter: label safety, the kernel's overflow cell, errno labels,
// eviction, counters that never go back.
#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <map>
#include <string>

#include "forkscope/metrics.h"
#include "forkscope/untrusted.h"
#include <linux/types.h>

#include "forkscope/shared/catalog.h"
#include "forkscope/shared/hist.h"

namespace forkscope {
namespace {

GroupSample group(uint32_t cell, const std::string& comm, const std::string& kind, uint64_t launches,
                  uint64_t syscall_ns = 0) {
  GroupSample g;
  g.cell = cell;
  g.comm = comm;
  g.kind = kind;
  g.launches = launches;
  if (syscall_ns) {
    PhaseSample p;
    p.name = "syscall";
    p.count = launches;
    p.total_ns = launches * syscall_ns;
    p.hist.assign(FS_HIST_SLOTS, 0);
    p.hist[fs_hist_slot(syscall_ns)] = launches;
    g.phases.push_back(p);
  }
  return g;
}

std::string exposition(const MetricsExporter& e) {
  return prometheus::TextSerializer().Serialize(e.registry()->Collect());
}

// The value of one series line, by its exact name{labels} prefix; -1: absent.
double value_of(const std::string& text, const std::string& series) {
  size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

TEST(MetricsBuckets, KernelSlotsFoldIntoPowerOfTwoBuckets) {
  const auto& bounds = phase_bucket_bounds();
  ASSERT_EQ(bounds.size(), 27u);
  EXPECT_DOUBLE_EQ(bounds.front(), 256e-9);
  // Every value's slot lands in the first bucket whose bound is above the value.
  for (uint64_t ns : {0ull, 7ull, 255ull, 256ull, 1000ull, 65535ull, 65536ull, 1234567ull, 17179869183ull}) {
    const size_t b = bucket_of_slot(fs_hist_slot(ns));
    const double v = static_cast<double>(ns) / 1e9;
    ASSERT_LE(b, bounds.size());
    if (b < bounds.size()) {
      EXPECT_LT(v, bounds[b]) << ns;
    }
    if (b > 0) {
      EXPECT_GE(v, bounds[b - 1]) << ns;
    }
  }
  EXPECT_EQ(bucket_of_slot(FS_HIST_SLOTS - 1), bounds.size());  // the catch-all slot: +Inf
}

TEST(MetricsLabels, HostileCommsStayOneLabelValue) {
  // The exporter gets comms as the tracer hands them over: through safe_text.
  EXPECT_EQ(comm_label(safe_text("bash")), "bash");
  EXPECT_EQ(comm_label(safe_text("a\nb")), "a\\x0ab");
  EXPECT_EQ(comm_label(safe_text("(other)")), "\\x28other)");
  // No process can pose as the overflow group or as another's escape.
  EXPECT_NE(comm_label(safe_text("\\x28other)")), comm_label(safe_text("(other)")));
  EXPECT_NE(comm_label(safe_text("a\\x0ab")), comm_label(safe_text("a\nb")));

  MetricsExporter e(10, 600);
  MetricsSnapshot s;
  s.groups = {group(0, safe_text("x\n} 1\ny{"), "fork", 3), group(1, safe_text("q\"\\"), "fork", 2)};
  e.update(s, 0);
  const std::string text = exposition(e);
  // No raw newline or quote inside a label value: every line of the exposition is
  // a comment or one series.
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    const std::string line = text.substr(start, end - start);
    start = end + 1;
    if (line.empty() || line[0] == '#') continue;
    EXPECT_EQ(line.rfind("forkscope_", 0), 0u) << line;
  }
  EXPECT_EQ(value_of(text, "forkscope_launches_total{comm=\"x\\\\x0a} 1\\\\x0ay{\",kind=\"fork\"}"), 3);
  EXPECT_EQ(value_of(text, "forkscope_launches_total{comm=\"q\\\"\\\\\\\\\",kind=\"fork\"}"), 2);
}

TEST(MetricsGroups, TheKernelOverflowCellIsOtherMixed) {
  MetricsExporter e(2, 600);
  MetricsSnapshot s;
  s.groups = {group(0, "a", "fork", 5), group(1, "b", "thread", 7)};
  GroupSample kernel_other = group(60, "(other)", "mixed", 17);
  kernel_other.other = true;
  s.groups.push_back(kernel_other);
  s.health.kernel_groups_full = true;
  e.update(s, 0);
  const std::string text = exposition(e);
  EXPECT_EQ(value_of(text, "forkscope_launches_total{comm=\"a\",kind=\"fork\"}"), 5);
  EXPECT_EQ(value_of(text, "forkscope_launches_total{comm=\"b\",kind=\"thread\"}"), 7);
  EXPECT_EQ(value_of(text, "forkscope_launches_total{comm=\"(other)\",kind=\"mixed\"}"), 17);
  EXPECT_EQ(value_of(text, "forkscope_groups"), 2);
  EXPECT_EQ(value_of(text, "forkscope_kernel_groups_full"), 1);
}

TEST(MetricsFailures, EachErrnoIsASeriesThatOnlyGrows) {
  MetricsExporter e(4, 600);
  MetricsSnapshot s;
  s.groups = {group(0, "a", "fork", 5)};
  e.update(s, 0);
  // No failure yet: no failure series at all.
  EXPECT_EQ(exposition(e).find("forkscope_launch_failures_total{"), std::string::npos);
  s.groups[0].failed = {{"EAGAIN", 3}, {"EINVAL", 1}};
  e.update(s, 1);
  std::string text = exposition(e);
  EXPECT_EQ(value_of(text, "forkscope_launch_failures_total{comm=\"a\",errno=\"EAGAIN\",kind=\"fork\"}"), 3);
  EXPECT_EQ(value_of(text, "forkscope_launch_failures_total{comm=\"a\",errno=\"EINVAL\",kind=\"fork\"}"), 1);
  s.groups[0].failed = {{"EAGAIN", 10}, {"EINVAL", 1}, {"other", 2}};
  e.update(s, 2);
  text = exposition(e);
  EXPECT_EQ(value_of(text, "forkscope_launch_failures_total{comm=\"a\",errno=\"EAGAIN\",kind=\"fork\"}"), 10);
  EXPECT_EQ(value_of(text, "forkscope_launch_failures_total{comm=\"a\",errno=\"EINVAL\",kind=\"fork\"}"), 1);
  EXPECT_EQ(value_of(text, "forkscope_launch_failures_total{comm=\"a\",errno=\"other\",kind=\"fork\"}"), 2);
}

TEST(MetricsEviction, IdleCellsAreThoseWithoutGrowthForEvictAfter) {
  MetricsExporter e(4, 10);
  MetricsSnapshot s;
  s.groups = {group(0, "a", "fork", 1), group(1, "b", "fork", 1)};
  GroupSample kernel_other = group(60, "(other)", "mixed", 1);
  kernel_other.other = true;
  s.groups.push_back(kernel_other);
  e.update(s, 0);
  EXPECT_TRUE(e.idle_cells(9).empty());
  s.groups[1].launches = 2;  // b grows at 5
  e.update(s, 5);
  EXPECT_EQ(e.idle_cells(10), std::vector<uint32_t>{0});  // the overflow cell never
  s.groups[1].failed = {{"ENOMEM", 1}};                   // a failure is growth too
  e.update(s, 12);
  EXPECT_EQ(e.idle_cells(21), std::vector<uint32_t>{0});
  EXPECT_EQ(e.idle_cells(22), (std::vector<uint32_t>{0, 1}));
}

TEST(MetricsEviction, CountersNeverGoBackwardsAcrossEviction) {
  MetricsExporter e(1, 10);
  MetricsSnapshot s;
  s.groups = {group(0, "a", "fork", 4, 50000)};
  s.groups[0].failed = {{"EAGAIN", 2}};
  e.update(s, 0);
  // a is evicted: its last sample (one launch more since the update) counts, its
  // series leave, its cell is forgotten.
  ASSERT_EQ(e.idle_cells(10), std::vector<uint32_t>{0});
  GroupSample last = group(0, "a", "fork", 5, 50000);
  last.failed = {{"EAGAIN", 2}};
  e.retire(last, 10);
  std::string text = exposition(e);
  EXPECT_EQ(value_of(text, "forkscope_launches_total{comm=\"a\",kind=\"fork\"}"), -1);
  EXPECT_EQ(value_of(text, "forkscope_groups_evicted_total"), 1);
  EXPECT_EQ(value_of(text, "forkscope_groups"), 0);
  EXPECT_TRUE(e.idle_cells(100).empty());
  // b takes the (zeroed) cell 0.
  s.groups = {group(0, "b", "fork", 3)};
  e.update(s, 11);
  text = exposition(e);
  EXPECT_EQ(value_of(text, "forkscope_launches_total{comm=\"b\",kind=\"fork\"}"), 3);
  // a comes back in another cell, counted from zero there: it resumes at its
  // totals, histogram and failures included.
  s.groups = {group(0, "b", "fork", 3), group(1, "a", "fork", 2, 50000)};
  e.update(s, 12);
  text = exposition(e);
  EXPECT_EQ(value_of(text, "forkscope_launches_total{comm=\"a\",kind=\"fork\"}"), 7);
  EXPECT_EQ(value_of(text, "forkscope_phase_seconds_count{comm=\"a\",kind=\"fork\",phase=\"syscall\"}"), 7);
  EXPECT_EQ(value_of(text, "forkscope_launch_failures_total{comm=\"a\",errno=\"EAGAIN\",kind=\"fork\"}"), 2);
  EXPECT_EQ(value_of(text, "forkscope_launches_total{comm=\"b\",kind=\"fork\"}"), 3);
  EXPECT_EQ(value_of(text, "forkscope_groups"), 2);
  // The kernel's totals start over (the tracer reopened): growth, not a drop.
  s.groups = {group(1, "a", "fork", 1, 50000)};
  e.update(s, 13);
  EXPECT_EQ(value_of(exposition(e), "forkscope_launches_total{comm=\"a\",kind=\"fork\"}"), 8);
}

TEST(MetricsEviction, RetiringTheOverflowCellDoesNothing) {
  MetricsExporter e(1, 0);
  MetricsSnapshot s;
  GroupSample kernel_other = group(60, "(other)", "mixed", 4);
  kernel_other.other = true;
  s.groups = {kernel_other};
  e.update(s, 0);
  EXPECT_TRUE(e.idle_cells(5).empty());
  e.retire(kernel_other, 5);
  EXPECT_EQ(value_of(exposition(e), "forkscope_launches_total{comm=\"(other)\",kind=\"mixed\"}"), 4);
  EXPECT_EQ(value_of(exposition(e), "forkscope_groups_evicted_total"), 0);
}

TEST(MetricsHistogram, BucketsSumAndCountFollowTheKernelHistogram) {
  MetricsExporter e(5, 600);
  MetricsSnapshot s;
  s.groups = {group(0, "w", "fork", 10, 40000)};  // 40 us each
  e.update(s, 0);
  const std::string text = exposition(e);
  const std::string labels = "comm=\"w\",kind=\"fork\",phase=\"syscall\"";
  EXPECT_EQ(value_of(text, "forkscope_phase_seconds_count{" + labels + "}"), 10);
  EXPECT_NEAR(value_of(text, "forkscope_phase_seconds_sum{" + labels + "}"), 10 * 40e-6, 1e-12);
  // 40 us = 40000 ns: 2^15 <= v < 2^16, so le = 2^16 ns has all, le = 2^15 ns none.
  EXPECT_EQ(value_of(text, "forkscope_phase_seconds_bucket{" + labels + ",le=\"3.2768e-05\"}"), 0);
  EXPECT_EQ(value_of(text, "forkscope_phase_seconds_bucket{" + labels + ",le=\"6.5536e-05\"}"), 10);
  // Phases outside the exported set are not exposed.
  s.groups[0].phases[0].name = "copy_creds";
  s.groups[0].launches = 20;
  s.groups[0].phases[0].count = 20;
  e.update(s, 1);
  EXPECT_EQ(exposition(e).find("copy_creds"), std::string::npos);
}

// Per-mapping time: the top kTopMappings labels per group with a series each, the
// rest's growth in "(other mappings)"; no series ever goes down, whether the
// attribution shrinks (a pid reused), a label leaves the top or the group is evicted.
TEST(MetricsMappings, TopMappingsAndOthersNeverGoBackwards) {
  MetricsExporter e(2, 10, /*mappings=*/true);
  const auto series = [](const std::string& mapping) {
    return "forkscope_mapping_copy_seconds_total{comm=\"a\",kind=\"fork\",mapping=\"" + mapping + "\"}";
  };
  const std::string unattributed = "forkscope_mapping_unattributed_launches_total{comm=\"a\",kind=\"fork\"}";
  MetricsSnapshot s;
  s.groups = {group(0, "a", "fork", 10)};
  GroupSample& g = s.groups[0];
  // A hostile file name (10 s, safe text as the snapshot hands it over) and six labels of 1..6 s: m1, m2 not on top.
  g.mapping_ns[safe_text("/x\n")] = 10000000000;
  for (uint64_t i = 1; i <= 6; i++) g.mapping_ns["m" + std::to_string(i)] = i * 1000000000;
  g.mapping_unattributed = 2;
  e.update(s, 0);
  std::string text = exposition(e);
  EXPECT_EQ(value_of(text, series("/x\\\\x0a")), 10);
  for (int i = 3; i <= 6; i++) EXPECT_EQ(value_of(text, series("m" + std::to_string(i))), i) << i;
  EXPECT_EQ(value_of(text, series("m1")), -1);
  EXPECT_EQ(value_of(text, series("m2")), -1);
  EXPECT_EQ(value_of(text, series("(other mappings)")), 3);
  EXPECT_EQ(value_of(text, unattributed), 2);

  // m1 grows to 7 s: it comes on top at its whole total (its first second stays in
  // (other mappings)), m3 leaves; the attribution of m6 shrinks (its process's pid
  // reused): nothing goes down.
  g.launches = 20;
  g.mapping_ns["m1"] = 7000000000;
  g.mapping_ns["m6"] = 1000000000;
  g.mapping_unattributed = 5;
  e.update(s, 1);
  text = exposition(e);
  EXPECT_EQ(value_of(text, series("m1")), 7);
  EXPECT_EQ(value_of(text, series("m3")), -1);
  EXPECT_EQ(value_of(text, series("m6")), 6);
  EXPECT_EQ(value_of(text, series("(other mappings)")), 3);
  EXPECT_EQ(value_of(text, unattributed), 5);
  // m6 grows again from its lower value: only growth counts.
  g.mapping_ns["m6"] = 1500000000;
  g.mapping_ns["m2"] = 2500000000;  // m2 grows off the top: into (other mappings)
  e.update(s, 2);
  text = exposition(e);
  EXPECT_DOUBLE_EQ(value_of(text, series("m6")), 6.5);
  EXPECT_DOUBLE_EQ(value_of(text, series("(other mappings)")), 3.5);

  // Evicted: the series go; back in another cell (counted from zero there), they
  // resume at their totals.
  e.retire(g, 12);
  EXPECT_EQ(value_of(exposition(e), series("m1")), -1);
  EXPECT_EQ(value_of(exposition(e), unattributed), -1);
  MetricsSnapshot back;
  back.groups = {group(1, "a", "fork", 1)};
  back.groups[0].mapping_ns["m1"] = 1000000000;
  back.groups[0].mapping_unattributed = 1;
  e.update(back, 13);
  text = exposition(e);
  EXPECT_EQ(value_of(text, series("m1")), 8);
  EXPECT_DOUBLE_EQ(value_of(text, series("m6")), 6.5);
  EXPECT_DOUBLE_EQ(value_of(text, series("(other mappings)")), 3.5);
  EXPECT_EQ(value_of(text, series("/x\\\\x0a")), 10);
  EXPECT_EQ(value_of(text, unattributed), 6);
}

TEST(MetricsMappings, NoFamiliesWithoutMappings) {
  MetricsExporter e(2, 10);
  MetricsSnapshot s;
  s.groups = {group(0, "a", "fork", 10)};
  s.groups[0].mapping_ns["m"] = 5;
  e.update(s, 0);
  EXPECT_EQ(exposition(e).find("forkscope_mapping_"), std::string::npos);
}

}  // namespace
}  // namespace forkscope
