#include "forkscope/results.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "forkscope/error.h"
#include "usage_message.h"

namespace forkscope {
namespace {

namespace fs = std::filesystem;

// Every field holds a distinct value, so a field written or read into the wrong
// member shows up.
Summary summary(uint64_t base) {
  return {base, base + 1, static_cast<double>(base) + 2.25, base + 3, base + 4, base + 5, base + 6};
}

Phase phase(const std::string& name, const std::string& path, uint64_t base, bool with_hist) {
  Phase p;
  p.name = name;
  p.path = path;
  p.source = "derived";
  p.count = base;
  p.calls = base + 1;
  p.total_ns = base * 1000 + 2;
  p.self_ns = base * 500 + 3;
  p.mean_ns = static_cast<double>(p.total_ns) / 3.0;
  p.p50_ns = base + 4;
  p.p99_ns = base + 5;
  if (with_hist) p.hist = {0, 1, 2, 0, 0, 7, 1ULL << 40};
  return p;
}

Run sample_run() {
  Run r;
  r.tool_version = "0.1.0";
  r.started = "2024-05-01T12:00:00Z";
  r.host = {"lab", "6.1.0-21-amd64", "x86_64", 2, "madvise"};
  r.backend = "tracepoint";
  r.depth = "process";
  r.incomplete = true;
  r.phases_available = {{"syscall", "tracepoint", "sys_enter .. sys_exit", ""},
                        {"kernel_clone", "", "", "no tracepoint at its entry or exit"}};
  Cell fork;
  fork.mode = "fork";
  fork.clone_flags = "";
  fork.heap_bytes = 2 << 20;
  fork.iterations = 10000;
  fork.launches = 9990;
  fork.failed = 10;
  fork.failed_errno = "EAGAIN";
  fork.time_capped = true;
  fork.seconds = 1.75;
  fork.user = {summary(100), summary(200), summary(300)};
  fork.backing = {2 << 20, 0, 45056, 3 << 20, 31};
  fork.kernel = {9990, 10, 20, 30, 40, 50};
  fork.phases = {phase("syscall", "syscall", 9990, true),
                 phase("copy_page_range", "syscall;copy_process;dup_mm;dup_mmap;copy_page_range", 9000, false)};
  Cell thread;
  thread.mode = "pthread";
  thread.clone_flags = "VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID";
  thread.heap_bytes = 0;
  thread.iterations = 5;
  thread.launches = 5;
  thread.seconds = 0.001;
  thread.user = {summary(7), summary(8), summary(9)};
  thread.phases = {phase("syscall", "syscall", 5, false)};
  r.cells = {fork, thread};
  Calibration cal;
  cal.ns_per_event = 312.5;
  cal.ns_per_launch = -4.25;  // a difference: may come out negative
  cal.events_per_launch = 97.5;
  cal.launches = 200;
  cal.probe_cost_ns = {{"fentry", 575.0}, {"kprobe", 1109.5}};
  r.calibration = cal;
  return r;
}

// Every field of every struct set to a value other than its default, so that a
// field the writer or the reader forgets fails read(write(r)) == r.
forkscope::Run full_run() {
  forkscope::Run r = sample_run();
  r.bpf_map_bytes = 1 << 21;
  for (Cell& c : r.cells) {
    c.kernel.samples_lost = 3;
    c.kernel.first_run_missed = 4;
    c.kernel.execs = 5;
    c.kernel.exec_failed = 6;
    c.kernel.mm_vmas = 7;
    c.kernel.mm_vm_bytes = 8;
    c.kernel.mm_rss_bytes = 9;
    c.kernel.mm_pgtables_bytes = 10;
    c.kernel.mm_anon_huge_bytes = 11;
    c.kernel.mm_anon_huge_launches = c.kernel.launches;
    c.host = "lab 6.1.0-21-amd64";
    c.comm = "sh";
    c.group = "/usr/bin/dash";
    c.exec_programs = {{"/bin/true", 5}, {"/bin/echo", 3}};
    c.exec_programs_other = 2;
    c.failed_phases = {phase("syscall", "syscall", 10, false)};
    for (Phase& p : c.phases) {
      p.events = p.count * 3;
      p.fn_events = p.count * 2;
      p.hist = {1, 2, 3};
    }
    Sample s{7,
             4242,
             4243,
             123456789,
             {{"syscall", "syscall", -5, 900, "parent"}, {"child_first_run", "child_first_run", 1000, 50, "child"}}};
    c.samples = {s};
    c.overhead = Overhead{summary(400), 1.5, 1.25, 1.75, -1500, -0.25, 900, 0.125};
    c.failed_errno = "EAGAIN";
    c.time_capped = true;
    c.failed = 2;
    c.backing = {1, 2, 3, 4, 5};
    c.mapping_method = "order";
    c.mapping_unattributed = 11;
    c.mappings = {{"[anon]", "anon", "rw-p", 1, 1 << 20, 1 << 20, 4096, 12, 12, 300, 9000},
                  {"(other mappings)", "other", "", 3, 12288, 0, 0, 12, 36, 90, 0}};
  }
  r.trace = TraceInfo{"-- sh -c true", 0.4, 3, {{4242, "sh", 201, 7, "make"}}, "exe"};
  return r;
}

using test::usage_message;

std::string edited(const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json j = nlohmann::json::parse(to_json(sample_run()));
  edit(j);
  return j.dump();
}

class TempDir : public testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "forkscope-test-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename().string());
    return names;
  }

