// The launching process's huge-page backing in trace results (issue 18 item 8): a
// 64 MiB region madvise()d MADV_HUGEPAGE, written, then forked from, against the same
// region MADV_NOHUGEPAGE (tests/runtime/thp_fork.c).
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <string>

#include "forkscope/results.h"
#include "bpf_objects.h"
#include "checks.h"
#include "proc.h"

namespace forkscope {
namespace {

constexpr uint64_t kRegionMib = 64;
constexpr uint64_t kForks = 10;

std::string thp_enabled() {
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  std::getline(in, line);
  return line;
}

struct TracedThpFork {
  test::Outcome outcome;
  Run run;
  const Cell* cell = nullptr;  // the thp_fork fork group
  uint64_t own_kib = 0;        // the workload's own AnonHugePages before its forks
};

// thp_fork under `forkscope trace -v`, let go once forkscope has read its huge pages
// after all its forks.
TracedThpFork trace_thp_fork(const test::TempDir& dir, const std::string& advice) {
  TracedThpFork t;
  const test::Started fs = test::start_forkscope({"trace", "-v", "--out", dir / "out", "--", THP_FORK_BIN, "thp_fork",
                                                  advice, std::to_string(kRegionMib), std::to_string(kForks),
                                                  dir.str()});
  const std::regex read("huge pages of pid [0-9]+ read after " + std::to_string(kForks) + " launches");
  const bool was_read = test::wait_for([&] { return std::regex_search(test::slurp(fs.err_path), read); }, 60);
  std::ofstream(dir / "go") << "go\n";  // let it go even so, so it ends
  EXPECT_TRUE(was_read) << "forkscope did not read the huge pages after the forks: " << test::slurp(fs.err_path);
  t.outcome = test::finish_forkscope(fs);
  std::ifstream(dir / "anon_huge_kib") >> t.own_kib;
  if (t.outcome.exit_code != 0) return t;
  t.run = load_results(dir / "out/results.json");
  for (const Cell& c : t.run.cells)
    if (c.comm == "thp_fork" && c.mode == "fork") t.cell = &c;
  return t;
}

TEST(TraceHugePages, ShowTheRegionMappedByHugePagesAndNoneWithout) {
  if (thp_enabled().find("[never]") != std::string::npos)
    GTEST_SKIP() << "transparent huge pages are off here (" << thp_enabled() << "): MADV_HUGEPAGE maps none";
  const test::TempDir huge_dir, small_dir;
  const TracedThpFork huge = trace_thp_fork(huge_dir, "huge");
  const TracedThpFork small = trace_thp_fork(small_dir, "nohuge");
  for (const TracedThpFork* t : {&huge, &small}) {
    ASSERT_EQ(t->outcome.exit_code, 0) << t->outcome.err;
    ASSERT_NE(t->cell, nullptr) << t->outcome.err;
    const KernelCounts& k = t->cell->kernel;
    EXPECT_EQ(k.launches, kForks);
    // Every fork valued: the process was read after them, before it ended.
    EXPECT_EQ(k.mm_anon_huge_launches, kForks);
    // Nothing changed its layout between its own reading and forkscope's.
    EXPECT_EQ(k.mm_anon_huge_bytes, t->own_kib << 10);
  }
  // Most of the region in huge pages with MADV_HUGEPAGE; at most a stray one
  // elsewhere (THP always) without.
  EXPECT_GE(huge.cell->kernel.mm_anon_huge_bytes, (kRegionMib << 20) / 2);
  EXPECT_LE(small.cell->kernel.mm_anon_huge_bytes, uint64_t{4} << 20);
  // The same page-table column: what made the difference is shown beside it.
  EXPECT_NE(huge.outcome.out.find("huge pages"), std::string::npos) << huge.outcome.out;
  const test::Outcome table = test::run_forkscope({"report", huge_dir / "out/results.json"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("huge pages"), std::string::npos) << table.out;
}

}  // namespace
}  // namespace forkscope
