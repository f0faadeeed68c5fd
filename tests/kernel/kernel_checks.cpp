// Kernel lane checker: runs inside the QEMU guest (Debian's stock kernel, which
// has fentry and kprobes) on the results.json files guest-checks.sh produced.
//
// Which runs to check comes from the environment, one directory per backend:
//   FORKSCOPE_KERNEL_TRACEPOINT  forkscope run --backend tracepoint (or the default run)
//   FORKSCOPE_KERNEL_FENTRY      forkscope run --backend fentry
//   FORKSCOPE_KERNEL_KPROBE      forkscope run --backend kprobe
//   FORKSCOPE_KERNEL_ITERATIONS  --iterations of every run (default 100)
//   FORKSCOPE_KERNEL_HEAPS       the two --heap sizes in bytes, "small,large" (default 2M,64M)
// A run whose variable is unset is skipped (and says so); one that is set must pass.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <optional>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <set>
#include <string>

#include "forkscope/results.h"
#include "../runtime/checks.h"

namespace forkscope {
namespace {

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  return std::string(v);
}

uint64_t iterations() { return std::stoull(env("FORKSCOPE_KERNEL_ITERATIONS").value_or("100")); }

std::pair<uint64_t, uint64_t> heaps() {
  std::string v = env("FORKSCOPE_KERNEL_HEAPS").value_or("2097152,67108864");
  size_t comma = v.find(',');
  return {std::stoull(v.substr(0, comma)), std::stoull(v.substr(comma + 1))};
}

const char* env_var_of(const std::string& backend) {
  if (backend == "fentry") return "FORKSCOPE_KERNEL_FENTRY";
  if (backend == "kprobe") return "FORKSCOPE_KERNEL_KPROBE";
  return "FORKSCOPE_KERNEL_TRACEPOINT";
}

// Runs are loaded once per process and shared by the tests.
const Run* load(const std::string& backend) {
  static std::map<std::string, std::optional<Run>> cache;
  auto it = cache.find(backend);
  if (it == cache.end()) {
    std::optional<Run> run;
    if (auto dir = env(env_var_of(backend))) run = load_results(*dir + "/results.json");
    it = cache.emplace(backend, std::move(run)).first;
  }
  return it->second ? &*it->second : nullptr;
}

// Whether this guest's kernel can probe `function` (ftrace lists it): 6.12
// inlines dup_mmap into copy_process, 6.1 does not.
bool traceable(const std::string& function) {
  static std::set<std::string> names = [] {
    std::set<std::string> out;
    std::ifstream in("/sys/kernel/tracing/available_filter_functions");
    std::string line;
    while (std::getline(in, line)) out.insert(line.substr(0, line.find_first_of(" \t")));
    return out;
  }();
  return names.contains(function);
}

const Cell* find_cell(const Run& run, const std::string& mode, uint64_t heap) {
  for (const Cell& c : run.cells)
    if (c.mode == mode && c.heap_bytes == heap) return &c;
  return nullptr;
}

// "a;b;c" has "a;b" as an ancestor.
bool nested_under(const std::string& path, const std::string& ancestor_name) {
  std::string p = ";" + path;
  return p.find(";" + ancestor_name + ";") != std::string::npos;
}

class Backend : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    run_ = load(GetParam());
    if (!run_) GTEST_SKIP() << env_var_of(GetParam()) << " not set: no " << GetParam() << " run to check";
  }
  const Cell& cell(const std::string& mode, uint64_t heap) {
    const Cell* c = find_cell(*run_, mode, heap);
    if (!c) throw std::runtime_error("no cell " + mode + " at heap " + std::to_string(heap));
    return *c;
  }
  bool function_probed() const { return GetParam() == "fentry" || GetParam() == "kprobe"; }

  const forkscope::Run* run_ = nullptr;  // qualified: testing::Test has a Run()
};

TEST_P(Backend, RunIsCompleteAndUsesTheBackend) {
  EXPECT_EQ(run_->schema, "forkscope.results/1");
  EXPECT_FALSE(run_->incomplete);
  EXPECT_EQ(run_->backend, GetParam());
  auto [small, large] = heaps();
  for (const char* mode : {"fork", "pthread"}) {
    for (uint64_t heap : {small, large}) EXPECT_NE(find_cell(*run_, mode, heap), nullptr) << mode << " " << heap;
  }
}

TEST_P(Backend, EveryCellCountsExactlyItsLaunches) {
  const uint64_t n = iterations();
  for (const Cell& c : run_->cells) {
    SCOPED_TRACE(c.mode + " heap " + std::to_string(c.heap_bytes));
    EXPECT_EQ(c.launches, n);
    EXPECT_EQ(c.failed, 0u);
    EXPECT_FALSE(c.time_capped);
    EXPECT_EQ(c.kernel.launches, n) << "the BPF side saw a different count";
    EXPECT_EQ(c.kernel.lost, 0u);
    EXPECT_EQ(c.user.call_to_return.n, n);
    const Phase* sys = c.phase("syscall");
    ASSERT_NE(sys, nullptr);
    EXPECT_EQ(sys->count, n);
    const Phase* cp = c.phase("copy_process");
    ASSERT_NE(cp, nullptr);
    EXPECT_EQ(cp->count, n) << "one copy_process per launch";
  }
}

