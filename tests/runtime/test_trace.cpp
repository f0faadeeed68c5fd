// forkscope trace on this machine's kernel: a shell loop, a running process
// driven by signals, and what bad input does.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "bpf_objects.h"
#include "checks.h"
#include "forkscope/results.h"
#include "proc.h"

namespace forkscope {
namespace {

using test::run_forkscope;

uint64_t sum_launches(const Run& run, const std::string& comm, const std::string& kind = "") {
  uint64_t n = 0;
  for (const Cell& c : run.cells) n += c.comm == comm && (kind.empty() || c.mode == kind) ? c.launches : 0;
  return n;
}

// tests/runtime/fork_on_signal.c, started (in cgroup, when given); *ack reads one
// byte per fork it made.
pid_t start_worker(int* ack, const std::string& cgroup = "", const char* wait_with = "waitpid") {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    if (!cgroup.empty()) std::ofstream(cgroup + "/cgroup.procs") << getpid() << std::flush;
    execl(FORK_ON_SIGNAL_BIN, "fork_on_signal", wait_with, nullptr);
    _exit(127);
  }
  close(fds[1]);
  *ack = fds[0];
  return pid;
}

// Sends n SIGUSR1 to the worker, each once the fork for the one before is done.
::testing::AssertionResult signal_worker(pid_t worker, int ack, int n) {
  for (int i = 0; i < n; i++) {
    char byte;
    if (kill(worker, SIGUSR1) != 0 || read(ack, &byte, 1) != 1)
      return ::testing::AssertionFailure() << "the worker did not fork for signal " << i;
  }
  return ::testing::AssertionSuccess();
}

// The shell loop of the issue: 200 runs of /bin/true, each a launch and an exec.
class TraceShellLoop : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = test::make_temp_dir();
    std::tie(outcome_, bpf_) = test::run_watching_bpf(
        {"trace", "--out", dir_, "-q", "--", "sh", "-c", "for i in $(seq 200); do /bin/true; done"});
    if (outcome_.exit_code == 0) run_ = load_results(dir_ + "/results.json");
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }

  // The group that ran /bin/true: the sh cell with the most execs.
  static const Cell* loop_cell() {
    const Cell* best = nullptr;
    for (const Cell& c : run_.cells)
      if (c.comm == "sh" && c.launches > 0 && (!best || c.kernel.execs > best->kernel.execs)) best = &c;
    return best;
  }

  static inline std::string dir_;
  static inline test::Outcome outcome_;
  static inline test::BpfIds bpf_;
  static inline forkscope::Run run_;
};

TEST_F(TraceShellLoop, ReportsEveryLaunchOfTheShell) {
  ASSERT_EQ(outcome_.exit_code, 0) << outcome_.err;
  ASSERT_TRUE(run_.trace.has_value());
  EXPECT_EQ(run_.trace->command_exit, 0);
  EXPECT_NE(run_.trace->target.find("sh -c"), std::string::npos) << run_.trace->target;
  // 200 runs of /bin/true plus the $(seq 200) substitution.
  EXPECT_GE(sum_launches(run_, "sh"), 200u);
  EXPECT_LE(sum_launches(run_, "sh"), 202u);
  ASSERT_FALSE(run_.trace->parents.empty());
  EXPECT_EQ(run_.trace->parents[0].comm, "sh");
  EXPECT_GE(run_.trace->parents[0].launches, 200u);
  EXPECT_GE(run_.trace->parents[0].execs, 200u) << "each /bin/true's exec is credited to the sh that launched it";
  EXPECT_GT(bpf_.progs.size(), 0u) << "no BPF program was seen loaded";
}

