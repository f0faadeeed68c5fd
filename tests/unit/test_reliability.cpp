// Failed launches in the results and the report, hostile results files, and
// results written into directories someone else can plant links in.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "forkscope/terminal.h"
#include "forkscope/results.h"
#include "usage_message.h"

namespace forkscope {
namespace {

namespace fs = std::filesystem;
using test::usage_message;

Phase phase(const std::string& name, const std::string& path, uint64_t count, uint64_t total_ns) {
  Phase p;
  p.name = name;
  p.path = path;
  p.source = "tracepoint";
  p.count = count;
  p.calls = count;
  p.total_ns = total_ns;
  p.self_ns = total_ns / 4;
  p.mean_ns = static_cast<double>(total_ns) / static_cast<double>(count);
  return p;
}

// A fork cell under a pids limit: some launches refused with EAGAIN.
Cell limited_fork() {
  Cell c;
  c.mode = "fork";
  c.heap_bytes = 2 << 20;
  c.iterations = 1000;
  c.launches = 990;
  c.failed = 10;
  c.failed_errno = "EAGAIN";
  c.kernel.launches = 990;
  c.kernel.failed = 10;
  c.phases = {phase("syscall", "syscall", 990, 99000000)};
  c.failed_phases = {phase("syscall", "syscall", 10, 500000),
                     phase("copy_process", "syscall;copy_process", 10, 400000)};
  return c;
}

Run limited_run() {
  forkscope::Run r;
  r.backend = "tracepoint";
  r.bpf_map_bytes = 4 << 20;
  r.cells = {limited_fork()};
  return r;
}

nlohmann::json as_json(const Run& run) { return nlohmann::json::parse(to_json(run)); }

std::string edited(const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json j = as_json(limited_run());
  edit(j);
  return j.dump();
}

TEST(FailedLaunches, FailedPhasesAndMapBytesRoundTrip) {
  const forkscope::Run back = run_from_json(to_json(limited_run()));
  EXPECT_EQ(back.bpf_map_bytes, 4u << 20);
  ASSERT_EQ(back.cells.size(), 1u);
  const Cell& c = back.cells[0];
  ASSERT_EQ(c.failed_phases.size(), 2u);
  EXPECT_EQ(c.failed_phases[1].name, "copy_process");
  EXPECT_EQ(c.failed_phases[1].path, "syscall;copy_process");
  EXPECT_EQ(c.failed_phases[1].count, 10u);
  EXPECT_EQ(c.failed_phases[1].total_ns, 400000u);
  EXPECT_EQ(c.failed_phases[1].self_ns, 100000u);
  EXPECT_EQ(c.phases.size(), 1u) << "failed attempts stay apart from the launches";
}

TEST(FailedLaunches, FailedPhasesAreOmittedWhenNoneFailedAndOptionalOnInput) {
  forkscope::Run run = limited_run();
  run.cells[0].failed_phases.clear();
  const nlohmann::json j = as_json(run);
  EXPECT_FALSE(j["cells"][0].contains("failed_phases"));
  EXPECT_EQ(j["bpf_map_bytes"], 4 << 20);

  const forkscope::Run old = run_from_json(edited([](nlohmann::json& d) {
    d.erase("bpf_map_bytes");
    d["cells"][0].erase("failed_phases");
  }));
  EXPECT_EQ(old.bpf_map_bytes, 0u) << "files from before these fields still load";
  EXPECT_TRUE(old.cells[0].failed_phases.empty());
}

TEST(FailedLaunches, FailedPhasesAreCheckedLikePhases) {
  EXPECT_EQ(usage_message([] { run_from_json(edited([](nlohmann::json& d) { d["cells"][0]["failed_phases"] = 3; })); }),
            "results: cells[0].failed_phases: expected an array");
  EXPECT_EQ(usage_message([] {
              run_from_json(edited([](nlohmann::json& d) { d["cells"][0]["failed_phases"][1]["count"] = -1; }));
            }),
            "results: cells[0].failed_phases[1].count: expected a non-negative integer");
}

TEST(FailedLaunches, TheSummarySaysWhereLaunchesFailed) {
  forkscope::Run run = limited_run();
  std::ostringstream out;
  render_summary(run, out, false);
  EXPECT_NE(out.str().find("note: launches failed in 1 cell (fork 2M: 10 of 1000 failed (EAGAIN))"), std::string::npos)
      << out.str();
  EXPECT_NE(out.str().find("failed_phases"), std::string::npos) << out.str();

  run.cells[0].failed = 0;
  std::ostringstream clean;
  render_summary(run, clean, false);
  EXPECT_EQ(clean.str().find("note:"), std::string::npos) << clean.str();
}

TEST(FailedLaunches, TheNoteStaysOneLineWithManyFailingCells) {
  forkscope::Run run;
  for (uint64_t heap : {1, 2, 3, 4, 5}) {
    Cell c = limited_fork();
    c.heap_bytes = heap << 20;
    c.launches = 0;
    c.failed = 1000;
    run.cells.push_back(c);
  }
  std::ostringstream out;
  render_summary(run, out, false);
  const std::string text = out.str();
  const size_t at = text.find("note: launches failed in 5 cells");
  ASSERT_NE(at, std::string::npos) << text;
  const std::string note = text.substr(at, text.find('\n', at) - at);
  EXPECT_NE(note.find("fork 1M: 1000 of 1000 failed"), std::string::npos) << note;
  EXPECT_NE(note.find("and 2 more"), std::string::npos) << note;
  EXPECT_EQ(note.find("fork 5M"), std::string::npos) << note;
}

// Reports print names from results files to terminals: a crafted file must not
// reach them with escape sequences.
TEST(HostileResults, ControlCharactersInStringsAreRefused) {
  for (const std::string& bad : {std::string("fork\x1b]0;pwned\x07"), std::string("fork\n"), std::string("fork\x7f"),
                                 std::string("fork\xc2\x9b"
                                             "2J")}) {
    const std::string msg = usage_message(
        [&] { run_from_json(edited([&](nlohmann::json& d) { d["cells"][0]["mode"] = bad; })); });
    EXPECT_NE(msg.find("cells[0].mode: contains control characters"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\x1b'), std::string::npos) << "the message does not echo the sequence";
  }
  EXPECT_NO_THROW(run_from_json(edited([](nlohmann::json& d) { d["host"]["hostname"] = "büro-µs"; })))
      << "other non-ASCII text is fine";
}

TEST(HostileResults, SelfTimeAboveTotalIsRefused) {
  EXPECT_EQ(usage_message([] {
              run_from_json(edited([](nlohmann::json& d) { d["cells"][0]["phases"][0]["self_ns"] = 99000001; }));
            }),
            "results: cells[0].phases[0].self_ns: 99000001 is more than total_ns 99000000");
}

TEST(HostileResults, AbsurdAndWrongTypedNumbersAreRefused) {
  usage_message([] { run_from_json(edited([](nlohmann::json& d) { d["bpf_map_bytes"] = -1; })); });
  usage_message([] { run_from_json(edited([](nlohmann::json& d) { d["bpf_map_bytes"] = "4M"; })); });
  usage_message([] { run_from_json(edited([](nlohmann::json& d) { d["bpf_map_bytes"] = 1e30; })); });
  usage_message(
      [] { run_from_json(edited([](nlohmann::json& d) { d["cells"][0]["heap_bytes"] = 18446744073709551616.0; })); });
  usage_message([] { run_from_json(edited([](nlohmann::json& d) { d["cells"][0]["seconds"] = "NaN"; })); });
  usage_message([] { run_from_json(std::string(100000, '[')); });
  // Found by the fuzzer: the JSON parser's overflow is an exception of its own.
  std::string overflow = edited([](nlohmann::json& d) { d["cells"][0]["seconds"] = 1; });
  overflow.replace(overflow.find("\"seconds\":1"), 11, "\"seconds\":5e6016");
  EXPECT_EQ(usage_message([&] { run_from_json(overflow); }),
            "results: holds a number too large to read; expected a forkscope results file");
}

// Sets the environment for one test and restores it.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (old_) setenv(name_, old_->c_str(), 1);
    else unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(InvokingUser, OnlyUnderSudoAndOnlyWithIds) {
  if (geteuid() != 0) {
    ScopedEnv uid("SUDO_UID", "65534"), gid("SUDO_GID", "65534");
    EXPECT_FALSE(invoking_user()) << "without root there is nobody to give files to";
    return;
  }
  {
    ScopedEnv uid("SUDO_UID", "65534"), gid("SUDO_GID", "100");
    ASSERT_TRUE(invoking_user());
    EXPECT_EQ(invoking_user()->uid, 65534u);
    EXPECT_EQ(invoking_user()->gid, 100u);
  }
  for (const char* bad : {"", "abc", "-1", "12x", "4294967295", "99999999999"}) {
    ScopedEnv uid("SUDO_UID", bad), gid("SUDO_GID", "100");
    const std::string msg = usage_message([] { invoking_user(); });
    EXPECT_NE(msg.find("SUDO_UID"), std::string::npos) << msg;
  }
}

class SharedDir : public testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "forkscope-test-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    victim_ = dir_ / "victim";
    std::ofstream(victim_) << "precious";
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_, victim_;
};

TEST_F(SharedDir, ALinkPlantedAtTheResultsIsReplacedNotFollowed) {
  fs::create_directory(dir_ / "out");
  const fs::path results = dir_ / "out" / "results.json";
  fs::create_symlink(victim_, results);
  for (const char* suffix : {"AAAAAA", "XXXXXX", "000000"})
    fs::create_symlink(victim_, results.string() + ".tmp" + suffix);
  save_results(limited_run(), results.string());

  std::ifstream in(victim_);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "precious");
  EXPECT_FALSE(fs::is_symlink(results));
  EXPECT_EQ(fs::status(results).permissions() & fs::perms::mask,
            fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::others_read);
  EXPECT_EQ(load_results(results.string()).cells[0].failed, 10u);
  size_t links = 0;
  for (const auto& e : fs::directory_iterator(dir_ / "out")) links += fs::is_symlink(e.symlink_status());
  EXPECT_EQ(links, 3u) << "the decoys are left alone";
}

TEST_F(SharedDir, UnderSudoTheResultsBelongToTheInvokingUser) {
  if (geteuid() != 0) GTEST_SKIP() << "giving a file away needs root";
  ScopedEnv uid("SUDO_UID", "65534"), gid("SUDO_GID", "65533");
  const fs::path results = dir_ / "results.json";
  save_results(limited_run(), results.string());
  struct stat st {};
  ASSERT_EQ(stat(results.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u);
  EXPECT_EQ(st.st_gid, 65533u);
}

}  // namespace
}  // namespace forkscope
