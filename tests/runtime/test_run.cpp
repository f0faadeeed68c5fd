// Runtime lane: the real binary, real BPF programs, this machine's kernel.
#include <gtest/gtest.h>
#include <linux/types.h>

#include <cmath>
#include <filesystem>
#include <map>

#include "forkscope/calibration.h"
#include "forkscope/results.h"
#include "forkscope/shared/catalog.h"
#include "bpf_objects.h"
#include "checks.h"
#include "proc.h"

namespace forkscope {
namespace {

using test::run_forkscope;

constexpr uint64_t kIterations = 300;

using test::expect_phases_add_up;

// One sweep shared by the assertions below: fork and pthread at 2M and 256M.
class RunSweep : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = test::make_temp_dir();
    outcome_ = run_forkscope({"run", "--modes", "fork,pthread", "--heap", "2M,256M", "--iterations",
                              std::to_string(kIterations), "--cell-seconds", "120", "--out", dir_, "--quiet"});
    if (outcome_.exit_code == 0) run_ = load_results(dir_ + "/results.json");
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }

  static const Cell& cell(const std::string& mode, uint64_t heap) {
    for (const Cell& c : run_.cells)
      if (c.mode == mode && c.heap_bytes == heap) return c;
    throw std::runtime_error("no cell " + mode);
  }

  static inline std::string dir_;
  static inline test::Outcome outcome_;
  static inline forkscope::Run run_;
};

TEST_F(RunSweep, ExitsCleanlyAndWritesResults) {
  ASSERT_EQ(outcome_.exit_code, 0) << outcome_.err;
  EXPECT_EQ(run_.schema, "forkscope.results/1");
  EXPECT_EQ(run_.backend, test::doctor_auto_backend()) << "run --backend auto uses what doctor finds works here";
  EXPECT_FALSE(run_.incomplete);
  EXPECT_EQ(run_.cells.size(), 4u);
  EXPECT_NE(outcome_.out.find("copy_process"), std::string::npos) << "the phase tree is printed";
  EXPECT_TRUE(outcome_.err.empty()) << "--quiet prints nothing on success: " << outcome_.err;
}

TEST_F(RunSweep, EveryCellCountsExactlyItsLaunches) {
  ASSERT_EQ(outcome_.exit_code, 0) << outcome_.err;
  for (const Cell& c : run_.cells) {
    EXPECT_EQ(c.launches, kIterations) << c.mode;
    EXPECT_EQ(c.failed, 0u) << c.mode;
    EXPECT_EQ(c.kernel.launches, kIterations) << c.mode << ": the BPF side saw a different count";
    EXPECT_EQ(c.kernel.lost, 0u) << c.mode;
    EXPECT_EQ(c.user.call_to_return.n, kIterations) << c.mode;
    EXPECT_GT(c.user.call_to_return.p50, 0u) << c.mode;
    EXPECT_LE(c.user.call_to_return.p50, c.user.call_to_reaped.p50) << c.mode;
    const Phase* sys = c.phase("syscall");
    ASSERT_NE(sys, nullptr) << c.mode;
    EXPECT_EQ(sys->count, kIterations) << c.mode;
  }
}

TEST_F(RunSweep, ForkCellsCountCopyProcessOncePerLaunch) {
  ASSERT_EQ(outcome_.exit_code, 0) << outcome_.err;
  for (uint64_t heap : {2ull << 20, 256ull << 20}) {
    const Cell& c = cell("fork", heap);
    for (const char* name :
         {"copy_process", "dup_mm", "dup_mmap", "copy_page_range", "alloc_pid", "wake_up_new_task", "teardown"}) {
      const Phase* p = c.phase(name);
      ASSERT_NE(p, nullptr) << name;
      EXPECT_EQ(p->count, c.launches) << name << " at heap " << heap;
    }
    // A child's first switch-in is, rarely, not seen: then it is counted as missed.
    const Phase* first_run = c.phase("child_first_run");
    ASSERT_NE(first_run, nullptr);
    EXPECT_EQ(first_run->count + c.kernel.first_run_missed, c.launches);
    EXPECT_LE(c.kernel.first_run_missed, c.launches / 100);
    EXPECT_EQ(c.phase("copy_process")->path, "syscall;copy_process");
    EXPECT_EQ(c.phase("dup_mmap")->path, "syscall;copy_process;dup_mm;dup_mmap");
    EXPECT_GE(c.phase("copy_page_range")->calls, c.launches) << "at least one VMA with pages per fork";
    EXPECT_LE(c.phase("copy_page_range")->calls, c.launches * c.backing.vmas)
        << "no more VMAs copied than the parent has";
  }
}

