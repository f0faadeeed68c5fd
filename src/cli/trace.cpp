// forkscope trace: the same per-phase breakdown for any workload's launches.
#include <fcntl.h>
#include <grp.h>
#include <linux/magic.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "cli/commands.h"
#include "cli/outputs.h"
#include "cli/preflight.h"
#include "forkscope/catalog.h"
#include "forkscope/error.h"
#include "forkscope/probes.h"
#include "forkscope/report.h"
#include "forkscope/visual.h"
#include "forkscope/runner.h"
#include "forkscope/shared/catalog.h"

namespace forkscope {

namespace {

constexpr double kMaxSeconds = 86400;

struct TraceOptions {
  std::vector<std::string> command;
  int pid = 0;
  std::string cgroup;
  bool all = false;
  double duration = 0;
  std::string backend = "auto";
  std::vector<std::string> phases;
  bool detail = false;
  std::string out = "forkscope-out";
  bool quiet = false;
  bool no_color = false;
  bool verbose = false;
};

std::atomic<int> g_signal{0};
void on_signal(int sig) { g_signal.store(sig); }

double seconds_since(const timespec& t0) {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<double>(t.tv_sec - t0.tv_sec) + static_cast<double>(t.tv_nsec - t0.tv_nsec) / 1e9;
}

int pidfd_open(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

std::string quoted_command(const std::vector<std::string>& argv) {
  std::string s = "--";
  for (const std::string& a : argv)
    s += " " + (a.find_first_of(" \t'\"$\\") == std::string::npos ? a : "'" + a + "'");
  return s;
}

// The command, started stopped: it runs (as the invoking user under sudo) once
// `go` is called, after its pid is followed, so its first launch is seen.
// Processes whose parent is forkscope (the command's orphans, forkscope being
// their subreaper), from /proc/PID/stat's fourth field.
std::vector<pid_t> our_children() {
  std::vector<pid_t> out;
  const pid_t self = getpid();
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(e.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const size_t paren = stat.rfind(')');  // the command name may hold spaces
    if (paren == std::string::npos) continue;
    char state;
    int ppid = 0;
    if (std::sscanf(stat.c_str() + paren + 1, " %c %d", &state, &ppid) == 2 && ppid == self)
      out.push_back(static_cast<pid_t>(std::stoi(name)));
  }
  return out;
}

// SIGTERM to every orphan, SIGKILL a second later to those left; all reaped.
void end_orphans() {
  for (int round = 0; round < 300; round++) {
    while (waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    const std::vector<pid_t> left = our_children();
    if (left.empty()) return;
    for (pid_t p : left) kill(p, round < 100 ? SIGTERM : SIGKILL);
    usleep(10000);
  }
}

class Command {
 public:
  explicit Command(const std::vector<std::string>& argv) {
    int go[2], failed[2];
    if (pipe2(go, O_CLOEXEC) != 0 || pipe2(failed, O_CLOEXEC) != 0)
      throw Error(kExitFailure, std::string("pipe: ") + std::strerror(errno));
    std::optional<FileOwner> user = invoking_user();
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const std::string name = std::filesystem::path(argv[0]).filename().string();
    std::string user_name;  // for initgroups: the user's own supplementary groups
    if (user) {
      if (const passwd* pw = getpwuid(user->uid)) user_name = pw->pw_name;
    }
    // Orphans of the command (its background jobs, daemons) come to forkscope, which
    // ends them when tracing stops.
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ < 0) throw Error(kExitFailure, std::string("fork: ") + std::strerror(errno));
    if (pid_ == 0) {
      close(go[1]);
      close(failed[0]);
      prctl(PR_SET_NAME, name.c_str());  // its own exec is grouped under its name
      signal(SIGPIPE, SIG_DFL);          // forkscope ignores it; the command must not
      char byte;
      if (read(go[0], &byte, 1) != 1) _exit(127);
      int err = 0;
      if (user) {
        const int groups = user_name.empty() ? setgroups(0, nullptr) : initgroups(user_name.c_str(), user->gid);
        if (groups != 0 || setgid(user->gid) != 0 || setuid(user->uid) != 0) err = errno;
      }
      // After setuid, which clears it: forkscope killed, the command does not outlive it.
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (getppid() != parent) _exit(127);
      if (!err) {
        execvp(args[0], args.data());
        err = errno;
      }
      if (write(failed[1], &err, sizeof err) < 0) _exit(127);
      _exit(127);
    }
    close(go[0]);
    close(failed[1]);
    go_ = go[1];
    failed_ = failed[0];
    pidfd_ = pidfd_open(pid_);
  }
  ~Command() {
    if (pid_ > 0 && !reaped_) {
      stop();
    }
    if (go_ >= 0) close(go_);
    if (failed_ >= 0) close(failed_);
    if (pidfd_ >= 0) close(pidfd_);
  }
  pid_t pid() const { return pid_; }
  int pidfd() const { return pidfd_; }
  // Lets it exec; returns errno when the exec failed, else 0.
  int go() {
    char byte = 1;
    if (write(go_, &byte, 1) != 1) return errno;
    close(go_);
    go_ = -1;
    int err = 0;
    ssize_t n = read(failed_, &err, sizeof err);  // EOF: the exec happened (the pipe was close-on-exec)
    return n == static_cast<ssize_t>(sizeof err) ? err : 0;
  }
  // Reaps it when it has exited; its exit status, or -1 when killed by a signal.
  bool try_reap() {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) != pid_) return false;
    reaped_ = true;
    status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return true;
  }
  // SIGTERM, then SIGKILL after two seconds; reaps it, then the orphans it left
  // to forkscope (the subreaper) the same way.
  void stop() {
    if (!reaped_) {
      kill(pid_, SIGTERM);
      for (int i = 0; i < 200 && !try_reap(); i++) usleep(10000);
      if (!reaped_) {
        kill(pid_, SIGKILL);
        int status;
        while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
        reaped_ = true;
      }
    }
    end_orphans();
  }
  int status() const { return status_; }