TEST_F(TraceShellLoop, EveryExecHasItsPhases) {
  ASSERT_EQ(outcome_.exit_code, 0) << outcome_.err;
  const Cell* c = loop_cell();
  ASSERT_NE(c, nullptr);
  EXPECT_GE(c->kernel.execs, 200u);
  const Phase* exec = c->phase("execve");
  ASSERT_NE(exec, nullptr);
  EXPECT_EQ(exec->count, c->kernel.execs);
  EXPECT_EQ(exec->path, "execve");
  for (const char* name : {"bprm_setup", "begin_new_exec", "exec_load"}) {
    const Phase* p = c->phase(name);
    ASSERT_NE(p, nullptr) << name;
    EXPECT_EQ(p->path, std::string("execve;") + name);
    EXPECT_EQ(p->count, exec->count) << name;
    EXPECT_GT(p->total_ns, 0u) << name;
  }
  // Every new image's first instruction faults.
  const Phase* first = c->phase("exec_first_insn");
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->count, exec->count);
  // Each child of the loop exits and is reaped by the shell.
  const Phase* teardown = c->phase("teardown");
  const Phase* reap = c->phase("reap");
  ASSERT_NE(teardown, nullptr);
  ASSERT_NE(reap, nullptr);
  EXPECT_GE(teardown->count, 200u);
  EXPECT_GE(reap->count, 200u);
  EXPECT_GT(c->kernel.mm_vmas, 0u);
  EXPECT_GT(c->kernel.mm_rss_bytes, 0u);
  EXPECT_GT(c->kernel.mm_pgtables_bytes, 0u);
  for (const Cell& cell : run_.cells) test::expect_phases_add_up(cell);
}

TEST_F(TraceShellLoop, LeavesNoBpfObjectBehind) {
  ASSERT_EQ(outcome_.exit_code, 0) << outcome_.err;
  ASSERT_FALSE(bpf_.progs.empty()) << "the watcher saw no program: nothing to check";
  const test::BpfIds left = test::left_after_grace(bpf_);
  EXPECT_TRUE(left.empty()) << test::describe(left) << " still loaded";
}

// -p: a running process that forks once per SIGUSR1; exactly that many launches,
// each child torn down and reaped (by wait4, or by waitid, whose return is 0).
class TracePid : public ::testing::TestWithParam<const char*> {};

TEST_P(TracePid, CountsExactlyTheSignalsSent) {
  int ack = -1;
  const pid_t worker = start_worker(&ack, "", GetParam());
  ASSERT_GT(worker, 0);
  const test::TempDir dir;
  const test::Started fs = test::start_forkscope({"trace", "-p", std::to_string(worker), "--out", dir});
  ASSERT_TRUE(test::wait_for([&] { return test::slurp(fs.err_path).find("tracing") != std::string::npos; }, 30))
      << test::slurp(fs.err_path);
  constexpr int kSignals = 25;
  ASSERT_TRUE(signal_worker(worker, ack, kSignals));
  kill(worker, SIGTERM);
  waitpid(worker, nullptr, 0);
  close(ack);
  const test::Outcome o = test::finish_forkscope(fs);  // ends because the process did
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_NE(o.err.find("tracing -p " + std::to_string(worker) + " until it exits or Ctrl-C\n"), std::string::npos)
      << "says both ways it ends: " << o.err;
  const forkscope::Run run = load_results(dir + "/results.json");
  ASSERT_TRUE(run.trace.has_value());
  EXPECT_EQ(run.trace->target, "-p " + std::to_string(worker));
  // Its forks; a sanitizer build's runtime may add a launch of its own (LSan's
  // clone at exit), which is another kind.
  EXPECT_EQ(sum_launches(run, "fork_on_signal", "fork"), static_cast<uint64_t>(kSignals));
  for (const Cell& c : run.cells) {
    if (c.comm != "fork_on_signal" || c.mode != "fork") continue;
    EXPECT_EQ(c.kernel.lost, 0u);
    for (const char* name : {"copy_process", "teardown", "reap"}) {
      const Phase* p = c.phase(name);
      ASSERT_NE(p, nullptr) << name;
      EXPECT_EQ(p->count, static_cast<uint64_t>(kSignals)) << name;
    }
    test::expect_phases_add_up(c);
  }
  ASSERT_FALSE(run.trace->parents.empty());
  EXPECT_EQ(run.trace->parents[0].pid, worker);
  // Every launch of the worker, of any kind, is its own (a sanitizer build adds one).
  EXPECT_EQ(run.trace->parents[0].launches, sum_launches(run, "fork_on_signal"));
}

