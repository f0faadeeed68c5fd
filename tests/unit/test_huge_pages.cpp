// trace's huge-page column (issue 18 item 8): smaps_rollup parsed, each launch valued
// once by its process's read after it, means per cell, and the reports' column.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <fmt/format.h>

#include "forkscope/formats.h"
#include "forkscope/analysis.h"
#include "forkscope/diff_merge.h"
#include "forkscope/huge_pages.h"
#include "forkscope/results.h"
#include "forkscope/terminal.h"

namespace forkscope {
namespace {

const std::string kData = FS_TEST_DATA;

TEST(HugePages, ParsesAnonHugePagesOfSmapsRollup) {
  const std::string rollup =
      "55d0c0de0000-7ffd6b1f2000 ---p 00000000 00:00 0                          [rollup]\n"
      "Rss:               67720 kB\nAnonymous:         65900 kB\nAnonHugePages:     65536 kB\n"
      "ShmemPmdMapped:        0 kB\n";
  EXPECT_EQ(parse_anon_huge_bytes(rollup), uint64_t{65536} << 10);
  EXPECT_EQ(parse_anon_huge_bytes("AnonHugePages:         0 kB\n"), 0u);
  // A process without mm (a zombie) has an empty file; anything else is not a value.
  EXPECT_EQ(parse_anon_huge_bytes(""), std::nullopt);
  EXPECT_EQ(parse_anon_huge_bytes("AnonHugePages:  lots kB\n"), std::nullopt);
  EXPECT_EQ(parse_anon_huge_bytes("AnonHugePages: 12 MB\n"), std::nullopt);
  EXPECT_EQ(parse_anon_huge_bytes("AnonHugePages: 99999999999999999999999 kB\n"), std::nullopt);
}

// Each launch gets the value read at the first poll after it, once; a process read
// once per poll for all its cells; gone processes leave their launches unvalued.
TEST(HugePages, ValuesEachLaunchOnceWithTheReadAfterIt) {
  std::map<pid_t, std::optional<uint64_t>> now = {{10, 64u << 20}, {20, 0}};
  std::map<pid_t, int> reads;
  LauncherHugePages huge([&](pid_t pid) {
    reads[pid]++;
    return now[pid];
  });
  huge.poll({{10, 0, 4, 1}, {10, 1, 1, 1}, {20, 0, 4, 2}});
  EXPECT_EQ(reads[10], 1);  // one read for both of its cells
  now[10] = 32u << 20;
  huge.poll({{10, 0, 4, 1}, {10, 1, 1, 1}, {20, 0, 4, 2}});  // nothing new: no read
  EXPECT_EQ(reads[10], 1);
  EXPECT_EQ(reads[20], 1);
  now[20] = std::nullopt;                                    // process 20 ended
  huge.poll({{10, 0, 8, 1}, {10, 1, 1, 1}, {20, 0, 6, 2}});  // 4 more of 10 at 32 MiB, 2 of 20 unread
  KernelCounts cell0, cell1, cell2;
  huge.fill(0, cell0);
  huge.fill(1, cell1);
  huge.fill(2, cell2);
  // cell 0: 4 x 64 MiB + 4 x 0 + 4 x 32 MiB over 12 launches valued; 14 launched.
  EXPECT_EQ(cell0.mm_anon_huge_launches, 12u);
  EXPECT_EQ(cell0.mm_anon_huge_bytes, uint64_t{32} << 20);
  EXPECT_EQ(cell1.mm_anon_huge_launches, 1u);
  EXPECT_EQ(cell1.mm_anon_huge_bytes, uint64_t{64} << 20);
  EXPECT_EQ(cell2.mm_anon_huge_launches, 0u);
  // A reused pid (another start) and an entry the kernel evicted count afresh.
  now[20] = 2u << 20;
  huge.poll({{20, 0, 1, 3}, {10, 0, 2, 1}});
  KernelCounts again;
  huge.fill(0, again);
  EXPECT_EQ(again.mm_anon_huge_launches, 15u);
}

// A process whose read took long is not read again soon (its mmap lock is a fork's
// too), but the last poll reads what waits.
TEST(HugePages, PausesAfterASlowReadButNotAtTheEnd) {
  int reads = 0;
  LauncherHugePages huge([&](pid_t) {
    reads++;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // a pause of 0.5 s
    return std::optional<uint64_t>{2u << 20};
  });
  huge.poll({{10, 0, 1, 1}});
  huge.poll({{10, 0, 2, 1}});
  EXPECT_EQ(reads, 1);
  KernelCounts k;
  huge.fill(0, k);
  EXPECT_EQ(k.mm_anon_huge_launches, 1u);
  huge.poll({{10, 0, 2, 1}}, {}, /*last=*/true);
  EXPECT_EQ(reads, 2);
  huge.fill(0, k);
  EXPECT_EQ(k.mm_anon_huge_launches, 2u);
}

// The trace tables show it beside page tables: a mean, "n of N" when not every
// launch was valued, "-" when none was.
TEST(HugePages, TraceTablesShowTheColumn) {
  forkscope::Run trace = load_results(kData + "/trace-results.json");
  ASSERT_GE(trace.cells.size(), 2u);
  Cell& c = trace.cells[0];
  ASSERT_GT(c.kernel.launches, 1u);
  c.kernel.mm_anon_huge_bytes = uint64_t{64} << 20;
  c.kernel.mm_anon_huge_launches = c.kernel.launches;
  std::ostringstream text;
  render_text_report(trace, featured_cell(trace), text, false);
  EXPECT_NE(text.str().find("page tables  huge pages"), std::string::npos) << text.str();
  EXPECT_NE(text.str().find(" 64.0 MiB "), std::string::npos) << text.str();
  EXPECT_NE(text.str().find("huge pages: its memory mapped by 2 MiB pages"), std::string::npos);
  EXPECT_NE(html_report(trace, featured_cell(trace)).find("<td class=\"n\">64.0 MiB</td>"), std::string::npos);

  c.kernel.mm_anon_huge_launches = c.kernel.launches - 1;
  std::ostringstream partly;
  render_text_report(trace, featured_cell(trace), partly, false);
  EXPECT_NE(partly.str().find(fmt::format("64.0 MiB ({} of {})", c.kernel.launches - 1, c.kernel.launches)),
            std::string::npos)
      << partly.str();
}

// diff says what the backing became beside the times it explains; run results
// (no launch valued) keep their diff as it was.
TEST(HugePages, DiffShowsTheBackingOfBothSides) {
  const forkscope::Run a = load_results(kData + "/trace-results.json");
  forkscope::Run b = a;
  b.cells[0].kernel.mm_anon_huge_bytes = uint64_t{64} << 20;
  b.cells[0].kernel.mm_anon_huge_launches = b.cells[0].kernel.launches;
  std::ostringstream out;
  render_diff(diff_runs(a, b, "a.json", "b.json"), "a.json", "b.json", out, false);
  EXPECT_NE(out.str().find("launching process: huge pages - -> 64.0 MiB, page tables "), std::string::npos)
      << out.str();
  std::ostringstream same;
  render_diff(diff_runs(a, a, "a.json", "b.json"), "a.json", "b.json", same, false);
  EXPECT_EQ(same.str().find("huge pages"), std::string::npos) << same.str();
}

}  // namespace
}  // namespace forkscope