TEST_P(Backend, FunctionPhasesComeFromFunctionProbes) {
  if (!function_probed()) GTEST_SKIP() << "tracepoint run: landmarks, not function probes";
  auto [small, large] = heaps();
  // A catalog function the kernel inlined (dup_mmap on 6.12) falls back to its
  // landmarks, and the tree says which function is missing.
  auto expected_source = [&](const std::string& name) { return traceable(name) ? GetParam() : "tracepoint"; };
  for (uint64_t heap : {small, large}) {
    const Cell& f = cell("fork", heap);
    for (const char* name : {"copy_process", "dup_mmap", "copy_page_range"}) {
      const Phase* p = f.phase(name);
      ASSERT_NE(p, nullptr) << name << " missing at heap " << heap;
      EXPECT_EQ(p->source, expected_source(name)) << name << " at heap " << heap;
    }
    const Phase* cp = cell("pthread", heap).phase("copy_process");
    ASSERT_NE(cp, nullptr);
    EXPECT_EQ(cp->source, GetParam()) << "pthread copy_process";
  }
  for (const PhaseAvailability& a : run_->phases_available) {
    if (a.name == "copy_process" || a.name == "dup_mmap" || a.name == "copy_page_range") {
      EXPECT_EQ(a.source, expected_source(a.name)) << "phases_available " << a.name;
      if (!traceable(a.name)) {
        EXPECT_NE((a.how + " " + a.reason).find(a.name), std::string::npos)
            << "phases_available " << a.name << " does not name the untraceable function: how '" << a.how
            << "', reason '" << a.reason << "'";
      }
    }
  }
}

// Every VMA dup_mmap copies gets one set-up: vma_setup calls per fork equal the
// launcher's VMA count (kernel.mm_vmas, read at each launch's return).  On 6.12
// the per-VMA lock allocation in vm_area_dup counted each VMA twice.
TEST_P(Backend, VmaSetupCallsEqualTheVmasCopied) {
  auto [small, large] = heaps();
  for (uint64_t heap : {small, large}) {
    const Cell& f = cell("fork", heap);
    const Phase* setup = f.phase("vma_setup");
    ASSERT_NE(setup, nullptr) << "heap " << heap;
    ASSERT_GT(f.kernel.mm_vmas, 0u) << "kernel.mm_vmas not recorded";
    EXPECT_EQ(setup->calls, f.launches * f.kernel.mm_vmas) << "heap " << heap << ": " << setup->calls << " set-ups for "
                                                           << f.launches << " forks of " << f.kernel.mm_vmas << " VMAs";
  }
}

// copy_page_range: a function probe counts dup_mmap's call for every VMA (it
// returns early inside for VMAs with nothing to copy); the landmarks count the
// VMAs with an anon_vma only, at least one per fork, never more than the VMAs.
TEST_P(Backend, CopyPageRangeCallsAreWhatTheBackendPromises) {
  auto [small, large] = heaps();
  for (uint64_t heap : {small, large}) {
    const Cell& f = cell("fork", heap);
    const Phase* cpr = f.phase("copy_page_range");
    const Phase* setup = f.phase("vma_setup");
    ASSERT_TRUE(cpr && setup) << "heap " << heap;
    if (cpr->source != "fentry" && cpr->source != "kprobe") {
      EXPECT_GE(cpr->calls, f.launches) << "heap " << heap;
      EXPECT_LT(cpr->calls, setup->calls) << "heap " << heap << ": file-backed VMAs copy no page tables";
    } else {
      EXPECT_EQ(cpr->calls, f.launches * f.kernel.mm_vmas) << "heap " << heap;
    }
  }
}

// --phase anon_vma_fork:dup_mmap (given to the function-probe sweeps): a function
// of the user's choice, probed the same way and placed where it was asked to go.
TEST_P(Backend, UserPhaseIsProbedAndPlacedUnderItsParent) {
  if (!function_probed()) GTEST_SKIP() << "tracepoint run: --phase needs function probes";
  auto [small, large] = heaps();
  for (uint64_t heap : {small, large}) {
    const Cell& f = cell("fork", heap);
    const Phase* p = f.phase("anon_vma_fork");
    ASSERT_NE(p, nullptr) << "anon_vma_fork missing at heap " << heap;
    EXPECT_EQ(p->source, GetParam());
    EXPECT_TRUE(p->path.ends_with(";dup_mmap;anon_vma_fork")) << p->path;
    EXPECT_EQ(p->count, f.launches) << "every fork copies at least one anonymous VMA";
    EXPECT_GE(p->calls, p->count);
    EXPECT_EQ(cell("pthread", heap).phase("anon_vma_fork"), nullptr) << "threads share the mm";
  }
}

TEST_P(Backend, DupMmapNestsUnderCopyProcess) {
  auto [small, large] = heaps();
  for (uint64_t heap : {small, large}) {
    const Cell& f = cell("fork", heap);
    const Phase* dm = f.phase("dup_mmap");
    const Phase* cpr = f.phase("copy_page_range");
    ASSERT_TRUE(dm && cpr) << "heap " << heap;
    EXPECT_TRUE(nested_under(dm->path, "copy_process")) << dm->path;
    EXPECT_TRUE(nested_under(cpr->path, "dup_mmap")) << cpr->path;
    EXPECT_EQ(dm->count, f.launches);
    EXPECT_EQ(cpr->count, f.launches);
  }
}

