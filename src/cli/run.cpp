#include <malloc.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "cli/outputs.h"
#include "cli/preflight.h"
#include "forkscope/calibration.h"
#include "forkscope/catalog.h"
#include "forkscope/error.h"
#include "forkscope/probes.h"
#include "forkscope/report.h"
#include "forkscope/runner.h"
#include "forkscope/size.h"
#include "forkscope/visual.h"

namespace forkscope {

namespace {

constexpr const char* kDefaultHeaps = "2M,64M,512M,2G";
// Per-launch samples live in the runner's memory, which every fork copies: more
// than this would measure the tool.  A day per cell is past any real use.
constexpr uint64_t kMaxIterations = 1'000'000;
constexpr uint64_t kMaxWarmup = 1'000'000;
constexpr double kMaxCellSeconds = 86400;

struct RunOptions {
  std::string modes = "fork,vfork,clone,clone-vm,pthread,posix_spawn";
  std::vector<std::string> clone_flags;
  std::string heaps;
  uint64_t iterations = 10000;
  double cell_seconds = 8.0;
  uint64_t warmup = 20;
  int cpu = -1;
  bool thp = false;
  uint64_t vmas = 0;
  std::string out = "forkscope-out";
  bool quiet = false;
  bool no_color = false;
  bool verbose = false;
  std::string backend = "auto";
  bool overhead = false;
  bool detail = false;
  unsigned threads = 1;
  std::vector<std::string> phases;
  std::vector<UserPhase> user_phases;  // parsed from phases
};

std::atomic<bool> g_stop{false};

void on_signal(int) { g_stop.store(true); }

std::string gib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(bytes) / (1ull << 30));
  return buf;
}

std::string self_dir() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "." : exe.parent_path().string();
}

// Everything a user can get wrong is checked here, before anything is loaded or launched.
SweepOptions validate(RunOptions& o) {
  SweepOptions s;
  parse_backend(o.backend);
  for (const std::string& spec : o.phases) o.user_phases.push_back(parse_user_phase(spec));
  std::stringstream ss(o.modes);
  std::string m;
  while (std::getline(ss, m, ',')) {
    if (!m.empty()) s.modes.push_back(parse_mode(m));
  }
  for (const auto& f : o.clone_flags) s.modes.push_back(parse_clone_flags(f));
  if (s.modes.empty()) throw usage_error("--modes is empty; give at least one mode, e.g. --modes fork,pthread");
  // Results, diff and merge tell cells apart by mode and heap: each once.
  for (size_t i = 0; i < s.modes.size(); i++) {
    for (size_t j = 0; j < i; j++)
      if (s.modes[i].mode == s.modes[j].mode) throw usage_error("mode " + s.modes[i].mode + " is given twice; give each mode once");
  }

  const uint64_t avail = mem_available_bytes();
  const bool defaults = o.heaps.empty();
  for (uint64_t h : parse_size_list(defaults ? kDefaultHeaps : o.heaps)) {
    if (defaults && avail && h > avail / 4) {
      if (!o.quiet)
        std::fprintf(stderr, "forkscope: skipping the %s heap: more than a quarter of the %s available\n",
                     format_size(h).c_str(), gib(avail).c_str());
      continue;
    }
    if (avail && h > avail)
      throw usage_error("--heap " + format_size(h) + " is more than the " + gib(avail) +
                        " of available memory; choose smaller sizes");
    if (std::find(s.heaps.begin(), s.heaps.end(), h) != s.heaps.end())
      throw usage_error("--heap " + format_size(h) + " is given twice; give each size once");
    s.heaps.push_back(h);
  }
  if (s.heaps.empty()) throw usage_error("no heap size left to run; pass --heap with sizes that fit in memory");
  if (s.heaps.size() * s.modes.size() > FS_MAX_CELLS - 2)  // the last two cells are the calibration's
    throw usage_error("too many cells (" + std::to_string(s.heaps.size() * s.modes.size()) + "); at most " +
                      std::to_string(FS_MAX_CELLS - 2) + " (modes x heap sizes) per run");
  if (o.iterations == 0 || o.iterations > kMaxIterations)
    throw usage_error("--iterations must be between 1 and " + std::to_string(kMaxIterations));
  if (o.warmup > kMaxWarmup) throw usage_error("--warmup must be at most " + std::to_string(kMaxWarmup));
  // The negated form also refuses NaN.
  if (o.threads < 1 || o.threads > 64) throw usage_error("--threads must be between 1 and 64");
  if (o.threads > 1 && o.overhead)
    throw usage_error("--overhead detaches the programs under every thread: use it with --threads 1");
  if (!(o.cell_seconds > 0 && o.cell_seconds <= kMaxCellSeconds))
    throw usage_error("--cell-seconds must be more than 0 and at most " + std::to_string(static_cast<int>(kMaxCellSeconds)) +
                      " (a day)");
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  if (o.cpu >= ncpu) throw usage_error("--cpu " + std::to_string(o.cpu) + ": this machine has CPUs 0.." + std::to_string(ncpu - 1));

  // Room for the runner's own mappings and forkscope-child's under vm.max_map_count.
  std::ifstream max_map_count("/proc/sys/vm/max_map_count");
  uint64_t map_limit = 65530;
  max_map_count >> map_limit;
  if (o.vmas > 0 && o.vmas > map_limit - std::min<uint64_t>(map_limit, 1000))
    throw usage_error("--vmas " + std::to_string(o.vmas) + ": at most " +
                      std::to_string(map_limit > 1000 ? map_limit - 1000 : 0) +
                      " here (vm.max_map_count is " + std::to_string(map_limit) + ")");

  prepare_out_dir(o.out);

  s.iterations = o.iterations;
  s.cell_seconds = o.cell_seconds;
  s.warmup = o.warmup;
  s.allow_thp = o.thp;
  s.extra_vmas = o.vmas;
  s.cpu = o.cpu;
  s.quiet = o.quiet;
  s.overhead = o.overhead;
  s.threads = o.threads;
  s.child_program = self_dir() + "/forkscope-child";
  return s;
}

