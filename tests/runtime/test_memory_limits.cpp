// Runtime lane: `run` under a memory cgroup limit (issue 18 item 6): heap sizes
// that cannot fit are skipped or refused with one line naming the limit, and
// results.json is written after every cell, so a kill leaves what was measured.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "forkscope/results.h"
#include "bpf_objects.h"
#include "proc.h"

namespace forkscope {
namespace {

using test::slurp;

// A memory cgroup of the test's own with a limit: cgroup v2 (memory.max) when
// its hierarchy has the memory controller, else the v1 memory hierarchy
// (memory.limit_in_bytes), as on hybrid systems.  Removed at the end.
class MemoryCgroup {
 public:
  MemoryCgroup() {
    const std::string v2 = test::cgroup2_root();
    if (!v2.empty() && slurp(v2 + "/cgroup.controllers").find("memory") != std::string::npos) {
      if (slurp(v2 + "/cgroup.subtree_control").find("memory") == std::string::npos)
        write(v2 + "/cgroup.subtree_control", "+memory");
      make(v2, "memory.max");
    } else if (std::filesystem::exists("/sys/fs/cgroup/memory/memory.limit_in_bytes")) {
      make("/sys/fs/cgroup/memory", "memory.limit_in_bytes");
    }
  }
  ~MemoryCgroup() {
    if (!dir_.empty()) rmdir(dir_.c_str());
  }
  MemoryCgroup(const MemoryCgroup&) = delete;
  MemoryCgroup& operator=(const MemoryCgroup&) = delete;
  bool ok() const { return !dir_.empty(); }
  bool limit(uint64_t bytes) const { return write(dir_ + "/" + limit_file_, std::to_string(bytes)); }
  // The file the limit is in, as forkscope names it.
  std::string limit_path() const { return dir_ + "/" + limit_file_; }
  // Run in the child before exec: forkscope and its launches are charged here.
  bool join() const { return write(dir_ + "/cgroup.procs", "0"); }

 private:
  static bool write(const std::string& path, const std::string& value) {
    std::ofstream out(path);
    out << value << std::flush;
    return static_cast<bool>(out);
  }
  void make(const std::string& root, const char* limit_file) {
    const std::string dir = root + "/forkscope-memtest-" + std::to_string(getpid());
    if (mkdir(dir.c_str(), 0755) == 0 || errno == EEXIST) {
      dir_ = dir;
      limit_file_ = limit_file;
    }
  }
  std::string dir_, limit_file_;
};

constexpr uint64_t kLimit = 300ull << 20;

TEST(MemoryLimits, HeapAboveTheCgroupLimitIsRefusedWithOneLine) {
  MemoryCgroup cgroup;
  if (!cgroup.ok()) GTEST_SKIP() << "no memory cgroup controller (v1 or v2) here";
  ASSERT_TRUE(cgroup.limit(kLimit));
  test::TempDir dir;
  test::ChildSetup setup;
  setup.before_exec = [&] { return cgroup.join(); };
  const test::Outcome o = test::run_forkscope({"run", "--modes", "fork", "--heap", "2M,512M", "--iterations", "5",
                                               "--out", dir, "--quiet"},
                                              setup);
  EXPECT_EQ(o.exit_code, 2) << o.err;
  EXPECT_EQ(test::count_lines(o.err), 1) << o.err;
  EXPECT_NE(o.err.find("--heap 512M is more than the "), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("memory cgroup limit in " + cgroup.limit_path()), std::string::npos) << o.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "results.json")) << "refused before any launch";
}

TEST(MemoryLimits, DefaultSweepSkipsHeapsAboveAQuarterOfTheCgroupRoom) {
  MemoryCgroup cgroup;
  if (!cgroup.ok()) GTEST_SKIP() << "no memory cgroup controller (v1 or v2) here";
  // The room is the limit less what forkscope already uses there (tens of MiB more
  // under ASan): 400M leaves a quarter above 64M either way, and below 512M.
  ASSERT_TRUE(cgroup.limit(400ull << 20));
  test::TempDir dir;
  test::ChildSetup setup;
  setup.before_exec = [&] { return cgroup.join(); };
  // The default heaps 2M,64M,512M,2G: a quarter of the room leaves 2M and 64M.
  const test::Outcome o = test::run_forkscope({"run", "--modes", "fork", "--iterations", "5", "--out", dir}, setup);
  ASSERT_EQ(o.exit_code, 0) << o.err;
  for (const char* heap : {"512M", "2G"}) {
    const std::string line = std::string("forkscope: skipping the ") + heap + " heap: more than a quarter of the ";
    const size_t at = o.err.find(line);
    ASSERT_NE(at, std::string::npos) << o.err;
    const std::string rest = o.err.substr(at, o.err.find('\n', at) - at);
    EXPECT_NE(rest.find("left under the memory cgroup limit in " + cgroup.limit_path()), std::string::npos) << rest;
  }
  const forkscope::Run run = load_results(dir / "results.json");
  ASSERT_EQ(run.cells.size(), 2u);
  EXPECT_EQ(run.cells[0].heap_bytes, 2ull << 20);
  EXPECT_EQ(run.cells[1].heap_bytes, 64ull << 20);
  for (const Cell& c : run.cells) EXPECT_EQ(c.launches, 5u);
  EXPECT_FALSE(run.incomplete);
}

// Killed with SIGKILL (as by the OOM killer) during its second cell: results.json
// holds the first, marked incomplete, and `report` reads it.
TEST(MemoryLimits, KilledAfterACellLeavesItsResults) {
  test::TempDir dir;
  const test::Started s = test::start_forkscope({"run", "--modes", "fork,vfork", "--heap", "2M", "--iterations",
                                                 "1000000", "--cell-seconds", "4", "--out", dir, "--quiet"});
  const std::string results = dir / "results.json";
  const bool written = test::wait_for([&] { return std::filesystem::exists(results) || !test::running(s.pid); }, 60) &&
                       std::filesystem::exists(results);
  kill(s.pid, SIGKILL);
  const test::Outcome killed = test::finish_forkscope(s);
  ASSERT_TRUE(written) << "no results.json after the first cell: " << killed.err;
  EXPECT_EQ(killed.exit_code, 128 + SIGKILL) << "killed during the second cell";
  const forkscope::Run run = load_results(results);
  ASSERT_EQ(run.cells.size(), 1u);
  EXPECT_EQ(run.cells[0].mode, "fork");
  EXPECT_TRUE(run.incomplete);
  EXPECT_GT(run.cells[0].launches, 0u);
  EXPECT_EQ(run.cells[0].kernel.launches, run.cells[0].launches) << "the cell is whole: its kernel side collected";
  const test::Outcome report = test::run_forkscope({"report", results, "--no-color"});
  EXPECT_EQ(report.exit_code, 0) << report.err;
  EXPECT_NE(report.out.find("fork"), std::string::npos) << report.out;
  // The temporary file of the atomic write is not left behind.
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.str())) files += e.is_regular_file();
  EXPECT_EQ(files, 1u);
}

}  // namespace
}  // namespace forkscope