TEST_P(Backend, CopyPageRangeCallsPerForkWithinTheVmaCount) {
  auto [small, large] = heaps();
  for (uint64_t heap : {small, large}) {
    const Cell& f = cell("fork", heap);
    const Phase* cpr = f.phase("copy_page_range");
    ASSERT_NE(cpr, nullptr);
    ASSERT_GT(f.backing.vmas, 0u) << "backing.vmas not recorded";
    EXPECT_GE(cpr->calls, f.launches) << "at least one VMA copied per fork";
    EXPECT_LE(cpr->calls, f.launches * f.backing.vmas)
        << "more copy_page_range calls per fork than the parent has VMAs (" << f.backing.vmas << ")";
  }
}

TEST_P(Backend, SelfPlusChildrenAddsUpToTotal) {
  for (const Cell& c : run_->cells) {
    for (const Phase& parent : c.phases) {
      uint64_t children = 0;
      for (const Phase& child : c.phases) {
        if (child.path.size() > parent.path.size() && child.path.rfind(parent.path + ";", 0) == 0 &&
            child.path.find(';', parent.path.size() + 1) == std::string::npos)
          children += child.total_ns;
      }
      double total = static_cast<double>(parent.total_ns);
      EXPECT_NEAR(static_cast<double>(parent.self_ns + children), total, 0.01 * total + 1)
          << c.mode << " heap " << c.heap_bytes << " " << parent.path;
    }
  }
}

TEST_P(Backend, ForkDupMmapGrowsWithTheHeapPthreadHasNone) {
  auto [small, large] = heaps();
  const Phase* s = cell("fork", small).phase("dup_mmap");
  const Phase* l = cell("fork", large).phase("dup_mmap");
  const Phase* cs = cell("fork", small).phase("copy_page_range");
  const Phase* cl = cell("fork", large).phase("copy_page_range");
  ASSERT_TRUE(s && l && cs && cl);
  // 2M -> 64M adds 32 page-table pages to the runner's ~20 (its libraries and
  // BPF maps): the page-table copy grows ~3-5x, dup_mmap as a whole ~1.5-3x
  // since its per-VMA work is fixed.  Emulation on a busy 2-CPU host makes the
  // small cell noisy, hence margins well under what was measured (the host's
  // runtime lane checks the 10x at 256M).
  EXPECT_GE(cl->mean_ns, 1.5 * cs->mean_ns)
      << "copy_page_range mean " << cs->mean_ns << " ns at " << small << " vs " << cl->mean_ns << " ns at " << large;
  EXPECT_GE(l->mean_ns, 1.25 * s->mean_ns)
      << "dup_mmap mean " << s->mean_ns << " ns at " << small << " vs " << l->mean_ns << " ns at " << large;
  EXPECT_GT(l->p50_ns, s->p50_ns) << "dup_mmap p50";
  EXPECT_GT(cell("fork", large).kernel.pt_pages, cell("fork", small).kernel.pt_pages);
  for (uint64_t heap : {small, large}) {
    const Cell& t = cell("pthread", heap);
    for (const char* name : {"dup_mm", "dup_mmap", "copy_page_range"}) {
      EXPECT_EQ(t.phase(name), nullptr) << "pthread has " << name << " at heap " << heap;
    }
  }
}

// Per-mapping attribution (issue 14): function probes read copy_page_range's source
// VMA (method exact), tracepoints match by order.  Either way, with every VMA copy
// attributed, each mapping was copied once per fork per VMA of it, and the rows add up
// to the vma_setup and copy_page_range phases exactly (the same per-VMA spans, summed
// another way).
TEST_P(Backend, MappingsAreAttributedByTheBackendsMethodAndAddUp) {
  auto [small, large] = heaps();
  for (uint64_t heap : {small, large}) {
    const Cell& f = cell("fork", heap);
    SCOPED_TRACE("fork heap " + std::to_string(heap));
    const Phase* cpr = f.phase("copy_page_range");
    const Phase* setup = f.phase("vma_setup");
    ASSERT_TRUE(cpr && setup);
    const bool probed = cpr->source == "fentry" || cpr->source == "kprobe";
    EXPECT_EQ(probed, function_probed()) << "copy_page_range is a real function on 6.1 and 6.12";
    EXPECT_EQ(f.mapping_method, probed ? "exact" : "order");
    EXPECT_EQ(f.mapping_unattributed, 0u);
    ASSERT_FALSE(f.mappings.empty());
    uint64_t setup_ns = 0, cpr_ns = 0;
    for (const Mapping& m : f.mappings) {
      EXPECT_EQ(m.launches, f.launches) << m.name;
      EXPECT_EQ(m.calls, m.launches * m.vmas) << m.name << ": copies of its " << m.vmas << " VMAs";
      setup_ns += m.vma_setup_ns;
      cpr_ns += m.copy_page_range_ns;
    }
    EXPECT_EQ(setup_ns, setup->total_ns);
    EXPECT_EQ(cpr_ns, cpr->total_ns);
    EXPECT_EQ(cell("pthread", heap).mapping_method, "") << "threads copy no VMAs";
  }
}

INSTANTIATE_TEST_SUITE_P(Guest, Backend, ::testing::Values("tracepoint", "fentry", "kprobe"),
                         [](const auto& info) { return info.param; });