// Our programs' cost, measured at start-up on fork launches, in interleaved blocks
// of three kinds: untraced, traced, and traced without the allocation landmarks
// (kmem_cache_alloc, most of our tracepoint runs inside a fork).  The launch is
// the same in all three, so the traced kinds differ from each other only by the
// tracepoint runs counted in the fork call: their difference in median time over
// their difference in runs is the cost of a run.  What the full kind costs beyond
// its counted runs (function-probe runs priced by `probe_costs`) is a fixed cost
// per launch: programs that ran inside the call for it but outside its record.
// Both are taken per round, from the three blocks' medians side by side, and the
// median over the rounds is kept: a shared machine's drift between rounds cancels.
// 30 rounds take half a second on the host; under emulation, where every detach
// and attach is slow, the rounds stop after 3 s (8 at least).
Calibration calibrate(Tracer& tracer, const RunPlan& plan, const std::string& backend, const std::string& child_program,
                      std::map<std::string, double> probe_costs, uint32_t full_cell, uint32_t lean_cell) {
  constexpr int kRounds = kCalibrationRounds, kMinRounds = kCalibrationMinRounds, kBlock = kCalibrationBlock;
  constexpr double kBudgetSeconds = 3;
  const uint64_t t0 = now_ns();
  auto launcher = make_launcher(parse_mode("fork"), child_program);
  launch_block(*launcher, kBlock);  // warm-up
  uint64_t launches = 0;
  std::vector<double> med_u, med_full, med_lean;  // per round with all three blocks
  tracer.reset_cell(full_cell);
  tracer.reset_cell(lean_cell);
  const auto attach = [&](bool attached) { tracer.set_attached(attached); };
  const auto traced_block = [&](uint32_t cell, bool landmarks) {
    tracer.set_allocation_landmarks(landmarks);
    tracer.set_cell(cell);
    std::vector<uint64_t> block = launch_block(*launcher, kBlock);
    tracer.set_cell(FS_NO_CELL);
    return block;
  };
  // An even number of rounds, so both orders of the traced blocks count alike.
  for (int r = 0; r < kRounds && !g_stop.load(); r++) {
    if (r >= kMinRounds && r % 2 == 0 && static_cast<double>(now_ns() - t0) / 1e9 > kBudgetSeconds) break;
    const std::vector<uint64_t> u = untraced_block(*launcher, kBlock, attach);
    // Alternate the order, so neither traced kind always follows the untraced one.
    std::vector<uint64_t> f, l;
    for (bool landmarks : {r % 2 == 0, r % 2 != 0}) (landmarks ? f : l) = traced_block(landmarks ? full_cell : lean_cell, landmarks);
    launches += u.size() + f.size() + l.size();
    if (u.empty() || f.empty() || l.empty()) continue;  // a round is compared within itself
    med_u.push_back(static_cast<double>(summarize(u).p50));
    med_full.push_back(static_cast<double>(summarize(f).p50));
    med_lean.push_back(static_cast<double>(summarize(l).p50));
  }
  tracer.set_allocation_landmarks(true);

  Calibration c;
  c.probe_cost_ns = std::move(probe_costs);
  // Per launch, inside the fork call: tracepoint runs, and what the function-probe
  // runs cost (observer_cost_ns with no price per tracepoint run yet).
  const auto counted = [&](uint32_t cell) {
    const uint64_t launches = std::max<uint64_t>(1, tracer.read_counts(cell).launches);
    double events = 0, fn_ns = 0;
    for (const Phase& p : build_phases(tracer.read_phases(cell), plan)) {
      if (!p.path.starts_with("syscall")) continue;
      events += static_cast<double>(p.events);
      fn_ns += observer_cost_ns(p, c, backend);
    }
    return std::pair{events / static_cast<double>(launches), fn_ns / static_cast<double>(launches)};
  };
  const auto [n_full, fn_full] = counted(full_cell);
  const auto [n_lean, fn_lean] = counted(lean_cell);
  c.launches = launches;
  c.events_per_launch = n_full;
  const size_t rounds = med_u.size();
  if (n_full - n_lean < 1 || rounds == 0) return c;
  const auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  };
  std::vector<double> per_run, fixed;
  for (size_t r = 0; r < rounds; r++)
    per_run.push_back((med_full[r] - fn_full - (med_lean[r] - fn_lean)) / (n_full - n_lean));
  c.ns_per_event = std::max(0.0, median(per_run));
  for (size_t r = 0; r < rounds; r++) fixed.push_back(med_full[r] - med_u[r] - fn_full - c.ns_per_event * n_full);
  c.ns_per_launch = std::max(0.0, median(fixed));
  return c;
}

