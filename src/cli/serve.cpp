// forkscope serve: per-phase launch metrics for Prometheus, until SIGINT/SIGTERM.
#include <linux/magic.h>
#include <signal.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "cli/commands.h"
#include "cli/preflight.h"
#include "forkscope/error.h"
#include "forkscope/probes.h"
#include "session/serve.h"

namespace forkscope {

namespace {

// The thread group of a pid: -p may name any thread of the process (as trace's).
pid_t thread_group_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("Tgid:", 0) == 0) return static_cast<pid_t>(std::stol(line.substr(5)));
  return pid;
}

void validate(ServeOptions& o, bool all) {
  if (all + (o.pid != 0) + !o.cgroup.empty() > 1) throw usage_error("give only one of -a, -p PID and --cgroup PATH");
  parse_listen(o.listen);
  if (o.max_groups < 1 || o.max_groups > kTraceGroups)
    throw usage_error("--max-groups must be between 1 and " + std::to_string(kTraceGroups) +
                      " (the kernel side's group cells)");
  if (!(o.evict_after_s >= 0)) throw usage_error("--evict-after must be 0 or more seconds");
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
  parse_backend(o.backend);
}

}  // namespace

void add_serve_command(CLI::App& app, int& exit_code) {
  auto opts = std::make_shared<ServeOptions>();
  auto all = std::make_shared<bool>(false);
  CLI::App* sub = app.add_subcommand(
      "serve",
      "Follow launches continuously and serve per-phase launch metrics in the Prometheus\n"
      "text format on http://ADDR:PORT/metrics, read from the in-kernel aggregates at\n"
      "scrape time.  Runs until SIGINT or SIGTERM (exit 0), then detaches everything.\n"
      "Examples:\n"
      "  forkscope serve\n"
      "  forkscope serve --listen 0.0.0.0:9464 --cgroup /sys/fs/cgroup/system.slice");
  sub->add_option("--listen", opts->listen, "ADDR:PORT to serve /metrics on ([::1]:PORT for IPv6)")->capture_default_str();
  sub->add_flag("-a,--all", *all, "Follow every task on the system but forkscope (the default)");
  sub->add_option("-p,--pid", opts->pid, "Follow this running process and the processes it launches from now on");
  sub->add_option("--cgroup", opts->cgroup, "Follow every task in this cgroup v2 directory and its descendants");
  sub->add_option("--max-groups", opts->max_groups, "(command, kind) label sets of their own; the rest count in comm=\"(other)\"")
      ->capture_default_str();
  sub->add_option("--evict-after", opts->evict_after_s,
                  "Seconds a label set must be idle before a new group may take its place")
      ->capture_default_str();
  sub->add_option("--backend", opts->backend, "auto, fentry, kprobe or tracepoint, as for run")->capture_default_str();
  sub->add_flag("-q,--quiet", opts->quiet, "Nothing on stderr but errors");
  sub->add_flag("-v,--verbose", opts->verbose, "Show libbpf's log");
  sub->callback([opts, all, &exit_code] {
    validate(*opts, *all);
    if (opts->pid > 0) opts->pid = thread_group_of(opts->pid);
    check_kernel_access();
    exit_code = serve_session(*opts);
  });
}

}  // namespace forkscope