// Issue 3 point 7: the two function-probe backends see the same launches:
// every phase of the launch counted in as many launches by both.
TEST(CrossCheck, FentryAndKprobeAgreeOnPhaseCounts) {
  const forkscope::Run* fe = load("fentry");
  const forkscope::Run* kp = load("kprobe");
  if (!fe || !kp) GTEST_SKIP() << "needs both FORKSCOPE_KERNEL_FENTRY and FORKSCOPE_KERNEL_KPROBE";
  ASSERT_EQ(fe->cells.size(), kp->cells.size());
  for (const Cell& a : fe->cells) {
    const Cell* b = find_cell(*kp, a.mode, a.heap_bytes);
    ASSERT_NE(b, nullptr) << a.mode << " " << a.heap_bytes;
    SCOPED_TRACE(a.mode + " heap " + std::to_string(a.heap_bytes));
    EXPECT_EQ(a.kernel.launches, b->kernel.launches);
    std::set<std::string> names;
    for (const Phase& p : a.phases) names.insert(p.name);
    for (const Phase& p : b->phases) names.insert(p.name);
    for (const std::string& name : names) {
      const Phase* pa = a.phase(name);
      const Phase* pb = b->phase(name);
      // Only the launch itself (the syscall's subtree) is where the backends
      // differ.  Phases after it (child_first_run, teardown) come from the same
      // tracepoints in both runs, and a thread's teardown can end after
      // pthread_join returned, i.e. after its cell closed: not a backend matter.
      bool in_launch = (pa ? pa->path : pb->path).rfind("syscall", 0) == 0;
      if (!in_launch) {
        if (pa && pb && pa->count != pb->count)
          std::printf("  note: %s %llu %s outside the launch: fentry %llu vs kprobe %llu\n", a.mode.c_str(),
                      static_cast<unsigned long long>(a.heap_bytes), name.c_str(),
                      static_cast<unsigned long long>(pa->count), static_cast<unsigned long long>(pb->count));
        continue;
      }
      if (!pa || !pb) {
        // A phase only one backend could measure (e.g. a function kprobes may
        // not touch): counts cannot be compared, but the core ones must be in both.
        EXPECT_TRUE(name != "copy_process" && name != "dup_mmap" && name != "copy_page_range" && name != "syscall")
            << name << " measured by only one backend";
        continue;
      }
      EXPECT_EQ(pa->count, pb->count) << name << ": fentry " << pa->count << " vs kprobe " << pb->count;
      // Means differ by the probes' own cost: judged in FentryAndKprobeMeansDifferByTheirProbeCosts.
      if (pa->mean_ns > 0)
        std::printf("  %-8s %9llu %-17s fentry %10.0f ns  kprobe %10.0f ns  (x%.2f)\n", a.mode.c_str(),
                    static_cast<unsigned long long>(a.heap_bytes), name.c_str(), pa->mean_ns, pb->mean_ns,
                    pb->mean_ns / pa->mean_ns);
    }
  }
}

// forkscope trace of a shell loop (20 runs of /bin/true) with each function backend:
// every launch and exec counted, exec phases measured, begin_new_exec by the probe,
// per-mapping attribution by order.
class TraceBackend : public ::testing::TestWithParam<std::string> {};

TEST_P(TraceBackend, ShellLoopLaunchesAndExecsWithFunctionProbes) {
  const std::string var = "FORKSCOPE_KERNEL_TRACE_" + std::string(GetParam() == "fentry" ? "FENTRY" : "KPROBE");
  const auto dir = env(var.c_str());
  if (!dir) GTEST_SKIP() << var << " not set: no trace run to check";
  const forkscope::Run run = load_results(*dir + "/results.json");
  ASSERT_TRUE(run.trace.has_value());
  EXPECT_EQ(run.trace->command_exit, 0);
  EXPECT_EQ(run.backend, GetParam());
  const Cell* loop = nullptr;
  uint64_t launches = 0;
  for (const Cell& c : run.cells) {
    if (c.comm != "sh") continue;
    launches += c.launches;
    if (c.launches > 0 && (!loop || c.kernel.execs > loop->kernel.execs)) loop = &c;
  }
  EXPECT_GE(launches, 20u);  // 20 runs of /bin/true, plus $(seq 20)
  EXPECT_LE(launches, 21u);
  // Per-mapping attribution in trace is by order with function probes too (the exact
  // method is run's): every launch that copied VMAs attributed or counted.
  uint64_t copying = 0;
  for (const Cell& c : run.cells) {
    const Phase* setup = c.phase("vma_setup");
    if (!setup || setup->count == 0) continue;
    SCOPED_TRACE(c.comm + " " + c.mode);
    copying += c.launches;
    EXPECT_EQ(c.mapping_method, "order");
    EXPECT_EQ((c.mappings.empty() ? 0 : c.mappings[0].launches) + c.mapping_unattributed, c.launches);
  }
  EXPECT_GE(copying, 1u) << "$(seq 20) forks a subshell";
  ASSERT_NE(loop, nullptr);
  EXPECT_GE(loop->kernel.execs, 20u);
  const Phase* cp = loop->phase("copy_process");
  ASSERT_NE(cp, nullptr);
  EXPECT_EQ(cp->source, GetParam());
  const Phase* exec = loop->phase("execve");
  ASSERT_NE(exec, nullptr);
  EXPECT_EQ(exec->count, loop->kernel.execs);
  for (const char* name : {"bprm_setup", "begin_new_exec", "exec_load", "exec_first_insn"}) {
    const Phase* p = loop->phase(name);
    ASSERT_NE(p, nullptr) << name;
    EXPECT_EQ(p->count, exec->count) << name;
  }
  EXPECT_EQ(loop->phase("begin_new_exec")->source, GetParam()) << "begin_new_exec is a real function on 6.1";
  test::expect_phases_add_up(*loop);
}