 private:
  pid_t pid_ = -1;
  int go_ = -1, failed_ = -1, pidfd_ = -1;
  bool reaped_ = false;
  int status_ = -1;
};

// Whether execvp would find the program: checked before anything is loaded.
bool runnable(const std::string& program) {
  auto executable = [](const std::string& path) {
    struct stat st;
    return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(path.c_str(), X_OK) == 0;
  };
  if (program.find('/') != std::string::npos) return executable(program);
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    const std::string dir = dirs.substr(start, end - start);
    if (executable((dir.empty() ? "." : dir) + "/" + program)) return true;
    start = end + 1;
  }
  return false;
}

// The thread group of a pid: -p may name any thread of the process.
pid_t thread_group_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("Tgid:", 0) == 0) return static_cast<pid_t>(std::stol(line.substr(5)));
  return pid;
}

void validate(const TraceOptions& o) {
  const int targets = !o.command.empty() + (o.pid != 0) + !o.cgroup.empty() + o.all;
  if (targets != 1)
    throw usage_error(targets == 0 ? "nothing to trace: give -- CMD ARGS..., -p PID, --cgroup PATH or -a"
                                   : "give only one of -- CMD, -p PID, --cgroup PATH and -a");
  if (!o.command.empty() && !runnable(o.command[0]))
    throw usage_error("cannot run " + o.command[0] + ": not found or not executable (PATH is searched as for a shell)");
  if (!(o.duration >= 0 && o.duration <= kMaxSeconds))
    throw usage_error("--duration must be between 0 (no limit) and 86400 seconds");
  if (o.pid < 0 || (o.pid > 0 && kill(o.pid, 0) != 0 && errno == ESRCH))
    throw usage_error("-p " + std::to_string(o.pid) + ": no such process");
  if (o.pid > 0 && o.pid == getpid()) throw usage_error("-p: forkscope cannot trace itself");
  if (!o.cgroup.empty()) {
    struct statfs fs;
    if (statfs(o.cgroup.c_str(), &fs) != 0)
      throw usage_error("--cgroup " + o.cgroup + ": " + std::strerror(errno) + "; give a directory under /sys/fs/cgroup");
    if (fs.f_type != CGROUP2_SUPER_MAGIC)
      throw usage_error("--cgroup " + o.cgroup + ": not a cgroup v2 directory; give one under /sys/fs/cgroup");
  }
  prepare_out_dir(o.out);
}

