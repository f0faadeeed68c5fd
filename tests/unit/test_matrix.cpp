// The sweep's memory layouts (--vmas lists, --vma-touch, --thp pte) as options,
// as cell fields of the results file, and as cell identity in reports.
#include <gtest/gtest.h>

#include "forkscope/diff_merge.h"
#include "forkscope/error.h"
#include "forkscope/analysis.h"
#include "forkscope/results.h"
#include "forkscope/runner.h"
#include "forkscope/formats.h"

namespace forkscope {
namespace {

TEST(VmaCounts, ListInOrder) {
  EXPECT_EQ(parse_vma_counts("0"), (std::vector<uint64_t>{0}));
  EXPECT_EQ(parse_vma_counts("4000,0,1000"), (std::vector<uint64_t>{4000, 0, 1000}));
}

TEST(VmaCounts, RefusesEmptyItemsNonNumbersAndRepeats) {
  for (const char* bad : {"", ",", "1,,2", "1,", "-1", "0x10", " 5", "1k", "100,100"}) {
    EXPECT_THROW(parse_vma_counts(bad), Error) << bad;
  }
  try {
    parse_vma_counts("100,100");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), kExitUsage);
    EXPECT_NE(std::string(e.what()).find("given twice"), std::string::npos) << e.what();
  }
}

TEST(ThpLayout, Names) {
  EXPECT_EQ(parse_thp_layout(""), ThpLayout::kPmd) << "--thp alone keeps meaning PMD-mapped huge pages";
  EXPECT_EQ(parse_thp_layout("pmd"), ThpLayout::kPmd);
  EXPECT_EQ(parse_thp_layout("pte"), ThpLayout::kPte);
  EXPECT_EQ(parse_thp_layout("none"), ThpLayout::kNone);
  EXPECT_THROW(parse_thp_layout("PTE"), Error);
  EXPECT_EQ(thp_layout_name(ThpLayout::kPte), "pte");
  EXPECT_EQ(thp_layout_name(ThpLayout::kNone), "");
}

Run two_vma_cells() {
  forkscope::Run run;
  run.host = {"lab", "6.1.0-21-amd64", "x86_64", 2, "madvise"};
  run.backend = "tracepoint";
  for (uint64_t vmas : {0, 1000}) {
    Cell c;
    c.mode = "fork";
    c.heap_bytes = 2 << 20;
    c.vmas = vmas;
    c.vma_touch = vmas ? "none" : "";
    c.thp = "pte";
    c.iterations = c.launches = 10;
    c.backing.large_folio_bytes = 2 << 20;
    run.cells.push_back(c);
  }
  return run;
}

TEST(VmaCells, RoundTripAndWrittenOnlyWhenSet) {
  const forkscope::Run run = two_vma_cells();
  const std::string text = to_json(run);
  EXPECT_EQ(run_from_json(text), run);
  EXPECT_NE(text.find("\"vmas\": 1000"), std::string::npos);
  EXPECT_NE(text.find("\"large_folio_bytes\": 2097152"), std::string::npos);
  // vma_touch is written for the untouched cell only.
  const size_t first = text.find("\"vma_touch\"");
  ASSERT_NE(first, std::string::npos);
  EXPECT_EQ(text.find("\"vma_touch\"", first + 1), std::string::npos);
}

TEST(VmaCells, FilesWithoutTheFieldsReadAsTheDefaults) {
  forkscope::Run run = two_vma_cells();
  run.cells.resize(1);
  run.cells[0].thp.clear();
  std::string text = to_json(run);
  const size_t at = text.find("      \"vmas\": 0,\n");
  ASSERT_NE(at, std::string::npos) << text.substr(0, 600);
  text.erase(at, std::string("      \"vmas\": 0,\n").size());
  EXPECT_EQ(run_from_json(text).cells.at(0).vmas, 0u);
}

TEST(VmaCells, SameHeapTwoCountsAreTwoCellsButTheSameCountTwiceIsRefused) {
  forkscope::Run run = two_vma_cells();
  EXPECT_NO_THROW(run_from_json(to_json(run)));
  run.cells[1].vmas = 0;
  run.cells[1].vma_touch.clear();
  try {
    run_from_json(to_json(run));
    FAIL() << "a duplicate cell was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("vmas"), std::string::npos) << e.what();
  }
}

TEST(VmaCells, UnknownLayoutValuesAreRefused) {
  forkscope::Run run = two_vma_cells();
  run.cells[0].thp = "huge";
  EXPECT_THROW(run_from_json(to_json(run)), Error);
  run = two_vma_cells();
  run.cells[1].vma_touch = "touched";
  EXPECT_THROW(run_from_json(to_json(run)), Error);
}

TEST(VmaCells, LabelsSpecsAndIdentity) {
  const forkscope::Run run = two_vma_cells();
  EXPECT_EQ(cell_label(run.cells[0]), "fork 2M");
  EXPECT_EQ(cell_label(run.cells[1]), "fork 2M +1000 VMAs");
  EXPECT_FALSE(same_cell(run.cells[0], run.cells[1]));
  EXPECT_EQ(&find_cell(run, "fork:2M@1000"), &run.cells[1]);
  EXPECT_EQ(&find_cell(run, "fork:2M@0"), &run.cells[0]);
  EXPECT_THROW(find_cell(run, "fork:2M"), Error) << "two cells match: the message lists both";
  EXPECT_THROW(find_cell(run, "fork:2M@7"), Error);
  const std::vector<Series> series = series_by_mode(run);
  ASSERT_EQ(series.size(), 2u) << "one series per VMA count";
  EXPECT_EQ(series[1].label(), "fork +1000 VMAs");
}