INSTANTIATE_TEST_SUITE_P(Kernel, TraceBackend, ::testing::Values("fentry", "kprobe"));

// Probe runs inside a phase per launch: runs of our function-probe programs
// (entries and exits alike) while the phase or one under it was innermost.
// A phase doing dup_mm's work: dup_mm, a phase inside it, or one above it.
bool contains_dup_mm(const Cell& c, const Phase& p) {
  if (p.path.ends_with(";dup_mm") || p.path.find(";dup_mm;") != std::string::npos) return true;
  for (const Phase& q : c.phases)
    if (q.name == "dup_mm" && q.path.starts_with(p.path + ";")) return true;
  return false;
}

double probe_runs_per_launch(const Cell& c, const Phase& p) {
  uint64_t runs = 0;
  for (const Phase& q : c.phases)
    if (q.path == p.path || q.path.starts_with(p.path + ";")) runs += q.fn_events;
  return p.count ? static_cast<double>(runs) / static_cast<double>(p.count) : 0;
}

// Issue 3 point 7, means: a phase that function probes measure in both runs is
// slower per launch in the kprobe run than in the fentry run by what the two
// calibrated probe costs (calibration.probe_cost_ns, one entry+exit pair each,
// measured by each run at start-up) explain: half the pair-cost difference per
// probe run inside the phase.  Checked on the smallest heap, where probes are the
// largest share of the launch; the larger heap is printed, not judged.
//
// Tolerance |observed - predicted| <= 25% of predicted + 5% of the fentry mean
// + 1.5 us, from 14 fentry/kprobe pairs of runs in 11 guest boots under
// qemu-lab.sh --icount (Debian 6.1, 2M heap, 100 launches; the calibration gave
// fentry 575 ns and kprobe 1109 ns per pair in every run; 992 and 1526 ns since
// it probes under a launch record of its own, the same 267 ns per run apart):
//  - 25% of predicted: a phase's own entry and exit fall only partly inside its
//    span: phases whose probe runs are mostly their own exits (anon_vma_fork,
//    single-call phases) came out at 0.8x the prediction, every time.
//  - 5% of the mean: the same phase's mean still differs from run to run (memory
//    layout, interrupts): copy_page_range under fentry 246-267 us over 14 runs,
//    residuals -11.4..+2.9 us around a -5.3 us centre (sd 4.5 us, 1.7% of the
//    phase); 5% puts the tolerance 3 sd from that centre.  copy_process
//    residuals -7.2..+7.6 us (1.2%).
//    On 6.12 copy_page_range gets 10%: in four lane runs (2M heap) its fentry
//    mean was 279-296 us and its kprobe mean 310-312 us, residuals +3.5, +20.2,
//    +20.2, +22.3 us against a +10.5 us prediction (8% of the phase at most):
//    kprobes cost about 560 ns more per copy_page_range call there than the
//    calibration explains, whatever the page tables copied.  With the costs
//    swapped it still misses by 41 us against a 32 us tolerance.
//  - 1.5 us: small phases (pthread copy_process 28.9-30.2 us under fentry;
//    residuals -0.8..+0.7 us), and a steady +1.1 us more on copy_files (kprobe on
//    dup_fd) than the calibration explains.
// With the costs swapped the prediction flips sign and misses by about twice
// itself: fork copy_process by ~150 us (tolerance ~52 us), copy_page_range by
// 24-39 us (~19 us), pthread copy_process by 5-6.5 us (~3.7 us): the check fails.
// Without --icount the guest clock is the host's, and the host's load moved the
// same run's means by up to 60% a minute apart: far beyond the probe costs.
TEST(CrossCheck, FentryAndKprobeMeansDifferByTheirProbeCosts) {
  const forkscope::Run* fe = load("fentry");
  const forkscope::Run* kp = load("kprobe");
  if (!fe || !kp) GTEST_SKIP() << "needs both FORKSCOPE_KERNEL_FENTRY and FORKSCOPE_KERNEL_KPROBE";
  if (!env("QEMU_LAB_ICOUNT"))
    GTEST_SKIP() << "needs the guest's instruction-counted clock (scripts/qemu-lab.sh --icount): with the host's "
                    "clock, host load moves phase means far more than the probe costs";
  ASSERT_TRUE(fe->calibration && fe->calibration->probe_cost_ns.contains("fentry"))
      << "the fentry run recorded no calibration.probe_cost_ns.fentry";
  ASSERT_TRUE(kp->calibration && kp->calibration->probe_cost_ns.contains("kprobe"))
      << "the kprobe run recorded no calibration.probe_cost_ns.kprobe";
  const double cost_f = fe->calibration->probe_cost_ns.at("fentry");
  const double cost_k = kp->calibration->probe_cost_ns.at("kprobe");
  EXPECT_GT(cost_f, 0) << "an fentry/fexit pair that costs nothing: the calibration is broken";
  EXPECT_GT(cost_k, 0) << "a kprobe/kretprobe pair that costs nothing: the calibration is broken";
  const double per_run = (cost_k - cost_f) / 2;
  std::printf("  probe cost per entry+exit pair: fentry %.0f ns, kprobe %.0f ns: %+.0f ns per probe run\n", cost_f,
              cost_k, per_run);
  auto [small, large] = heaps();
  int checked = 0, decisive = 0;
  for (uint64_t heap : {small, large}) {
    for (const char* mode : {"fork", "pthread"}) {
      const Cell* a = find_cell(*fe, mode, heap);
      const Cell* b = find_cell(*kp, mode, heap);
      ASSERT_TRUE(a && b) << mode << " " << heap;
      for (const Phase& pa : a->phases) {
        const Phase* pb = b->phase(pa.name);
        if (!pb || pa.source != "fentry" || pb->source != "kprobe" || !pa.path.starts_with("syscall")) continue;
        SCOPED_TRACE(std::string(mode) + " heap " + std::to_string(heap) + " " + pa.name);
        const double runs_f = probe_runs_per_launch(*a, pa), runs_k = probe_runs_per_launch(*b, *pb);
        const double predicted = per_run * (runs_f + runs_k) / 2;
        const double observed = pb->mean_ns - pa.mean_ns;
        const double layout_share = pa.name == "copy_page_range" ? 0.10 : 0.05;
        const double tolerance = 0.25 * std::abs(predicted) + layout_share * pa.mean_ns + 1500;
        // The two runs' runners need not map the same page tables: on 6.12 (THP
        // "always", anonymous mappings aligned to 2 MiB) the fentry run of one lane
        // copied 20 page-table pages per fork at 2M and the kprobe run 18, and
        // copy_page_range was 19 us faster under kprobes; in another, 16 vs 17 and
        // 33 us slower, which put kernel_clone 23 us past the prediction, and CI
        // once failed there.  Phases holding dup_mm's work (inside it, or above it:
        // syscall, kernel_clone, copy_process) are then not the same work in both
        // runs: printed, not judged.  Every other phase ran the same probes.
        const bool holds_dup_mm = contains_dup_mm(*a, pa);
        if (!holds_dup_mm) {
          EXPECT_NEAR(runs_f, runs_k, 0.01 * runs_f + 0.01) << "the same launches ran different probe counts";
        }
        const bool same_work = !holds_dup_mm ||
                               (a->kernel.pt_pages == b->kernel.pt_pages && std::abs(runs_f - runs_k) <= 0.01 * runs_f);
        const bool judged = heap == small && same_work;
        std::printf(
            "  %-8s %9llu %-17s %6.1f runs  fentry %10.0f  kprobe %10.0f  kprobe-fentry %+9.0f ns, "
            "costs explain %+9.0f +- %.0f%s\n",
            mode, static_cast<unsigned long long>(heap), pa.name.c_str(), runs_f, pa.mean_ns, pb->mean_ns, observed,
            predicted, tolerance,
            judged      ? ""
            : same_work ? "  (not judged)"
                        : "  (not judged: dup_mm's work differs: page-table pages or VMAs per fork)");
        if (!judged) continue;
        checked++;
        // Would the check fail with the costs swapped?  It must, somewhere, to mean anything.
        if (std::abs(observed + predicted) > tolerance) decisive++;
        EXPECT_LE(std::abs(observed - predicted), tolerance)
            << "kprobe - fentry mean " << observed << " ns, the calibrated probe costs explain " << predicted << " ns ("
            << per_run << " ns x " << runs_f << " probe runs per launch)";
      }
    }
  }
  EXPECT_GE(checked, 4) << "too few phases measured by function probes in both runs";
  EXPECT_GE(decisive, 1) << "no phase where swapped probe costs would fail the check: it could not fail";
  std::printf("  %d phases judged, %d of which would fail with the probe costs swapped\n", checked, decisive);
}

}  // namespace
// Issue 13 item 7: a landmark phase (tracepoint backend) against the same phase
// timed by fentry/fexit on the same kernel, each with its own calibrated cost
// taken out (the tracepoint run's --overhead calibration per program run; the
// fentry run's probe_cost_ns per entry+exit pair, half per run).  A phase of at
// least 5% of the launch agrees within 10%, or the catalog's account of its
// landmark boundaries (phases_available[].how, shown by every report) names
// what else the landmark segment holds ("also covers ...", "or .. the next VMA").
double corrected_mean(const Cell& c, const Phase& p, double ns_per_event, double ns_per_fn_run) {
  uint64_t events = 0, fn_events = 0;
  for (const Phase& q : c.phases) {
    if (q.path == p.path || q.path.starts_with(p.path + ";")) {
      events += q.events;
      fn_events += q.fn_events;
    }
  }
  const double cost = static_cast<double>(events) * ns_per_event + static_cast<double>(fn_events) * ns_per_fn_run;
  return p.count ? p.mean_ns - cost / static_cast<double>(p.count) : 0;
}

