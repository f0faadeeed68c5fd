// The room a memory cgroup leaves for run's heaps, read from a cgroup tree laid
// out in a temporary directory as /proc/self/mountinfo and /proc/self/cgroup
// describe it (cgroup v2 and v1).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "forkscope/runner.h"

namespace forkscope {
namespace {

namespace fs = std::filesystem;

class CgroupTree : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/fs-memroom-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    root_ = dir;
  }
  void TearDown() override { fs::remove_all(root_); }
  void put(const std::string& rel, const std::string& text) {
    fs::create_directories(fs::path(root_ + "/" + rel).parent_path());
    std::ofstream(root_ + "/" + rel) << text;
  }
  MemoryRoom room() { return cgroup_memory_room(root_ + "/mountinfo", root_ + "/cgroup"); }
  std::string root_;
};

TEST_F(CgroupTree, V2TakesTheTightestOfEveryAncestorsMaxAndHigh) {
  put("mountinfo",
      "24 1 0:22 / /proc rw - proc proc rw\n41 31 0:38 / " + root_ + "/v2 rw,relatime - cgroup2 cgroup2 rw\n");
  put("cgroup", "0::/job/step\n");
  put("v2/job/memory.max", "1000000000\n");
  put("v2/job/memory.high", "max\n");
  put("v2/job/memory.current", "300000000\n");
  put("v2/job/step/memory.max", "max\n");
  put("v2/job/step/memory.high", "900000000\n");
  put("v2/job/step/memory.current", "100000000\n");
  MemoryRoom r = room();
  EXPECT_TRUE(r.limited);
  EXPECT_EQ(r.bytes, 700000000u) << "the parent's max minus its current is tighter than the step's high";
  EXPECT_EQ(r.source, root_ + "/v2/job/memory.max");

  put("v2/job/step/memory.high", "500000000\n");
  r = room();
  EXPECT_EQ(r.bytes, 400000000u);
  EXPECT_EQ(r.source, root_ + "/v2/job/step/memory.high");

  put("v2/job/step/memory.current", "600000000\n");  // above its high: no room at all
  EXPECT_EQ(room().bytes, 0u);
}

TEST_F(CgroupTree, V1MemoryHierarchyOnAHybridSystem) {
  put("mountinfo", "35 31 0:32 / " + root_ + "/memory rw,relatime - cgroup cgroup rw,memory\n41 31 0:38 / " + root_ +
                       "/unified rw,relatime - cgroup2 cgroup2 rw\n");
  put("cgroup", "4:memory:/box\n1:cpu:/\n0::/\n");
  put("memory/box/memory.limit_in_bytes", "734003200\n");
  put("memory/box/memory.usage_in_bytes", "34003200\n");
  put("memory/memory.limit_in_bytes", "9223372036854771712\n");  // the root: no limit
  put("memory/memory.usage_in_bytes", "5000000000\n");
  const MemoryRoom r = room();
  EXPECT_TRUE(r.limited);
  EXPECT_EQ(r.bytes, 700000000u);
  EXPECT_EQ(r.source, root_ + "/memory/box/memory.limit_in_bytes");
}

TEST_F(CgroupTree, NoLimitAnywhereLeavesItUnlimited) {
  put("mountinfo", "41 31 0:38 / " + root_ + "/v2 rw - cgroup2 cgroup2 rw\n");
  put("cgroup", "0::/job\n");
  put("v2/job/memory.max", "max\n");
  put("v2/job/memory.high", "max\n");
  put("v2/job/memory.current", "300000000\n");
  EXPECT_FALSE(room().limited);
  put("cgroup", "");  // no cgroup line at all
  EXPECT_FALSE(room().limited);
}

}  // namespace
}  // namespace forkscope