TEST_F(RunSweep, SelfTimePlusChildrenAddsUpToTotal) {
  ASSERT_EQ(outcome_.exit_code, 0) << outcome_.err;
  for (const Cell& c : run_.cells) expect_phases_add_up(c);
}

TEST_F(RunSweep, DupMmapGrowsWithTheHeapForForkOnly) {
  ASSERT_EQ(outcome_.exit_code, 0) << outcome_.err;
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "under ASan the runner's shadow memory makes every fork copy large page tables: "
                  "the plain runtime lane checks the growth";
#endif
  const Phase* small = cell("fork", 2ull << 20).phase("dup_mmap");
  const Phase* large = cell("fork", 256ull << 20).phase("dup_mmap");
  ASSERT_TRUE(small && large);
  EXPECT_GE(large->mean_ns, 10 * small->mean_ns);
  // Per-fault and per-page events are off by default: no fault counts, no page counts.
  EXPECT_EQ(cell("fork", 256ull << 20).phase("post_launch_cow"), nullptr);
  EXPECT_EQ(cell("fork", 256ull << 20).kernel.pt_pages, 0u);
  for (uint64_t heap : {2ull << 20, 256ull << 20}) {
    const Cell& t = cell("pthread", heap);
    EXPECT_EQ(t.phase("dup_mm"), nullptr);
    EXPECT_EQ(t.phase("dup_mmap"), nullptr);
    EXPECT_EQ(t.phase("copy_page_range"), nullptr);
    ASSERT_NE(t.phase("copy_process"), nullptr);
    EXPECT_EQ(t.phase("copy_process")->count, t.launches);
  }
}

TEST_F(RunSweep, RecordsTheHeapsRealBacking) {
  ASSERT_EQ(outcome_.exit_code, 0) << outcome_.err;
  const Cell& big = cell("fork", 256ull << 20);
  EXPECT_GE(big.backing.vm_rss_bytes, 256ull << 20);
  EXPECT_GE(big.backing.vm_pte_bytes, 512ull * 1024) << "256 MiB of 4 KiB pages needs 512 KiB of PTEs";
  EXPECT_GT(big.backing.vmas, 5u);
  EXPECT_FALSE(run_.host.kernel.empty());
  EXPECT_FALSE(run_.host.thp.empty());
}

TEST(RunErrors, BadInputExitsTwoWithOneLineBeforeAnyLaunch) {
  const test::TempDir dir;
  for (const std::vector<std::string>& args : {std::vector<std::string>{"run", "--modes", "fork,teleport"},
                                               {"run", "--heap", "2Q"},
                                               {"run", "--heap", "64T"},
                                               {"run", "--iterations", "0"},
                                               {"run", "--clone-flags", "VM,WARP"},
                                               {"run", "--clone-flags", "THREAD"},
                                               {"run", "--vmas", "18446744073709551605"},
                                               {"run", "--bogus"}}) {
    std::vector<std::string> full = args;
    full.insert(full.end(), {"--out", dir});
    test::Outcome o = run_forkscope(full);
    EXPECT_EQ(o.exit_code, 2) << args[1] << " " << (args.size() > 2 ? args[2] : "") << ": " << o.err;
    EXPECT_EQ(test::count_lines(o.err), 1) << o.err;
    EXPECT_EQ(o.err.rfind("forkscope: ", 0), 0u) << o.err;
  }
  EXPECT_FALSE(std::filesystem::exists(dir + "/results.json"));
}

TEST(RunErrors, WithoutPrivilegeExitsThree) {
  const test::TempDir dir;
  std::filesystem::permissions(dir.str(), std::filesystem::perms::all);
  test::Outcome o = run_forkscope({"run", "--modes", "fork", "--heap", "2M", "--iterations", "10", "--out", dir},
                                  65534);
  EXPECT_EQ(o.exit_code, 3) << o.err;
  EXPECT_EQ(test::count_lines(o.err), 1) << o.err;
  EXPECT_NE(o.err.find("root"), std::string::npos) << o.err;
  EXPECT_FALSE(std::filesystem::exists(dir + "/results.json"));
}

TEST(RunCleanup, NoProgramStaysAttachedAfterARun) {
  const test::TempDir dir;
  const auto [o, ours] = test::run_watching_bpf(
      {"run", "--modes", "clone-vm", "--heap", "0", "--iterations", "50", "--out", dir, "--quiet"});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  ASSERT_FALSE(ours.progs.empty());
  // None of the run's programs, maps or links may remain once the process is gone.
  const test::BpfIds left = test::left_after_grace(ours);
  EXPECT_TRUE(left.empty()) << test::describe(left) << " still loaded";
}

