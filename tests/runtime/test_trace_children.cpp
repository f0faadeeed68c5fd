// forkscope trace follows each launched child to its end: children in pid
// namespaces, children killed instead of exiting, and thousands alive at once; and
// a process to its last thread's end, not its leader's.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <string>
#include <vector>

#include "bpf_objects.h"
#include "checks.h"
#include "forkscope/results.h"
#include "proc.h"

namespace forkscope {
namespace {

struct Counts {
  uint64_t launches = 0, teardown = 0, reap = 0, lost = 0;
};

// The launches of comm's groups (every kind but threads, which reap themselves)
// and their children's teardowns and reaps.
Counts counts_of(const Run& run, const std::string& comm) {
  Counts n;
  for (const Cell& c : run.cells) {
    if (c.comm != comm) continue;
    n.launches += c.launches;
    n.lost += c.kernel.lost;
    if (const Phase* p = c.phase("teardown")) n.teardown += p->count;
    if (const Phase* p = c.phase("reap")) n.reap += p->count;
  }
  return n;
}

Run trace(const std::vector<std::string>& command) {
  const test::TempDir dir;
  std::vector<std::string> args = {"trace", "--out", dir, "-q", "--"};
  args.insert(args.end(), command.begin(), command.end());
  const test::Outcome o = test::run_forkscope(args);
  EXPECT_EQ(o.exit_code, 0) << o.err;
  if (o.exit_code != 0) return {};
  Run run = load_results(dir + "/results.json");
  EXPECT_TRUE(run.trace.has_value());
  if (run.trace) {
    EXPECT_EQ(run.trace->command_exit, 0) << "the workload failed";
  }
  for (const Cell& c : run.cells) test::expect_phases_add_up(c);
  return run;
}

// A shell loop of kLoop vforks (/bin/true) and kLoop forks (a subshell), each waited.
constexpr int kLoop = 40;
std::string shell_loop() {
  return "i=0; while [ $i -lt " + std::to_string(kLoop) + " ]; do /bin/true; (exit 0); i=$((i+1)); done";
}

bool have_unshare() { return system("unshare --pid --fork --mount-proc true >/dev/null 2>&1") == 0; }

// wait4 and waitid answer with a pid of the waiter's namespace: each reap is
// still matched to its child, one namespace deep and two.
TEST(TraceNamespace, ReapsEveryChildInAPidNamespace) {
  if (!have_unshare()) GTEST_SKIP() << "unshare --pid --fork --mount-proc fails here (util-linux, CAP_SYS_ADMIN)";
  for (int depth : {1, 2}) {
    SCOPED_TRACE(testing::Message() << depth << " pid namespace(s) deep");
    std::vector<std::string> cmd;
    for (int i = 0; i < depth; i++) cmd.insert(cmd.end(), {"unshare", "--pid", "--fork", "--mount-proc"});
    cmd.insert(cmd.end(), {"sh", "-c", shell_loop()});
    const forkscope::Run run = trace(cmd);
    const Counts sh = counts_of(run, "sh");
    EXPECT_EQ(sh.launches, 2u * kLoop);
    EXPECT_EQ(sh.lost, 0u);
    EXPECT_EQ(sh.teardown, sh.launches);
    EXPECT_EQ(sh.reap, sh.launches) << "reaps inside the namespace";
    // Each unshare's child: pid 1 of the namespace it made, reaped from outside it.
    const Counts unshare = counts_of(run, "unshare");
    EXPECT_EQ(unshare.launches, static_cast<uint64_t>(depth));
    EXPECT_EQ(unshare.teardown, unshare.launches);
    EXPECT_EQ(unshare.reap, unshare.launches);
  }
}

// waitid names the reaped child in its siginfo, also by its namespace pid.
TEST(TraceNamespace, ReapsByWaitidInAPidNamespace) {
  if (!have_unshare()) GTEST_SKIP() << "unshare --pid --fork --mount-proc fails here (util-linux, CAP_SYS_ADMIN)";
  const char* python = "/usr/bin/python3";  // not a wrapper (pyenv's shims are bash scripts)
  if (system((std::string(python) + " -c pass >/dev/null 2>&1").c_str()) != 0)
    GTEST_SKIP() << "no /usr/bin/python3 to call waitid";
  const std::string loop = "import os\nfor i in range(" + std::to_string(kLoop) +
                           "):\n    p = os.fork()\n    if p == 0: os._exit(0)\n"
                           "    os.waitid(os.P_PID, p, os.WEXITED)\n";
  const forkscope::Run run = trace({"unshare", "--pid", "--fork", "--mount-proc", python, "-c", loop});
  const Counts py = counts_of(run, "python3");
  EXPECT_EQ(py.launches, static_cast<uint64_t>(kLoop));
  EXPECT_EQ(py.lost, 0u);
  EXPECT_EQ(py.teardown, py.launches);
  EXPECT_EQ(py.reap, py.launches) << "reaps by waitid inside the namespace";
}

// Children that never call exit: SIGKILL ends them.  Each is torn down and reaped.
TEST(TraceKilled, TearsDownAndReapsKilledChildren) {
  constexpr int kChildren = 8;
  const forkscope::Run run = trace({LIVE_CHILDREN_BIN, "lc_kill", std::to_string(kChildren), "kill"});
  const Counts n = counts_of(run, "lc_kill");
  EXPECT_EQ(n.launches, static_cast<uint64_t>(kChildren));
  EXPECT_EQ(n.lost, 0u);
  EXPECT_EQ(n.teardown, static_cast<uint64_t>(kChildren));
  EXPECT_EQ(n.reap, static_cast<uint64_t>(kChildren));
}

// Threads ended by the main thread's exit_group: each torn down (threads reap
// themselves: no reap).
TEST(TraceKilled, TearsDownThreadsEndedByExitGroup) {
  constexpr int kThreads = 5;
  const forkscope::Run run = trace({LIVE_CHILDREN_BIN, "lc_threads", std::to_string(kThreads), "threads"});
  const Counts n = counts_of(run, "lc_threads");
  EXPECT_EQ(n.launches, static_cast<uint64_t>(kThreads));
  EXPECT_EQ(n.lost, 0u);
  EXPECT_EQ(n.teardown, static_cast<uint64_t>(kThreads));
  EXPECT_EQ(n.reap, 0u);
}

// 5,000 children alive at once, then released: each torn down and reaped, or
// counted lost (none is dropped silently); also inside a pid namespace, where
// their reaps are matched by namespace pid.
TEST(TraceLiveChildren, FollowsThousandsAliveAtOnce) {
  constexpr int kChildren = 5000;
  for (bool ns : {false, true}) {
    SCOPED_TRACE(ns ? "in a pid namespace" : "no namespace");
    if (ns && !have_unshare()) continue;  // ReapsEveryChildInAPidNamespace says why
    std::vector<std::string> cmd;
    if (ns) cmd = {"unshare", "--pid", "--fork"};
    cmd.insert(cmd.end(), {LIVE_CHILDREN_BIN, "lc_live", std::to_string(kChildren), "release"});
    const forkscope::Run run = trace(cmd);
    const Counts n = counts_of(run, "lc_live");
    EXPECT_EQ(n.launches, static_cast<uint64_t>(kChildren));
    EXPECT_EQ(n.teardown + n.lost, static_cast<uint64_t>(kChildren));
    EXPECT_EQ(n.reap + n.lost, static_cast<uint64_t>(kChildren));
  }
}

// The leader ends with pthread_exit, another thread forks afterwards: the command
// is followed until its last thread ends.
TEST(TraceLeaderGone, FollowsTheCommandUntilItsLastThread) {
  constexpr int kForks = 10;
  const forkscope::Run run = trace({PTHREAD_EXIT_FORK_BIN, std::to_string(kForks)});
  const Counts n = counts_of(run, "pthread_exit_fo");
  uint64_t forks = 0;
  for (const Cell& c : run.cells) forks += c.comm == "pthread_exit_fo" && c.mode == "fork" ? c.launches : 0;
  EXPECT_EQ(forks, static_cast<uint64_t>(kForks));
  EXPECT_EQ(n.reap, static_cast<uint64_t>(kForks));
  ASSERT_TRUE(run.trace.has_value());
  EXPECT_GE(run.trace->seconds, kForks * 0.02) << "the trace ended before the forks were made";
}

// -p of a process whose leader is already a zombie while a thread lives on: it is
// followed (not refused as exited) until that thread ends, and every fork counted.
TEST(TraceLeaderGone, FollowsAPidWhoseLeaderExited) {
  constexpr int kForks = 10;
  const pid_t worker = fork();
  if (worker == 0) {
    execl(PTHREAD_EXIT_FORK_BIN, "pthread_exit_fork", std::to_string(kForks).c_str(), "wait", nullptr);
    _exit(127);
  }
  const std::string stat = "/proc/" + std::to_string(worker) + "/stat";
  const bool zombie_leader = test::wait_for([&] { return test::slurp(stat).find(") Z ") != std::string::npos; }, 10);
  const test::TempDir dir;
  const test::Started fs = test::start_forkscope({"trace", "-p", std::to_string(worker), "--out", dir});
  const bool tracing = zombie_leader &&
                       test::wait_for([&] { return test::slurp(fs.err_path).find("tracing") != std::string::npos; },
                                      30);
  if (tracing) kill(worker, SIGUSR1);
  // No signal to forkscope: the worker's last thread ending ends the trace.
  const bool ended = test::wait_for(
      [&] {
        siginfo_t si{};  // WNOWAIT: finish_forkscope reaps it
        return waitid(P_PID, static_cast<id_t>(fs.pid), &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == fs.pid;
      },
      30);
  if (!ended) kill(fs.pid, SIGINT);
  kill(worker, SIGKILL);
  waitpid(worker, nullptr, 0);
  const test::Outcome o = test::finish_forkscope(fs);
  ASSERT_TRUE(zombie_leader) << "the worker's leader never became a zombie";
  ASSERT_TRUE(tracing) << o.err;
  EXPECT_TRUE(ended) << "trace -p did not end when the last thread did";
  ASSERT_EQ(o.exit_code, 0) << o.err;
  const forkscope::Run run = load_results(dir + "/results.json");
  uint64_t forks = 0;
  for (const Cell& c : run.cells) forks += c.comm == "pthread_exit_fo" && c.mode == "fork" ? c.launches : 0;
  EXPECT_EQ(forks, static_cast<uint64_t>(kForks));
}

bool have_uprobes() { return access("/sys/bus/event_source/devices/uprobe/type", F_OK) == 0; }

// fork()'s user-space part: a pthread_atfork prepare handler that spins 2 ms runs
// before the syscall.  Each fork's libc_fork is seen once, its prepare part holds
// the spin, and libc_fork's self time is the syscall's.
TEST(TraceLibcFork, TimesTheForkHandlersAroundTheSyscall) {
  if (!have_uprobes()) GTEST_SKIP() << "no uprobe PMU on this kernel: libc_fork cannot be measured";
  constexpr int kForks = 10;
  constexpr double kSpinNs = 2e6;
  const forkscope::Run run = trace({ATFORK_FORK_BIN, std::to_string(kForks), "2000"});
  const Cell* fork = nullptr;
  for (const Cell& c : run.cells)
    if (c.comm == "atfork_fork" && c.mode == "fork") fork = &c;
  ASSERT_NE(fork, nullptr);
  EXPECT_EQ(fork->launches, static_cast<uint64_t>(kForks));
  const Phase* libc = fork->phase("libc_fork");
  const Phase* prepare = fork->phase("fork_prepare");
  const Phase* parent = fork->phase("fork_parent");
  const Phase* sys = fork->phase("syscall");
  ASSERT_TRUE(libc && prepare && parent && sys) << "libc_fork's phases missing";
  EXPECT_EQ(libc->count, static_cast<uint64_t>(kForks));
  EXPECT_EQ(prepare->count, static_cast<uint64_t>(kForks));
  EXPECT_EQ(parent->count, static_cast<uint64_t>(kForks));
  EXPECT_GE(prepare->mean_ns, kSpinNs) << "the prepare handler's spin is inside fork_prepare";
  EXPECT_LT(prepare->mean_ns, libc->mean_ns);
  // Its self time is the syscall, which sits between the two parts.
  EXPECT_EQ(prepare->path, "libc_fork;fork_prepare");
  EXPECT_NEAR(static_cast<double>(libc->self_ns) / static_cast<double>(libc->count), sys->mean_ns,
              sys->mean_ns * 0.05 + 1000);
  for (const PhaseAvailability& a : run.phases_available) {
    if (a.name == "libc_fork") {
      EXPECT_EQ(a.source, "uprobe");
    }
  }
}

}  // namespace
}  // namespace forkscope
