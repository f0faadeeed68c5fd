// Runtime lane, issue 15: hostile process names and arguments, outputs that are
// checked before anything happens, and the small usage mistakes.
#include <gtest/gtest.h>
#include <linux/types.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <set>

#include "forkscope/results.h"
#include "forkscope/shared/catalog.h"
#include "forkscope/untrusted.h"
#include "bpf_objects.h"
#include "proc.h"

namespace forkscope {
namespace {

namespace fs = std::filesystem;
using test::run_forkscope;

// The first raw control byte (other than a newline or a tab) in TEXT, or -1.
int control_byte(const std::string& text) {
  for (unsigned char c : text)
    if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) return c;
  return -1;
}

// A name a process can give itself (fork_count.c takes it with PR_SET_NAME): a
// terminal escape (a window-title change), a newline and invalid UTF-8, within the
// kernel's 15 bytes.
const std::string kHostileComm = "\x1b]0;pw\x07\n\xff\xfe";

// The fork launches counted under the hostile name's safe form.
uint64_t hostile_forks(const forkscope::Run& run) {
  uint64_t forks = 0;
  for (const Cell& c : run.cells)
    if (c.comm == safe_text(kHostileComm) && c.mode == "fork") forks += c.launches;
  return forks;
}

void expect_no_control_bytes(const test::Outcome& o) {
  EXPECT_EQ(control_byte(o.out), -1) << "stdout holds a raw control byte";
  EXPECT_EQ(control_byte(o.err), -1) << "stderr holds a raw control byte";
}

TEST(HostileNames, TraceWritesOnlySafeTextAndEveryFormatReadsItBack) {
  const test::TempDir dir;
  constexpr int kForks = 25;
  // The name is an argument too: it reaches the target description.
  const test::Outcome o = run_forkscope(
      {"trace", "--out", dir, "--", FORK_COUNT_BIN, kHostileComm, std::to_string(kForks)});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  expect_no_control_bytes(o);
  const forkscope::Run run = load_results(dir + "/results.json");
  const uint64_t forks = hostile_forks(run);
  EXPECT_EQ(forks, static_cast<uint64_t>(kForks)) << "the launches of the hostile name, counted under its safe form";
  ASSERT_TRUE(run.trace);
  EXPECT_TRUE(is_safe_text(run.trace->target)) << run.trace->target;
  for (const char* format : {"table", "folded", "flame", "trace", "html", "csv", "json"}) {
    const test::Outcome r = run_forkscope({"report", dir + "/results.json", "--format", format});
    EXPECT_EQ(r.exit_code, 0) << format << ": " << r.err;
    EXPECT_EQ(control_byte(r.out), -1) << format << " output holds a raw control byte";
  }
}

// -a sees every task: the hostile name among them, printed and saved safely.
TEST(HostileNames, SystemWideTraceCountsAndPrintsThemSafely) {
  const test::TempDir dir;
  constexpr int kForks = 20;
  const test::Started s = test::start_forkscope({"trace", "-a", "--out", dir});
  ASSERT_TRUE(test::wait_for([&] { return test::slurp(s.err_path).find("attached") != std::string::npos; }, 60))
      << test::slurp(s.err_path);
  const pid_t worker = fork();
  if (worker == 0) {
    execl(FORK_COUNT_BIN, "fork_count", kHostileComm.c_str(), std::to_string(kForks).c_str(), nullptr);
    _exit(127);
  }
  int status = 0;
  ASSERT_EQ(waitpid(worker, &status, 0), worker);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_EQ(kill(s.pid, SIGINT), 0);
  const test::Outcome o = test::finish_forkscope(s);
  ASSERT_EQ(o.exit_code, 0) << o.err;
  expect_no_control_bytes(o);
  const forkscope::Run run = load_results(dir + "/results.json");
  const uint64_t forks = hostile_forks(run);
  EXPECT_EQ(forks, static_cast<uint64_t>(kForks));
}

// A full disk is named as such: exit 1, one line.
TEST(OutChecks, AFullDiskSaysSo) {
  const test::TempDir dir;
  test::ChildSetup setup;
  setup.before_exec = [dir = dir.str()] {
    if (unshare(CLONE_NEWNS) != 0 || mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return false;
    if (mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=64k") != 0) return false;
    FILE* f = std::fopen((dir + "/filler").c_str(), "w");
    if (!f) return false;
    static char block[4096];
    while (std::fwrite(block, 1, sizeof block, f) == sizeof block && std::fflush(f) == 0) {
    }
    std::fclose(f);
    return true;
  };
  const std::string data = std::string(FS_TEST_DATA) + "/results.json";
  const test::Outcome o = run_forkscope({"report", data, "--format", "html", "-o", dir + "/report.html"}, setup);
  EXPECT_EQ(o.exit_code, 1) << o.err;
  EXPECT_NE(o.err.find("No space left on device"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("the disk is full"), std::string::npos) << o.err;
  EXPECT_EQ(o.err.find("directory exists"), std::string::npos) << o.err;
  EXPECT_EQ(test::count_lines(o.err), 1) << o.err;
}

// Checked before anything is loaded: exit 2, one line, and nothing made.
TEST(OutChecks, UnusableOutputsExitTwoBeforeAnythingIsMade) {
  const test::TempDir dir;
  fs::create_directories(dir + "/taken/results.json");
  fs::create_directories(dir + "/taken2/report.html");
  const std::string too_long = dir + "/" + std::string(4000, 'x');
  for (const std::string& out : {std::string("/sys/kernel"), std::string("/proc/forkscope-out"), dir + "/taken",
                                 dir + "/taken2", too_long, std::string("/sys/kernel/forkscope-out")}) {
    const auto t0 = std::chrono::steady_clock::now();
    const test::Outcome o = run_forkscope(
        {"run", "--modes", "fork", "--heap", "0", "--iterations", "10", "--out", out});
    EXPECT_EQ(o.exit_code, 2) << out.substr(0, 80) << ": " << o.err;
    EXPECT_EQ(test::count_lines(o.err), 1) << o.err;
    EXPECT_NE(o.err.find("--out"), std::string::npos) << o.err;
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5)) << "checked before the sweep";
  }
  EXPECT_FALSE(fs::exists(dir + "/" + std::string(200, 'x'))) << "nothing of the long path was made";
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir.str(), ec))
    EXPECT_TRUE(e.path().filename() == "taken" || e.path().filename() == "taken2") << e.path();
}