TEST(Doctor, ReportsBackendsAndEveryPhase) {
  test::Outcome o = run_forkscope({"doctor"});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  for (const char* s : {"BPF programs", "loaded and attached as --backend auto would", "fentry", "kprobe",
                        "copy_process", "dup_mmap", "copy_page_range", "kernel_clone", "teardown"})
    EXPECT_NE(o.out.find(s), std::string::npos) << s;
}

}  // namespace
}  // namespace forkscope

namespace forkscope {
namespace {

// This host's kernel has neither fentry (ftrace locked) nor kprobes: forcing either
// must fail up front with the reason, before anything is launched.
TEST(Backends, ForcedFunctionBackendsThatCannotWorkExitThree) {
  const test::TempDir dir;
  for (const char* backend : {"fentry", "kprobe"}) {
    test::Outcome o = run_forkscope(
        {"run", "--backend", backend, "--modes", "fork", "--heap", "0", "--iterations", "5", "--out", dir, "--quiet"});
    if (o.exit_code == 0) {
      GTEST_SKIP() << "this kernel allows " << backend << ": the kernel lane covers it";
    }
    EXPECT_EQ(o.exit_code, 3) << backend << ": " << o.err;
    EXPECT_EQ(test::count_lines(o.err), 1) << o.err;
    EXPECT_NE(o.err.find(std::string("--backend ") + backend + " cannot work"), std::string::npos) << o.err;
  }
  EXPECT_FALSE(std::filesystem::exists(dir + "/results.json"));
}

TEST(Backends, AutoFallsBackToTracepointsAndSaysWhy) {
  const test::TempDir dir;
  test::Outcome o = run_forkscope(
      {"run", "--modes", "fork", "--heap", "0", "--iterations", "20", "--out", dir, "--quiet"});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  forkscope::Run run = load_results(dir + "/results.json");
  bool kernel_clone_listed = false;
  for (const PhaseAvailability& a : run.phases_available) {
    if (a.name != "kernel_clone") continue;
    kernel_clone_listed = true;
    if (run.backend == "tracepoint") {
      EXPECT_EQ(a.source, "");
      EXPECT_NE(a.reason.find("kernel_clone"), std::string::npos) << a.reason;
    } else if (a.source.empty()) {
      EXPECT_FALSE(a.reason.empty()) << "an unmeasured phase says why";
    } else {
      EXPECT_EQ(a.source, run.backend) << "the function-probe backend measures kernel_clone";
    }
  }
  EXPECT_TRUE(kernel_clone_listed);
  // Every measured phase in a cell names its source.
  for (const Phase& p : run.cells.at(0).phases) EXPECT_FALSE(p.source.empty()) << p.name;
}

TEST(Backends, BadBackendAndPhaseOptionsExitTwo) {
  for (const std::vector<std::string>& args : {std::vector<std::string>{"run", "--backend", "ebpf"},
                                               {"run", "--phase", "bad name!"},
                                               {"run", "--phase", "anon_vma_fork:nowhere"},
                                               {"run", "--backend", "tracepoint", "--phase", "anon_vma_fork"}}) {
    test::Outcome o = run_forkscope(args);
    EXPECT_EQ(o.exit_code, 2) << args[1] << " " << args[2] << ": " << o.err;
    EXPECT_EQ(test::count_lines(o.err), 1) << o.err;
  }
}

// A sampled launch carries its spans for timelines, nested like the aggregate tree.
TEST(Samples, SampledLaunchesCarryTheirSpans) {
  const test::TempDir dir;
  test::Outcome o = run_forkscope(
      {"run", "--modes", "fork", "--heap", "2M", "--iterations", "64", "--out", dir, "--quiet"});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  forkscope::Run run = load_results(dir + "/results.json");
  const Cell& c = run.cells.at(0);
  EXPECT_EQ(c.samples.size(), static_cast<size_t>(FS_MAX_SAMPLES));
  EXPECT_EQ(c.kernel.samples_lost, 0u);
  for (const Sample& s : c.samples) {
    EXPECT_GE(s.seq, 1u);
    EXPECT_LE(s.seq, 64u);
    EXPECT_GT(s.child_pid, 0);
    const SampleSpan* sys = nullptr;
    bool cpr = false, child_run = false;
    for (const SampleSpan& sp : s.spans) {
      if (sp.path == "syscall") sys = &sp;
      cpr |= sp.name == "copy_page_range";
      child_run |= sp.name == "child_first_run" && sp.task == "child";
    }
    ASSERT_NE(sys, nullptr);
    EXPECT_EQ(sys->start_ns, 0);
    for (const SampleSpan& sp : s.spans) {
      if (sp.task != "parent") continue;
      EXPECT_GE(sp.start_ns, 0) << sp.name;
      EXPECT_LE(sp.start_ns + static_cast<int64_t>(sp.dur_ns), static_cast<int64_t>(sys->dur_ns)) << sp.name;
    }
    EXPECT_TRUE(cpr);
    EXPECT_TRUE(child_run);
  }
}

}  // namespace
}  // namespace forkscope