TEST(VmaCells, MergeAndDiffMatchByVmaCount) {
  forkscope::Run a = two_vma_cells();
  forkscope::Run b = two_vma_cells();
  b.host.kernel = "6.12.57+deb12-amd64";
  const forkscope::Run merged = merge_runs({a, b}, {"a.json", "b.json"});
  ASSERT_EQ(merged.cells.size(), 4u);
  EXPECT_EQ(cell_label(merged.cells[3]), "fork 2M +1000 VMAs on lab 6.12.57+deb12-amd64");
  b.host.kernel = a.host.kernel;
  b.cells.resize(1);  // only the cell without extra VMAs in common
  const std::vector<CellDiff> diff = diff_runs(a, b, "a", "b");
  ASSERT_EQ(diff.size(), 2u);
  EXPECT_EQ(diff[0].a, &a.cells[0]);
  EXPECT_EQ(diff[0].b, &b.cells[0]);
  EXPECT_EQ(diff[1].a, &a.cells[1]);
  EXPECT_EQ(diff[1].b, nullptr) << "the +1000 VMAs cell is in A only";
  b.cells[0].vmas = 1000;
  const std::vector<CellDiff> other = diff_runs(a, b, "a", "b");
  ASSERT_EQ(other.size(), 2u);
  EXPECT_EQ(other[0].b, nullptr);
  EXPECT_EQ(other[1].a, &a.cells[1]) << "matched by VMA count";
  EXPECT_EQ(other[1].b, &b.cells[0]);
}

}  // namespace
}  // namespace forkscope

namespace forkscope {
namespace {

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) n++;
  return n;
}

// The recorded fixture as two kernels: the second's launches 20% slower, both
// with untraced blocks (--overhead), merged as kernel-matrix.sh merges them.
forkscope::Run two_kernels() {
  forkscope::Run a = load_results(std::string(FS_TEST_DATA) + "/results.json");
  forkscope::Run b = a;
  b.host.kernel = "6.12.57+deb12-amd64";
  for (forkscope::Run* r : {&a, &b}) {
    for (Cell& c : r->cells) {
      Overhead o;
      o.untraced = c.user.call_to_return;
      o.untraced.p50 = o.untraced.p50 * (r == &a ? 8 : 10) / 10;
      c.overhead = o;
      if (r == &b)
        for (Phase& p : c.phases) p.mean_ns *= 1.2;
    }
  }
  return merge_runs({a, b}, {"6.1.json", "6.12.json"});
}

TEST(KernelView, KernelsSideBySideUntracedFirst) {
  const forkscope::Run merged = two_kernels();
  const std::string html = html_report(merged, featured_cell(merged));
  const size_t section = html.find("<section id=\"kernels\">");
  ASSERT_NE(section, std::string::npos);
  const size_t end = html.find("</section>", section);
  const std::string view = html.substr(section, end - section);
  EXPECT_EQ(count(view, "<th>vm 6.18.44-fc-v657</th>"), 1u);
  EXPECT_EQ(count(view, "<th>vm 6.12.57+deb12-amd64</th>"), 1u);
  // Every cell (mode x heap) once, the untraced launch first.
  EXPECT_EQ(count(view, "<td>untraced launch p50</td>"), 6u);
  EXPECT_LT(view.find("untraced launch p50"), view.find("traced launch p50</td>", view.find("untraced") + 9));
  // A chart per phase of fork and pthread against heap size, a line per kernel.
  EXPECT_GE(count(view, "<svg"), 4u);
  const std::string chart = kernel_chart_svg(merged, "fork", "syscall");
  EXPECT_EQ(count(chart, "<polyline"), 2u) << "one line per kernel";
  EXPECT_NE(chart.find("heap size (log scale)"), std::string::npos);
  EXPECT_EQ(count(kernel_chart_svg(merged, "fork", "untraced"), "<polyline"), 2u);
}

TEST(KernelView, ChartsAgainstTheVmaCountWhenTheCellsSweepIt) {
  forkscope::Run a = two_vma_cells();
  for (Cell& c : a.cells) {
    Phase p;
    p.name = p.path = "syscall";
    p.count = c.launches;
    p.calls = c.launches;
    p.mean_ns = 1000.0 + static_cast<double>(c.vmas);
    c.phases = {p};
  }
  forkscope::Run b = a;
  b.host.kernel = "6.12.57+deb12-amd64";
  const forkscope::Run merged = merge_runs({a, b}, {"a", "b"});
  const std::string chart = kernel_chart_svg(merged, "fork", "syscall");
  EXPECT_NE(chart.find("extra VMAs"), std::string::npos);
  EXPECT_EQ(count(chart, "<polyline"), 2u);
  EXPECT_NE(chart.find(">1000</text>"), std::string::npos) << "the VMA counts label the x axis";
  EXPECT_EQ(kernel_chart_svg(merged, "fork", "untraced"), "") << "no --overhead: nothing to plot";
}

TEST(KernelView, NoViewForASingleKernel) {
  const forkscope::Run one = load_results(std::string(FS_TEST_DATA) + "/results.json");
  EXPECT_EQ(html_report(one, featured_cell(one)).find("id=\"kernels\""), std::string::npos);
}

}  // namespace
}  // namespace forkscope
