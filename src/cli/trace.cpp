// forkscope trace: the same per-phase breakdown for any workload's launches.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>

#include "cli/commands.h"
#include "cli/preflight.h"
#include "forkscope/error.h"
#include "forkscope/terminal.h"
#include "forkscope/session.h"
#include "forkscope/target.h"
#include "forkscope/untrusted.h"
#include "forkscope/formats.h"

namespace forkscope {

namespace {

constexpr double kMaxSeconds = 86400;

struct TraceOptions {
  std::vector<std::string> command;
  int pid = 0;
  bool pid_given = false;  // -p 0 is refused, not taken for "no -p"
  std::string cgroup;
  bool all = false;
  double duration = 0;
  std::string backend = "auto";
  std::vector<std::string> phases;
  bool detail = false;
  std::string depth = "full";
  std::string out = "forkscope-out";
  bool quiet = false;
  bool no_color = false;
  bool verbose = false;
  bool no_mappings = false;
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

// Everything a user can get wrong is checked here, before anything is loaded or
// launched, and nothing is changed: the options, parsed, for the session.
TraceSessionOptions validate(const TraceOptions& o) {
  if (o.pid_given && o.pid == 0)
    throw usage_error("-p 0: nothing to trace (0 is no process); give the pid of a running process");
  const int targets = !o.command.empty() + o.pid_given + !o.cgroup.empty() + o.all;
  if (targets != 1)
    throw usage_error(targets == 0 ? "nothing to trace: give -- CMD ARGS..., -p PID, --cgroup PATH or -a"
                                   : "give only one of -- CMD, -p PID, --cgroup PATH and -a");
  if (!o.command.empty() && !runnable(o.command[0]))
    throw usage_error("cannot run " + safe_text(o.command[0]) +
                      ": not found or not executable (PATH is searched as for a shell)");
  if (!(o.duration >= 0 && o.duration <= kMaxSeconds))
    throw usage_error("--duration must be between 0 (no limit) and 86400 seconds");
  pid_t session_pid = 0;
  if (o.pid_given) session_pid = check_pid_target(o.pid);
  if (!o.cgroup.empty()) check_cgroup_target(o.cgroup);
  TraceSessionOptions session;
  session.command = o.command;
  session.pid = session_pid;
  session.cgroup = o.cgroup;
  session.all = o.all;
  session.duration = o.duration;
  session.plan.backend = parse_backend(o.backend);
  for (const std::string& spec : o.phases) session.plan.user_phases.push_back(parse_user_phase(spec));
  session.plan.detail = o.detail;
  session.plan.depth = parse_depth(o.depth);
  session.quiet = o.quiet;
  session.verbose = o.verbose;
  session.mappings = !o.no_mappings;
  return session;
}

int trace_command(const TraceOptions& o) {
  const TraceSessionOptions session = validate(o);
  check_out_dir(o.out);
  check_kernel_access();
  const Run run = trace_session(session);
  prepare_out_dir(o.out);

  const std::string path = save_and_print(run, o.out, !o.no_color && stdout_is_tty());
  if (run.cells.empty() && !o.quiet)
    std::fprintf(stderr, "forkscope: no launch or exec was seen in %.1f s\n", run.trace->seconds);
  return kExitOk;
}

}  // namespace

void add_trace_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<TraceOptions>();
  CLI::App* sub =
      app.add_subcommand("trace",
                         "Attribute the kernel time of every launch (fork, vfork, clone, thread) and execve a\n"
                         "workload makes, grouped by launching command and launch kind.  Follows a command and\n"
                         "its descendants, a running process and its future children, a cgroup, or the system.\n"
                         "Stops when the command or process exits (its last thread), after --duration, or on\n"
                         "Ctrl-C (exit 0).  The command runs in a cgroup of its own: nothing it starts outlives\n"
                         "forkscope, even one killed by SIGKILL.\n"
                         "Examples:\n"
                         "  forkscope trace -- make -j8\n"
                         "  forkscope trace -p $(pgrep -o gunicorn) --duration 30\n"
                         "  forkscope trace -a --duration 10");
  sub->add_option("-p,--pid", opts->pid, "Follow this running process and the processes it launches from now on")
      ->check(whole_number());
  sub->add_option("--cgroup", opts->cgroup,
                  "Follow every task in this cgroup v2 directory (under the cgroup2 mount,\n"
                  "/sys/fs/cgroup or /sys/fs/cgroup/unified) and its descendants");
  sub->add_flag("-a,--all", opts->all, "Follow every task on the system (but forkscope)");
  sub->add_option("--duration", opts->duration, "Stop after this many seconds (0: no limit)")->capture_default_str();
  sub->add_option("--backend", opts->backend, "auto, fentry, kprobe or tracepoint, as for run")->capture_default_str();
  sub->add_option("--phase", opts->phases, "FUNC[:PARENT]: also time this kernel function, as for run");
  sub->add_option("--depth", opts->depth,
                  "syscall, process or full, as for run (shallower: cheaper for every task on the machine)")
      ->capture_default_str();
  sub->add_flag("--detail", opts->detail, "Also count the children's copy-on-write faults (costlier)");
  sub->add_option("--out", opts->out, "Directory for results.json and report.html")->capture_default_str();
  sub->add_flag("-q,--quiet", opts->quiet, "No progress on stderr");
  sub->add_flag("--no-color", opts->no_color, "No colour even on a terminal");
  sub->add_flag("--no-mappings", opts->no_mappings,
                "No per-mapping attribution of fork's copy (which reads each forking process's\n"
                "/proc/PID/smaps when first seen and when its layout changes)");
  sub->add_flag("-v,--verbose", opts->verbose, "Show libbpf's log and each forking process's mappings read");
  sub->add_option("command", opts->command, "-- CMD ARGS...: run this command (as the invoking user under sudo)");
  sub->positionals_at_end();
  sub->callback([opts, sub, &exit_code] {
    opts->pid_given = sub->count("-p") > 0;
    exit_code = trace_command(*opts);
  });
}

}  // namespace forkscope
