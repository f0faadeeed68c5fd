#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "cli/commands.h"
#include "cli/preflight.h"
#include "forkscope/error.h"
#include "forkscope/terminal.h"
#include "forkscope/session.h"
#include "forkscope/size.h"
#include "forkscope/untrusted.h"
#include "forkscope/formats.h"

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
  bool heaps_given = false;  // --heap '' is an error, not the defaults
  uint64_t iterations = 10000;
  double cell_seconds = 8.0;
  uint64_t warmup = 20;
  int cpu = -1;
  std::string thp = "none";  // --thp alone: pmd
  std::string vmas = "0";
  std::string vma_touch = "touched";
  std::string out = "forkscope-out";
  bool quiet = false;
  bool no_color = false;
  bool verbose = false;
  std::string backend = "auto";
  bool overhead = false;
  bool detail = false;
  std::string depth = "full";
  unsigned threads = 1;
  std::vector<std::string> phases;
};

std::string self_dir() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "." : exe.parent_path().string();
}

// The CPUs this process may run on (its affinity: cpuset, taskset), as "0-3,6".
std::string allowed_cpus(const cpu_set_t& set) {
  std::string out;
  for (int c = 0; c < CPU_SETSIZE; c++) {
    if (!CPU_ISSET(c, &set)) continue;
    int last = c;
    while (last + 1 < CPU_SETSIZE && CPU_ISSET(last + 1, &set)) last++;
    out += (out.empty() ? "" : ",") + std::to_string(c) + (last > c ? "-" + std::to_string(last) : "");
    c = last;
  }
  return out;
}

void check_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0)
    throw usage_error(std::string("--cpu: cannot read this process's CPUs (") + std::strerror(errno) + ")");
  if (cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &set))
    throw usage_error("--cpu " + std::to_string(cpu) + ": this process may run on CPUs " + allowed_cpus(set) + " only");
}