TEST(OutChecks, AnUnprivilegedRunLeavesNoDirectory) {
  const test::TempDir dir;
  fs::permissions(dir.str(), fs::perms::all);
  const test::Outcome o = run_forkscope({"run", "--modes", "fork", "--heap", "0", "--iterations", "10", "--out",
                                         dir + "/new/out"},
                                        65534);
  EXPECT_EQ(o.exit_code, 3) << o.err;
  EXPECT_FALSE(fs::exists(dir + "/new")) << "made before the privilege check failed";
}

TEST(OutChecks, ReportAndMergeOutputsFollowTheOutRules) {
  const test::TempDir dir;
  fs::permissions(dir.str(), fs::perms::all);
  // A link planted by another user (nobody) must not choose where root writes.
  const std::string link = dir + "/planted";
  ASSERT_EQ(symlink(dir.str().c_str(), link.c_str()), 0);
  ASSERT_EQ(lchown(link.c_str(), 65534, 65534), 0);
  const std::string data = std::string(FS_TEST_DATA) + "/results.json";
  const std::vector<std::vector<std::string>> cases = {
      {"report", data, "-o", link + "/out.json"},
      {"report", data, "-o", dir + "/missing/out.json"},
      {"report", data, "-o", dir},
      {"merge", data, data, "-o", link + "/merged.json"},
      {"merge", data, data, "-o", dir + "/missing/merged.json"},
  };
  for (const auto& args : cases) {
    const test::Outcome o = run_forkscope(args);
    EXPECT_EQ(o.exit_code, 2) << args.back() << ": " << o.err;
    EXPECT_EQ(test::count_lines(o.err), 1) << o.err;
  }
  EXPECT_FALSE(fs::exists(dir + "/out.json"));
  EXPECT_FALSE(fs::exists(dir + "/merged.json"));
}

// --cpu against the CPUs this process may use, not the machine's count.
TEST(CpuCheck, NamesTheCpusThisProcessMayUse) {
  if (sysconf(_SC_NPROCESSORS_ONLN) < 2) GTEST_SKIP() << "needs two CPUs to leave one out of the affinity";
  test::ChildSetup setup;
  setup.before_exec = [] {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(0, &set);
    return sched_setaffinity(0, sizeof set, &set) == 0;
  };
  const auto t0 = std::chrono::steady_clock::now();
  const test::Outcome o = run_forkscope({"run", "--modes", "fork", "--heap", "0", "--cpu", "1", "--out",
                                         "/tmp/fs-never"},
                                        setup);
  EXPECT_EQ(o.exit_code, 2) << o.err;
  EXPECT_NE(o.err.find("CPUs 0 only"), std::string::npos) << o.err;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5)) << "checked before any load";
  EXPECT_FALSE(fs::exists("/tmp/fs-never"));
}