// The calibrated cost of our programs per launch of a cell: the runs counted in its
// launches, priced by kind, plus the fixed part.
double observer_cost_per_launch(const Cell& cell, const Calibration& cal, const std::string& backend) {
  const Phase* sys = cell.phase("syscall");
  if (!sys || sys->count == 0) return 0;
  double cost = 0;
  for (const Phase& p : cell.phases)
    if (p.path.starts_with("syscall")) cost += observer_cost_ns(p, cal, backend);
  return cal.ns_per_launch + cost / static_cast<double>(sys->count);
}

int run_command(RunOptions& o) {
  SweepOptions sweep = validate(o);
  check_kernel_access();

  RunPlan plan = plan_run(parse_backend(o.backend), o.user_phases);
  set_detail(plan, o.detail);
  plan.exec = std::any_of(sweep.modes.begin(), sweep.modes.end(), [](const LaunchSpec& m) {
    return m.mode == "posix_spawn" || m.mode.ends_with("-exec");
  });
  // Cells 0..n-1 are the sweep's, cells n and n+1 the calibration's.
  const auto sweep_cells = static_cast<uint32_t>(sweep.modes.size() * sweep.heaps.size());
  std::unique_ptr<Tracer> backend = Tracer::open(plan, o.verbose, sweep_cells + 2);
  backend->set_target(getpid());
  // Loading parsed kallsyms and BTF: give the freed memory back, so the runner's
  // own footprint (copied by every fork) is as small as it can be.
  malloc_trim(0);

  // The first SIGINT/SIGTERM ends the sweep cleanly; a second one, e.g. during a
  // slow heap set-up, takes effect at once (the kernel still detaches everything).
  struct sigaction sa = {};
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESETHAND;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  Run run = start_results(*backend);
  // What one function probe costs, per kind in use: a fraction of a second, so
  // always (results of different backends can then be compared phase by phase).
  std::map<std::string, double> costs = backend->probe_costs();
  // The per-run calibration costs seconds under emulation; only --overhead reports it.
  if (o.overhead) {
    if (!o.quiet) std::fprintf(stderr, "forkscope: calibrating the cost of its own programs (--overhead)...\n");
    run.calibration = calibrate(*backend, plan, run.backend, sweep.child_program, std::move(costs), sweep_cells,
                                sweep_cells + 1);
  } else if (!costs.empty()) {
    run.calibration = Calibration{};
    run.calibration->probe_cost_ns = std::move(costs);
  }

  CellHooks hooks;
  hooks.begin = [&](uint32_t cell) { backend->set_cell(cell); };
  hooks.end = [&] { backend->set_cell(FS_NO_CELL); };
  hooks.sample = [&](uint32_t seq) { backend->sample_next(seq); };
  hooks.trace = [&](bool traced) { backend->set_attached(traced); };
  hooks.collect = [&](Cell& cell, uint32_t index) {
    backend->wait_children_gone(index, 1000);
    read_kernel_side(*backend, index, cell);
    const Phase* sys = cell.phase("syscall");
    if (cell.overhead && cell.overhead->untraced.p50 > 0 && sys && sys->count > 0) {
      Overhead& oh = *cell.overhead;
      const double cost = observer_cost_per_launch(cell, *run.calibration, run.backend);
      const auto untraced = static_cast<double>(oh.untraced.p50);
      oh.corrected_kernel_ns = static_cast<double>(sys->p50_ns) - cost;
      oh.corrected_error = oh.corrected_kernel_ns / untraced - 1;
      oh.corrected_launch_ns = static_cast<double>(cell.user.call_to_return.p50) - cost;
      oh.corrected_launch_error = oh.corrected_launch_ns / untraced - 1;
    }
  };
  if (!o.quiet) {
    std::fprintf(stderr, "forkscope: %s backend attached (%.1f MiB of BPF maps); %zu cells, up to %llu launches or %gs each\n",
                 run.backend.c_str(), static_cast<double>(run.bpf_map_bytes) / (1 << 20), sweep.modes.size() * sweep.heaps.size(),
                 static_cast<unsigned long long>(sweep.iterations), sweep.cell_seconds);
  }
  run.cells = run_sweep(sweep, hooks, &g_stop);
  run.incomplete = g_stop.load();
  backend.reset();  // detach before writing anything

  const auto [path, report] = save_outputs(run, o.out);

  render_text_report(run, featured_cell(run), std::cout, !o.no_color && stdout_is_tty());
  std::cout << "\n";
  render_overhead(run, std::cout);
  std::cout << "\nresults: " << path << "\nreport: " << report << "\n";
  if (run.incomplete) {
    std::fprintf(stderr, "forkscope: interrupted; %s holds the %zu cells done so far (marked incomplete)\n",
                 path.c_str(), run.cells.size());
    return kExitFailure;
  }
  return kExitOk;
}