// Everything a user can get wrong is checked here, before anything is loaded or
// launched, and nothing is changed: the options, parsed, for the session.
RunSessionOptions validate(const RunOptions& o) {
  RunSessionOptions session;
  session.plan.backend = parse_backend(o.backend);
  for (const std::string& spec : o.phases) session.plan.user_phases.push_back(parse_user_phase(spec));
  session.plan.detail = o.detail;
  session.plan.depth = parse_depth(o.depth);
  session.verbose = o.verbose;
  SweepOptions& s = session.sweep;
  for (size_t begin = 0; !o.modes.empty();) {
    const size_t comma = o.modes.find(',', begin);
    const std::string m = o.modes.substr(begin, comma == std::string::npos ? std::string::npos : comma - begin);
    if (m.empty())
      throw usage_error("--modes " + safe_text(o.modes) + ": item " + std::to_string(s.modes.size() + 1) +
                        " is empty; give modes separated by single commas, e.g. --modes fork,pthread");
    s.modes.push_back(parse_mode(m));
    if (comma == std::string::npos) break;
    begin = comma + 1;
  }
  for (const auto& f : o.clone_flags) s.modes.push_back(parse_clone_flags(f));
  if (s.modes.empty()) throw usage_error("--modes is empty; give at least one mode, e.g. --modes fork,pthread");
  // Results, diff and merge tell cells apart by mode and heap: each launch once.
  // clone-vm is clone(2) with CLONE_VM, the same launch as --clone-flags VM.
  auto by_clone = [](const LaunchSpec& m) { return m.mode == "clone-vm" || m.mode.starts_with("clone:"); };
  for (size_t i = 0; i < s.modes.size(); i++) {
    for (size_t j = 0; j < i; j++) {
      const LaunchSpec &a = s.modes[j], &b = s.modes[i];
      if (a.mode == b.mode) throw usage_error("mode " + b.mode + " is given twice; give each mode once");
      if (by_clone(a) && by_clone(b) && a.clone_flags == b.clone_flags)
        throw usage_error(a.mode + " and " + b.mode + " are the same launch (clone with " + a.flags_label +
                          "); give it once");
    }
  }

  // MemAvailable, or less under a memory cgroup's limit: a heap that cannot fit
  // would get the sweep OOM-killed.
  const MemoryRoom room = memory_room();
  const std::string where = room.source == "MemAvailable"
                                ? format_bytes(static_cast<double>(room.bytes)) + " available (MemAvailable)"
                                : format_bytes(static_cast<double>(room.bytes)) +
                                      " left under the memory cgroup limit in " + room.source;
  const bool defaults = !o.heaps_given;
  for (uint64_t h : parse_size_list(defaults ? kDefaultHeaps : o.heaps)) {
    if (defaults && room.limited && h > room.bytes / 4) {
      if (!o.quiet)
        std::fprintf(stderr, "forkscope: skipping the %s heap: more than a quarter of the %s\n", format_size(h).c_str(),
                     where.c_str());
      continue;
    }
    if (room.limited && h > room.bytes)
      throw usage_error("--heap " + format_size(h) + " is more than the " + where + "; choose smaller sizes");
    if (std::find(s.heaps.begin(), s.heaps.end(), h) != s.heaps.end())
      throw usage_error("--heap " + format_size(h) + " is given twice; give each size once");
    s.heaps.push_back(h);
  }
  if (s.heaps.empty()) throw usage_error("no heap size left to run; pass --heap with sizes that fit in memory");
  s.vma_counts = parse_vma_counts(o.vmas);
  const size_t ncells = sweep_cells_count(s);
  if (ncells > FS_MAX_CELLS - 2)  // the last two cells are the calibration's
    throw usage_error("too many cells (" + std::to_string(ncells) + "); at most " + std::to_string(FS_MAX_CELLS - 2) +
                      " (modes x heap sizes x VMA counts) per run");
  if (o.iterations == 0 || o.iterations > kMaxIterations)
    throw usage_error("--iterations must be between 1 and " + std::to_string(kMaxIterations));
  if (o.warmup > kMaxWarmup) throw usage_error("--warmup must be at most " + std::to_string(kMaxWarmup));
  // The negated form also refuses NaN.
  if (o.threads < 1 || o.threads > 64) throw usage_error("--threads must be between 1 and 64");
  if (o.threads > 1 && o.overhead)
    throw usage_error("--overhead detaches the programs under every thread: use it with --threads 1");
  if (!(o.cell_seconds > 0 && o.cell_seconds <= kMaxCellSeconds))
    throw usage_error("--cell-seconds must be more than 0 and at most " +
                      std::to_string(static_cast<int>(kMaxCellSeconds)) + " (a day)");
  if (o.cpu >= 0) check_cpu(o.cpu);

  // Room for the runner's own mappings and forkscope-child's under vm.max_map_count.
  std::ifstream max_map_count("/proc/sys/vm/max_map_count");
  uint64_t map_limit = 65530;
  max_map_count >> map_limit;
  const uint64_t most_vmas = *std::max_element(s.vma_counts.begin(), s.vma_counts.end());
  if (most_vmas > 0 && most_vmas > map_limit - std::min<uint64_t>(map_limit, 1000))
    throw usage_error("--vmas " + std::to_string(most_vmas) + ": at most " +
                      std::to_string(map_limit > 1000 ? map_limit - 1000 : 0) + " here (vm.max_map_count is " +
                      std::to_string(map_limit) + ")");

  s.iterations = o.iterations;
  s.cell_seconds = o.cell_seconds;
  s.warmup = o.warmup;
  s.thp = parse_thp_layout(o.thp);
  if (o.vma_touch != "touched" && o.vma_touch != "none")
    throw usage_error("--vma-touch " + safe_text(o.vma_touch) + ": expected touched or none");
  s.touch_vmas = o.vma_touch == "touched";
  s.cpu = o.cpu;
  s.quiet = o.quiet;
  s.overhead = o.overhead;
  s.threads = o.threads;
  s.child_program = self_dir() + "/forkscope-child";
  return session;
}