  fs::path dir_;
};

TEST(Results, RoundTripsFieldForField) {
  const forkscope::Run run = full_run();
  // Guards the guard: full_run leaves nothing at its default.
  const nlohmann::json j = nlohmann::json::parse(to_json(run));
  EXPECT_TRUE(j.contains("trace") && j.contains("calibration"));
  for (const char* key :
       {"failed_phases", "samples", "host", "comm", "group", "exec_programs", "exec_programs_other", "overhead"})
    EXPECT_TRUE(j["cells"][0].contains(key)) << key;
  EXPECT_EQ(j["trace"]["group_by"], "exe");
  EXPECT_EQ(j["trace"]["parents"][0]["exec_comm"], "make");
  EXPECT_EQ(j["cells"][0]["exec_programs"][1], (nlohmann::json{{"program", "/bin/echo"}, {"execs", 3}}));
  EXPECT_TRUE(j["cells"][0]["phases"][1].contains("hist"));
  EXPECT_EQ(run_from_json(to_json(run)), run);
  EXPECT_EQ(run_from_json(to_json(run, -1)), run);
  // And equality sees a change in any field.
  forkscope::Run other = run;
  other.cells[1].samples[0].spans[1].dur_ns += 1;
  EXPECT_NE(run_from_json(to_json(run)), other);
}

// --group-by (issue 18): files from before it grouped by command; the fields it
// adds are left out where they say nothing; an unknown grouping is refused.
TEST(Results, GroupingReadsBackAndDefaultsToCommand) {
  forkscope::Run run = full_run();
  for (Cell& c : run.cells) {
    c.group.clear();
    c.exec_programs.clear();
    c.exec_programs_other = 0;
  }
  run.trace->group_by = "comm";
  run.trace->parents[0].exec_comm.clear();
  nlohmann::json j = nlohmann::json::parse(to_json(run));
  for (const char* key : {"group", "exec_programs", "exec_programs_other"})
    EXPECT_FALSE(j["cells"][0].contains(key)) << key;
  EXPECT_FALSE(j["trace"]["parents"][0].contains("exec_comm"));
  EXPECT_EQ(run_from_json(j.dump()), run);
  j["trace"].erase("group_by");
  EXPECT_EQ(run_from_json(j.dump()).trace->group_by, "comm") << "a file from before --group-by";
  for (const std::string by : {"exe", "pid", "cgroup"}) {
    j["trace"]["group_by"] = by;
    EXPECT_EQ(run_from_json(j.dump()).trace->group_by, by);
  }
  j["trace"]["group_by"] = "uid";
  EXPECT_EQ(usage_message([&] { run_from_json(j.dump()); }),
            "results: trace.group_by: is \"uid\", expected \"comm\", \"exe\", \"pid\" or \"cgroup\"");
  // Kernel strings are checked like any other: a program name with an escape is refused.
  nlohmann::json k = nlohmann::json::parse(to_json(full_run()));
  k["cells"][0]["exec_programs"][0]["program"] = "/bin/\x1b[2Jtrue";
  EXPECT_EQ(usage_message([&] { run_from_json(k.dump()); }),
            "results: cells[0].exec_programs[0].program: contains control characters; reports print it to terminals, "
            "where they would act");
}

