// report, diff and merge through the real binary: formats written atomically,
// and bad, mismatched or malformed inputs exiting 2 with one line on stderr.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "forkscope/results.h"
#include "proc.h"

namespace forkscope {
namespace {

namespace fs = std::filesystem;
using test::run_forkscope;

const std::string kFixture = std::string(FS_TEST_DATA) + "/results.json";
const std::string kFixtureThp = std::string(FS_TEST_DATA) + "/results-thp.json";

class ReportCli : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = test::make_temp_dir(); }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  // The fixture with an edit, written to NAME.
  std::string edited(const std::string& name, const std::function<void(nlohmann::json&)>& edit) const {
    nlohmann::json j = nlohmann::json::parse(test::slurp(kFixture));
    edit(j);
    std::ofstream(path(name)) << j.dump();
    return path(name);
  }

  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

  std::string dir_;
};

// Exit 2 and exactly one line on stderr that starts "forkscope: " and says what to
// do.  A bad field in a results file is named by its path, which is what to fix.
void expect_usage_error(const test::Outcome& o, const std::string& needle, bool names_field = false) {
  EXPECT_EQ(o.exit_code, 2) << o.err;
  EXPECT_EQ(test::count_lines(o.err), 1) << o.err;
  EXPECT_EQ(o.err.rfind("forkscope: ", 0), 0u) << o.err;
  EXPECT_NE(o.err.find(needle), std::string::npos) << o.err;
  if (!names_field) {
    EXPECT_NE(o.err.find(';'), std::string::npos) << "what to do follows the semicolon: " << o.err;
  }
}

TEST_F(ReportCli, EveryFormatToAFile) {
  for (const char* format : {"table", "folded", "flame", "trace", "html", "csv", "json"}) {
    const test::Outcome o = run_forkscope({"report", kFixture, "--format", format, "-o", path(format)});
    EXPECT_EQ(o.exit_code, 0) << format << ": " << o.err;
    EXPECT_TRUE(o.out.empty()) << format;
    struct stat st {};
    ASSERT_EQ(stat(path(format).c_str(), &st), 0) << format;
    EXPECT_GT(st.st_size, 100) << format;
    EXPECT_EQ(st.st_mode & 0777, 0644u) << format;
  }
  EXPECT_EQ(entries().size(), 7u) << "no temporary files left behind";
  EXPECT_EQ(test::slurp(path("table")).find('\x1b'), std::string::npos) << "no colour into a file";
  EXPECT_EQ(load_results(path("json")).cells.size(), 6u);
}

TEST_F(ReportCli, TableToStdoutAndACellOfChoice) {
  const test::Outcome o = run_forkscope({"report", kFixture, "--cell", "pthread:16M", "--no-color"});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_NE(o.out.find("pthread heap 16M: kernel phases per launch"), std::string::npos) << o.out;
  const test::Outcome folded = run_forkscope({"report", kFixture, "--format", "folded"});
  EXPECT_NE(folded.out.find("syscall;copy_process;dup_mm;dup_mmap;copy_page_range "), std::string::npos);
}

TEST_F(ReportCli, BadInputsExit2) {
  expect_usage_error(run_forkscope({"report", path("absent.json")}), "cannot read results file");
  std::ofstream(path("broken.json")) << "{\"schema\": ";
  expect_usage_error(run_forkscope({"report", path("broken.json"), "--format", "html", "-o", path("out.html")}),
                     "not valid JSON");
  EXPECT_FALSE(fs::exists(path("out.html")));
  expect_usage_error(run_forkscope({"report", kFixture, "--format", "pdf"}), "--format");
  expect_usage_error(run_forkscope({"report", kFixture, "--format", "flame", "--cell", "vfork:2M"}), "no such cell");
  expect_usage_error(run_forkscope({"report", kFixtureThp, "--format", "trace"}), "no sampled launches");
}