// One cell per group that launched or exec'd, most launches first.
std::vector<Cell> collect(Tracer& tracer, double seconds) {
  std::vector<Cell> cells;
  for (const TraceGroup& g : tracer.read_groups()) {
    Cell c;
    read_kernel_side(tracer, g.cell, c);
    if (c.kernel.launches == 0 && c.kernel.execs == 0 && c.kernel.failed == 0) continue;
    c.comm = g.comm;
    if (g.other) {
      c.mode = "other";
      c.clone_flags = "groups past the first " + std::to_string(kTraceGroups);
    } else if (g.flags == FS_GROUP_EXEC_ONLY) {
      c.mode = "exec";
      c.clone_flags = "execs of tasks launched before tracing began";
    } else {
      c.mode = launch_kind(g.flags);
      c.clone_flags = clone_flags_label(g.flags);
    }
    c.launches = c.kernel.launches;
    c.failed = c.kernel.failed;
    c.seconds = seconds;
    cells.push_back(std::move(c));
  }
  std::stable_sort(cells.begin(), cells.end(), [](const Cell& a, const Cell& b) {
    return a.launches + a.kernel.execs > b.launches + b.kernel.execs;
  });
  return cells;
}

int trace_command(TraceOptions& o) {
  validate(o);
  if (o.pid > 0) o.pid = thread_group_of(o.pid);
  signal(SIGPIPE, SIG_IGN);  // a command that dies before it is let go must not take forkscope with it
  std::vector<UserPhase> user_phases;
  for (const std::string& spec : o.phases) user_phases.push_back(parse_user_phase(spec));
  check_kernel_access();

  int cgroup_fd = -1;
  if (!o.cgroup.empty()) {
    cgroup_fd = open(o.cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cgroup_fd < 0) throw usage_error("--cgroup " + o.cgroup + ": " + std::strerror(errno));
  }
  RunPlan plan = plan_run(parse_backend(o.backend), user_phases);
  set_detail(plan, o.detail);
  plan.exec = true;
  plan.calibration_function.clear();  // trace runs no probe-cost calibration: no spare slot
  std::unique_ptr<Tracer> tracer = Tracer::open(plan, o.verbose, kTraceGroups + 1, /*following=*/true);

  struct sigaction sa = {};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  std::unique_ptr<Command> command;
  int watch_fd = -1;  // the command or -p process: tracing ends when it exits
  Follow follow;
  follow.cgroup_fd = cgroup_fd;
  follow.all = o.all;
  if (!o.command.empty()) {
    command = std::make_unique<Command>(o.command);
    follow.root = command->pid();
    watch_fd = command->pidfd();
  } else if (o.pid > 0) {
    follow.root = o.pid;
    watch_fd = pidfd_open(o.pid);
    if (watch_fd < 0) throw Error(kExitFailure, "-p " + std::to_string(o.pid) + ": pidfd_open: " + std::strerror(errno));
  }
  tracer->follow(follow);
  if (cgroup_fd >= 0) close(cgroup_fd);

  Run run = start_results(*tracer);
  TraceInfo info;
  info.target = !o.command.empty() ? quoted_command(o.command)
                : o.pid > 0        ? "-p " + std::to_string(o.pid)
                : o.all            ? "-a"
                                   : "--cgroup " + o.cgroup;

  timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  if (!o.quiet) {
    char until[64];
    if (o.duration > 0)
      std::snprintf(until, sizeof until, " for %.1f s", o.duration);
    else
      std::snprintf(until, sizeof until, "%s", command ? " until it exits (Ctrl-C stops)" : " until Ctrl-C");
    std::fprintf(stderr, "forkscope: %s backend attached; tracing %s%s\n", run.backend.c_str(), info.target.c_str(), until);
  }
  if (command) {
    if (int err = command->go(); err != 0) {
      command->try_reap();
      throw usage_error("cannot run " + o.command[0] + ": " + std::strerror(err));
    }
  }

  bool target_gone = false;
  double last_progress = 0;
  const bool progress = !o.quiet && isatty(STDERR_FILENO);
  while (g_signal.load() == 0) {
    const double t = seconds_since(t0);
    if (o.duration > 0 && t >= o.duration) break;
    pollfd p{watch_fd, POLLIN, 0};
    int r = poll(&p, watch_fd >= 0 ? 1 : 0, 200);
    if ((r > 0 && (p.revents & (POLLIN | POLLHUP))) || (watch_fd < 0 && command && command->try_reap())) {
      target_gone = true;  // (no pidfd for the command: its exit is polled)
      break;
    }
    tracer->consume_samples();
    if (progress && t - last_progress >= 1) {
      last_progress = t;
      uint64_t launches = 0, execs = 0;
      for (const TraceGroup& g : tracer->read_groups()) {
        KernelCounts k = tracer->read_counts(g.cell);
        launches += k.launches;
        execs += k.execs;
      }
      std::fprintf(stderr, "\rforkscope: %.0f s, %llu launches, %llu execs ", t, static_cast<unsigned long long>(launches),
                   static_cast<unsigned long long>(execs));
    }
  }
  if (progress) std::fprintf(stderr, "\n");
  info.seconds = seconds_since(t0);
  // Children still finishing their exit are counted before the programs go.
  usleep(20000);
  // Programs detached first: the reads below must not see half of a child's
  // death (its teardown added, its exit_mm not yet).
  tracer->set_attached(false);
  run.cells = collect(*tracer, info.seconds);
  info.parents = tracer->read_parents();
  tracer.reset();  // detach before anything else happens
  if (watch_fd >= 0 && !command) close(watch_fd);
  if (command) {
    if (!target_gone && !o.quiet) std::fprintf(stderr, "forkscope: stopping %s\n", o.command[0].c_str());
    if (target_gone) command->try_reap();
    command->stop();
    info.command_exit = command->status();
  }
  run.trace = std::move(info);

  const auto [path, report] = save_outputs(run, o.out);
  render_text_report(run, featured_cell(run), std::cout, !o.no_color && stdout_is_tty());
  std::cout << "\n";
  render_overhead(run, std::cout);
  std::cout << "\nresults: " << path << "\nreport: " << report << "\n";
  if (run.cells.empty() && !o.quiet)
    std::fprintf(stderr, "forkscope: no launch or exec was seen in %.1f s\n", run.trace->seconds);
  return kExitOk;
}

}  // namespace