// Digits only: CLI11 reads "-1" into an unsigned count as a huge number.
std::string whole_number(std::string& value) {
  if (!value.empty() && value.find_first_not_of("0123456789") == std::string::npos) return "";
  return "'" + value + "' is not a whole number (0, 1, 2, ...)";
}

}  // namespace

void add_run_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<RunOptions>();
  CLI::App* sub = app.add_subcommand(
      "run",
      "Launch processes and threads over a sweep of heap sizes, trace the kernel, and report\n"
      "per-phase time.  With no options: every mode at heaps 2M,64M,512M,2G (sizes above a\n"
      "quarter of MemAvailable are skipped), about two minutes on 2 CPUs.\n"
      "Example: forkscope run --modes fork,pthread --heap 2M,256M --iterations 300");
  sub->add_option("--modes", opts->modes,
                  "Comma-separated launch kinds: fork, vfork, clone (SIGCHLD only), clone-vm (CLONE_VM),\n"
                  "pthread (pthread_create), posix_spawn (alias spawn-exec), fork-exec and vfork-exec\n"
                  "(the child execs a tiny static program: adds the execve phases), e.g.\n"
                  "--modes fork-exec,vfork-exec,posix_spawn compares the three ways to run a program")
      ->capture_default_str();
  sub->add_option("--clone-flags", opts->clone_flags,
                  "Add a clone(2) mode with these CLONE_* flags by name, e.g. VM,FS,FILES,SIGHAND\n"
                  "(known: VM FS FILES SIGHAND THREAD SYSVSEM IO VFORK PARENT); repeatable");
  sub->add_option("--heap", opts->heaps,
                  "Comma-separated heap sizes touched before launching, K/M/G suffixes (binary)\n"
                  "[default: 2M,64M,512M,2G]");
  const CLI::Validator count(whole_number, "N");
  sub->add_option("--iterations", opts->iterations, "Counted launches per cell (the classic measurement used 10000)")
      ->check(count)
      ->capture_default_str();
  sub->add_option("--cell-seconds", opts->cell_seconds,
                  "Stop a cell early after this long; the report says how many launches ran")
      ->capture_default_str();
  sub->add_option("--warmup", opts->warmup, "Uncounted launches before each cell")->check(count)->capture_default_str();
  sub->add_option("--cpu", opts->cpu, "Pin the runner (and so its children) to this CPU")->check(count);
  sub->add_option("--vmas", opts->vmas,
                  "Add N one-page anonymous mappings (touched, kept apart) to the runner, so each fork\n"
                  "copies N more VMAs: fork's cost per VMA, traced and untraced (scripts/bench-scale.sh)")
      ->check(count);
  sub->add_flag("--thp", opts->thp, "Allow transparent huge pages for the heap (off by default: they hide page-table cost)");
  sub->add_option("--out", opts->out, "Directory for results.json")->capture_default_str();
  sub->add_option("--backend", opts->backend,
                  "How the kernel is traced: auto picks, per phase, fentry/fexit, else kprobe/kretprobe\n"
                  "(both tried for real at start-up), else tracepoint landmarks; fentry, kprobe or\n"
                  "tracepoint force one (landmarks still fill phases with no probeable function)")
      ->capture_default_str();
  sub->add_flag("--overhead", opts->overhead,
                "Measure the observer effect: before every block of traced launches run as many with\n"
                "every program detached; report traced/untraced p50 with a 95% interval per cell, and\n"
                "calibrate the cost of forkscope's own programs at start-up (under 1 s; up to 3 s in\n"
                "an emulated guest) for the corrected times");
  sub->add_option("--threads", opts->threads,
                  "Launching threads per cell, launching at once (e.g. 2 to load both CPUs); the\n"
                  "iterations are shared among them")
      ->capture_default_str();
  sub->add_flag("--detail", opts->detail,
                "Also trace per-fault and per-page events: post-launch copy-on-write faults and\n"
                "page-table pages allocated by dup_mm (costlier; off by default)");
  sub->add_option("--phase", opts->phases,
                  "FUNC[:PARENT]: also time this kernel function (fentry or kprobe) and place it under\n"
                  "PARENT in the tree (default copy_process), e.g. anon_vma_fork:dup_mmap; up to 4");
  sub->add_flag("-q,--quiet", opts->quiet, "No progress on stderr");
  sub->add_flag("--no-color", opts->no_color, "No colour even on a terminal");
  sub->add_flag("-v,--verbose", opts->verbose, "Show libbpf's log (verifier output on load failures)");
  sub->callback([opts, &exit_code] { exit_code = run_command(*opts); });
}

}  // namespace forkscope
