// Runtime lane: per-mapping attribution of dup_mmap (issue 14) on this kernel's
// tracepoints: the order method, exact sums, the heap's share, the one-page VMAs.
#include <gtest/gtest.h>
#include <linux/types.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>

#include "forkscope/results.h"
#include "bpf_objects.h"
#include "checks.h"
#include "proc.h"

namespace forkscope {
namespace {

using test::run_forkscope;

constexpr uint64_t kHeap = uint64_t{512} << 20;
constexpr uint64_t kIterations = 100;

uint64_t mem_available_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  uint64_t kb = 0;
  while (in >> key >> kb) {
    if (key == "MemAvailable:") return kb * 1024;
    in.ignore(256, '\n');
  }
  return 0;
}

uint64_t attributed(const Cell& c) { return c.mappings.empty() ? 0 : c.mappings.front().launches; }

// Every attributed launch copied every row's VMAs once per VMA, and the rows' time is
// the phases' time exactly when no launch went unattributed.
void expect_mappings_consistent(const Cell& c) {
  ASSERT_EQ(c.mapping_method, "order");
  // Counted, not hidden: every fork copied VMAs, so each is attributed or counted.
  EXPECT_EQ(attributed(c) + c.mapping_unattributed, c.kernel.launches);
  uint64_t setup = 0, cpr = 0;
  for (const Mapping& m : c.mappings) {
    EXPECT_EQ(m.launches, attributed(c)) << m.name;
    EXPECT_EQ(m.calls, m.vmas * m.launches) << m.name;
    setup += m.vma_setup_ns;
    cpr += m.copy_page_range_ns;
  }
  const Phase* vs = c.phase("vma_setup");
  const Phase* cp = c.phase("copy_page_range");
  ASSERT_NE(vs, nullptr);
  ASSERT_NE(cp, nullptr);
  EXPECT_LE(setup, vs->total_ns);
  EXPECT_LE(cpr, cp->total_ns);
  if (c.mapping_unattributed == 0) {
    EXPECT_EQ(setup, vs->total_ns);
    EXPECT_EQ(cpr, cp->total_ns);
  }
}

TEST(Mappings, TheHeapCarriesTheCopyAndThreadsCopyNothing) {
  if (test::kAddressSanitizer)
    GTEST_SKIP() << "AddressSanitizer's allocator maps memory during a cell, so the runner's VMA layout (which this "
                    "test counts exactly) moves; the plain runtime lane checks it";

  // 512M as the issue asks, 256M where memory is short.
  const uint64_t heap = mem_available_bytes() > 4 * kHeap ? kHeap : kHeap / 2;
  const test::TempDir dir;
  test::Outcome o = run_forkscope({"run", "--modes", "fork,pthread", "--heap", std::to_string(heap >> 20) + "M",
                                   "--iterations", std::to_string(kIterations), "--cell-seconds", "120", "--out", dir,
                                   "--quiet"});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  const forkscope::Run run = load_results(dir + "/results.json");
  ASSERT_EQ(run.cells.size(), 2u);
  const Cell& fork = run.cells[0];
  expect_mappings_consistent(fork);
  ASSERT_GT(attributed(fork), kIterations / 2) << fork.mapping_unattributed << " unattributed";
  uint64_t cpr = 0;
  const Mapping* heap_row = nullptr;
  for (const Mapping& m : fork.mappings) {
    cpr += m.copy_page_range_ns;
    if (m.kind == "anon" && m.bytes == heap && m.vmas == 1) heap_row = &m;
  }
  ASSERT_NE(heap_row, nullptr);
  EXPECT_EQ(&fork.mappings.front(), heap_row);  // most time first
  EXPECT_GE(static_cast<double>(heap_row->copy_page_range_ns), 0.95 * static_cast<double>(cpr));
  EXPECT_EQ(heap_row->rss_bytes, heap);  // touched page by page
  EXPECT_GE(heap_row->page_table_bytes, heap / 512);
  // Threads share the mm: nothing is copied, nothing attributed.
  const Cell& thread = run.cells[1];
  EXPECT_EQ(thread.mapping_method, "");
  EXPECT_TRUE(thread.mappings.empty());
  EXPECT_EQ(thread.mapping_unattributed, 0u);

  // The reports name the heap's mapping: the terminal table with its finding, the
  // flame stacks under copy_page_range, the HTML and CSV rows.
  const std::string label = "[anon] rw-p " + std::to_string(heap >> 20) + "M";
  EXPECT_NE(o.out.find("where dup_mmap's time goes, by mapping"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("finding: " + label + " holds"), std::string::npos) << o.out;
  test::Outcome folded = run_forkscope({"report", dir + "/results.json", "--format", "folded"});
  ASSERT_EQ(folded.exit_code, 0) << folded.err;
  EXPECT_NE(folded.out.find("copy_page_range;" + label + " "), std::string::npos) << folded.out;
  EXPECT_NE(folded.out.find("vma_setup;" + label + " "), std::string::npos) << folded.out;
  test::Outcome csv = run_forkscope({"report", dir + "/results.json", "--format", "mappings-csv"});
  ASSERT_EQ(csv.exit_code, 0) << csv.err;
  EXPECT_EQ(static_cast<size_t>(std::count(csv.out.begin(), csv.out.end(), '\n')), 1 + fork.mappings.size());
  EXPECT_NE(test::slurp(dir + "/report.html").find("by mapping"), std::string::npos);
}

TEST(Mappings, FiveHundredOnePageVmasAppearWithFiveHundredCallsPerFork) {
  if (test::kAddressSanitizer)
    GTEST_SKIP() << "AddressSanitizer's allocator maps memory during a cell, so the runner's VMA layout (which this "
                    "test counts exactly) moves; the plain runtime lane checks it";

  const test::TempDir dir;
  test::Outcome o = run_forkscope(
      {"run", "--modes", "fork", "--heap", "0", "--vmas", "500", "--iterations", "30", "--out", dir, "--quiet"});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  const forkscope::Run run = load_results(dir + "/results.json");
  const Cell& c = run.cells.at(0);
  expect_mappings_consistent(c);
  ASSERT_GT(attributed(c), 0u);
  const Mapping* pages = nullptr;
  for (const Mapping& m : c.mappings)
    if (m.kind == "anon" && m.perms == "rw-p" && m.bytes == m.vmas * 4096 && m.vmas >= 500) pages = &m;
  ASSERT_NE(pages, nullptr);
  // The runner's own one-page anonymous mappings, if any, share the row: a few at most.
  EXPECT_LE(pages->vmas, 510u);
  EXPECT_GE(pages->calls, 500u * pages->launches);
  EXPECT_EQ(pages->calls, pages->vmas * pages->launches);
  // Each was touched, so each one's page table was copied.
  EXPECT_GT(pages->copy_page_range_ns, 0u);
}

// trace: the snapshots forkscope -v says it read whose copyable count is what the
// process's last launch copied (a layout it can attribute).
int matching_snapshots(const std::string& err) {
  static const std::regex line(R"(mappings of pid \d+ read: (\d+) copyable, its last launch copied (\d+))");
  int n = 0;
  for (std::sregex_iterator it(err.begin(), err.end(), line), end; it != end; ++it) n += (*it)[1] == (*it)[2];
  return n;
}

// tests/runtime/map_fork.c under `forkscope trace -v`: each wait:GATE step is let go
// once forkscope has read one more layout it can attribute, so every layout is read.
struct TracedMapFork {
  test::Outcome outcome;
  Run run;
  const Cell* cell = nullptr;  // the map_fork fork group
};
TracedMapFork trace_map_fork(const test::TempDir& dir, uint32_t forks, const std::vector<std::string>& steps) {
  TracedMapFork t;
  std::vector<std::string> args = {"trace", "-v", "--out",        dir / "out",          "--", MAP_FORK_BIN, "map_fork",
                                   "256",   "64", dir / "mapped", std::to_string(forks)};
  args.insert(args.end(), steps.begin(), steps.end());
  const test::Started fs = test::start_forkscope(args);
  int gates = 0;
  for (const std::string& step : steps) {
    if (!step.starts_with("wait:")) continue;
    gates++;
    const bool read = test::wait_for([&] { return matching_snapshots(test::slurp(fs.err_path)) >= gates; }, 60);
    std::ofstream(step.substr(5)) << "go\n";  // let it go even so, so it ends
    EXPECT_TRUE(read) << "forkscope did not read layout " << gates << ": " << test::slurp(fs.err_path);
  }
  t.outcome = test::finish_forkscope(fs);
  if (t.outcome.exit_code != 0) return t;
  t.run = load_results(dir / "out/results.json");
  for (const Cell& c : t.run.cells)
    if (c.comm == "map_fork" && c.mode == "fork") t.cell = &c;
  return t;
}

const Mapping* row_named(const Cell& c, const std::string& name) {
  for (const Mapping& m : c.mappings)
    if (m.name == name) return &m;
  return nullptr;
}

// map_fork's anonymous region of this size: [anon], or [anon:map_fork...] where the
// kernel names anonymous VMAs.
const Mapping* anon_row(const Cell& c, uint64_t mib) {
  for (const Mapping& m : c.mappings)
    if (m.kind == "anon" && m.perms == "rw-p" && m.bytes == (mib << 20) && m.vmas == 1) return &m;
  return nullptr;
}

// Every launch attributed or counted; per-mapping time never more than the phases'
// (all of it when none is unattributed); the rows every layout has, copied once by
// each attributed launch.
void expect_trace_mappings_consistent(const Cell& c) {
  ASSERT_EQ(c.mapping_method, "order");
  EXPECT_EQ(attributed(c) + c.mapping_unattributed, c.kernel.launches);
  uint64_t setup = 0, cpr = 0;
  for (const Mapping& m : c.mappings) {
    EXPECT_EQ(m.launches, attributed(c)) << m.name;
    EXPECT_LE(m.calls, m.vmas * m.launches) << m.name;
    setup += m.vma_setup_ns;
    cpr += m.copy_page_range_ns;
  }
  const Phase* vs = c.phase("vma_setup");
  const Phase* cp = c.phase("copy_page_range");
  ASSERT_NE(vs, nullptr);
  ASSERT_NE(cp, nullptr);
  EXPECT_LE(setup, vs->total_ns);
  EXPECT_LE(cpr, cp->total_ns);
  if (c.mapping_unattributed == 0) {
    EXPECT_EQ(setup, vs->total_ns);
    EXPECT_EQ(cpr, cp->total_ns);
  }
  if (attributed(c) == 0) return;
  for (const Mapping* m : {anon_row(c, 256), row_named(c, "[stack]")}) {
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->calls, attributed(c)) << m->name;
  }
}

// The issue's test: a 256 MiB anonymous region and a 64 MiB private file mapping,
// both written, then 20 forks: the group names both, the anonymous one costlier.
TEST(TraceMappings, NamesTheAnonymousAndTheFileMappingInOrderOfCost) {
  const test::TempDir dir;
  const TracedMapFork t = trace_map_fork(dir, 20, {"wait:" + dir / "go"});
  ASSERT_EQ(t.outcome.exit_code, 0) << t.outcome.err;
  ASSERT_NE(t.cell, nullptr) << t.outcome.out;
  const Cell& c = *t.cell;
  EXPECT_EQ(c.launches, 20u);
  expect_mappings_consistent(c);  // one layout: the run's checks hold exactly
  EXPECT_EQ(c.mapping_unattributed, 0u) << "the layout was read before the process went on";
  EXPECT_EQ(attributed(c), 20u);
  const Mapping* anon = anon_row(c, 256);
  const Mapping* file = row_named(c, dir / "mapped");
  ASSERT_NE(anon, nullptr);
  ASSERT_NE(file, nullptr);
  EXPECT_EQ(anon->kind, "anon");
  EXPECT_EQ(anon->perms, "rw-p");
  EXPECT_EQ(anon->bytes, uint64_t{256} << 20);
  EXPECT_EQ(anon->rss_bytes, uint64_t{256} << 20);
  EXPECT_EQ(file->kind, "file");
  EXPECT_EQ(file->perms, "rw-p");
  EXPECT_EQ(file->bytes, uint64_t{64} << 20);
  EXPECT_EQ(anon->calls, 20u);
  EXPECT_EQ(file->calls, 20u);
  // Written pages are copied page table by page table: four times the pages, more time.
  EXPECT_GT(file->copy_page_range_ns, 0u);
  EXPECT_GT(anon->copy_page_range_ns, file->copy_page_range_ns);
  EXPECT_EQ(&c.mappings.front(), anon);

  // The terminal table of the group, and the reports read back from results.json.
  EXPECT_NE(t.outcome.out.find("where dup_mmap's time goes, by mapping (map_fork fork"), std::string::npos)
      << t.outcome.out;
  const std::string label = anon->name + " rw-p 256M";
  EXPECT_NE(t.outcome.out.find(label), std::string::npos) << t.outcome.out;
  const std::string results = dir / "out/results.json";
  test::Outcome folded = run_forkscope({"report", results, "--format", "folded", "--cell", "map_fork:fork"});
  ASSERT_EQ(folded.exit_code, 0) << folded.err;
  EXPECT_NE(folded.out.find("copy_page_range;" + label + " "), std::string::npos) << folded.out;
  test::Outcome csv = run_forkscope({"report", results, "--format", "mappings-csv"});
  ASSERT_EQ(csv.exit_code, 0) << csv.err;
  EXPECT_NE(csv.out.find(dir / "mapped"), std::string::npos) << csv.out;
  EXPECT_NE(test::slurp(dir / "out/report.html").find("by mapping: map_fork fork"), std::string::npos);
  test::Outcome table = run_forkscope({"report", results});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("where dup_mmap's time goes, by mapping (map_fork fork"), std::string::npos) << table.out;
}

