#include "forkscope/catalog.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace forkscope {
namespace {

TEST(Catalog, HasEveryPhaseInIdOrder) {
  const auto& entries = catalog();
  ASSERT_EQ(entries.size(), static_cast<size_t>(FS_NPHASES));
  std::set<std::string> names;
  for (size_t i = 0; i < entries.size(); ++i) {
    EXPECT_EQ(entries[i].id, static_cast<int>(i));
    EXPECT_TRUE(names.insert(entries[i].name).second) << "duplicate " << entries[i].name;
    EXPECT_NE(std::string(entries[i].how), "");
  }
  EXPECT_STREQ(entries[FS_PH_SYSCALL].name, "syscall");
  EXPECT_STREQ(entries[FS_PH_COPY_PAGE_RANGE].name, "copy_page_range");
}

TEST(Catalog, ParentsPrecedeChildren) {
  for (const auto& e : catalog()) {
    if (e.parent == FS_PH_NONE) continue;
    EXPECT_LT(e.parent, e.id) << e.name;
    EXPECT_EQ(fs_phase_parent(e.id), e.parent) << e.name;
  }
}

TEST(Catalog, TracepointMaskSkipsKernelClone) {
  const uint32_t mask = measured_mask(FS_SRC_TP);
  EXPECT_EQ(mask, static_cast<uint32_t>(FS_TP_MASK));
  EXPECT_FALSE(mask & (1u << FS_PH_KERNEL_CLONE));
  EXPECT_TRUE(mask & (1u << FS_PH_SYSCALL));
  EXPECT_EQ(measured_mask(FS_SRC_FENTRY), 0u);
}

TEST(Catalog, PhasePathNamesMeasuredAncestors) {
  const uint32_t mask = measured_mask(FS_SRC_TP);
  EXPECT_EQ(phase_path(FS_PH_COPY_PAGE_RANGE, mask), "syscall;copy_process;dup_mm;dup_mmap;copy_page_range");
  EXPECT_EQ(phase_path(FS_PH_SYSCALL, mask), "syscall");
  EXPECT_EQ(phase_path(FS_PH_WAKE_UP_NEW_TASK, mask), "syscall;wake_up_new_task");
  EXPECT_EQ(phase_path(FS_PH_TEARDOWN, mask), "teardown");
  EXPECT_EQ(phase_path(FS_PH_COPY_PROCESS, ~0u), "syscall;kernel_clone;copy_process");
}

TEST(Catalog, SourceNames) {
  EXPECT_STREQ(source_name(FS_SRC_TP), "tracepoint");
  EXPECT_STREQ(source_name(FS_SRC_DERIVED), "derived");
  EXPECT_STREQ(source_name(FS_SRC_FENTRY), "fentry");
  EXPECT_STREQ(source_name(FS_SRC_KPROBE), "kprobe");
  EXPECT_STREQ(source_name(FS_SRC_NONE), "");
}

TEST(BuildPhases, ComputesMeansAndPercentilesAndDropsUnseenPhases) {
  std::vector<PhaseAgg> by_id(FS_NPHASES);
  for (auto& a : by_id) a.hist.assign(FS_HIST_SLOTS, 0);
  PhaseAgg& sys = by_id[FS_PH_SYSCALL];
  sys.count = 4;
  sys.calls = 4;
  sys.total_ns = 4 + 5 + 6 + 7;
  sys.self_ns = 10;
  for (uint64_t v : {4, 5, 6, 7}) ++sys.hist[fs_hist_slot(v)];
  PhaseAgg& cpr = by_id[FS_PH_COPY_PAGE_RANGE];
  cpr.count = 2;
  cpr.calls = 6;
  cpr.total_ns = 3000;
  cpr.self_ns = 3000;
  cpr.hist[fs_hist_slot(1000)] = 1;
  cpr.hist[fs_hist_slot(2000)] = 1;

  const std::vector<Phase> phases = build_phases(by_id, measured_mask(FS_SRC_TP));
  ASSERT_EQ(phases.size(), 2u);
  EXPECT_EQ(phases[0].name, "syscall");
  EXPECT_EQ(phases[0].path, "syscall");
  EXPECT_EQ(phases[0].source, "tracepoint");
  EXPECT_DOUBLE_EQ(phases[0].mean_ns, 5.5);
  EXPECT_EQ(phases[0].p50_ns, 5u);  // values below 8 ns are exact
  EXPECT_EQ(phases[0].p99_ns, 7u);
  EXPECT_EQ(phases[0].hist.size(), static_cast<size_t>(FS_HIST_SLOTS));

  EXPECT_EQ(phases[1].name, "copy_page_range");
  EXPECT_EQ(phases[1].path, "syscall;copy_process;dup_mm;dup_mmap;copy_page_range");
  EXPECT_EQ(phases[1].source, "derived");
  EXPECT_EQ(phases[1].count, 2u);
  EXPECT_EQ(phases[1].calls, 6u);
  EXPECT_DOUBLE_EQ(phases[1].mean_ns, 1500.0);
  const uint32_t low = fs_hist_slot(1000), high = fs_hist_slot(2000);
  EXPECT_GE(phases[1].p50_ns, hist_slot_low(low));
  EXPECT_LT(phases[1].p50_ns, hist_slot_high(low));
  EXPECT_GE(phases[1].p99_ns, hist_slot_low(high));
  EXPECT_LT(phases[1].p99_ns, hist_slot_high(high));
}

}  // namespace
}  // namespace forkscope
