#include "forkscope/results.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
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
    c.host = "lab 6.1.0-21-amd64";
    c.comm = "sh";
    c.failed_phases = {phase("syscall", "syscall", 10, false)};
    for (Phase& p : c.phases) {
      p.events = p.count * 3;
      p.fn_events = p.count * 2;
      p.hist = {1, 2, 3};
    }
    Sample s{7, 4242, 4243, 123456789, {{"syscall", "syscall", -5, 900, "parent"}, {"child_first_run", "child_first_run", 1000, 50, "child"}}};
    c.samples = {s};
    c.overhead = Overhead{summary(400), 1.5, 1.25, 1.75, -1500, -0.25, 900, 0.125};
    c.failed_errno = "EAGAIN";
    c.time_capped = true;
    c.failed = 2;
    c.backing = {1, 2, 3, 4, 5};
  }
  r.trace = TraceInfo{"-- sh -c true", 0.4, 3, {{4242, "sh", 201, 7}}};
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
  for (const char* key : {"failed_phases", "samples", "host", "comm", "overhead"}) EXPECT_TRUE(j["cells"][0].contains(key)) << key;
  EXPECT_TRUE(j["cells"][0]["phases"][1].contains("hist"));
  EXPECT_EQ(run_from_json(to_json(run)), run);
  EXPECT_EQ(run_from_json(to_json(run, -1)), run);
  // And equality sees a change in any field.
  forkscope::Run other = run;
  other.cells[1].samples[0].spans[1].dur_ns += 1;
  EXPECT_NE(run_from_json(to_json(run)), other);
}

TEST(Results, RoundTripsWithoutCalibrationOrProbeCosts) {
  forkscope::Run run = sample_run();  // qualified: testing::Test has a Run()
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
  run.trace = TraceInfo{"-- sh -c true", 0.4, 0, {{4242, "sh", 201, 0}}};
  const forkscope::Run back = run_from_json(to_json(run));
  ASSERT_TRUE(back.cells[0].overhead.has_value());
  EXPECT_EQ(back.cells[0].overhead->corrected_kernel_ns, -1500);
  EXPECT_EQ(back.cells[0].overhead->corrected_launch_ns, -900);
  EXPECT_EQ(back.cells[0].overhead->corrected_launch_error, -1.1);
  EXPECT_EQ(back.cells[0].comm, "sh");
  EXPECT_EQ(back.cells[0].kernel.execs, 200u);
  EXPECT_EQ(back.cells[0].kernel.mm_pgtables_bytes, 45056u);
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
              run_from_json(edited([](nlohmann::json& j) { j["calibration"]["probe_cost_ns"] = nlohmann::json::array(); }));
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
  const std::string msg =
      usage_message([] { run_from_json(edited([](nlohmann::json& j) { j["schema"] = "forkscope.results/2"; })); });
  EXPECT_NE(msg.find("forkscope.results/2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("schema"), std::string::npos) << msg;
}

TEST(Results, RejectsCellsThatAreNotAnArray) {
  EXPECT_EQ(usage_message([] { run_from_json(edited([](nlohmann::json& j) { j["cells"] = nlohmann::json::object(); })); }),
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
  usage_message([] { run_from_json(edited([](nlohmann::json& j) { j["cells"][0]["user"]["call_to_return"]["mean"] = 1e300; })); });
}

TEST(Results, RejectsMissingFields) {
  EXPECT_EQ(usage_message([] {
              run_from_json(edited([](nlohmann::json& j) { j["cells"][1]["kernel"].erase("lost"); }));
            }),
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