TEST(SmallUsage, EachMistakeExitsTwoWithOneLine) {
  const test::TempDir dir;
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const std::vector<Case> cases = {
      {{"run", "--heap", ""}, "empty"},
      {{"run", "--modes", "fork,"}, "empty"},
      {{"run", "--modes", "fork,,pthread"}, "empty"},
      {{"run", "--threads", "0x10"}, "whole number"},
      {{"run", "--threads", " 5"}, "whole number"},
      {{"run", "--cpu", "0x1"}, "whole number"},
      {{"run", "--clone-flags", ""}, "empty"},
      {{"run", "--clone-flags", "VM,,FS"}, "empty"},
      {{"run", "--modes", "clone-vm", "--clone-flags", "VM"}, "same launch"},
      {{"run", "--clone-flags", "PARENT"}, "PARENT"},
      {{"run", "--iterations", "5", "--iterations", "6"}, "more than once"},
      {{"run", "--phase", "forkscope_no_such_fn"}, "no such kernel function"},
      {{"trace", "-p", "0"}, "nothing to trace"},
      {{"trace", "-p", "2"}, "kernel thread"},
      {{"trace", "-p", "0x10"}, "whole number"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = c.args;
    args.insert(args.end(), {"--out", dir});
    const test::Outcome o = run_forkscope(args);
    std::string joined;
    for (const auto& a : c.args) joined += "'" + a + "' ";
    EXPECT_EQ(o.exit_code, 2) << joined << o.err;
    EXPECT_EQ(test::count_lines(o.err), 1) << joined << o.err;
    EXPECT_NE(o.err.find(c.says), std::string::npos) << joined << o.err;
    EXPECT_FALSE(fs::exists(dir + "/results.json")) << joined;
  }
}

TEST(SmallUsage, AZombieHasNothingToTrace) {
  const pid_t zombie = fork();
  if (zombie == 0) _exit(0);
  // Exited and not yet reaped: a zombie until waited for below.
  siginfo_t info{};
  ASSERT_EQ(waitid(P_PID, zombie, &info, WEXITED | WNOWAIT), 0);
  const test::Outcome o = run_forkscope({"trace", "-p", std::to_string(zombie), "--out", "/tmp/fs-never"});
  // serve refuses what trace refuses: the checks have one home.
  const test::Outcome served = run_forkscope({"serve", "-p", std::to_string(zombie)});
  waitpid(zombie, nullptr, 0);
  EXPECT_EQ(served.exit_code, 2) << served.err;
  EXPECT_NE(served.err.find("exited"), std::string::npos) << served.err;
  EXPECT_EQ(test::count_lines(served.err), 1) << served.err;
  EXPECT_EQ(o.exit_code, 2) << o.err;
  EXPECT_NE(o.err.find("exited"), std::string::npos) << o.err;
  EXPECT_EQ(test::count_lines(o.err), 1) << o.err;
}

// --threads: one launching thread samples, so the samples are at most the
// documented 16 per cell, each its own launch.
TEST(ThreadSamples, AreExactWithManyLaunchingThreads) {
  const test::TempDir dir;
  const test::Outcome o = run_forkscope({"run", "--threads", "8", "--modes", "fork", "--heap", "2M", "--iterations",
                                         "400", "--cell-seconds", "120", "--out", dir, "--quiet"});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  const forkscope::Run run = load_results(dir + "/results.json");
  const Cell& c = run.cells.at(0);
  EXPECT_EQ(c.kernel.launches, 400u);
  EXPECT_GE(c.samples.size(), 1u);
  EXPECT_LE(c.samples.size(), static_cast<size_t>(FS_MAX_SAMPLES));
  std::set<uint32_t> seqs;
  for (const Sample& s : c.samples) {
    EXPECT_TRUE(seqs.insert(s.seq).second) << "seq " << s.seq << " twice";
    EXPECT_GE(s.seq, 1u);
    EXPECT_LE(s.seq, 400u);
    const SampleSpan* sys = nullptr;
    int syscalls = 0;
    for (const SampleSpan& sp : s.spans) {
      if (sp.path == "syscall") sys = &sp, syscalls++;
      EXPECT_GE(sp.start_ns, 0) << sp.name;
    }
    EXPECT_EQ(syscalls, 1) << "one launch per sample";
    ASSERT_NE(sys, nullptr);
    for (const SampleSpan& sp : s.spans) {
      if (sp.task != "parent") continue;
      EXPECT_LE(sp.start_ns + static_cast<int64_t>(sp.dur_ns), static_cast<int64_t>(sys->dur_ns)) << sp.name;
    }
  }
}

}  // namespace
}  // namespace forkscope