bool boundary_named(const Run& run, const std::string& phase) {
  for (const PhaseAvailability& a : run.phases_available)
    if (a.name == phase)
      return a.how.find("also covers") != std::string::npos || a.how.find("or .. the next VMA") != std::string::npos;
  return false;
}

TEST(CrossCheck, LandmarkPhasesAgreeWithFentryOrNameTheirBoundary) {
  const forkscope::Run* tp = load("tracepoint");
  const forkscope::Run* fe = load("fentry");
  if (!tp || !fe) GTEST_SKIP() << "needs both FORKSCOPE_KERNEL_TRACEPOINT and FORKSCOPE_KERNEL_FENTRY";
  if (!env("QEMU_LAB_ICOUNT"))
    GTEST_SKIP() << "needs the guest's instruction-counted clock (scripts/qemu-lab.sh --icount): two runs' means "
                    "are compared";
  ASSERT_TRUE(tp->calibration && tp->calibration->ns_per_event > 0)
      << "the tracepoint run has no --overhead calibration (guest-checks.sh runs it with --overhead)";
  ASSERT_TRUE(fe->calibration && fe->calibration->probe_cost_ns.contains("fentry"));
  const double per_event = tp->calibration->ns_per_event;
  const double per_fn_run = fe->calibration->probe_cost_ns.at("fentry") / 2;
  std::printf("  calibrated: %.0f ns per tracepoint program run, %.0f ns per fentry/fexit program run\n", per_event,
              per_fn_run);
  int compared = 0;
  auto [small, large] = heaps();
  for (uint64_t heap : {small, large}) {
    const Cell* a = find_cell(*tp, "fork", heap);
    const Cell* b = find_cell(*fe, "fork", heap);
    ASSERT_TRUE(a && b) << "fork " << heap;
    const Phase* sys = b->phase("syscall");
    ASSERT_NE(sys, nullptr);
    const double launch = corrected_mean(*b, *sys, per_event, per_fn_run);
    for (const Phase& pt : a->phases) {
      const Phase* pf = b->phase(pt.name);
      if (!pf || pf->source != "fentry" || pt.source == "fentry" || pt.name == "syscall" || pt.count == 0) continue;
      SCOPED_TRACE("fork heap " + std::to_string(heap) + " " + pt.name);
      const double t = corrected_mean(*a, pt, per_event, per_fn_run);
      const double f = corrected_mean(*b, *pf, per_event, per_fn_run);
      const double share = f / launch;
      const bool agree = f > 0 && std::abs(t / f - 1) <= 0.10;
      const bool named = boundary_named(*tp, pt.name);
      std::printf(
          "  fork %9llu %-16s landmark %9.0f ns  fentry %9.0f ns  x%.2f  %4.1f%% of the launch  calls %.1f vs %.1f%s\n",
          static_cast<unsigned long long>(heap), pt.name.c_str(), t, f, f > 0 ? t / f : 0, 100 * share,
          static_cast<double>(pt.calls) / static_cast<double>(pt.count),
          static_cast<double>(pf->calls) / static_cast<double>(std::max<uint64_t>(pf->count, 1)),
          share < 0.05 ? "  (under 5%: not judged)"
          : agree      ? "  agree"
          : named      ? "  boundary named in the catalog"
                       : "  DIFFER");
      compared++;
      // As in FentryAndKprobeMeansDifferByTheirProbeCosts: two runs' runners need not
      // map the same page tables (6.12: THP "always"), and then dup_mm and what holds
      // it are not the same work in both runs: printed, not judged.
      const bool holds_dup_mm = contains_dup_mm(*a, pt);
      const auto per_launch = [](const Cell& c) {
        return static_cast<double>(c.kernel.pt_pages) / static_cast<double>(std::max<uint64_t>(c.kernel.launches, 1));
      };
      const bool same_work = std::abs(per_launch(*a) - per_launch(*b)) < 0.5 || !holds_dup_mm;
      if (!same_work)
        std::printf("    (not judged: page-table pages per fork differ, %.1f vs %.1f)\n", per_launch(*a),
                    per_launch(*b));
      if (share >= 0.05 && same_work) {
        EXPECT_TRUE(agree || named)
            << "landmark " << t << " ns vs fentry " << f
            << " ns per launch, and the catalog does not say what else the landmark segment holds";
      }
    }
  }
  EXPECT_GE(compared, 4) << "too few landmark phases with an fentry counterpart";
}

