// Runtime lane: forkscope leaves the machine as it found it and never misleads,
// whether it is interrupted or killed, its launches fail, other processes fork
// beside it, a directory is hostile or the kernel lacks something.
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "forkscope/results.h"
#include "forkscope/size.h"
#include "bpf_objects.h"
#include "proc.h"

namespace forkscope {
namespace {

namespace fs = std::filesystem;
using test::bpf_ids_of;
using test::BpfIds;
using test::ChildSetup;
using test::finish_forkscope;
using test::Outcome;
using test::run_forkscope;
using test::slurp;
using test::start_forkscope;
using test::Started;
using test::TempDir;
using test::wait_for;

std::set<std::string> pinned() {
  std::set<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator("/sys/fs/bpf", ec)) names.insert(e.path().string());
  return names;
}

// While alive, orphans of the forkscope this test started become its children
// instead of init's, so a child forkscope failed to reap can be seen.
class Subreaper {
 public:
  Subreaper() { prctl(PR_SET_CHILD_SUBREAPER, 1); }
  ~Subreaper() {
    kill_all(children());
    prctl(PR_SET_CHILD_SUBREAPER, 0);
  }

  // Children of this process, zombies included.
  static std::vector<pid_t> children() {
    std::vector<pid_t> out;
    std::error_code ec;
    for (const auto& task : fs::directory_iterator("/proc/self/task", ec)) {
      std::istringstream in(slurp(task.path().string() + "/children"));
      for (pid_t pid; in >> pid;) out.push_back(pid);
    }
    return out;
  }