namespace forkscope {
namespace {

// --vmas: each fork copies the extra one-page VMAs, each with an anon_vma (touched),
// so every one of them has its set-up and its copy_page_range.
TEST(ExtraVmas, EveryForkCopiesThem) {
  const test::TempDir dir;
  test::Outcome o = run_forkscope(
      {"run", "--modes", "fork", "--heap", "0", "--vmas", "500", "--iterations", "30", "--out", dir, "--quiet"});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  forkscope::Run run = load_results(dir + "/results.json");
  const Cell& c = run.cells.at(0);
  EXPECT_EQ(c.launches, 30u);
  EXPECT_GE(c.backing.vmas, 520u);
  const Phase* setup = c.phase("vma_setup");
  const Phase* copy = c.phase("copy_page_range");
  ASSERT_NE(setup, nullptr);
  ASSERT_NE(copy, nullptr);
  EXPECT_GE(setup->calls, 500u * c.launches);
  EXPECT_LE(setup->calls, c.backing.vmas * c.launches);
  EXPECT_GE(copy->calls, 500u * c.launches);
  EXPECT_LE(copy->calls, setup->calls);
  test::expect_phases_add_up(c);
}

TEST(Detail, CountsCopyOnWriteFaultsAndPageTablePages) {
  const test::TempDir dir;
  test::Outcome o = run_forkscope(
      {"run", "--detail", "--modes", "fork", "--heap", "2M,128M", "--iterations", "40", "--out", dir, "--quiet"});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  forkscope::Run run = load_results(dir + "/results.json");
  ASSERT_EQ(run.cells.size(), 2u);
  const Cell& small = run.cells[0];
  const Cell& large = run.cells[1];
  // A 128 MiB heap needs 64 PTE pages where a 2 MiB one needs 1 (and its PMD).
  EXPECT_GE(large.kernel.pt_pages, small.kernel.pt_pages + 60 * large.launches);
  const Phase* cow = large.phase("post_launch_cow");
  ASSERT_NE(cow, nullptr);
  EXPECT_EQ(cow->count, large.launches);
  EXPECT_GE(cow->calls, large.launches) << "the child writes at least once after fork";
}

TEST(OverheadMeasurement, RatiosAndCalibrationLandInTheResults) {
  const test::TempDir dir;
  // --cell-seconds: every detach and attach is slow under the sanitizers; the count must not depend on speed.
  test::Outcome o = run_forkscope({"run", "--overhead", "--modes", "fork", "--heap", "2M", "--iterations", "200",
                                   "--cell-seconds", "300", "--out", dir, "--quiet"});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  forkscope::Run run = load_results(dir + "/results.json");
  ASSERT_TRUE(run.calibration.has_value());
  EXPECT_GT(run.calibration->events_per_launch, 10) << "a fork runs many of our programs";
  // Rounds of 20 forks untraced, traced, and traced without allocation landmarks.
  constexpr uint64_t kRound = kCalibrationBlocksPerRound * kCalibrationBlock;
  EXPECT_EQ(run.calibration->launches % kRound, 0u) << "whole rounds of three blocks";
  EXPECT_GE(run.calibration->launches, kCalibrationMinRounds * kRound) << "the minimum number of rounds at least";
  EXPECT_LE(run.calibration->launches, kCalibrationRounds * kRound);
  ASSERT_EQ(run.cells.size(), 1u) << "the calibration's cells stay out of the results";
  const Cell& c = run.cells.at(0);
  EXPECT_EQ(c.launches, 200u);
  EXPECT_EQ(c.kernel.launches, 200u) << "untraced launches are not counted";
  ASSERT_TRUE(c.overhead.has_value());
  EXPECT_EQ(c.overhead->untraced.n, 200u) << "as many untraced launches as traced ones";
  EXPECT_GT(c.overhead->ratio, 0.5);
  EXPECT_LE(c.overhead->ratio_low, c.overhead->ratio);
  EXPECT_GE(c.overhead->ratio_high, c.overhead->ratio);
  EXPECT_GE(run.calibration->ns_per_event, 0);
  EXPECT_NE(o.out.find("traced/untraced p50"), std::string::npos) << o.out;
  // The correction takes our calibrated cost out of the traced launch and kernel times.
  if (run.calibration->ns_per_event == 0)
    GTEST_SKIP() << "the calibration found no cost per program run above this machine's noise; nothing to correct";
  EXPECT_LT(c.overhead->corrected_launch_ns, static_cast<double>(c.user.call_to_return.p50));
  EXPECT_LT(c.overhead->corrected_kernel_ns, static_cast<double>(c.phase("syscall")->p50_ns));
  EXPECT_NE(o.out.find("corrected traced launch"), std::string::npos) << o.out;
}

TEST(OverheadMeasurement, ReportsSayWhenNotMeasured) {
  const test::TempDir dir;
  test::Outcome o = run_forkscope(
      {"run", "--modes", "vfork", "--heap", "0", "--iterations", "20", "--out", dir, "--quiet"});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_NE(o.out.find("overhead not measured"), std::string::npos) << o.out;
  // What it can say without a baseline: how many of its programs ran per launch.
  EXPECT_NE(o.out.find("runs of forkscope's BPF programs inside each launch: vfork "), std::string::npos) << o.out;
}

}  // namespace
}  // namespace forkscope

