// The trace session: follows a workload's launches until it ends.
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <set>
#include <tuple>

#include "forkscope/cgroups.h"
#include "forkscope/command.h"
#include "forkscope/error.h"
#include "forkscope/huge_pages.h"
#include "forkscope/mappings.h"
#include "forkscope/runner.h"
#include "forkscope/target.h"
#include "forkscope/session.h"
#include "forkscope/shared/catalog.h"
#include "forkscope/untrusted.h"
#include "session/followed_mappings.h"
#include "session/outputs.h"
#include "session/signals.h"

namespace forkscope {

namespace {

double seconds_since(const timespec& t0) {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<double>(t.tv_sec - t0.tv_sec) + static_cast<double>(t.tv_nsec - t0.tv_nsec) / 1e9;
}

std::string quoted_command(const std::vector<std::string>& argv) {
  std::string s = "--";
  for (const std::string& a : argv)
    s += " " + (a.find_first_of(" \t'\"$\\") == std::string::npos ? safe_text(a) : "'" + safe_text(a) + "'");
  return s;
}

// --group-by's name of a group: the executable's path, the pid or the cgroup's
// path ("" by command: the command names it).
std::string group_name(const TraceGroup& g, const std::string& group_by,
                       const std::map<uint64_t, std::string>& cgroups) {
  if (g.other) return "";
  if (group_by == "exe") return !g.exe.empty() ? g.exe : g.id[1] ? "(executable not named)" : "(no executable)";
  if (group_by == "pid") return std::to_string(g.id[0]);
  if (group_by == "cgroup") {
    const auto it = cgroups.find(g.id[0]);
    return it != cgroups.end() ? it->second : "(cgroup " + std::to_string(g.id[0]) + ", removed)";
  }
  return "";
}

// One cell per group that launched or exec'd, most launches first, with its execs
// by program and its launchers' huge pages; with mappings, each group's per-mapping
// attribution.
std::vector<Cell> collect(Tracer& tracer, double seconds, const std::string& group_by, const LauncherHugePages& huge,
                          const FollowedMappings* mappings) {
  const std::vector<TraceGroup> groups = tracer.read_groups();
  std::set<uint64_t> cgroup_ids;
  if (group_by == "cgroup")
    for (const TraceGroup& g : groups) cgroup_ids.insert(g.id[0]);
  const std::map<uint64_t, std::string> cgroups = cgroup_paths(cgroup_ids);
  std::map<uint32_t, Tracer::ExecPrograms> programs = tracer.read_exec_programs(kTraceGroups + 1);
  std::vector<Cell> cells;
  for (const TraceGroup& g : groups) {
    Cell c;
    tracer.read_cell(g.cell, c);
    huge.fill(g.cell, c.kernel);
    if (c.kernel.launches == 0 && c.kernel.execs == 0 && c.kernel.failed == 0) continue;
    c.comm = g.comm;
    c.group = group_name(g, group_by, cgroups);
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
    if (auto it = programs.find(g.cell); it != programs.end()) {
      c.exec_programs = std::move(it->second.programs);
      c.exec_programs_other = it->second.other;
    }
    if (mappings != nullptr) mappings->attribute(tracer.read_mappings(g.cell), c);
    cells.push_back(std::move(c));
  }
  // Two groups of one name (the same path in two mount namespaces, a reused pid,
  // a comm and an executable's path alike): the later ones numbered, so each is
  // its own cell.
  std::map<std::tuple<std::string, std::string, std::string>, int> seen;
  for (Cell& c : cells)
    if (int n = ++seen[{c.comm, c.group, c.mode}]; n > 1) c.group += " (#" + std::to_string(n) + ")";
  std::stable_sort(cells.begin(), cells.end(), [](const Cell& a, const Cell& b) {
    return a.launches + a.kernel.execs > b.launches + b.kernel.execs;
  });
  return cells;
}

}  // namespace

Run trace_session(const TraceSessionOptions& o) {
  signal(SIGPIPE, SIG_IGN);  // a command that dies before it is let go must not take forkscope with it
  const int cgroup_fd = o.cgroup.empty() ? -1 : open_cgroup(o.cgroup);
  PlanOptions plan = o.plan;
  plan.exec = true;
  plan.probe_cost = false;  // trace runs no probe-cost calibration: no spare slot
  plan.libc_fork = true;    // fork()'s user-space part, with uprobes (at --depth full)
  // From before the load, so a signal at any moment ends tracing the documented way.
  catch_stop_signals(/*second_ends=*/false);
  const std::atomic<bool>* stop = stop_requested();
  // The command's own cgroup and its watchdog, made before anything is loaded (the
  // watchdog holds nothing of forkscope's) and gone after the command (declared first).
  std::unique_ptr<CommandCgroup> cgroup;
  std::string uncontained;
  if (!o.command.empty()) cgroup = CommandCgroup::create(uncontained);
  std::unique_ptr<Tracer> tracer = Tracer::open(plan_run(plan), o.verbose, kTraceGroups + 1, /*following=*/true);
  if (stop->load()) throw interrupted_at_start();

  std::unique_ptr<Command> command;
  int watch_fd = -1;  // the command or -p process: tracing ends when it exits
  Follow follow;
  follow.cgroup_fd = cgroup_fd;
  follow.all = o.all;
  follow.mappings = o.mappings;
  follow.group_by = o.group_by == "exe"      ? FS_GROUP_BY_EXE
                    : o.group_by == "pid"    ? FS_GROUP_BY_PID
                    : o.group_by == "cgroup" ? FS_GROUP_BY_CGROUP
                                             : FS_GROUP_BY_COMM;
  follow.exec_programs = true;
  if (!o.command.empty()) {
    command = std::make_unique<Command>(o.command, cgroup.get());
    if (cgroup && command->uncontained().empty()) {
      if (o.verbose) std::fprintf(stderr, "forkscope: the command runs in %s\n", safe_text(cgroup->path()).c_str());
    } else if (o.verbose) {
      std::fprintf(stderr, "forkscope: %s; what the command leaves is ended through forkscope as subreaper instead\n",
                   safe_text(cgroup ? command->uncontained() : uncontained).c_str());
    }
    follow.root = command->pid();
    watch_fd = command->pidfd();
  } else if (o.pid > 0) {
    follow.root = o.pid;
    watch_fd = pidfd_open(o.pid);
    if (watch_fd < 0)
      throw Error(kExitFailure, "-p " + std::to_string(o.pid) + ": pidfd_open: " + std::strerror(errno));
  }
  tracer->follow(follow);
  if (cgroup_fd >= 0) close(cgroup_fd);

  Run run = start_results(*tracer);
  TraceInfo info;
  info.group_by = o.group_by;
  info.target = !o.command.empty() ? quoted_command(o.command)
                : o.pid > 0        ? "-p " + std::to_string(o.pid)
                : o.all            ? "-a"
                                   : "--cgroup " + safe_text(o.cgroup);

  timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  if (!o.quiet) {
    // A command or -p process ends the trace when it exits, as Ctrl-C does.
    const bool target_ends = command || o.pid > 0;
    char until[64];
    if (o.duration > 0)
      std::snprintf(until, sizeof until, " for %.1f s%s", o.duration, target_ends ? " or until it exits" : "");
    else std::snprintf(until, sizeof until, "%s", target_ends ? " until it exits or Ctrl-C" : " until Ctrl-C");
    std::fprintf(stderr, "forkscope: %s backend attached; tracing %s%s\n", run.backend.c_str(), info.target.c_str(),
                 until);
  }
  if (command) {
    if (int err = command->go(); err != 0) {
      command->try_reap();
      throw usage_error("cannot run " + safe_text(o.command[0]) + ": " + std::strerror(err));
    }
  }

  // Per-mapping attribution: each launching process's mappings (followed_mappings.h).
  FollowedMappings mappings(o.verbose);
  // Their huge-page backing, read after their launches (huge_pages.h).
  LauncherHugePages huge;
  const auto snapshot_launchers = [&](bool last) {
    huge.poll(
        tracer->read_huge_launchers(),
        [&](uint32_t tgid, uint64_t launches, std::optional<uint64_t> bytes) {
          if (o.verbose)
            std::fprintf(stderr, "forkscope: huge pages of pid %u read after %llu launches: %s\n", tgid,
                         static_cast<unsigned long long>(launches),
                         bytes ? (std::to_string(*bytes >> 10) + " KiB").c_str() : "not readable (ended)");
        },
        last);
    if (o.mappings) mappings.poll(*tracer);
  };

  bool target_gone = false;
  double last_progress = 0;
  const bool progress = !o.quiet && isatty(STDERR_FILENO);
  while (!stop->load()) {
    const double t = seconds_since(t0);
    if (o.duration > 0 && t >= o.duration) break;
    pollfd p{watch_fd, POLLIN, 0};
    // Every 100 ms at most: a launching process's snapshot waits no longer.
    int r = poll(&p, watch_fd >= 0 ? 1 : 0, 100);
    if ((r > 0 && (p.revents & (POLLIN | POLLHUP))) || (watch_fd < 0 && command && command->try_reap())) {
      target_gone = true;  // (no pidfd for the command: its exit is polled)
      break;
    }
    tracer->consume_samples();
    snapshot_launchers(false);
    if (progress && t - last_progress >= 1) {
      last_progress = t;
      uint64_t launches = 0, execs = 0;
      for (const TraceGroup& g : tracer->read_groups()) {
        KernelCounts k = tracer->read_counts(g.cell);
        launches += k.launches;
        execs += k.execs;
      }
      std::fprintf(stderr, "\rforkscope: %.0f s, %llu launches, %llu execs ", t,
                   static_cast<unsigned long long>(launches), static_cast<unsigned long long>(execs));
    }
  }
  if (progress) std::fprintf(stderr, "\n");
  info.seconds = seconds_since(t0);
  snapshot_launchers(true);  // the processes still there (-p, --cgroup, -a), pauses over
  // Children still finishing their exit are counted before the programs go.
  usleep(20000);
  // Programs detached first: the reads below must not see half of a child's
  // death (its teardown added, its exit_mm not yet).
  tracer->set_attached(false);
  run.cells = collect(*tracer, info.seconds, o.group_by, huge, o.mappings ? &mappings : nullptr);
  info.parents = tracer->read_parents();
  tracer.reset();  // detach before anything else happens
  if (watch_fd >= 0 && !command) close(watch_fd);
  if (command) {
    if (!target_gone && !o.quiet) std::fprintf(stderr, "forkscope: stopping %s\n", safe_text(o.command[0]).c_str());
    if (target_gone) command->try_reap();
    command->stop();
    info.command_exit = command->status();
  }
  run.trace = std::move(info);

  return run;
}

}  // namespace forkscope
