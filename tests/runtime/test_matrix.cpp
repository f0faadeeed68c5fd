// The sweeps kernel changes need (issue 13 item 4): a cell per VMA count, extra
// VMAs touched or never faulted, and the three heap layouts, on this kernel.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "forkscope/results.h"
#include "checks.h"
#include "proc.h"

namespace forkscope {
namespace {

using test::run_forkscope;

constexpr uint64_t kLaunches = 25;

double per_launch(const Cell& c, const char* phase) {
  const Phase* p = c.phase(phase);
  return p ? static_cast<double>(p->calls) / static_cast<double>(c.launches) : 0;
}

forkscope::Run run_vmas(const test::TempDir& dir, const char* touch) {
  // pthread first: glibc keeps the first thread's stack mapped, so every fork
  // cell meets the same mappings but for the extra VMAs.
  test::Outcome o = run_forkscope({"run", "--modes", "pthread,fork", "--heap", "0", "--vmas", "0,300,700",
                                   "--vma-touch", touch, "--iterations", std::to_string(kLaunches), "--out", dir,
                                   "--quiet"});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  return load_results(dir + "/results.json");
}

// Heaps x VMA counts x modes, in that order; each fork copies exactly the extra
// VMAs more, whether they were touched or not; only touched ones have page tables.
TEST(VmaSweep, ACellPerCountAndEveryForkCopiesExactlyTheExtraVmas) {
  if (test::kAddressSanitizer)
    GTEST_SKIP() << "AddressSanitizer's allocator maps memory during a cell, so the runner's VMA layout (which this "
                    "test counts exactly) moves; the plain runtime lane checks it";

  for (const char* touch : {"touched", "none"}) {
    SCOPED_TRACE(touch);
    const test::TempDir dir;
    const forkscope::Run run = run_vmas(dir, touch);
    ASSERT_EQ(run.cells.size(), 6u);
    const uint64_t counts[] = {0, 300, 700};
    for (size_t i = 0; i < 6; i++) {
      const Cell& c = run.cells[i];
      EXPECT_EQ(c.mode, i % 2 ? "fork" : "pthread");
      EXPECT_EQ(c.vmas, counts[i / 2]);
      EXPECT_EQ(c.vma_touch, std::string(touch) == "none" && c.vmas ? "none" : "");
      EXPECT_EQ(c.launches, kLaunches);
      EXPECT_EQ(c.kernel.launches, kLaunches);
      test::expect_phases_add_up(c);
    }
    const Cell &f0 = run.cells[1], &f300 = run.cells[3], &f700 = run.cells[5];
    EXPECT_EQ(f300.backing.vmas - f0.backing.vmas, 300u);
    EXPECT_EQ(f700.backing.vmas - f0.backing.vmas, 700u);
    // Every VMA has its set-up, each cell exactly the extra count more per fork.
    EXPECT_EQ(per_launch(f300, "vma_setup") - per_launch(f0, "vma_setup"), 300.0);
    EXPECT_EQ(per_launch(f700, "vma_setup") - per_launch(f300, "vma_setup"), 400.0);
    // Page tables are copied only for VMAs with an anon_vma: a faulted page.
    const double copies = std::string(touch) == "none" ? 0.0 : 1.0;
    EXPECT_EQ(per_launch(f700, "copy_page_range") - per_launch(f0, "copy_page_range"), 700.0 * copies);
    EXPECT_EQ(run.cells[4].phase("vma_setup"), nullptr) << "a thread copies no VMA";
  }
}

std::string thp_mode() {
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string line;
  std::getline(in, line);
  return line;
}

// --thp pte: the 2 MiB folios stay (kpageflags) but no PMD maps them
// (AnonHugePages), against --thp, where a PMD maps each.
TEST(ThpLayouts, PteMappedFoliosAreLargeButNotPmdMapped) {
  if (test::kAddressSanitizer)
    GTEST_SKIP() << "AddressSanitizer's allocator maps memory during a cell, so the runner's VMA layout (which this "
                    "test counts exactly) moves; the plain runtime lane checks it";

  if (thp_mode().find("[never]") != std::string::npos || thp_mode().empty())
    GTEST_SKIP() << "transparent huge pages are off here (" << thp_mode() << ")";
  const uint64_t heap = 16 << 20;
  forkscope::Run runs[2];
  const char* layouts[] = {"pmd", "pte"};
  for (int i = 0; i < 2; i++) {
    const test::TempDir dir;
    test::Outcome o = run_forkscope({"run", "--modes", "fork", "--heap", "16M", "--thp", layouts[i], "--iterations",
                                     std::to_string(kLaunches), "--out", dir, "--quiet"});
    ASSERT_EQ(o.exit_code, 0) << o.err;
    runs[i] = load_results(dir + "/results.json");
    ASSERT_EQ(runs[i].cells.size(), 1u);
    EXPECT_EQ(runs[i].cells[0].thp, layouts[i]);
    EXPECT_EQ(runs[i].cells[0].launches, kLaunches);
  }
  const Backing &pmd = runs[0].cells[0].backing, &pte = runs[1].cells[0].backing;
  if (pmd.large_folio_bytes == 0) GTEST_SKIP() << "no huge page could be allocated for the heap (fragmented memory?)";
  EXPECT_LE(pmd.large_folio_bytes, heap);
  EXPECT_GE(pmd.anon_huge_bytes, pmd.large_folio_bytes) << "PMD-mapped: AnonHugePages counts them";
  EXPECT_GT(pte.large_folio_bytes, 0u) << "the folios survived the PMD split";
  EXPECT_LT(pte.anon_huge_bytes, pte.large_folio_bytes) << "PTE-mapped: AnonHugePages leaves them out";
  // The heap is still one VMA: the protection change was undone and the VMAs merged.
  EXPECT_EQ(pte.vmas, pmd.vmas);
  // 512 PTEs per folio: a page-table page per PTE-mapped 2 MiB (the PMD-mapped
  // heap may hold deposited page tables too: VmPTE counts those, so no comparison).
  EXPECT_GE(pte.vm_pte_bytes, pte.large_folio_bytes / (2 << 20) * 4096);
}

}  // namespace
}  // namespace forkscope