void add_trace_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<TraceOptions>();
  CLI::App* sub = app.add_subcommand(
      "trace",
      "Attribute the kernel time of every launch (fork, vfork, clone, thread) and execve a\n"
      "workload makes, grouped by launching command and launch kind.  Follows a command and\n"
      "its descendants, a running process and its future children, a cgroup, or the system.\n"
      "Stops when the command or process exits, after --duration, or on Ctrl-C (exit 0).\n"
      "Examples:\n"
      "  forkscope trace -- make -j8\n"
      "  forkscope trace -p $(pgrep -o gunicorn) --duration 30\n"
      "  forkscope trace -a --duration 10");
  sub->add_option("-p,--pid", opts->pid, "Follow this running process and the processes it launches from now on");
  sub->add_option("--cgroup", opts->cgroup, "Follow every task in this cgroup v2 directory and its descendants");
  sub->add_flag("-a,--all", opts->all, "Follow every task on the system (but forkscope)");
  sub->add_option("--duration", opts->duration, "Stop after this many seconds (0: no limit)")->capture_default_str();
  sub->add_option("--backend", opts->backend, "auto, fentry, kprobe or tracepoint, as for run")->capture_default_str();
  sub->add_option("--phase", opts->phases, "FUNC[:PARENT]: also time this kernel function, as for run");
  sub->add_flag("--detail", opts->detail, "Also count the children's copy-on-write faults (costlier)");
  sub->add_option("--out", opts->out, "Directory for results.json and report.html")->capture_default_str();
  sub->add_flag("-q,--quiet", opts->quiet, "No progress on stderr");
  sub->add_flag("--no-color", opts->no_color, "No colour even on a terminal");
  sub->add_flag("-v,--verbose", opts->verbose, "Show libbpf's log");
  sub->add_option("command", opts->command, "-- CMD ARGS...: run this command (as the invoking user under sudo)");
  sub->positionals_at_end();
  sub->callback([opts, &exit_code] { exit_code = trace_command(*opts); });
}

}  // namespace forkscope