TEST(Results, RoundTripsWithoutCalibrationOrProbeCosts) {
  forkscope::Run run = sample_run();       // qualified: testing::Test has a Run()
  run.calibration->probe_cost_ns.clear();  // --overhead on a tracepoint-only kernel
  EXPECT_EQ(run_from_json(to_json(run)), run);
  EXPECT_FALSE(nlohmann::json::parse(to_json(run))["calibration"].contains("probe_cost_ns"))
      << "no probe costs measured: the field is left out";
  run.calibration.reset();
  EXPECT_EQ(run_from_json(to_json(run)), run);
  // Only the probe costs (function probes without --overhead): the rest stays 0.
  run.calibration = Calibration{};
  run.calibration->probe_cost_ns = {{"kprobe", 3310}};
  EXPECT_EQ(run_from_json(to_json(run)), run);
}

// A noisy calibration can overestimate our cost: the corrected time is then
// negative, and the file must still load.  Trace results keep their groups.
TEST(Results, RoundTripsNegativeCorrectionsAndTraceResults) {
  forkscope::Run run = sample_run();
  run.cells[0].overhead = Overhead{};
  run.cells[0].overhead->corrected_kernel_ns = -1500;
  run.cells[0].overhead->corrected_error = -1.2;
  run.cells[0].overhead->corrected_launch_ns = -900;
  run.cells[0].overhead->corrected_launch_error = -1.1;
  run.cells[0].comm = "sh";
  run.cells[0].kernel.execs = 200;
  run.cells[0].kernel.mm_pgtables_bytes = 45056;
  run.cells[0].kernel.mm_anon_huge_bytes = 64u << 20;
  run.cells[0].kernel.mm_anon_huge_launches = run.cells[0].kernel.launches - 1;
  run.trace = TraceInfo{"-- sh -c true", 0.4, 0, {{4242, "sh", 201, 0}}};
  const forkscope::Run back = run_from_json(to_json(run));
  ASSERT_TRUE(back.cells[0].overhead.has_value());
  EXPECT_EQ(back.cells[0].overhead->corrected_kernel_ns, -1500);
  EXPECT_EQ(back.cells[0].overhead->corrected_launch_ns, -900);
  EXPECT_EQ(back.cells[0].overhead->corrected_launch_error, -1.1);
  EXPECT_EQ(back.cells[0].comm, "sh");
  EXPECT_EQ(back.cells[0].kernel.execs, 200u);
  EXPECT_EQ(back.cells[0].kernel.mm_pgtables_bytes, 45056u);
  EXPECT_EQ(back.cells[0].kernel.mm_anon_huge_bytes, 64u << 20);
  EXPECT_EQ(back.cells[0].kernel.mm_anon_huge_launches, run.cells[0].kernel.launches - 1);
  ASSERT_TRUE(back.trace.has_value());
  EXPECT_EQ(back.trace->target, "-- sh -c true");
  EXPECT_EQ(back.trace->command_exit, 0);
  ASSERT_EQ(back.trace->parents.size(), 1u);
  EXPECT_EQ(back.trace->parents[0].pid, 4242);
  EXPECT_EQ(back.trace->parents[0].launches, 201u);
  // An exit status outside 0..255 (or -1) is refused.
  auto doc = nlohmann::json::parse(to_json(run));
  doc["trace"]["command_exit"] = 300;
  EXPECT_EQ(usage_message([&] { run_from_json(doc.dump()); }),
            "results: trace.command_exit: must be an exit status 0..255, or -1");
  EXPECT_EQ(run_from_json(to_json(run)), run);
}