INSTANTIATE_TEST_SUITE_P(Waits, TracePid, ::testing::Values("waitpid", "waitid"));

// --cgroup: the worker's launches are followed through its cgroup; Ctrl-C ends the trace.
TEST(TraceCgroup, CountsTheLaunchesOfTasksInTheCgroup) {
  const std::string root = test::cgroup2_root();
  if (root.empty()) GTEST_SKIP() << "no cgroup v2 hierarchy mounted";
  const std::string cg = root + "/forkscope-test-" + std::to_string(getpid());
  ASSERT_EQ(mkdir(cg.c_str(), 0755), 0) << cg;
  int ack = -1;
  const pid_t worker = start_worker(&ack, cg);
  ASSERT_GT(worker, 0);
  const test::TempDir dir;
  const test::Started fs = test::start_forkscope({"trace", "--cgroup", cg, "--out", dir});
  ASSERT_TRUE(test::wait_for([&] { return test::slurp(fs.err_path).find("tracing") != std::string::npos; }, 30))
      << test::slurp(fs.err_path);
  constexpr int kSignals = 12;
  ASSERT_TRUE(signal_worker(worker, ack, kSignals));
  kill(fs.pid, SIGINT);
  const test::Outcome o = test::finish_forkscope(fs);
  kill(worker, SIGTERM);
  waitpid(worker, nullptr, 0);
  close(ack);
  rmdir(cg.c_str());
  ASSERT_EQ(o.exit_code, 0) << o.err;
  const forkscope::Run run = load_results(dir + "/results.json");
  EXPECT_EQ(run.trace->target, "--cgroup " + cg);
  EXPECT_EQ(sum_launches(run, "fork_on_signal", "fork"), static_cast<uint64_t>(kSignals));
}

// --duration ends the trace; a command still running then is ended and reaped.
TEST(TraceDuration, EndsTheCommandStillRunning) {
  const test::TempDir dir;
  const std::string marker = "forkscope-test-sleep-" + std::to_string(getpid());
  // exec -a names the sleep so that only this test's process is looked for.
  const test::Outcome o = run_forkscope(
      {"trace", "--duration", "1", "--out", dir, "-q", "--", "bash", "-c", "exec -a " + marker + " sleep 60"});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  const forkscope::Run run = load_results(dir + "/results.json");
  ASSERT_TRUE(run.trace.has_value());
  EXPECT_GE(run.trace->seconds, 1.0);
  EXPECT_LT(run.trace->seconds, 10.0);
  EXPECT_EQ(run.trace->command_exit, -1) << "ended by SIGTERM";
  // "[f]orkscope-...": the pattern does not match the shell running pgrep.
  EXPECT_NE(system(("pgrep -f '[f]" + marker.substr(1) + "' >/dev/null").c_str()), 0)
      << "the command outlived the trace";
}

// Bad input: one line, exit 2, nothing written.
TEST(TraceUsage, BadTargetsExitTwoAndWriteNothing) {
  const test::TempDir dir;
  const std::vector<std::vector<std::string>> cases = {
      {"trace", "--out", dir},
      {"trace", "-a", "-p", "1", "--out", dir},
      {"trace", "-p", "999999999", "--out", dir},
      {"trace", "--cgroup", "/tmp", "--out", dir},
      {"trace", "--duration", "-1", "-a", "--out", dir},
      {"trace", "--group-by", "uid", "-a", "--out", dir},
      {"trace", "--out", dir, "--", "/nonexistent/forkscope-no-such-command"},
      {"trace", "--out", dir, "--", "/tmp"},  // a directory is not a program
  };
  for (const auto& args : cases) {
    const test::Outcome o = run_forkscope(args);
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    EXPECT_EQ(o.exit_code, 2) << joined << "\n" << o.err;
    EXPECT_EQ(test::count_lines(o.err), 1) << joined << "\n" << o.err;
    EXPECT_FALSE(std::filesystem::exists(dir + "/results.json")) << joined;
  }
}

}  // namespace
}  // namespace forkscope
