// trace --group-by and execs by program (issue 18 item 8) on this machine's kernel:
// unrelated processes with one command name, execs of a shell loop by program,
// the command a launcher had after its exec, groups by cgroup.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "forkscope/results.h"
#include "proc.h"

namespace forkscope {
namespace {

namespace fs = std::filesystem;
using test::run_forkscope;

// The words of the first line of text that starts with `start`.
std::vector<std::string> line_words(const std::string& text, const std::string& start) {
  const size_t at = text.find("\n" + start);
  if (at == std::string::npos) return {};
  std::istringstream line(text.substr(at + 1, text.find('\n', at + 1) - at - 1));
  std::vector<std::string> words;
  for (std::string w; line >> w;) words.push_back(w);
  return words;
}

// The fork cells of command `comm`, by group name: their launches.
std::map<std::string, uint64_t> fork_groups(const Run& run, const std::string& comm) {
  std::map<std::string, uint64_t> out;
  for (const Cell& c : run.cells)
    if (c.comm == comm && c.mode == "fork") out[c.group] += c.launches;
  return out;
}

// Two copies of fork_count under one file name in two directories: different
// executables, and both name themselves "job" (PR_SET_NAME) before forking.  The
// second directory is a tmpfs of its own, so the executable's path is walked
// across a mount point.
class GroupBy : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = test::make_temp_dir();
    for (const char* sub : {"/a", "/b"}) fs::create_directories(dir_ + sub);
    mounted_ = mount("tmpfs", (dir_ + "/b").c_str(), "tmpfs", 0, "size=16m") == 0;
    mount_error_ = mounted_ ? 0 : errno;
    for (const char* sub : {"/a", "/b"}) fs::copy_file(FORK_COUNT_BIN, dir_ + sub + "/worker");
    a_ = fs::canonical(dir_ + "/a/worker").string();
    b_ = fs::canonical(dir_ + "/b/worker").string();
  }
  static void TearDownTestSuite() {
    if (mounted_) umount2((dir_ + "/b").c_str(), MNT_DETACH);
    fs::remove_all(dir_);
  }

  // The three workers, one after another: 3 + 5 forks from a, 4 from b.
  static forkscope::Run trace(const std::string& by) {
    const std::string out = dir_ + "/out-" + by;
    const test::Outcome o = run_forkscope({"trace", "--group-by", by, "--out", out, "-q", "--", "sh", "-c",
                                           a_ + " job 3 && " + b_ + " job 4 && " + a_ + " job 5"});
    EXPECT_EQ(o.exit_code, 0) << o.err;
    forkscope::Run run = load_results(out + "/results.json");
    EXPECT_EQ(run.trace->command_exit, 0);
    EXPECT_EQ(run.trace->group_by, by);
    return run;
  }

  static inline std::string dir_, a_, b_;
  static inline bool mounted_ = false;
  static inline int mount_error_ = 0;
};

TEST_F(GroupBy, CommandPutsUnrelatedProcessesOfOneNameTogether) {
  const forkscope::Run run = trace("comm");
  EXPECT_EQ(fork_groups(run, "job"), (std::map<std::string, uint64_t>{{"", 12}}));
}

TEST_F(GroupBy, ExecutableSeparatesTwoFilesOfOneName) {
  ASSERT_TRUE(mounted_) << "cannot mount a tmpfs for the second copy: " << strerror(mount_error_);
  const forkscope::Run run = trace("exe");
  // The path walked in the kernel, across the mounts /tmp may be on.
  EXPECT_EQ(fork_groups(run, "job"), (std::map<std::string, uint64_t>{{a_, 8}, {b_, 4}}));
  // The shell's own launches: grouped under its executable, whatever its command.
  const std::string sh = fs::canonical("/bin/sh").string();
  uint64_t shell = 0;
  for (const Cell& c : run.cells)
    if (c.comm == "sh" && c.launches > 0) {
      EXPECT_EQ(c.group, sh);
      shell += c.launches;
    }
  EXPECT_EQ(shell, 3u) << "sh launched each worker";
  // The report names the groups by executable, with the command where it differs.
  const test::Outcome report = run_forkscope({"report", dir_ + "/out-exe/results.json", "--no-color"});
  ASSERT_EQ(report.exit_code, 0) << report.err;
  EXPECT_NE(report.out.find("\nexecutable "), std::string::npos) << report.out;
  EXPECT_NE(report.out.find("\n" + a_ + " (job)  "), std::string::npos) << report.out;
  EXPECT_NE(report.out.find("\n" + b_ + " (job)  "), std::string::npos) << report.out;
}