TEST(Results, ProbeCostsAreOptionalAndChecked) {
  // Files from before probe costs were measured lack the field.
  forkscope::Run old = run_from_json(edited([](nlohmann::json& j) { j["calibration"].erase("probe_cost_ns"); }));
  ASSERT_TRUE(old.calibration.has_value());
  EXPECT_TRUE(old.calibration->probe_cost_ns.empty());
  EXPECT_EQ(usage_message([] {
              run_from_json(
                  edited([](nlohmann::json& j) { j["calibration"]["probe_cost_ns"] = nlohmann::json::array(); }));
            }),
            "results: calibration.probe_cost_ns: expected an object");
  EXPECT_EQ(usage_message([] {
              run_from_json(edited([](nlohmann::json& j) { j["calibration"]["probe_cost_ns"]["fentry"] = "575"; }));
            }),
            "results: calibration.probe_cost_ns.fentry: expected a finite number");
  const std::string msg = usage_message(
      [] { run_from_json(edited([](nlohmann::json& j) { j["calibration"]["probe_cost_ns"]["uprobe"] = 1; })); });
  EXPECT_NE(msg.find("calibration.probe_cost_ns"), std::string::npos) << msg;
  EXPECT_NE(msg.find("uprobe"), std::string::npos) << msg;
}

TEST(Results, UsesTheDocumentedFieldNames) {
  const nlohmann::json j = nlohmann::json::parse(to_json(sample_run()));
  EXPECT_EQ(j["schema"], "forkscope.results/1");
  EXPECT_EQ(j["host"]["thp"], "madvise");
  EXPECT_EQ(j["phases_available"][1]["reason"], "no tracepoint at its entry or exit");
  const auto& cell = j["cells"][0];
  EXPECT_EQ(cell["heap_bytes"], 2 << 20);
  EXPECT_EQ(cell["user"]["call_to_child"]["p90"], 204);
  EXPECT_EQ(cell["kernel"]["lost"], 50);
  EXPECT_EQ(cell["backing"]["vm_pte_bytes"], 45056);
  EXPECT_EQ(cell["phases"][1]["path"], "syscall;copy_process;dup_mm;dup_mmap;copy_page_range");
  EXPECT_EQ(cell["phases"][0]["hist"].size(), 7u);
  EXPECT_FALSE(cell["phases"][1].contains("hist")) << "an empty histogram is omitted";
  EXPECT_EQ(j["calibration"]["probe_cost_ns"]["fentry"], 575.0);
  EXPECT_EQ(j["calibration"]["probe_cost_ns"]["kprobe"], 1109.5);
}

TEST(Results, FindsPhasesByName) {
  const auto run = sample_run();
  ASSERT_NE(run.cells[0].phase("copy_page_range"), nullptr);
  EXPECT_EQ(run.cells[0].phase("copy_page_range")->count, 9000u);
  EXPECT_EQ(run.cells[1].phase("copy_page_range"), nullptr);
}

TEST(Results, RejectsInvalidJson) {
  EXPECT_NE(usage_message([] { run_from_json("{not json"); }).find("not valid JSON"), std::string::npos);
  usage_message([] { run_from_json(""); });
  usage_message([] { run_from_json("[]"); });
}

