// --depth on this machine's kernel: exact counts and phases that add up at every
// depth, and the programs each depth attaches (only the syscalls that launch,
// exec, exit and wait run one; no allocation or lock program at --depth syscall).
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "bpf_objects.h"
#include "checks.h"
#include "forkscope/results.h"
#include "proc.h"

namespace forkscope {
namespace {

using test::run_forkscope;

std::string command_output(const std::string& cmd) {
  std::string text;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return text;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
  pclose(p);
  return text;
}

// The names of the programs behind the BPF links a process holds (bpftool).
std::set<std::string> attached_programs(pid_t pid) {
  std::set<std::string> names;
  for (uint32_t link : test::bpf_ids_of(pid).links) {
    const std::string l = command_output("bpftool -j link show id " + std::to_string(link) + " 2>/dev/null");
    if (l.empty()) continue;
    const auto prog = nlohmann::json::parse(l).value("prog_id", 0u);
    const std::string p = command_output("bpftool -j prog show id " + std::to_string(prog) + " 2>/dev/null");
    if (!p.empty()) names.insert(nlohmann::json::parse(p).value("name", std::string()));
  }
  return names;
}

std::set<std::string> expected_programs(const std::string& depth) {
  std::set<std::string> names = {"fs_task_newtask",       "fs_sched_process_fork", "fs_sched_process_exec",
                                 "fs_sched_process_free", "fs_sched_process_exit", "fs_sched_wakeup_new",
                                 "fs_sched_switch",       "fs_page_fault_user"};
  for (const char* s :
       {"clone", "clone3", "fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid"})
    names.insert(std::string("fs_enter_") + s);
  for (const char* s : {"clone", "clone3", "fork", "vfork", "execve", "execveat", "wait4", "waitid"})
    names.insert(std::string("fs_exit_") + s);
  if (depth != "syscall") names.insert({"fs_kmem_cache_alloc", "fs_mmap_lock_acquired", "fs_mmap_lock_released"});
  // libc_fork: trace's uprobes on the C library's fork(), at full depth, where the kernel has uprobes.
  if (depth == "full" && access("/sys/bus/event_source/devices/uprobe/type", F_OK) == 0)
    names.insert({"fs_libc_fork_entry", "fs_libc_fork_return"});
  return names;
}

// bpftool names a program by its BTF name, or by the kernel's 15 characters.
bool same_program(const std::string& full, const std::string& shown) {
  return shown == full || (shown.size() == 15 && full.rfind(shown, 0) == 0);
}

class DepthPrograms : public ::testing::TestWithParam<const char*> {};

TEST_P(DepthPrograms, TraceAttachesExactlyTheProgramsOfItsDepth) {
  if (!std::filesystem::exists("/sys/kernel/tracing/events/syscalls/sys_enter_clone"))
    GTEST_SKIP() << "no per-syscall tracepoints on this kernel: the raw sys_enter/sys_exit are used";
  const std::string depth = GetParam();
  const pid_t idle = fork();
  if (idle == 0) {
    execlp("sleep", "sleep", "60", nullptr);
    _exit(127);
  }
  const test::TempDir dir;
  const test::Started fs = test::start_forkscope({"trace", "--depth", depth, "-p", std::to_string(idle), "--out", dir});
  const bool tracing = test::wait_for([&] { return test::slurp(fs.err_path).find("tracing") != std::string::npos; },
                                      30);
  const std::set<std::string> shown = tracing ? attached_programs(fs.pid) : std::set<std::string>{};
  kill(fs.pid, SIGINT);
  const test::Outcome o = test::finish_forkscope(fs);
  kill(idle, SIGKILL);
  waitpid(idle, nullptr, 0);
  ASSERT_TRUE(tracing) << o.err;
  ASSERT_EQ(o.exit_code, 0) << o.err;
  const std::set<std::string> want = expected_programs(depth);
  EXPECT_EQ(shown.size(), want.size()) << "programs attached at --depth " << depth;
  for (const std::string& w : want) {
    bool found = false;
    for (const std::string& s : shown) found |= same_program(w, s);
    EXPECT_TRUE(found) << w << " not attached at --depth " << depth;
  }
  for (const std::string& s : shown) {
    bool known = false;
    for (const std::string& w : want) known |= same_program(w, s);
    EXPECT_TRUE(known) << s << " attached at --depth " << depth << " but not expected";
  }
  const forkscope::Run run = load_results(dir + "/results.json");
  EXPECT_EQ(run.depth, depth);
}

INSTANTIATE_TEST_SUITE_P(Depths, DepthPrograms, ::testing::Values("syscall", "process", "full"));

// run --depth D: exact launch counts, phases that add up, and only the phases of
// that depth, the others listed with the reason.
class DepthRun : public ::testing::TestWithParam<const char*> {};

TEST_P(DepthRun, CountsEveryLaunchAndMeasuresOnlyItsDepth) {
  constexpr uint64_t kIterations = 200;
  const std::string depth = GetParam();
  const test::TempDir dir;
  const test::Outcome o = run_forkscope({"run", "--depth", depth, "--modes", "fork,vfork,pthread", "--heap", "2M",
                                         "--iterations", std::to_string(kIterations), "--out", dir, "--quiet"});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  const forkscope::Run run = load_results(dir + "/results.json");
  EXPECT_EQ(run.depth, depth);
  ASSERT_EQ(run.cells.size(), 3u);
  for (const Cell& c : run.cells) {
    EXPECT_EQ(c.launches, kIterations) << c.mode;
    EXPECT_EQ(c.kernel.launches, kIterations) << c.mode << ": the BPF side saw a different count";
    EXPECT_EQ(c.kernel.lost, 0u) << c.mode;
    EXPECT_EQ(c.failed, 0u) << c.mode;
    for (const char* name : {"syscall", "wake_up_new_task", "teardown"}) {
      const Phase* p = c.phase(name);
      ASSERT_NE(p, nullptr) << c.mode << " " << name;
      EXPECT_EQ(p->count, kIterations) << c.mode << " " << name;
    }
    // A child that dies with no switch into it seen is counted apart (rare).
    const Phase* first_run = c.phase("child_first_run");
    ASSERT_NE(first_run, nullptr) << c.mode;
    EXPECT_EQ(first_run->count + c.kernel.first_run_missed, kIterations) << c.mode;
    const Phase* reap = c.phase("reap");
    if (c.mode != "pthread") {
      ASSERT_NE(reap, nullptr) << c.mode;
      EXPECT_EQ(reap->count, kIterations) << c.mode;
    }
    test::expect_phases_add_up(c);
    const bool process = depth == "process";
    EXPECT_EQ(c.phase("copy_process") != nullptr, process) << c.mode;
    EXPECT_EQ(c.phase("alloc_pid") != nullptr, process) << c.mode;
    EXPECT_EQ(c.phase("vma_setup"), nullptr) << c.mode << ": per-VMA work is for --depth full";
    EXPECT_EQ(c.phase("copy_page_range"), nullptr) << c.mode;
    if (c.mode == "fork") {
      EXPECT_EQ(c.phase("dup_mmap") != nullptr, process);
      EXPECT_EQ(c.phase("exit_mm") != nullptr, process);
      // Our programs' runs in the fork call: a handful at syscall depth.
      const Phase* sys = c.phase("syscall");
      uint64_t events = 0;
      for (const Phase& p : c.phases)
        if (p.path.rfind("syscall", 0) == 0) events += p.events;
      if (depth == "syscall") {
        EXPECT_LE(events, 5 * kIterations) << "programs run per fork at --depth syscall";
      }
      EXPECT_GE(events, 2 * sys->count) << "sys_enter and the wakeup at least";
    }
  }
  for (const PhaseAvailability& a : run.phases_available) {
    if (a.name == "vma_setup" || a.name == "copy_page_range" || (depth == "syscall" && a.name == "copy_process")) {
      EXPECT_EQ(a.reason, "not at --depth " + depth) << a.name;
    }
  }
  EXPECT_NE(o.out.find("--depth " + depth + ":"), std::string::npos)
      << "the report says what was not traced: " << o.out;
}

INSTANTIATE_TEST_SUITE_P(Depths, DepthRun, ::testing::Values("syscall", "process"));

// The calibration at --depth syscall, which has no allocation program to detach.
TEST(DepthRun, OverheadAndCalibrationAtSyscallDepth) {
  const test::TempDir dir;
  const test::Outcome o = run_forkscope({"run", "--depth", "syscall", "--overhead", "--modes", "fork", "--heap", "2M",
                                         "--iterations", "200", "--out", dir, "--quiet"});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  const forkscope::Run run = load_results(dir + "/results.json");
  ASSERT_TRUE(run.calibration.has_value());
  EXPECT_GT(run.calibration->events_per_launch, 1) << "sys_enter and the wakeup, at least";
  EXPECT_LT(run.calibration->events_per_launch, 6) << "a handful of runs per fork";
  EXPECT_EQ(run.calibration->ns_per_launch, 0) << "at --depth syscall the whole cost is priced per run";
  ASSERT_EQ(run.cells.size(), 1u);
  EXPECT_EQ(run.cells[0].kernel.launches, 200u);
  ASSERT_TRUE(run.cells[0].overhead.has_value());
  EXPECT_EQ(run.cells[0].overhead->untraced.n, 200u);
}

// trace -a --depth syscall: every fork of a test program, exactly, among every
// other task's.
TEST(DepthTrace, SystemWideSyscallDepthCountsEveryForkOfAProgram) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t worker = fork();
  if (worker == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    execl(FORK_ON_SIGNAL_BIN, "fork_on_signal", "waitpid", nullptr);
    _exit(127);
  }
  close(fds[1]);
  const test::TempDir dir;
  const test::Started fs = test::start_forkscope({"trace", "-a", "--depth", "syscall", "--out", dir});
  ASSERT_TRUE(test::wait_for([&] { return test::slurp(fs.err_path).find("tracing") != std::string::npos; }, 30))
      << test::slurp(fs.err_path);
  constexpr int kSignals = 30;
  for (int i = 0; i < kSignals; i++) {
    char byte;
    ASSERT_EQ(kill(worker, SIGUSR1), 0);
    ASSERT_EQ(read(fds[0], &byte, 1), 1) << "the worker did not fork for signal " << i;
  }
  kill(worker, SIGTERM);
  waitpid(worker, nullptr, 0);
  close(fds[0]);
  kill(fs.pid, SIGINT);
  const test::Outcome o = test::finish_forkscope(fs);
  ASSERT_EQ(o.exit_code, 0) << o.err;
  const forkscope::Run run = load_results(dir + "/results.json");
  EXPECT_EQ(run.depth, "syscall");
  uint64_t forks = 0;
  for (const Cell& c : run.cells) {
    if (c.comm != "fork_on_signal" || c.mode != "fork") continue;
    forks += c.launches;
    EXPECT_EQ(c.kernel.lost, 0u);
    for (const char* name : {"syscall", "teardown", "reap"}) {
      const Phase* p = c.phase(name);
      ASSERT_NE(p, nullptr) << name;
      EXPECT_EQ(p->count, c.launches) << name;
    }
    EXPECT_EQ(c.phase("copy_process"), nullptr);
    test::expect_phases_add_up(c);
  }
  EXPECT_EQ(forks, static_cast<uint64_t>(kSignals));
}

}  // namespace
}  // namespace forkscope