// Issue 14 item 2: on the same guest the tracepoint run (method order: the k-th VMA
// copied is the snapshot's k-th) and the fentry run (method exact: copy_page_range's
// source VMA by address) put copy_page_range on the same mappings.  Per fork cell:
//  - every mapping holding at least kTopShare of copy_page_range in either run is a
//    row of both;
//  - every mapping in both runs was copied as many times per fork by each;
//  - the --heap mapping holds the same share of copy_page_range in both, within
//    kShareTolerance, and most of it at the large heap.
// The two runs are two runners: their own mappings differ a little (the malloc
// [heap] was 1576K in one and 1668K in the other), so rows match by name,
// permissions and size, or by name and permissions where each run has one such row.
// The share is taken over the mappings the order method times copy_page_range for:
// its landmarks see the copy only of VMAs with an anon_vma; the others' copy stays in
// their vma_setup (catalog), and fentry times it where it is not trivial: the BPF
// ring buffer (anon_inode:bpf-map r--s, 2 MiB, VM_MIXEDMAP) held 29% of the exact
// copy_page_range at 2M and nothing of the order one.
// Tolerance 10 points of share (6, twice the largest difference of the first
// seven lanes, was nearly reached by a later 6.12 lane: 39.2/44.7 at 2M).  Order vs exact
// heap share over five lanes with the exact method (--icount, 100 forks per cell):
// at 2M 43.4/44.3, 42.6/44.3, 42.5/45.6% on 6.1 and 44.1/44.0, 44.9/45.3% on 6.12
// (at most 3.1 points apart), at 64M 94.0-95.2% vs 94.7-95.1% (at most 0.8); two
// lanes since: 42.5/44.5 and 41.6/43.6% at 2M, 94.0/94.7 and 94.8/94.9% at 64M.  At
// 2M the heap shares the copy with the runner's malloc [heap] (30% of it), whose
// size and resident pages differ between the two runners (1576K vs 1668K on 6.1).
// A VMA attributed to the wrong mapping (one off in the order, a wrong address)
// moves the heap's share by tens of points: the heap would lose it to a neighbour
// of a few pages or to the 2 MiB ring buffer.
std::string identity(const Mapping& m) {
  return m.name + " " + m.perms + " " + std::to_string(m.bytes) + " B" +
         (m.vmas > 1 ? " (" + std::to_string(m.vmas) + " VMAs)" : "");
}

