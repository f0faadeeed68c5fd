#include <malloc.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "cli/commands.h"
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

struct RunOptions {
  std::string modes = "fork,vfork,clone,clone-vm,pthread,posix_spawn";
  std::vector<std::string> clone_flags;
  std::string heaps;
  uint64_t iterations = 10000;
  double cell_seconds = 8.0;
  uint64_t warmup = 20;
  int cpu = -1;
  bool thp = false;
  std::string out = "forkscope-out";
  bool quiet = false;
  bool no_color = false;
  bool verbose = false;
  std::string backend = "auto";
  std::vector<std::string> phases;
  std::vector<UserPhase> user_phases;  // parsed from phases
};

std::atomic<bool> g_stop{false};

void on_signal(int) { g_stop.store(true); }

std::string iso_now() {
  char buf[32];
  time_t t = time(nullptr);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

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
    s.heaps.push_back(h);
  }
  if (s.heaps.empty()) throw usage_error("no heap size left to run; pass --heap with sizes that fit in memory");
  if (s.heaps.size() * s.modes.size() > FS_MAX_CELLS)
    throw usage_error("too many cells (" + std::to_string(s.heaps.size() * s.modes.size()) + "); at most " +
                      std::to_string(FS_MAX_CELLS) + " (modes x heap sizes) per run");
  if (o.iterations == 0) throw usage_error("--iterations must be at least 1");
  if (!(o.cell_seconds > 0)) throw usage_error("--cell-seconds must be positive");
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  if (o.cpu >= ncpu) throw usage_error("--cpu " + std::to_string(o.cpu) + ": this machine has CPUs 0.." + std::to_string(ncpu - 1));

  std::error_code ec;
  std::filesystem::create_directories(o.out, ec);
  if (ec || access(o.out.c_str(), W_OK) != 0)
    throw usage_error("--out " + o.out + ": cannot create or write the directory" + (ec ? " (" + ec.message() + ")" : "") +
                      "; choose another --out");

  s.iterations = o.iterations;
  s.cell_seconds = o.cell_seconds;
  s.warmup = o.warmup;
  s.allow_thp = o.thp;
  s.cpu = o.cpu;
  s.quiet = o.quiet;
  s.child_program = self_dir() + "/forkscope-child";
  return s;
}

int run_command(RunOptions& o) {
  SweepOptions sweep = validate(o);
  check_privileges();

  RunPlan plan = plan_run(parse_backend(o.backend), o.user_phases);
  std::unique_ptr<Tracer> backend = Tracer::open(plan, o.verbose);
  backend->set_target(getpid());
  // Loading parsed kallsyms and BTF: give the freed memory back, so the runner's
  // own footprint (copied by every fork) is as small as it can be.
  malloc_trim(0);

  struct sigaction sa = {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  Run run;
  run.tool_version = "0.1.0";
  run.started = iso_now();
  run.host = read_host();
  run.backend = backend_name(backend->plan());
  run.phases_available = availability(backend->plan());

  CellHooks hooks;
  hooks.begin = [&](uint32_t cell) { backend->set_cell(cell); };
  hooks.end = [&] { backend->set_cell(FS_NO_CELL); };
  hooks.sample = [&](uint32_t seq) { backend->sample_next(seq); };
  hooks.collect = [&](Cell& cell, uint32_t index) {
    cell.kernel = backend->read_counts(index);
    std::vector<PhaseAgg> aggs = backend->read_phases(index);
    PhaseAgg& cow = aggs[FS_PH_POST_LAUNCH_COW];
    cow.count = cell.kernel.launches;
    cow.calls = cell.kernel.faults_parent + cell.kernel.faults_child;
    cell.phases = build_phases(aggs, backend->plan());
    cell.samples = backend->drain_samples(index);
  };
  if (!o.quiet) {
    std::fprintf(stderr, "forkscope: %s backend attached (%.1f MiB of BPF maps); %zu cells, up to %llu launches or %gs each\n",
                 run.backend.c_str(), static_cast<double>(backend->map_bytes()) / (1 << 20), sweep.modes.size() * sweep.heaps.size(),
                 static_cast<unsigned long long>(sweep.iterations), sweep.cell_seconds);
  }
  run.cells = run_sweep(sweep, hooks, &g_stop);
  run.incomplete = g_stop.load();
  backend.reset();  // detach before writing anything

  const std::string path = o.out + "/results.json";
  save_results(run, path);
  const std::string report = o.out + "/report.html";
  write_atomically(report, html_report(run, featured_cell(run)), "report");

  render_text_report(run, featured_cell(run), std::cout, !o.no_color && stdout_is_tty());
  std::cout << "\nresults: " << path << "\nreport: " << report << "\n";
  if (run.incomplete) {
    std::fprintf(stderr, "forkscope: interrupted; %s holds the %zu cells done so far (marked incomplete)\n",
                 path.c_str(), run.cells.size());
    return kExitFailure;
  }
  return kExitOk;
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
                  "pthread (pthread_create), posix_spawn")
      ->capture_default_str();
  sub->add_option("--clone-flags", opts->clone_flags,
                  "Add a clone(2) mode with these CLONE_* flags by name, e.g. VM,FS,FILES,SIGHAND\n"
                  "(known: VM FS FILES SIGHAND THREAD SYSVSEM IO VFORK PARENT); repeatable");
  sub->add_option("--heap", opts->heaps,
                  "Comma-separated heap sizes touched before launching, K/M/G suffixes (binary)\n"
                  "[default: 2M,64M,512M,2G]");
  sub->add_option("--iterations", opts->iterations, "Counted launches per cell (the classic measurement used 10000)")
      ->capture_default_str();
  sub->add_option("--cell-seconds", opts->cell_seconds,
                  "Stop a cell early after this long; the report says how many launches ran")
      ->capture_default_str();
  sub->add_option("--warmup", opts->warmup, "Uncounted launches before each cell")->capture_default_str();
  sub->add_option("--cpu", opts->cpu, "Pin the runner (and so its children) to this CPU");
  sub->add_flag("--thp", opts->thp, "Allow transparent huge pages for the heap (off by default: they hide page-table cost)");
  sub->add_option("--out", opts->out, "Directory for results.json")->capture_default_str();
  sub->add_option("--backend", opts->backend,
                  "How the kernel is traced: auto picks, per phase, fentry/fexit, else kprobe/kretprobe\n"
                  "(both tried for real at start-up), else tracepoint landmarks; fentry, kprobe or\n"
                  "tracepoint force one (landmarks still fill phases with no probeable function)")
      ->capture_default_str();
  sub->add_option("--phase", opts->phases,
                  "FUNC[:PARENT]: also time this kernel function (fentry or kprobe) and place it under\n"
                  "PARENT in the tree (default copy_process), e.g. anon_vma_fork:dup_mmap; up to 4");
  sub->add_flag("-q,--quiet", opts->quiet, "No progress on stderr");
  sub->add_flag("--no-color", opts->no_color, "No colour even on a terminal");
  sub->add_flag("-v,--verbose", opts->verbose, "Show libbpf's log (verifier output on load failures)");
  sub->callback([opts, &exit_code] { exit_code = run_command(*opts); });
}

}  // namespace forkscope