namespace forkscope {
namespace {

// Two threads launching at once on both CPUs, at the highest rates the runner makes
// (threads and vfork): per-task phase stacks keep apart, no launch is lost.
TEST(Threads, ConcurrentLaunchersLoseNothing) {
  const test::TempDir dir;
  test::Outcome o = run_forkscope({"run", "--threads", "2", "--modes", "pthread,vfork", "--heap", "0", "--iterations",
                                   "3000", "--cell-seconds", "120", "--out", dir, "--quiet"});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  forkscope::Run run = load_results(dir + "/results.json");
  for (const Cell& c : run.cells) {
    EXPECT_EQ(c.launches, 3000u) << c.mode;
    EXPECT_EQ(c.kernel.launches, 3000u) << c.mode;
    EXPECT_EQ(c.kernel.lost, 0u) << c.mode;
    EXPECT_EQ(c.user.call_to_child.n, 3000u) << c.mode << ": every child stamped its own thread's slot";
    for (const char* name : {"syscall", "copy_process", "alloc_pid", "wake_up_new_task", "teardown"}) {
      const Phase* p = c.phase(name);
      ASSERT_NE(p, nullptr) << c.mode << " " << name;
      EXPECT_EQ(p->count, 3000u) << c.mode << " " << name;
    }
    expect_phases_add_up(c);  // nothing nests wrongly
  }
}

}  // namespace
}  // namespace forkscope

namespace forkscope {
namespace {

// fork+exec, vfork+exec and posix_spawn in one table: every launch's child execs
// once, with the exec phases; only fork's child has a copy of the parent's memory
// for exec to tear down (old_mm_exit).
TEST(ExecModes, EveryLaunchExecsOnceAndOnlyForkTearsDownACopy) {
  const test::TempDir dir;
  test::Outcome o = run_forkscope({"run", "--modes", "fork-exec,vfork-exec,spawn-exec", "--heap", "2M", "--iterations",
                                   "100", "--cell-seconds", "120", "--out", dir, "--quiet"});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  const forkscope::Run run = load_results(dir + "/results.json");
  ASSERT_EQ(run.cells.size(), 3u);
  EXPECT_EQ(run.cells[2].mode, "posix_spawn") << "spawn-exec is posix_spawn";
  for (const Cell& c : run.cells) {
    EXPECT_EQ(c.kernel.launches, 100u) << c.mode;
    EXPECT_EQ(c.kernel.execs, 100u) << c.mode;
    EXPECT_EQ(c.kernel.exec_failed, 0u) << c.mode;
    for (const char* name :
         {"execve", "bprm_setup", "begin_new_exec", "exec_load", "exec_first_insn", "teardown", "reap"}) {
      const Phase* p = c.phase(name);
      ASSERT_NE(p, nullptr) << c.mode << " " << name;
      EXPECT_EQ(p->count, 100u) << c.mode << " " << name;
    }
    const Phase* old_mm = c.phase("old_mm_exit");
    if (c.mode == "fork-exec") {
      ASSERT_NE(old_mm, nullptr);
      EXPECT_EQ(old_mm->count, 100u);
    } else {
      EXPECT_EQ(old_mm, nullptr) << c.mode << ": a vfork child's mm is its parent's";
    }
    expect_phases_add_up(c);
  }
}

}  // namespace
}  // namespace forkscope