TEST(Results, RejectsAnotherSchema) {
  const std::string msg = usage_message(
      [] { run_from_json(edited([](nlohmann::json& j) { j["schema"] = "forkscope.results/2"; })); });
  EXPECT_NE(msg.find("forkscope.results/2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("schema"), std::string::npos) << msg;
}

TEST(Results, RejectsCellsThatAreNotAnArray) {
  EXPECT_EQ(usage_message(
                [] { run_from_json(edited([](nlohmann::json& j) { j["cells"] = nlohmann::json::object(); })); }),
            "results: cells: expected an array");
}

TEST(Results, RejectsAStringWhereANumberBelongs) {
  EXPECT_EQ(usage_message([] {
              run_from_json(edited([](nlohmann::json& j) { j["cells"][0]["phases"][1]["total_ns"] = "12"; }));
            }),
            "results: cells[0].phases[1].total_ns: expected a non-negative integer");
}

TEST(Results, RejectsNegativeAndAbsurdNumbers) {
  EXPECT_EQ(usage_message([] { run_from_json(edited([](nlohmann::json& j) { j["cells"][1]["launches"] = -5; })); }),
            "results: cells[1].launches: expected a non-negative integer");
  EXPECT_EQ(usage_message([] { run_from_json(edited([](nlohmann::json& j) { j["cells"][0]["seconds"] = -1.5; })); }),
            "results: cells[0].seconds: expected a non-negative number");
  usage_message([] { run_from_json(edited([](nlohmann::json& j) { j["cells"][0]["launches"] = 1.5; })); });
  usage_message([] { run_from_json(edited([](nlohmann::json& j) { j["host"]["cpus"] = 1 << 30; })); });
  usage_message([] {
    run_from_json(edited([](nlohmann::json& j) { j["cells"][0]["phases"][0]["hist"] = std::vector<int>(1000, 1); }));
  });
  usage_message([] {
    run_from_json(edited([](nlohmann::json& j) { j["cells"][0]["user"]["call_to_return"]["mean"] = 1e300; }));
  });
}

// Huge pages are valued per launch: never more launches valued than there were;
// files from before them read as none valued.
TEST(Results, HugePageLaunchesAreAtMostTheLaunches) {
  EXPECT_EQ(usage_message([] {
              run_from_json(edited([](nlohmann::json& j) {
                j["cells"][0]["kernel"]["mm_anon_huge_launches"] = j["cells"][0]["kernel"]["launches"].get<uint64_t>() +
                                                                   1;
              }));
            }),
            "results: cells[0].kernel.mm_anon_huge_launches: 9991 is more than launches 9990; only launches are "
            "valued");
  const forkscope::Run old = run_from_json(edited([](nlohmann::json& j) {
    j["cells"][0]["kernel"].erase("mm_anon_huge_bytes");
    j["cells"][0]["kernel"].erase("mm_anon_huge_launches");
  }));
  EXPECT_EQ(old.cells[0].kernel.mm_anon_huge_launches, 0u);
}

TEST(Results, RejectsMissingFields) {
  EXPECT_EQ(usage_message(
                [] { run_from_json(edited([](nlohmann::json& j) { j["cells"][1]["kernel"].erase("lost"); })); }),
            "results: cells[1].kernel.lost: missing");
  EXPECT_EQ(usage_message([] { run_from_json(edited([](nlohmann::json& j) { j.erase("host"); })); }),
            "results: host: missing");
  EXPECT_EQ(usage_message([] { run_from_json(edited([](nlohmann::json& j) { j["incomplete"] = 0; })); }),
            "results: incomplete: expected true or false");
}

TEST_F(TempDir, SaveAndLoadLeaveOneReadableFile) {
  const std::string path = (dir_ / "results.json").string();
  const auto run = sample_run();
  save_results(run, path);
  save_results(run, path);  // replacing an existing file works the same way
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  EXPECT_EQ(entries(), std::vector<std::string>{"results.json"});
  EXPECT_EQ(load_results(path), run);
}

TEST_F(TempDir, SaveIntoAMissingDirectoryFailsCleanly) {
  try {
    save_results(sample_run(), (dir_ / "no-such-dir" / "results.json").string());
    FAIL() << "saved";
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), kExitFailure);
    EXPECT_NE(std::string(e.what()).find("cannot write results file"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(entries().empty());
}

TEST_F(TempDir, LoadRejectsTruncatedAndMissingFiles) {
  const std::string path = (dir_ / "results.json").string();
  save_results(sample_run(), path);
  fs::resize_file(path, fs::file_size(path) / 2);
  const std::string truncated = usage_message([&] { load_results(path); });
  EXPECT_EQ(truncated.rfind(path + ": not valid JSON", 0), 0u) << truncated;

  const std::string missing = usage_message([&] { load_results((dir_ / "absent.json").string()); });
  EXPECT_NE(missing.find("cannot read results file"), std::string::npos) << missing;
  EXPECT_NE(missing.find("No such file or directory"), std::string::npos) << missing;
}

TEST_F(TempDir, LoadNamesTheFileInFieldErrors) {
  const std::string path = (dir_ / "results.json").string();
  std::ofstream(path) << edited([](nlohmann::json& j) { j["cells"][0]["phases"][0]["count"] = "x"; });
  EXPECT_EQ(usage_message([&] { load_results(path); }),
            path + ": cells[0].phases[0].count: expected a non-negative integer");
}

}  // namespace
}  // namespace forkscope

namespace forkscope {
namespace {

// The sample run with one cell and one phase, as JSON, for the limit tests.
nlohmann::json small_doc() {
  nlohmann::json j = nlohmann::json::parse(to_json(sample_run()));
  j["cells"] = nlohmann::json::array({j["cells"][1]});
  return j;
}

double seconds_to_read(const std::string& text, std::string& message) {
  const auto start = std::chrono::steady_clock::now();
  message = usage_message([&] { run_from_json(text); });
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

TEST(ResultsLimits, AHundredThousandPartPathIsRejectedFast) {
  nlohmann::json j = small_doc();
  std::string path;
  for (int i = 0; i < 100000; ++i) path += "syscall;";
  j["cells"][0]["phases"][0]["path"] = path + "syscall";
  std::string message;
  EXPECT_LT(seconds_to_read(j.dump(), message), 2.0);
  EXPECT_EQ(message.rfind("results: cells[0].phases[0].path: ", 0), 0u) << message;
}

TEST(ResultsLimits, PathPartsAtTheBoundAreAcceptedPastItRejected) {
  nlohmann::json j = small_doc();
  std::string path;
  for (size_t i = 1; i < kMaxPathParts; ++i) path += "copy_process;";
  j["cells"][0]["phases"][0]["path"] = path + "syscall";
  EXPECT_EQ(run_from_json(j.dump()).cells[0].phases[0].path, path + "syscall");
  j["cells"][0]["phases"][0]["path"] = "copy_process;" + path + "syscall";
  EXPECT_EQ(usage_message([&] { run_from_json(j.dump()); }),
            fmt::format("results: cells[0].phases[0].path: has {} parts; a phase path has at most {}",
                        kMaxPathParts + 1, kMaxPathParts));
}

TEST(ResultsLimits, DeepNestingIsRejectedBeforeItIsBuilt) {
  std::string message;
  const std::string deep(100'000'000, '[');
  EXPECT_LT(seconds_to_read(deep, message), 2.0);
  EXPECT_NE(message.find("nested deeper than 16 levels"), std::string::npos) << message;
  // At the bound (the document's own level plus 15 in an unknown member) it reads.
  nlohmann::json j = small_doc();
  nlohmann::json nest = nlohmann::json::array();
  for (size_t i = 2; i < kMaxJsonDepth; ++i) nest = nlohmann::json::array({nest});
  j["extra"] = nest;
  EXPECT_NO_THROW(run_from_json(j.dump()));
  j["extra"] = nlohmann::json::array({nest});
  std::string at = "results: extra";
  for (size_t i = 1; i < kMaxJsonDepth; ++i) at += "[0]";
  EXPECT_EQ(usage_message([&] { run_from_json(j.dump()); }),
            at + ": nested deeper than 16 levels; not a forkscope results file");
}

TEST(ResultsLimits, DevZeroIsRejectedWithoutReadingItAll) {
  const auto start = std::chrono::steady_clock::now();
  const std::string message = usage_message([] { load_results("/dev/zero"); });
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 2.0);
  EXPECT_EQ(message.rfind("/dev/zero: not valid JSON", 0), 0u) << message;
}

TEST_F(TempDir, AFileLargerThanTheBoundIsRejectedUnread) {
  const std::string path = (dir_ / "big.json").string();
  std::ofstream(path) << "{";
  fs::resize_file(path, kMaxResultsBytes + 1);  // sparse: nothing is written
  EXPECT_NE(usage_message([&] { load_results(path); }).find("larger than any results file"), std::string::npos);
}

// Each list and string: at its bound it reads, one past it is refused with the field named.
TEST(ResultsLimits, ListsAndStringsAtTheBoundAreAcceptedPastItRejected) {
  struct Case {
    const char* what;
    size_t bound;
    std::function<void(nlohmann::json&, size_t)> fill;
    std::string field;
  };
  const nlohmann::json base = small_doc();
  const std::vector<Case> cases = {
      {"cells", kMaxCells,
       [&](nlohmann::json& j, size_t n) {
         nlohmann::json cell = base["cells"][0];
         cell["phases"] = nlohmann::json::array();
         j["cells"] = nlohmann::json::array();
         for (size_t i = 0; i < n; ++i) {
           cell["heap_bytes"] = i;
           j["cells"].push_back(cell);
         }
       },
       "cells"},
      {"phases", kMaxPhases,
       [&](nlohmann::json& j, size_t n) {
         nlohmann::json phase = base["cells"][0]["phases"][0];
         j["phases_available"] = nlohmann::json::array();
         j["cells"][0]["phases"] = nlohmann::json::array();
         // phases_available has the same bound: past it, the extra phase is the catalog's.
         for (size_t i = 0; i < n; ++i) {
           const std::string name = i < kMaxPhases ? fmt::format("fn{}", i) : "syscall";
           if (i < kMaxPhases)
             j["phases_available"].push_back({{"name", name}, {"source", "fentry"}, {"how", ""}, {"reason", ""}});
           phase["name"] = name;
           phase["path"] = name;
           j["cells"][0]["phases"].push_back(phase);
         }
       },
       "cells[0].phases"},
      {"samples", kMaxSamples,
       [](nlohmann::json& j, size_t n) {
         const nlohmann::json sample = {
             {"seq", 1}, {"parent_tid", 1}, {"child_pid", 2}, {"start_ns", 3}, {"spans", nlohmann::json::array()}};
         j["cells"][0]["samples"] = nlohmann::json::array();
         for (size_t i = 0; i < n; ++i) j["cells"][0]["samples"].push_back(sample);
       },
       "cells[0].samples"},
      {"spans", kMaxSpans,
       [](nlohmann::json& j, size_t n) {
         const nlohmann::json span = {
             {"name", "syscall"}, {"path", "syscall"}, {"start_ns", 0}, {"dur_ns", 1}, {"task", "parent"}};
         nlohmann::json sample = {
             {"seq", 1}, {"parent_tid", 1}, {"child_pid", 2}, {"start_ns", 3}, {"spans", nlohmann::json::array()}};
         for (size_t i = 0; i < n; ++i) sample["spans"].push_back(span);
         j["cells"][0]["samples"] = nlohmann::json::array({sample});
       },
       "cells[0].samples[0].spans"},
      {"trace parents", kMaxParents,
       [](nlohmann::json& j, size_t n) {
         j["trace"] = {{"target", "-a"}, {"seconds", 1}, {"command_exit", -1}, {"parents", nlohmann::json::array()}};
         for (size_t i = 0; i < n; ++i)
           j["trace"]["parents"].push_back({{"pid", 1}, {"comm", "sh"}, {"launches", 1}, {"execs", 0}});
       },
       "trace.parents"},
      {"string bytes", kMaxStringBytes,
       [](nlohmann::json& j, size_t n) { j["cells"][0]["failed_errno"] = std::string(n, 'E'); },
       "cells[0].failed_errno"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    nlohmann::json j = base;
    c.fill(j, c.bound);
    EXPECT_NO_THROW(run_from_json(j.dump()));
    c.fill(j, c.bound + 1);
    const std::string message = usage_message([&] { run_from_json(j.dump()); });
    EXPECT_EQ(message.rfind("results: " + c.field + ": ", 0), 0u) << message;
    EXPECT_NE(message.find(fmt::format("at most {}", c.bound)), std::string::npos) << message;
  }
}

TEST(ResultsSemantics, DuplicateKeysAreRefusedWithTheirPath) {
  std::string text = to_json(sample_run(), -1);
  const std::string mode = "\"mode\":\"pthread\"";
  text.replace(text.find(mode), mode.size(), mode + "," + mode);
  EXPECT_EQ(usage_message([&] { run_from_json(text); }),
            "results: cells[1].mode: appears twice in one object; keep one");
}

TEST(ResultsSemantics, DuplicateCellsAndPhasesAreRefused) {
  EXPECT_EQ(
      usage_message([] { run_from_json(edited([](nlohmann::json& j) { j["cells"][1] = j["cells"][0]; })); }),
      "results: cells[1]: the same cell (mode, heap_bytes, vmas, comm, group, host) as cells[0]; a results file holds "
      "each cell once");
  // Under --group-by, two groups of one command (two executables named alike) are two cells.
  EXPECT_NO_THROW(run_from_json(edited([](nlohmann::json& j) {
    j["cells"][1] = j["cells"][0];
    j["cells"][1]["group"] = "/tmp/b/sh";
  })));
  // The same cell on another host is another cell.
  EXPECT_NO_THROW(run_from_json(edited([](nlohmann::json& j) {
    j["cells"][1] = j["cells"][0];
    j["cells"][1]["host"] = "other 6.1";
  })));
  EXPECT_EQ(
      usage_message([] {
        run_from_json(edited([](nlohmann::json& j) { j["cells"][0]["phases"][1] = j["cells"][0]["phases"][0]; }));
      }),
      "results: cells[0].phases[1].name: \"syscall\" is already cells[0].phases[0]; a cell holds each phase once");
  EXPECT_NE(usage_message([] {
              run_from_json(edited([](nlohmann::json& j) { j["phases_available"][1] = j["phases_available"][0]; }));
            }).find("phases_available[1].name"),
            std::string::npos);
}

TEST(ResultsSemantics, PhaseNamesAreTheCatalogsOrListedUserPhases) {
  auto renamed = [](nlohmann::json& j) {
    j["cells"][0]["phases"][1]["name"] = "anon_vma_fork";
    j["cells"][0]["phases"][1]["path"] = "syscall;copy_process;dup_mm;dup_mmap;anon_vma_fork";
  };
  EXPECT_EQ(usage_message([&] { run_from_json(edited(renamed)); }),
            "results: cells[0].phases[1].name: \"anon_vma_fork\" is no phase of the catalog and not in "
            "phases_available; a phase name is one of those");
  // --phase anon_vma_fork: the run lists it as available, named for its function.
  const forkscope::Run user = run_from_json(edited([&](nlohmann::json& j) {
    renamed(j);
    j["phases_available"].push_back({{"name", "anon_vma_fork"}, {"source", "fentry"}, {"how", ""}, {"reason", ""}});
  }));
  EXPECT_NE(user.cells[0].phase("anon_vma_fork"), nullptr);
  // A path ends in its phase's name.
  EXPECT_EQ(
      usage_message([] {
        run_from_json(edited([](nlohmann::json& j) { j["cells"][0]["phases"][1]["path"] = "syscall;dup_mm"; }));
      }),
      "results: cells[0].phases[1].path: \"syscall;dup_mm\" does not end in the phase's name \"copy_page_range\"");
}

}  // namespace
}  // namespace forkscope