TEST_F(ReportCli, DiffComparesCellsAndPhases) {
  const test::Outcome o = run_forkscope({"diff", kFixture, kFixtureThp, "--no-color"});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_NE(o.out.find("fork 128M: 300 launches in A, 300 in B"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("faster"), std::string::npos);
  EXPECT_NE(o.out.find("within noise"), std::string::npos);
  EXPECT_EQ(o.out.find('\x1b'), std::string::npos);
}

TEST_F(ReportCli, DiffOfMismatchedOrMalformedInputsExits2) {
  const std::string moved = edited("moved.json", [](nlohmann::json& j) {
    for (auto& c : j["cells"]) c["heap_bytes"] = c["heap_bytes"].get<uint64_t>() * 3;
  });
  expect_usage_error(run_forkscope({"diff", kFixture, moved}), "no cell in common");
  const std::string bad = edited("bad.json", [](nlohmann::json& j) { j["cells"][0]["phases"][0]["self_ns"] = -1; });
  expect_usage_error(run_forkscope({"diff", kFixture, bad}), "bad.json: cells[0].phases[0].self_ns", true);
  const std::string other = edited("other.json", [](nlohmann::json& j) { j["schema"] = "forkscope.results/9"; });
  expect_usage_error(run_forkscope({"diff", other, kFixture}), "schema");
  expect_usage_error(run_forkscope({"diff", kFixture}), "b is required");
}

TEST_F(ReportCli, MergeLabelsCellsWithTheirHosts) {
  const std::string big = edited("big.json", [](nlohmann::json& j) {
    j["host"]["hostname"] = "big";
    j["host"]["kernel"] = "6.1.0-21-amd64";
  });
  const test::Outcome o = run_forkscope({"merge", kFixture, big, "-o", path("all.json")});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  const forkscope::Run merged = load_results(path("all.json"));
  ASSERT_EQ(merged.cells.size(), 12u);
  EXPECT_EQ(merged.cells.front().host, "vm 6.18.44-fc-v657");
  EXPECT_EQ(merged.cells.back().host, "big 6.1.0-21-amd64");
  EXPECT_EQ(merged.host.hostname, "vm");
  EXPECT_NE(o.err.find("each cell names its host"), std::string::npos) << o.err;
  // A merged file is a results file like any other.
  EXPECT_EQ(run_forkscope({"report", path("all.json"), "--format", "html", "-o", path("all.html")}).exit_code, 0);
  // Its cells carry hosts, so they do not match the plain run's.
  expect_usage_error(run_forkscope({"diff", kFixture, path("all.json")}), "no cell in common");
}

TEST_F(ReportCli, MergeOfIncompatibleInputsExits2) {
  const std::string other = edited("other.json", [](nlohmann::json& j) {
    j["schema"] = "forkscope.results/2";
    j["host"]["hostname"] = "big";
  });
  expect_usage_error(run_forkscope({"merge", kFixture, other, "-o", path("all.json")}), "schema");
  expect_usage_error(run_forkscope({"merge", kFixture, kFixture, "-o", path("all.json")}),
                     "already in an earlier input");
  expect_usage_error(run_forkscope({"merge", kFixture, "-o", path("all.json")}), "at least two");
  expect_usage_error(run_forkscope({"merge", kFixture, kFixtureThp}), "--output is required");
  std::ofstream(path("empty.json")) << "";
  expect_usage_error(run_forkscope({"merge", kFixture, path("empty.json"), "-o", path("all.json")}), "not valid JSON");
  EXPECT_FALSE(fs::exists(path("all.json")));
}

// Trace results keep their trace section: merge refuses them rather than drop it.
TEST_F(ReportCli, MergeOfRunAndTraceResultsExits2) {
  const std::string trace = std::string(FS_TEST_DATA) + "/trace-results.json";
  expect_usage_error(run_forkscope({"merge", kFixture, trace, "-o", path("all.json")}),
                     "holds forkscope trace results");
  EXPECT_FALSE(fs::exists(path("all.json")));
}

// In merged results --cell HOST/MODE:HEAP picks the host; without it an ambiguous cell lists the choices.
TEST_F(ReportCli, MergedCellsAreChosenByHost) {
  const std::string big = edited("big.json", [](nlohmann::json& j) { j["host"]["hostname"] = "big"; });
  ASSERT_EQ(run_forkscope({"merge", kFixture, big, "-o", path("all.json")}).exit_code, 0);
  const test::Outcome ambiguous = run_forkscope(
      {"report", path("all.json"), "--format", "folded", "--cell", "fork:2M"});
  expect_usage_error(ambiguous, "choose one with HOST/");
  EXPECT_NE(ambiguous.err.find("\"big 6.18.44-fc-v657/fork:2M\""), std::string::npos) << ambiguous.err;
  const test::Outcome chosen = run_forkscope(
      {"report", path("all.json"), "--format", "flame", "--cell", "big/fork:2M"});
  ASSERT_EQ(chosen.exit_code, 0) << chosen.err;
  EXPECT_NE(chosen.out.find("host big 6.18.44-fc-v657"), std::string::npos);
}

// A file without cells is refused alike by every format.
TEST_F(ReportCli, AFileWithoutCellsExits2InEveryFormat) {
  const std::string empty = edited("empty.json", [](nlohmann::json& j) { j["cells"] = nlohmann::json::array(); });
  for (const char* format : {"table", "folded", "flame", "trace", "html", "csv", "json"}) {
    SCOPED_TRACE(format);
    expect_usage_error(run_forkscope({"report", empty, "--format", format}), "has no cells");
  }
}

// Hostile files: refused with exit 2 quickly, without reading or building without bound.
TEST_F(ReportCli, HostileFilesExit2) {
  expect_usage_error(run_forkscope({"report", "/dev/zero"}), "not valid JSON");
  std::ofstream(path("deep.json")) << std::string(10'000'000, '[');
  expect_usage_error(run_forkscope({"report", path("deep.json"), "--format", "flame"}), "nested deeper than");
  const std::string long_path = edited("long.json", [](nlohmann::json& j) {
    std::string parts;
    for (int i = 0; i < 100000; ++i) parts += "syscall;";
    j["cells"][0]["phases"][0]["path"] = parts + "syscall";
  });
  expect_usage_error(run_forkscope({"report", long_path, "--format", "html"}), "cells[0].phases[0].path", true);
  const std::string dup = edited("dup.json", [](nlohmann::json& j) { j["cells"][1] = j["cells"][0]; });
  expect_usage_error(run_forkscope({"diff", dup, kFixture}), "cells[1]: the same cell");
}

// `forkscope run` leaves report.html next to results.json.
TEST_F(ReportCli, RunWritesTheHtmlReport) {
  const test::Outcome o = run_forkscope(
      {"run", "--modes", "fork", "--heap", "2M", "--iterations", "20", "--warmup", "2", "--out", dir_, "--quiet"});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(entries(), (std::vector<std::string>{"report.html", "results.json"}));
  const std::string html = test::slurp(path("report.html"));
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("Flame graph: fork 2M"), std::string::npos);
  EXPECT_NE(o.out.find("report: " + path("report.html")), std::string::npos) << o.out;
}

}  // namespace
}  // namespace forkscope