int run_command(const RunOptions& o) {
  RunSessionOptions session = validate(o);
  check_out_dir(o.out);
  check_kernel_access();
  // results.json after every cell (atomically: it is always whole), so a kill,
  // e.g. by the OOM killer, leaves the cells measured; the end rewrites it whole.
  bool prepared = false;
  session.cell_done = [&](const Run& so_far) {
    if (!prepared) prepare_out_dir(o.out);
    prepared = true;
    save_results(so_far, o.out + "/results.json");
  };
  const Run run = run_session(session);
  prepare_out_dir(o.out);

  const std::string path = save_and_print(run, o.out, !o.no_color && stdout_is_tty());
  if (run.incomplete) {
    std::fprintf(stderr, "forkscope: interrupted; %s holds the %zu cells done so far (marked incomplete)\n",
                 path.c_str(), run.cells.size());
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace

// Digits only: CLI11 reads "-1" into an unsigned count as a huge number, and
// "0x10" or " 5" as numbers.
CLI::Validator whole_number() {
  return CLI::Validator(
      [](std::string& value) {
        return parse_whole_number(value) ? std::string()
                                         : "'" + safe_text(value) + "' is not a whole number (0, 1, 2, ...)";
      },
      "N");
}

void add_run_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<RunOptions>();
  CLI::App* sub =
      app.add_subcommand("run",
                         "Launch processes and threads over a sweep of heap sizes, trace the kernel, and report\n"
                         "per-phase time.  With no options: every mode at heaps 2M,64M,512M,2G (sizes above a\n"
                         "quarter of MemAvailable, or of what the memory cgroup leaves, are skipped), about two\n"
                         "minutes on 2 CPUs.\n"
                         "Example: forkscope run --modes fork,pthread --heap 2M,256M --iterations 300");
  sub->add_option("--modes", opts->modes,
                  "Comma-separated launch kinds: fork, vfork, clone (SIGCHLD only), clone-vm (CLONE_VM),\n"
                  "pthread (pthread_create), posix_spawn (alias spawn-exec), fork-exec and vfork-exec\n"
                  "(the child execs a tiny static program: adds the execve phases), e.g.\n"
                  "--modes fork-exec,vfork-exec,posix_spawn compares the three ways to run a program")
      ->capture_default_str();
  sub->add_option("--clone-flags", opts->clone_flags,
                  "Add a clone(2) mode with these CLONE_* flags by name, e.g. VM,FS,FILES,SIGHAND\n"
                  "(known: VM FS FILES SIGHAND THREAD SYSVSEM IO VFORK; PARENT is refused: forkscope could\n"
                  "not wait for such children); repeatable");
  sub->add_option("--heap", opts->heaps,
                  "Comma-separated heap sizes touched before launching, K/M/G suffixes (binary)\n"
                  "[default: 2M,64M,512M,2G]");
  const CLI::Validator count = whole_number();
  sub->add_option("--iterations", opts->iterations, "Counted launches per cell (the classic measurement used 10000)")
      ->check(count)
      ->capture_default_str();
  sub->add_option("--cell-seconds", opts->cell_seconds,
                  "Stop a cell early after this long; the report says how many launches ran")
      ->capture_default_str();
  sub->add_option("--warmup", opts->warmup, "Uncounted launches before each cell")->check(count)->capture_default_str();
  sub->add_option("--cpu", opts->cpu, "Pin the runner (and so its children) to this CPU")->check(count);
  sub->add_option("--vmas", opts->vmas,
                  "Comma-separated counts of one-page anonymous mappings (kept apart) added to the runner,\n"
                  "a cell per count, so each fork copies that many more VMAs, e.g. --vmas 0,1000,4000:\n"
                  "fork's cost per VMA, traced and untraced (scripts/bench-scale.sh) [default: 0]");
  sub->add_option("--vma-touch", opts->vma_touch,
                  "touched: each extra VMA gets a page (an anon_vma, a PTE to copy); none: mapped, never\n"
                  "faulted (fork copies the VMA and no page table)")
      ->capture_default_str();
  sub->add_option("--thp", opts->thp,
                  "Back the heap with 2 MiB transparent huge pages (off by default: they hide page-table\n"
                  "cost): --thp or --thp pmd maps each by a PMD; --thp pte keeps the 2 MiB folios but\n"
                  "maps them by PTEs (the PMD split); backing.large_folio_bytes says what it became")
      ->expected(0, 1);
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
      ->check(count)
      ->capture_default_str();
  sub->add_option("--depth", opts->depth,
                  "How far into each launch to look: syscall (the launch syscall, wakeup, child's first\n"
                  "run, teardown, reaping, execve: a handful of events, no allocation or lock programs),\n"
                  "process (adds copy_process's phases, dup_mmap and the exec phases, no per-VMA work)\n"
                  "or full (everything)")
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
  sub->callback([opts, sub, &exit_code] {
    opts->heaps_given = sub->count("--heap") > 0;
    exit_code = run_command(*opts);
  });
}

}  // namespace forkscope