  static void kill_all(const std::vector<pid_t>& pids) {
    for (pid_t pid : pids) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
};

// A sweep long enough to interrupt: cells of a second, progress one line per
// cell.  posix_spawn's child execs, so the runner spends much of each launch in
// waitpid, the call a signal interrupts.
std::vector<std::string> long_sweep(const std::string& out) {
  return {"run",
          "--modes",
          "posix_spawn",
          "--heap",
          "0,1M,2M,3M,4M,5M",
          "--iterations",
          "1000000",
          "--cell-seconds",
          "1",
          "--warmup",
          "0",
          "--out",
          out};
}

// Started, and into its second cell: launching, with a finished cell to save.
bool launching(const Started& s) {
  return wait_for([&] { return slurp(s.err_path).find("[1/") != std::string::npos; }, 60);
}

// For a failure message: what a process printed and where in the kernel it waits.
std::string whereabouts(const Started& s) {
  const std::string proc = "/proc/" + std::to_string(s.pid);
  return "stderr: " + slurp(s.err_path) + "\nwchan: " + slurp(proc + "/wchan") + "\nstack:\n" + slurp(proc + "/stack");
}

class Interrupted : public ::testing::TestWithParam<int> {};

TEST_P(Interrupted, ReapsEveryChildDetachesAndSavesTheCellsDone) {
  const int sig = GetParam();
  TempDir dir;
  Subreaper reaper;
  const Started s = start_forkscope(long_sweep(dir.str()));
  ASSERT_TRUE(launching(s)) << whereabouts(s);
  const BpfIds ours = bpf_ids_of(s.pid);
  ASSERT_FALSE(ours.progs.empty() || ours.links.empty()) << "forkscope holds its programs while it runs";
  // Aimed at a launch in flight: the runner waiting for its child (wait4 is
  // syscall 61), where the signal interrupts the wait.
  const std::string syscall = "/proc/" + std::to_string(s.pid) + "/syscall";
  wait_for([&] { return slurp(syscall).rfind("61 ", 0) == 0; }, 5);
  ASSERT_EQ(kill(s.pid, sig), 0);
  const Outcome o = finish_forkscope(s);

  EXPECT_EQ(o.exit_code, 1) << o.err;
  EXPECT_NE(o.err.find("interrupted"), std::string::npos) << o.err;
  const std::vector<pid_t> orphans = Subreaper::children();
  EXPECT_TRUE(orphans.empty()) << orphans.size() << " children of forkscope were left behind, not reaped";
  const forkscope::Run run = load_results(dir / "results.json");
  EXPECT_TRUE(run.incomplete);
  ASSERT_GE(run.cells.size(), 2u) << "the finished cell and the one interrupted";
  EXPECT_LT(run.cells.size(), 6u);
  for (const Cell& c : run.cells) {
    SCOPED_TRACE(format_size(c.heap_bytes));
    EXPECT_GT(c.launches, 0u);
    EXPECT_EQ(c.failed, 0u) << c.failed_errno << ": the signal must not turn the launch in flight into a failure";
    EXPECT_EQ(c.kernel.launches, c.launches) << "the launch in flight completed on both sides";
  }
  const BpfIds left = left_after_grace(ours);
  EXPECT_TRUE(left.empty()) << describe(left) << " of forkscope's still loaded";
}

// SIGHUP (the terminal closed) and SIGQUIT end a run as SIGTERM does.
INSTANTIATE_TEST_SUITE_P(Signals, Interrupted, ::testing::Values(SIGINT, SIGTERM, SIGHUP, SIGQUIT),
                         [](const auto& info) { return std::string(sigabbrev_np(info.param)); });

// A stop signal while the programs load: the documented exit 1, no output, and
// nothing made (the default action would be exit 130 or 143).
class InterruptedAtStart : public ::testing::TestWithParam<int> {};

TEST_P(InterruptedAtStart, ExitsOneAndLeavesNothing) {
  const int sig = GetParam();
  TempDir dir;
  const std::string out = dir / "out";
  const Started s = start_forkscope(long_sweep(out));
  // The first program loaded: the rest are still loading.
  ASSERT_TRUE(wait_for([&] { return !bpf_ids_of(s.pid).progs.empty(); }, 60)) << whereabouts(s);
  ASSERT_EQ(kill(s.pid, sig), 0);
  const Outcome o = finish_forkscope(s);
  // Non-tty progress shows a cell only once it ends: the sweep's own message says
  // the signal came after the first launch instead.
  if (o.err.find("interrupted; ") != std::string::npos)
    GTEST_SKIP() << "the signal came after the first launch, not during start-up: " << o.err;
  EXPECT_EQ(o.exit_code, 1) << o.err;
  EXPECT_EQ(o.out, "");
  EXPECT_NE(o.err.find("interrupted while starting"), std::string::npos) << o.err;
  EXPECT_FALSE(fs::exists(out)) << "nothing is made when nothing was measured";
}

INSTANTIATE_TEST_SUITE_P(Signals, InterruptedAtStart, ::testing::Values(SIGINT, SIGTERM),
                         [](const auto& info) { return std::string(sigabbrev_np(info.param)); });

// nohup and a shell's background jobs start forkscope with SIGINT ignored: it
// stays ignored; SIGTERM still ends the run with its results.
TEST(InheritedIgnore, SigintStaysIgnored) {
  TempDir dir;
  ChildSetup setup;
  setup.before_exec = [] { return signal(SIGINT, SIG_IGN) != SIG_ERR; };
  const Started s = start_forkscope(long_sweep(dir.str()), setup);
  ASSERT_TRUE(launching(s)) << whereabouts(s);
  ASSERT_EQ(kill(s.pid, SIGINT), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(waitpid(s.pid, nullptr, WNOHANG), 0) << "an ignored SIGINT ended forkscope";
  EXPECT_EQ(slurp(s.err_path).find("interrupted"), std::string::npos);
  ASSERT_EQ(kill(s.pid, SIGTERM), 0);
  const Outcome o = finish_forkscope(s);
  EXPECT_EQ(o.exit_code, 1) << o.err;
  EXPECT_TRUE(load_results(dir / "results.json").incomplete);
}

// The second Ctrl-C ends forkscope at once, as SIGINT's default action does, but
// not before the launch in flight is reaped: no child is left to forkscope's parent.
TEST(SecondSigint, ReapsTheChildInFlight) {
  TempDir dir;
  Subreaper reaper;
  std::vector<std::string> args = long_sweep(dir.str());
  args[2] = "fork-exec";
  const Started s = start_forkscope(args);
  ASSERT_TRUE(launching(s)) << whereabouts(s);
  const std::string syscall = "/proc/" + std::to_string(s.pid) + "/syscall";
  wait_for([&] { return slurp(syscall).rfind("61 ", 0) == 0; }, 5);
  ASSERT_EQ(kill(s.pid, SIGINT), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  ASSERT_EQ(kill(s.pid, SIGINT), 0);
  const Outcome o = finish_forkscope(s);
  EXPECT_TRUE(o.exit_code == 128 + SIGINT || o.exit_code == 1) << o.exit_code << " " << o.err;
  const std::vector<pid_t> orphans = Subreaper::children();
  EXPECT_TRUE(orphans.empty()) << orphans.size() << " children of forkscope were left behind, not reaped";
}

TEST(Killed, LeavesNothingOfOursBehind) {
  TempDir dir;
  Subreaper reaper;
  const std::set<std::string> pinned_before = pinned();
  const Started s = start_forkscope(long_sweep(dir.str()));
  ASSERT_TRUE(launching(s)) << whereabouts(s);
  const BpfIds ours = bpf_ids_of(s.pid);
  ASSERT_FALSE(ours.progs.empty() || ours.links.empty());
  ASSERT_EQ(kill(s.pid, SIGKILL), 0);
  EXPECT_EQ(finish_forkscope(s).exit_code, 128 + SIGKILL);

  // A child in flight outlives its parent for a moment, then exits by itself.
  EXPECT_TRUE(wait_for(
      [] {
        while (waitpid(-1, nullptr, WNOHANG) > 0) {
        }
        return Subreaper::children().empty();
      },
      5))
      << "a child of the killed forkscope is still running";
  const BpfIds left = left_after_grace(ours);
  EXPECT_TRUE(left.empty()) << describe(left) << " of the killed forkscope still loaded";
  EXPECT_EQ(pinned(), pinned_before) << "forkscope pins nothing";
  // results.json is saved after every cell: a kill leaves the cells finished by
  // then (none, if it came during the first), whole and marked incomplete, and no
  // temporary file.
  for (const auto& e : fs::directory_iterator(dir.str())) {
    ASSERT_EQ(e.path().filename(), "results.json") << "only the results of the finished cells";
    const forkscope::Run run = load_results(e.path());
    EXPECT_TRUE(run.incomplete);
    EXPECT_FALSE(run.cells.empty());
    for (const Cell& c : run.cells) EXPECT_GT(c.launches, 0u);
  }
}

// A runner thread never has more than one launch alive: it reaps each before
// the next.  With --threads N, N launches at most.
TEST(Resources, AtMostOneChildAlivePerRunnerThread) {
  for (int threads : {1, 2}) {
    SCOPED_TRACE(testing::Message() << "--threads " << threads);
    TempDir dir;
    Subreaper reaper;
    const Started s = start_forkscope({"run", "--modes", "fork,vfork,clone,clone-vm,pthread,posix_spawn",
                                       "--clone-flags", "VM,FS,FILES,SIGHAND,THREAD", "--heap", "0", "--iterations",
                                       "400", "--warmup", "0", "--threads", std::to_string(threads), "--out", dir.str(),
                                       "--quiet"});
    const std::string proc = "/proc/" + std::to_string(s.pid);
    size_t most_children = 0, most_threads = 0, polls = 0;
    while (test::running(s.pid)) {
      size_t children = 0;
      std::error_code ec;
      for (const auto& task : fs::directory_iterator(proc + "/task", ec)) {
        std::istringstream in(slurp(task.path().string() + "/children"));
        for (pid_t pid; in >> pid;) children++;
      }
      const std::string status = slurp(proc + "/status");
      const size_t at = status.find("Threads:");
      const size_t tasks = at == std::string::npos ? 0 : std::strtoul(status.c_str() + at + 8, nullptr, 10);
      most_children = std::max(most_children, children);
      most_threads = std::max(most_threads, tasks);
      polls++;
    }
    const Outcome o = finish_forkscope(s);
    ASSERT_EQ(o.exit_code, 0) << o.err;
    EXPECT_GT(polls, 100u);
    EXPECT_LE(most_children, static_cast<size_t>(threads)) << "child processes alive at once";
    // pthread_join returns when the thread has cleared its tid, a moment before the
    // kernel has finished tearing it down: the runner, the thread it launched and
    // the previous one still leaving.
    EXPECT_LE(most_threads, static_cast<size_t>(3 * threads)) << "threads alive at once";
    EXPECT_TRUE(Subreaper::children().empty());
    const forkscope::Run run = load_results(dir / "results.json");
    ASSERT_EQ(run.cells.size(), 7u);
    EXPECT_GT(run.bpf_map_bytes, 0u) << "the BPF maps' size is recorded";
  }
}

// A pids cgroup of the test's own (cgroup v2, or the v1 pids hierarchy), with a
// limit the test moves; removed at the end.
class PidsCgroup {
 public:
  PidsCgroup() {
    for (const std::string root : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
      if (slurp(root + "/cgroup.controllers").find("pids") == std::string::npos) continue;
      if (slurp(root + "/cgroup.subtree_control").find("pids") == std::string::npos)
        write(root + "/cgroup.subtree_control", "+pids");
      make(root);
      return;
    }
    if (fs::exists("/sys/fs/cgroup/pids/cgroup.procs")) make("/sys/fs/cgroup/pids");
  }
  ~PidsCgroup() {
    if (!dir_.empty()) rmdir(dir_.c_str());
  }
  bool ok() const { return !dir_.empty(); }
  bool set_max(const std::string& max) const { return write(dir_ + "/pids.max", max); }
  // Run in the child before exec: the process and what it launches count against the limit.
  bool join() const { return write(dir_ + "/cgroup.procs", "0"); }
  // Task creations refused by the limit so far.
  uint64_t refusals() const {
    const std::string events = slurp(dir_ + "/pids.events");
    const size_t at = events.find("max ");
    return at == std::string::npos ? 0 : std::strtoull(events.c_str() + at + 4, nullptr, 10);
  }

 private:
  static bool write(const std::string& path, const std::string& value) {
    std::ofstream out(path);
    out << value << std::flush;
    return static_cast<bool>(out);
  }
  void make(const std::string& root) {
    const std::string dir = root + "/forkscope-test-" + std::to_string(getpid());
    if (mkdir(dir.c_str(), 0755) == 0) dir_ = dir;
  }
  std::string dir_;
};

void expect_failures_accounted(const Cell& c) {
  SCOPED_TRACE(c.mode);
  EXPECT_EQ(c.failed_errno, "EAGAIN");
  EXPECT_EQ(c.kernel.failed, c.failed) << "the kernel saw the same failed syscalls";
  EXPECT_EQ(c.kernel.launches, c.launches);
  const auto failed_syscall = std::find_if(c.failed_phases.begin(), c.failed_phases.end(),
                                           [](const Phase& p) { return p.name == "syscall"; });
  ASSERT_NE(failed_syscall, c.failed_phases.end()) << "the failed attempts' kernel time is kept";
  EXPECT_EQ(failed_syscall->count, c.failed);
  for (const Phase& p : c.failed_phases) EXPECT_LE(p.count, c.failed) << p.name;
  for (const Phase& p : c.phases) {
    if (p.name != "post_launch_cow") {
      EXPECT_LE(p.count, c.launches) << p.name << ": failed attempts kept apart";
    }
  }
}

TEST(FailingLaunches, EveryLaunchRefusedByAPidsLimit) {
  PidsCgroup cgroup;
  if (!cgroup.ok()) GTEST_SKIP() << "no pids cgroup controller here";
  ASSERT_TRUE(cgroup.set_max("1")) << "forkscope itself is the one task allowed";
  TempDir dir;
  ChildSetup setup;
  setup.before_exec = [&] { return cgroup.join(); };
  // ASan's leak check at exit needs a thread, which the limit refuses.
  setup.env = {"ASAN_OPTIONS=detect_leaks=0"};
  const Outcome o = run_forkscope({"run", "--modes", "fork,pthread", "--heap", "2M", "--iterations", "200", "--warmup",
                                   "5", "--out", dir.str()},
                                  setup);
  ASSERT_EQ(o.exit_code, 0) << "the run goes on and completes: " << o.err;
  EXPECT_NE(o.err.find("every launch failed (EAGAIN)"), std::string::npos) << o.err;
  EXPECT_NE(o.out.find("note: launches failed in 2 cells"), std::string::npos) << o.out;
  const forkscope::Run run = load_results(dir / "results.json");
  ASSERT_EQ(run.cells.size(), 2u);
  for (const Cell& c : run.cells) {
    EXPECT_EQ(c.launches, 0u);
    EXPECT_EQ(c.failed, 200u);
    expect_failures_accounted(c);
  }
}

TEST(FailingLaunches, SomeLaunchesRefusedThenTheLimitLifts) {
  PidsCgroup cgroup;
  if (!cgroup.ok()) GTEST_SKIP() << "no pids cgroup controller here";
  ASSERT_TRUE(cgroup.set_max("1"));
  TempDir dir;
  ChildSetup setup;
  setup.before_exec = [&] { return cgroup.join(); };
  constexpr uint64_t kAttempts = 3000;
  const Started s = start_forkscope({"run", "--modes", "fork", "--heap", "0", "--iterations", std::to_string(kAttempts),
                                     "--cell-seconds", "600", "--warmup", "0", "--out", dir.str()},
                                    setup);
  // The sweep's launches fail from its start (start-up launches, before the
  // "attached" line, fail too); once some have, forks are allowed again.
  uint64_t before_sweep = 0;
  const bool sweeping = wait_for(
      [&] {
        before_sweep = cgroup.refusals();
        return slurp(s.err_path).find("attached") != std::string::npos;
      },
      60);
  const bool refused = sweeping && wait_for([&] { return cgroup.refusals() >= before_sweep + 20; }, 60);
  ASSERT_TRUE(cgroup.set_max("max"));
  const Outcome o = finish_forkscope(s);
  ASSERT_TRUE(refused) << o.err;
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_NE(o.out.find("note: launches failed in 1 cell (fork 0: "), std::string::npos) << o.out;
  const forkscope::Run run = load_results(dir / "results.json");
  ASSERT_EQ(run.cells.size(), 1u);
  const Cell& c = run.cells[0];
  EXPECT_GT(c.failed, 0u);
  EXPECT_GT(c.launches, 0u);
  EXPECT_EQ(c.launches + c.failed, kAttempts) << "every attempt is either a launch or a failure";
  EXPECT_FALSE(c.time_capped);
  expect_failures_accounted(c);
  EXPECT_EQ(c.phase("syscall")->count, c.launches);
  EXPECT_EQ(c.phase("copy_process")->count, c.launches);
}

// Unrelated fork storms on every CPU while forkscope runs: it attributes only its
// own launches.
TEST(Noise, ForkStormsElsewhereDoNotLeakIntoTheCounts) {
  if (system("command -v stress-ng >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "stress-ng is not installed (scripts/setup-tests.sh installs it)";
  const pid_t storm = fork();
  if (storm == 0) {
    setpgid(0, 0);
    freopen("/dev/null", "w", stdout);
    freopen("/dev/null", "w", stderr);
    const std::string cpus = std::to_string(sysconf(_SC_NPROCESSORS_ONLN));
    execlp("stress-ng", "stress-ng", "--fork", cpus.c_str(), "--timeout", "300s", nullptr);
    _exit(127);
  }
  setpgid(storm, storm);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const bool storming = waitpid(storm, nullptr, WNOHANG) == 0;

  TempDir dir;
  constexpr uint64_t kLaunches = 300;
  const Outcome o = run_forkscope({"run", "--modes", "fork,pthread", "--heap", "2M", "--iterations",
                                   std::to_string(kLaunches), "--cell-seconds", "120", "--out", dir.str(), "--quiet"});
  const bool stormed_throughout = waitpid(storm, nullptr, WNOHANG) == 0;
  kill(-storm, SIGTERM);
  waitpid(storm, nullptr, 0);
  ASSERT_TRUE(storming && stormed_throughout) << "stress-ng did not keep running";
  ASSERT_EQ(o.exit_code, 0) << o.err;

  const forkscope::Run run = load_results(dir / "results.json");
  ASSERT_EQ(run.cells.size(), 2u);
  for (const Cell& c : run.cells) {
    SCOPED_TRACE(c.mode);
    EXPECT_EQ(c.launches, kLaunches);
    EXPECT_EQ(c.kernel.launches, kLaunches);
    EXPECT_EQ(c.kernel.failed, 0u);
    EXPECT_EQ(c.kernel.lost, 0u);
    for (const char* exact : {"syscall", "copy_process", "alloc_pid", "wake_up_new_task", "teardown"}) {
      const Phase* p = c.phase(exact);
      ASSERT_NE(p, nullptr) << exact;
      EXPECT_EQ(p->count, kLaunches) << exact << ": one per launch of ours, none of the storm's";
    }
    for (const Phase& p : c.phases) EXPECT_LE(p.count, kLaunches) << p.name;
    // Under load a child's first switch-in is now and then not seen; the kernel
    // side counts those, so every child is accounted for exactly once.
    ASSERT_NE(c.phase("child_first_run"), nullptr);
    EXPECT_EQ(c.phase("child_first_run")->count + c.kernel.first_run_missed, kLaunches);
    EXPECT_TRUE(c.failed_phases.empty());
  }
  const Cell& fork = run.cells[0];
  ASSERT_NE(fork.phase("copy_page_range"), nullptr);
  EXPECT_LE(fork.phase("copy_page_range")->calls, kLaunches * fork.backing.vmas);
}

// Capabilities leave the child's bounding set before exec, so root runs
// forkscope without them.
bool drop_capabilities(std::initializer_list<int> caps) {
  for (int cap : caps)
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) return false;
  return true;
}

// A mount namespace of the child's own, where it can take filesystems away.
bool private_mounts() {
  return unshare(CLONE_NEWNS) == 0 && mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0;
}

bool unmount_all(const char* path) {
  while (umount2(path, MNT_DETACH) == 0) {
  }
  return errno == EINVAL;  // no longer a mount point
}

std::vector<std::string> small_run(const std::string& out) {
  return {"run", "--modes", "fork", "--heap", "0", "--iterations", "20", "--out", out, "--quiet"};
}

void expect_refused(const Outcome& o, int code, const std::string& says, const TempDir& dir) {
  EXPECT_EQ(o.exit_code, code) << o.err;
  EXPECT_EQ(test::count_lines(o.err), 1) << o.err;
  EXPECT_EQ(o.err.rfind("forkscope: ", 0), 0u) << o.err;
  EXPECT_NE(o.err.find(says), std::string::npos) << o.err;
  EXPECT_FALSE(fs::exists(dir / "results.json"));
}

TEST(UpFront, WithoutCapBpfAndCapPerfmonRootExitsThree) {
  TempDir dir;
  ChildSetup setup;
  setup.before_exec = [] { return drop_capabilities({CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN}); };
  expect_refused(run_forkscope(small_run(dir.str()), setup), 3, "CAP_BPF", dir);
}

// This kernel refuses forkscope's programs to CAP_BPF+CAP_PERFMON without
// CAP_SYS_ADMIN: said up front, before anything is loaded.
TEST(UpFront, WithoutCapSysAdminExitsThreeAndSaysSo) {
  TempDir dir;
  ChildSetup setup;
  setup.before_exec = [] { return drop_capabilities({CAP_SYS_ADMIN}); };
  expect_refused(run_forkscope(small_run(dir.str()), setup), 3, "CAP_SYS_ADMIN", dir);
  const Outcome doctor = run_forkscope({"doctor"}, setup);
  EXPECT_EQ(doctor.exit_code, 3) << doctor.err;
  EXPECT_NE(doctor.out.find("without CAP_SYS_ADMIN"), std::string::npos) << doctor.out;
}

TEST(UpFront, WithoutKernelBtfExitsThree) {
  TempDir dir;
  ChildSetup setup;
  setup.before_exec = [] {
    return private_mounts() && mount("none", "/sys/kernel/btf", "tmpfs", MS_RDONLY, nullptr) == 0;
  };
  expect_refused(run_forkscope(small_run(dir.str()), setup), 3, "BTF", dir);
}

TEST(UpFront, MountsTracefsAndBpffsWhenMissing) {
  TempDir dir;
  ChildSetup setup;
  setup.before_exec = [] {
    return private_mounts() && unmount_all("/sys/kernel/tracing") && unmount_all("/sys/fs/bpf");
  };
  // forkscope mounts in its own mount namespace, so its mount table is read while
  // it runs (/proc/PID/mounts: what it reads as /proc/self/mounts), once it runs
  // forkscope: after the exec, so after the unmounts above.
  const Started s = start_forkscope(small_run(dir.str()), setup);
  const std::string proc = "/proc/" + std::to_string(s.pid);
  const fs::path exe = fs::canonical(FORKSCOPE_BIN);
  bool tracefs = false, bpffs = false;
  while (test::running(s.pid)) {
    std::error_code ec;
    if (fs::read_symlink(proc + "/exe", ec) == exe) {
      std::istringstream table(slurp(proc + "/mounts"));
      std::string source, target, type, rest;
      while (table >> source >> target >> type && std::getline(table, rest)) {
        tracefs |= target == "/sys/kernel/tracing" && type == "tracefs";
        bpffs |= target == "/sys/fs/bpf" && type == "bpf";
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const Outcome o = finish_forkscope(s);
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_TRUE(tracefs) << "no tracefs on /sys/kernel/tracing in forkscope's mount table";
  EXPECT_TRUE(bpffs) << "no bpf file system on /sys/fs/bpf in forkscope's mount table";
}

TEST(UpFront, TracefsThatCannotBeMountedExitsThree) {
  TempDir dir;
  ChildSetup setup;
  // Without CAP_SYS_ADMIN nothing can be mounted (the mounts are checked, and
  // said, before CAP_SYS_ADMIN itself).
  setup.before_exec = [] {
    return private_mounts() && unmount_all("/sys/kernel/tracing") && drop_capabilities({CAP_SYS_ADMIN});
  };
  expect_refused(run_forkscope(small_run(dir.str()), setup), 3, "mount -t tracefs", dir);
}

TEST(UpFront, BpffsThatCannotBeMountedExitsThree) {
  TempDir dir;
  ChildSetup setup;
  setup.before_exec = [] {
    return private_mounts() && unmount_all("/sys/fs/bpf") && drop_capabilities({CAP_SYS_ADMIN});
  };
  expect_refused(run_forkscope(small_run(dir.str()), setup), 3, "mount -t bpf", dir);
}

TEST(UpFront, EveryOptionIsCheckedBeforeAnythingRuns) {
  TempDir dir;
  const std::string file = dir / "a-file";
  std::ofstream(file) << "x";
  for (const std::vector<std::string>& bad : std::vector<std::vector<std::string>>{{"--warmup", "10000000000"},
                                                                                   {"--warmup", "-3"},
                                                                                   {"--iterations", "10000000000"},
                                                                                   {"--iterations", "-1"},
                                                                                   {"--iterations", "1e3"},
                                                                                   {"--cell-seconds", "nan"},
                                                                                   {"--cell-seconds", "inf"},
                                                                                   {"--cell-seconds", "-1"},
                                                                                   {"--cell-seconds", "0"},
                                                                                   {"--cell-seconds", "1e300"},
                                                                                   {"--cpu", "-5"},
                                                                                   {"--cpu", "-1"},
                                                                                   {"--cpu", "4096"},
                                                                                   {"--out", file},
                                                                                   {"--out", file + "/sub"},
                                                                                   {"--out", ""},
                                                                                   {"--modes", "fork,fork"},
                                                                                   {"--heap", "2M,2M"},
                                                                                   {"--heap", "-2M"},
                                                                                   {"--modes", ""}}) {
    std::vector<std::string> args = {"run", "--quiet"};
    args.insert(args.end(), bad.begin(), bad.end());
    if (bad[0] != "--out") args.insert(args.end(), {"--out", dir.str()});
    const Outcome o = run_forkscope(args);
    EXPECT_EQ(o.exit_code, 2) << bad[0] << " " << bad[1] << ": " << o.err;
    EXPECT_EQ(test::count_lines(o.err), 1) << o.err;
  }
  ChildSetup sudo;
  sudo.env = {"SUDO_UID=nobody", "SUDO_GID=65534"};
  const Outcome o = run_forkscope(small_run(dir.str()), sudo);
  EXPECT_EQ(o.exit_code, 2) << o.err;
  EXPECT_NE(o.err.find("SUDO_UID"), std::string::npos) << o.err;
  EXPECT_EQ(std::vector<fs::path>(fs::directory_iterator(dir.str()), {}), std::vector<fs::path>{file});
}

constexpr uid_t kNobody = 65534;

ChildSetup under_sudo_of_nobody() {
  ChildSetup setup;
  setup.env = {"SUDO_UID=65534", "SUDO_GID=65534"};
  return setup;
}

// Links planted in the output directory are replaced, never followed; the results
// go to the user who ran sudo.
TEST(Files, PlantedLinksAreNotFollowedAndResultsGoToTheSudoUser) {
  TempDir dir, elsewhere;
  const std::string victim = elsewhere / "precious";
  std::ofstream(victim) << "precious";
  fs::create_symlink(victim, dir / "results.json");
  std::vector<std::string> decoys;
  for (const char* suffix : {"AAAAAA", "000000", "XXXXXX", "aaaaaa"}) {
    decoys.push_back(dir / (std::string("results.json.tmp") + suffix));
    fs::create_symlink(victim, decoys.back());
  }
  const Outcome o = run_forkscope(small_run(dir.str()), under_sudo_of_nobody());
  ASSERT_EQ(o.exit_code, 0) << o.err;

  EXPECT_EQ(slurp(victim), "precious");
  struct stat st {};
  ASSERT_EQ(lstat((dir / "results.json").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode)) << "the planted link was replaced by the results";
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  EXPECT_EQ(st.st_uid, kNobody);
  EXPECT_EQ(st.st_gid, kNobody);
  for (const std::string& decoy : decoys) EXPECT_TRUE(fs::is_symlink(decoy)) << decoy;
  load_results(dir / "results.json");
}

TEST(Files, DirectoriesForkscopeCreatesGoToTheSudoUser) {
  TempDir dir;
  const std::string out = dir / "new/sub";
  const Outcome o = run_forkscope(small_run(out), under_sudo_of_nobody());
  ASSERT_EQ(o.exit_code, 0) << o.err;
  for (const std::string& made : {dir / "new", out, out + "/results.json"}) {
    struct stat st {};
    ASSERT_EQ(stat(made.c_str(), &st), 0) << made;
    EXPECT_EQ(st.st_uid, kNobody) << made;
  }
  struct stat st {};
  ASSERT_EQ(stat(dir.str().c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u) << "what existed before is left as it was";
}

// A link another user planted, e.g. /tmp/out -> somewhere of their choosing,
// does not decide where root writes.
TEST(Files, OutThroughAnotherUsersLinkIsRefused) {
  TempDir dir;
  fs::create_directory(dir / "target");
  fs::create_directory_symlink(dir / "target", dir / "out");
  ASSERT_EQ(lchown((dir / "out").c_str(), kNobody, kNobody), 0);
  const Outcome o = run_forkscope(small_run(dir / "out"));
  EXPECT_EQ(o.exit_code, 2) << o.err;
  EXPECT_NE(o.err.find("symbolic link owned by uid 65534"), std::string::npos) << o.err;
  EXPECT_TRUE(fs::is_empty(dir / "target"));

  // The same link under sudo by its owner is theirs to use.
  const Outcome own = run_forkscope(small_run(dir / "out"), under_sudo_of_nobody());
  EXPECT_EQ(own.exit_code, 0) << own.err;
  EXPECT_TRUE(fs::exists(dir / "target/results.json"));
}

// Processes with `arg` among their arguments (/proc/PID/cmdline).
std::vector<pid_t> processes_with(const std::string& arg) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string cmdline = slurp(e.path().string() + "/cmdline");
    for (size_t at = 0; at < cmdline.size();) {
      const size_t end = std::min(cmdline.find('\0', at), cmdline.size());
      if (cmdline.compare(at, end - at, arg) == 0) {
        out.push_back(static_cast<pid_t>(std::stol(name)));
        break;
      }
      at = end + 1;
    }
  }
  return out;
}

// The cgroup `trace -v` says the command runs in; "" when it says none.
std::string command_cgroup(const std::string& err) {
  const std::string lead = "the command runs in ";
  const size_t at = err.find(lead);
  if (at == std::string::npos) return "";
  return err.substr(at + lead.size(), err.find('\n', at) - at - lead.size());
}

// trace -- CMD runs CMD in a cgroup of its own: whatever ends forkscope, SIGKILL
// included, nothing the command started outlives it (here a grandchild that
// ignores SIGTERM), and the cgroup is removed.  SIGHUP and SIGTERM keep the results.
class Contained : public ::testing::TestWithParam<int> {};

TEST_P(Contained, NothingOfTheCommandOutlivesForkscope) {
  if (test::cgroup2_root().empty()) GTEST_SKIP() << "no cgroup v2 is mounted: the command cannot have a cgroup here";
  const int sig = GetParam();
  TempDir dir;
  const std::string mark = "1000." + std::to_string(getpid());  // sleep's argument: this test's processes
  const Started s = start_forkscope({"trace", "-v", "--no-mappings", "--out", dir.str(), "--", "sh", "-c",
                                     "(trap '' TERM; sleep " + mark + ") & sleep " + mark});
  const bool running = wait_for([&] { return processes_with(mark).size() == 2; }, 30);
  const std::string cgroup = command_cgroup(slurp(s.err_path));
  kill(s.pid, sig);
  const Outcome o = finish_forkscope(s);
  const bool gone = wait_for([&] { return processes_with(mark).empty() && !fs::exists(cgroup); }, 10);
  for (pid_t p : processes_with(mark)) kill(p, SIGKILL);
  ASSERT_TRUE(running) << o.err;
  ASSERT_FALSE(cgroup.empty()) << "the command ran in no cgroup of its own:\n" << o.err;
  EXPECT_TRUE(gone) << processes_with(mark).size() << " of the command's processes, or " << cgroup
                    << ", outlived forkscope";
  if (sig == SIGKILL) {
    EXPECT_EQ(o.exit_code, 128 + SIGKILL);
    return;
  }
  ASSERT_EQ(o.exit_code, 0) << o.err;
  const forkscope::Run run = load_results(dir.str() + "/results.json");
  uint64_t forks = 0;
  for (const Cell& c : run.cells) forks += c.comm == "sh" ? c.launches : 0;
  EXPECT_GE(forks, 1u) << "the subshell's fork";
}

INSTANTIATE_TEST_SUITE_P(Signals, Contained, ::testing::Values(SIGKILL, SIGHUP, SIGTERM),
                         [](const auto& info) { return std::string(sigabbrev_np(info.param)); });

// A command that exits leaving a background job which ignores SIGTERM: the job
// is ended with it, and the cgroup removed.
TEST(Contained, WhatTheCommandLeftEndsWithIt) {
  if (test::cgroup2_root().empty()) GTEST_SKIP() << "no cgroup v2 is mounted: the command cannot have a cgroup here";
  TempDir dir;
  const std::string mark = "1001." + std::to_string(getpid());
  const Outcome o = run_forkscope(
      {"trace", "-v", "-q", "--out", dir.str(), "--", "sh", "-c", "(trap '' TERM; sleep " + mark + ") & exit 0"});
  const std::vector<pid_t> left = processes_with(mark);
  for (pid_t p : left) kill(p, SIGKILL);
  ASSERT_EQ(o.exit_code, 0) << o.err;
  const std::string cgroup = command_cgroup(o.err);
  ASSERT_FALSE(cgroup.empty()) << o.err;
  EXPECT_TRUE(left.empty()) << "the background job outlived the trace";
  EXPECT_FALSE(fs::exists(cgroup));
}

// --cgroup takes the cgroup v2 mount wherever it is; a v1 directory is refused
// with a hint naming it.
TEST(CgroupTarget, AV1DirectoryIsRefusedNamingTheV2Mount) {
  const std::string v2 = test::cgroup2_root(), v1 = test::cgroup_mount_of("cgroup");
  if (v2.empty() || v1.empty()) GTEST_SKIP() << "not a hybrid cgroup machine (v1 " << v1 << ", v2 " << v2 << ")";
  TempDir dir;
  const Outcome o = run_forkscope({"trace", "--cgroup", v1, "--out", dir.str()});
  EXPECT_EQ(o.exit_code, 2) << o.err;
  EXPECT_EQ(test::count_lines(o.err), 1) << o.err;
  EXPECT_NE(o.err.find("v1"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("under " + v2 + ","), std::string::npos) << o.err;
}

}  // namespace
}  // namespace forkscope