// A process that maps a new region between its forks: the new layout is read again
// and each launch matched to the layout it copied; the new region is copied only by
// the launches after it appeared.
TEST(TraceMappings, ALayoutChangedBetweenForksIsReadAgain) {
  const test::TempDir dir;
  const TracedMapFork t = trace_map_fork(dir, 15, {"wait:" + dir / "go1", "map", "wait:" + dir / "go2"});
  ASSERT_EQ(t.outcome.exit_code, 0) << t.outcome.err;
  ASSERT_NE(t.cell, nullptr) << t.outcome.out;
  const Cell& c = *t.cell;
  EXPECT_EQ(c.launches, 30u);
  expect_trace_mappings_consistent(c);
  EXPECT_EQ(c.mapping_unattributed, 0u);
  EXPECT_EQ(attributed(c), 30u);
  const Mapping* added = anon_row(c, 1);
  ASSERT_NE(added, nullptr);
  EXPECT_EQ(added->calls, 15u);
  EXPECT_EQ(added->bytes, uint64_t{1} << 20);
  EXPECT_EQ(row_named(c, dir / "mapped")->calls, 30u);
}

// A layout that changes faster than forkscope reads it, the process gone right after:
// the launches of a layout not read are counted unattributed, never given to another
// layout's mappings.
TEST(TraceMappings, ALayoutNotReadIsCountedNeverMisattributed) {
  const test::TempDir dir;
  constexpr uint32_t kForks = 10;
  const TracedMapFork t = trace_map_fork(dir, kForks, {"map", "map", "map"});
  ASSERT_EQ(t.outcome.exit_code, 0) << t.outcome.err;
  ASSERT_NE(t.cell, nullptr) << t.outcome.out;
  const Cell& c = *t.cell;
  EXPECT_EQ(c.launches, 4 * kForks);
  expect_trace_mappings_consistent(c);
  EXPECT_EQ(attributed(c) % kForks, 0u) << "a layout's launches are attributed all together or not at all";
  // The i-th new region (i MiB) is in the layouts of the batches after the i-th map step.
  for (uint32_t i = 1; i <= 3; i++) {
    const Mapping* m = anon_row(c, i);
    if (m == nullptr) continue;
    EXPECT_LE(m->calls, (4 - i) * kForks) << m->name;
    EXPECT_EQ(m->calls % kForks, 0u) << m->name;
  }
}

// --no-mappings: no smaps read, no per-mapping rows, the launches still counted.
TEST(TraceMappings, NoMappingsReadsNothingAndAttributesNothing) {
  const test::TempDir dir;
  test::Outcome o = run_forkscope(
      {"trace", "-v", "--no-mappings", "--out", dir / "out", "--", MAP_FORK_BIN, "map_fork", "16", "0", "-", "5"});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.err.find("mappings of pid"), std::string::npos) << o.err;
  const forkscope::Run run = load_results(dir / "out/results.json");
  const Cell* cell = nullptr;
  for (const Cell& c : run.cells)
    if (c.comm == "map_fork" && c.mode == "fork") cell = &c;
  ASSERT_NE(cell, nullptr);
  EXPECT_EQ(cell->launches, 5u);
  EXPECT_EQ(cell->mapping_method, "");
  EXPECT_TRUE(cell->mappings.empty());
  EXPECT_EQ(cell->mapping_unattributed, 0u);
  EXPECT_EQ(o.out.find("by mapping"), std::string::npos);
}

}  // namespace
}  // namespace forkscope