const Mapping* counterpart(const Cell& in, const Cell& of, const Mapping& m) {
  for (const Mapping& x : in.mappings)
    if (x.name == m.name && x.perms == m.perms && x.bytes == m.bytes && x.vmas == m.vmas) return &x;
  const auto alike = [&](const Cell& c) {
    const Mapping* one = nullptr;
    for (const Mapping& x : c.mappings) {
      if (x.name != m.name || x.perms != m.perms) continue;
      if (one) return static_cast<const Mapping*>(nullptr);
      one = &x;
    }
    return one;
  };
  return alike(of) ? alike(in) : nullptr;
}

TEST(CrossCheck, OrderAndExactMethodsAttributeCopyPageRangeToTheSameMappings) {
  const forkscope::Run* tp = load("tracepoint");
  const forkscope::Run* fe = load("fentry");
  if (!tp || !fe) GTEST_SKIP() << "needs both FORKSCOPE_KERNEL_TRACEPOINT and FORKSCOPE_KERNEL_FENTRY";
  constexpr double kTopShare = 0.05, kShareTolerance = 0.10;
  auto [small, large] = heaps();
  for (uint64_t heap : {small, large}) {
    const Cell* a = find_cell(*tp, "fork", heap);
    const Cell* b = find_cell(*fe, "fork", heap);
    ASSERT_TRUE(a && b) << "fork " << heap;
    SCOPED_TRACE("fork heap " + std::to_string(heap));
    ASSERT_EQ(a->mapping_method, "order");
    ASSERT_EQ(b->mapping_method, "exact");
    ASSERT_FALSE(a->mappings.empty() || b->mappings.empty());
    uint64_t all_a = 0, all_b = 0, timed_a = 0, timed_b = 0;  // timed: where order has copy_page_range
    for (const Mapping& m : a->mappings) all_a += m.copy_page_range_ns;
    for (const Mapping& n : b->mappings) all_b += n.copy_page_range_ns;
    for (const Mapping& m : a->mappings) {
      const Mapping* n = counterpart(*b, *a, m);
      if (m.copy_page_range_ns > 0) {
        timed_a += m.copy_page_range_ns;
        timed_b += n ? n->copy_page_range_ns : 0;
      }
    }
    ASSERT_GT(timed_a, 0u);
    ASSERT_GT(timed_b, 0u);
    const auto share = [](uint64_t x, uint64_t all) { return static_cast<double>(x) / static_cast<double>(all); };
    for (const Mapping& m : a->mappings) {
      const Mapping* n = counterpart(*b, *a, m);
      const double sa = share(m.copy_page_range_ns, all_a), sb = n ? share(n->copy_page_range_ns, all_b) : 0;
      if (sa >= 0.01 || sb >= 0.01)
        std::printf("  fork %9llu %-45s copy_page_range: order %5.1f%%  exact %5.1f%%  copies/fork %.0f vs %.0f\n",
                    static_cast<unsigned long long>(heap), identity(m).c_str(), 100 * sa, 100 * sb,
                    static_cast<double>(m.calls) / static_cast<double>(m.launches),
                    n ? static_cast<double>(n->calls) / static_cast<double>(n->launches) : 0.0);
      if (sa >= kTopShare) {
        EXPECT_NE(n, nullptr) << identity(m) << " holds " << sa << " of it by order, no row exact";
      }
      if (!n) continue;
      EXPECT_EQ(m.calls * n->launches, n->calls * m.launches) << identity(m) << ": copies per fork differ";
    }
    for (const Mapping& n : b->mappings) {
      if (share(n.copy_page_range_ns, all_b) >= kTopShare) {
        EXPECT_NE(counterpart(*a, *b, n), nullptr)
            << identity(n) << " holds " << share(n.copy_page_range_ns, all_b) << " of it exact, no row by order";
      }
    }
    // The --heap mapping: the one anonymous VMA of the heap's size (named
    // [anon:forkscope heap] where the kernel names anonymous mappings).
    const auto heap_row = [&](const Cell& c) {
      const Mapping* found = nullptr;
      for (const Mapping& m : c.mappings)
        if (m.kind == "anon" && m.bytes == heap && m.vmas == 1 &&
            (!found || m.name.find("forkscope heap") != std::string::npos))
          found = &m;
      return found;
    };
    const Mapping* ha = heap_row(*a);
    const Mapping* hb = heap_row(*b);
    ASSERT_TRUE(ha && hb) << "no --heap mapping among the rows";
    const double sa = share(ha->copy_page_range_ns, timed_a), sb = share(hb->copy_page_range_ns, timed_b);
    std::printf(
        "  fork %9llu the heap, %s: order %.1f%%, exact %.1f%% of the copy_page_range of the mappings order "
        "times it for (exact %.1f%% of all)\n",
        static_cast<unsigned long long>(heap), identity(*hb).c_str(), 100 * sa, 100 * sb,
        100 * share(hb->copy_page_range_ns, all_b));
    EXPECT_NEAR(sa, sb, kShareTolerance) << identity(*hb);
    if (heap == large) {
      EXPECT_GT(sa, 0.5) << "the large heap holds most of copy_page_range";
      EXPECT_GT(sb, 0.5) << "the large heap holds most of copy_page_range";
    }
  }
}

}  // namespace forkscope