TEST_F(GroupBy, ProcessGivesEachWorkerItsGroupWithItsLaunches) {
  const forkscope::Run run = trace("pid");
  const std::map<std::string, uint64_t> groups = fork_groups(run, "job");
  ASSERT_EQ(groups.size(), 3u);
  std::vector<uint64_t> launches;
  for (const auto& [pid, n] : groups) {
    launches.push_back(n);
    // The group is the process: the launcher of that pid launched as many.
    const auto p = std::find_if(run.trace->parents.begin(), run.trace->parents.end(),
                                [&](const TraceParent& t) { return std::to_string(t.pid) == pid; });
    ASSERT_NE(p, run.trace->parents.end()) << pid;
    EXPECT_EQ(p->launches, n);
    EXPECT_EQ(p->comm, "job");
  }
  std::sort(launches.begin(), launches.end());
  EXPECT_EQ(launches, (std::vector<uint64_t>{3, 4, 5}));
}

// sh execs /bin/true 5 times and /bin/echo 3 times, then becomes fork_count.
TEST(ExecsByProgram, CountsEachProgramAndTheCommandAfterExec) {
  const test::TempDir dir;
  const test::Outcome o = run_forkscope(
      {"trace", "--out", dir, "-q", "--no-color", "--", "sh", "-c",
       "for i in 1 2 3 4 5; do /bin/true; done; for i in 1 2 3; do /bin/echo x >/dev/null; done; exec " +
           std::string(FORK_COUNT_BIN) + " renamed 2"});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  const forkscope::Run run = load_results(dir + "/results.json");
  // Every exec the groups count is counted by program, none in the overflow.
  uint64_t execs = 0, by_program = 0;
  std::map<std::string, uint64_t> programs;
  for (const Cell& c : run.cells) {
    execs += c.kernel.execs;
    EXPECT_EQ(c.exec_programs_other, 0u);
    for (const ExecProgram& e : c.exec_programs) {
      by_program += e.execs;
      if (c.comm == "sh" && c.launches > 0) programs[e.program] += e.execs;
    }
  }
  EXPECT_EQ(by_program, execs);
  EXPECT_EQ(programs, (std::map<std::string, uint64_t>{{"/bin/true", 5}, {"/bin/echo", 3}}));
  // The shell became fork_count, which launched twice more under its new name.
  ASSERT_FALSE(run.trace->parents.empty());
  const TraceParent& sh = run.trace->parents[0];
  EXPECT_EQ(sh.comm, "sh");
  EXPECT_EQ(sh.exec_comm, "fork_count");
  EXPECT_EQ(sh.launches, 10u);
  // The terminal report shows both.
  const std::vector<std::string> true_row = line_words(o.out, "/bin/true "), echo_row = line_words(o.out, "/bin/echo ");
  ASSERT_EQ(true_row.size(), 4u) << o.out;  // program, execs, group, kind
  EXPECT_EQ(true_row[1], "5");
  EXPECT_EQ(true_row[2], "sh");
  ASSERT_EQ(echo_row.size(), 4u) << o.out;
  EXPECT_EQ(echo_row[1], "3");
  EXPECT_NE(o.out.find("  sh \u2192 fork_count  "), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("\nsh \u2192 true, echo  "), std::string::npos) << o.out;
}

// Workers moved into two cgroups made for the test, grouped by cgroup.
TEST(GroupByCgroup, SeparatesTheWorkersOfTwoCgroups) {
  const std::string root = test::cgroup2_root();
  if (root.empty()) GTEST_SKIP() << "no cgroup v2 hierarchy mounted";
  const std::string name = "forkscope-test-gb-" + std::to_string(getpid());
  const std::string a = root + "/" + name + "-a", b = root + "/" + name + "-b";
  if (mkdir(a.c_str(), 0755) != 0) GTEST_SKIP() << "cannot create a cgroup under " << root << ": " << strerror(errno);
  ASSERT_EQ(mkdir(b.c_str(), 0755), 0) << b << ": " << strerror(errno);
  const test::TempDir dir;
  const std::string w = FORK_COUNT_BIN;
  const test::Outcome o = run_forkscope({"trace", "--group-by", "cgroup", "--out", dir, "-q", "--", "sh", "-c",
                                         "sh -c 'echo $$ > " + a + "/cgroup.procs && exec " + w +
                                             " job 3' && sh -c 'echo $$ > " + b + "/cgroup.procs && exec " + w +
                                             " job 4'"});
  rmdir(a.c_str());
  rmdir(b.c_str());
  EXPECT_FALSE(fs::exists(a) || fs::exists(b)) << "the test's cgroups are left behind";
  ASSERT_EQ(o.exit_code, 0) << o.err;
  const forkscope::Run run = load_results(dir + "/results.json");
  EXPECT_EQ(run.trace->command_exit, 0);
  // Paths as /proc/PID/cgroup writes them: from the v2 mount's root.
  EXPECT_EQ(fork_groups(run, "job"), (std::map<std::string, uint64_t>{{"/" + name + "-a", 3}, {"/" + name + "-b", 4}}));
}

}  // namespace
}  // namespace forkscope
