// Report formats, diff and merge: golden files from the fixed results in tests/data
// (FORKSCOPE_UPDATE_GOLDEN=1 rewrites them), and properties each format must keep.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>
#include <sstream>
#include <tuple>
#include <vector>

#include "forkscope/diff_merge.h"
#include "forkscope/terminal.h"
#include "forkscope/stats.h"
#include "forkscope/formats.h"
#include "usage_message.h"

namespace forkscope {
namespace {

const std::string kData = FS_TEST_DATA;

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const Run& fixture() {
  static const Run run = load_results(kData + "/results.json");
  return run;
}

const Run& fixture_thp() {
  static const Run run = load_results(kData + "/results-thp.json");
  return run;
}

// Compares with tests/data/golden/NAME and names the first differing line, so a
// change to a large document reads as one line, not a dump of both.
void expect_golden(const std::string& name, const std::string& actual) {
  const std::string path = kData + "/golden/" + name;
  if (std::getenv("FORKSCOPE_UPDATE_GOLDEN") != nullptr) {
    std::ofstream(path, std::ios::binary) << actual;
    return;
  }
  const std::string expected = read(path);
  ASSERT_FALSE(expected.empty()) << path << " is missing; create it with FORKSCOPE_UPDATE_GOLDEN=1";
  if (actual == expected) return;
  std::istringstream a(actual), e(expected);
  std::string la, le;
  for (int line = 1;; ++line) {
    const bool more_a = static_cast<bool>(std::getline(a, la));
    const bool more_e = static_cast<bool>(std::getline(e, le));
    if (!more_a && !more_e) break;
    if (la != le || more_a != more_e) {
      ADD_FAILURE() << name << " differs at line " << line << "\n  expected: " << le << "\n  actual:   " << la
                    << "\nIf the change is intended: FORKSCOPE_UPDATE_GOLDEN=1 build/tests/unit_tests";
      return;
    }
  }
  ADD_FAILURE() << name << " differs (line endings?)";
}

std::string text_report(const Run& run, const Cell* cell, bool color) {
  std::ostringstream out;
  render_text_report(run, cell, out, color);
  return out.str();
}

std::string diff_text(const Run& a, const Run& b, bool color) {
  std::ostringstream out;
  render_diff(diff_runs(a, b, "a.json", "b.json"), "a.json", "b.json", out, color);
  return out.str();
}

using test::usage_message;

TEST(Golden, Table) { expect_golden("table.txt", text_report(fixture(), featured_cell(fixture()), false)); }

TEST(Golden, Folded) { expect_golden("folded.txt", folded_stacks(*featured_cell(fixture()))); }

TEST(Golden, Flame) { expect_golden("flame.svg", flame_svg(fixture(), *featured_cell(fixture()))); }

TEST(Golden, Trace) { expect_golden("trace.json", trace_events(fixture())); }

TEST(Golden, Charts) {
  expect_golden("latency.svg", latency_chart_svg(fixture()));
  expect_golden("phases-fork.svg", phase_chart_svg(series_by_mode(fixture()).front()));
}

TEST(Golden, Html) { expect_golden("report.html", html_report(fixture(), featured_cell(fixture()))); }

TEST(Golden, Csv) { expect_golden("phases.csv", phases_csv(fixture())); }

TEST(Golden, Diff) { expect_golden("diff.txt", diff_text(fixture(), fixture_thp(), false)); }

TEST(Golden, Json) { expect_golden("results.json", to_json(fixture()) + "\n"); }

TEST(Featured, IsTheLargestForkCell) {
  const Cell* c = featured_cell(fixture());
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->mode, "fork");
  EXPECT_EQ(c->heap_bytes, 128u << 20);
  EXPECT_EQ(featured_cell(forkscope::Run{}), nullptr);
}

TEST(FindCell, ByModeAndHeap) {
  EXPECT_EQ(&find_cell(fixture(), "pthread:16M"), &fixture().cells[3]);
  EXPECT_EQ(&find_cell(fixture(), "fork:2097152"), &fixture().cells[0]);
  const std::string missing = usage_message([] { find_cell(fixture(), "vfork:2M"); });
  EXPECT_NE(missing.find("fork:2M, pthread:2M"), std::string::npos) << missing;
  usage_message([] { find_cell(fixture(), "fork"); });
  usage_message([] { find_cell(fixture(), "fork:lots"); });
}

TEST(Folded, OneLinePerPhaseWithSelfTimeSummingToTheCell) {
  const Cell& cell = *featured_cell(fixture());
  const std::string folded = folded_stacks(cell);
  uint64_t sum = 0, lines = 0;
  std::istringstream in(folded);
  for (std::string line; std::getline(in, line); ++lines) {
    const size_t space = line.rfind(' ');
    ASSERT_NE(space, std::string::npos) << line;
    EXPECT_EQ(line.find(' '), space) << "frames have no spaces: " << line;
    const uint64_t v = std::stoull(line.substr(space + 1));
    EXPECT_GT(v, 0u) << line;
    sum += v;
  }
  uint64_t self = 0, with_self = 0;
  for (const Phase& p : cell.phases) {
    self += p.self_ns;
    with_self += p.self_ns > 0;
  }
  EXPECT_EQ(sum, self);
  EXPECT_EQ(lines, with_self);
  EXPECT_NE(folded.find("syscall;copy_process;dup_mm;dup_mmap;copy_page_range "), std::string::npos);
}

TEST(Flame, SelfContainedWithTitleScriptAndOneFramePerPath) {
  const Cell& cell = *featured_cell(fixture());
  const std::string svg = flame_svg(fixture(), cell);
  EXPECT_NE(svg.find("fork, heap 128M"), std::string::npos);
  EXPECT_NE(svg.find("host vm 6.18.44-fc-v657"), std::string::npos);
  EXPECT_NE(svg.find("<script><![CDATA["), std::string::npos);
  EXPECT_EQ(svg.find("http", svg.find("http") + 1), std::string::npos) << "only the SVG namespace names a URL";
  size_t frames = 0;
  for (size_t at = svg.find("<g class=\"f\""); at != std::string::npos; at = svg.find("<g class=\"f\"", at + 1))
    ++frames;
  // Every phase with time, the phases above them (copy_process has no self time) and the root.
  size_t timed = 0;
  for (const Phase& p : cell.phases) timed += p.total_ns > 0;
  EXPECT_EQ(frames, timed + 1);
  EXPECT_NE(svg.find(R"(data-x="0.000000" data-w="1.000000" data-d="0" data-n="all")"), std::string::npos);
}

TEST(Flame, CellWithoutPhasesSaysSo) {
  Cell empty;
  empty.mode = "fork";
  EXPECT_NE(flame_svg(fixture(), empty).find("no kernel phase time"), std::string::npos);
}

TEST(Trace, SpansNestAsTheirPathsSayOnNamedTracks) {
  const auto doc = nlohmann::json::parse(trace_events(fixture()));
  using Track = std::pair<int, int>;
  std::map<Track, std::string> names;
  std::map<Track, std::vector<std::string>> stacks;  // open spans, replayed as a viewer does
  std::map<Track, double> last;
  std::multiset<std::string> paths;  // every span's path as the nesting of the events says
  size_t launches = 0;
  for (const auto& e : doc["traceEvents"]) {
    const Track key{e["pid"].get<int>(), e.value("tid", -1)};
    if (e["ph"] == "M") {
      if (e["name"] == "thread_name") names[key] = e["args"]["name"];
      continue;
    }
    if (e["ph"] == "i") {
      EXPECT_EQ(e["name"], "launch");
      EXPECT_TRUE(names[key].starts_with(fmt::format("launch {} parent", e["args"]["launch"].get<int>())))
          << names[key];
      ++launches;
      continue;
    }
    ASSERT_TRUE(e["ph"] == "B" || e["ph"] == "E") << e.dump();
    ASSERT_TRUE(names.count(key)) << "track " << key.first << "/" << key.second << " has no name";
    EXPECT_GE(e["ts"].get<double>(), last[key]) << "events of a track in time order";
    last[key] = e["ts"].get<double>();
    auto& stack = stacks[key];
    if (e["ph"] == "B") {
      stack.push_back(e["name"]);
      std::string path;
      for (const std::string& n : stack) path += (path.empty() ? "" : ";") + n;
      paths.insert(path);
    } else {
      ASSERT_FALSE(stack.empty()) << "an end without a begin on " << names[key];
      EXPECT_EQ(e["name"], stack.back()) << "ends the innermost open span";
      stack.pop_back();
    }
  }
  std::multiset<std::string> expected;
  size_t samples = 0;
  for (const Cell& c : fixture().cells)
    for (const Sample& s : c.samples) {
      ++samples;
      for (const SampleSpan& span : s.spans) expected.insert(span.path);
    }
  EXPECT_EQ(paths, expected) << "every span once, under the spans its path names";
  EXPECT_EQ(launches, samples);
  for (const auto& [key, stack] : stacks) EXPECT_TRUE(stack.empty()) << names[key] << " leaves spans open";
  const std::string parent = names[std::make_pair(5, 1)], child = names[std::make_pair(5, 2)];
  EXPECT_EQ(parent, "launch 1 parent (tid 1478)");
  EXPECT_EQ(child.rfind("launch 1 child (pid ", 0), 0u) << child;
}

// speedscope names a frame by its event's name and args: spans carry no args, so
// there is a frame per phase, not per launch; the launch's numbers are on its marker.
TEST(Trace, FramesArePhasesAndLaunchNumbersOnTheirMarker) {
  const auto doc = nlohmann::json::parse(trace_events(fixture()));
  std::set<std::string> frames, phases;
  for (const Cell& c : fixture().cells)
    for (const Sample& s : c.samples)
      for (const SampleSpan& span : s.spans) phases.insert(span.name);
  size_t spans = 0;
  for (const auto& e : doc["traceEvents"]) {
    if (e["ph"] == "B" || e["ph"] == "E") {
      EXPECT_FALSE(e.contains("args")) << e.dump();
      frames.insert(e["name"].get<std::string>() + (e.contains("args") ? " " + e["args"].dump() : ""));
      spans += e["ph"] == "B";
    }
  }
  EXPECT_EQ(frames, phases);
  EXPECT_GT(spans, frames.size() * 2) << "the fixture repeats phases over launches";
  const Sample& first = fixture().cells[4].samples[0];
  bool marker = false;
  for (const auto& e : doc["traceEvents"])
    if (e["ph"] == "i" && e["pid"] == 5 && e["tid"] == 1) {
      EXPECT_EQ(e["args"]["launch"], first.seq);
      EXPECT_EQ(e["args"]["launch_start_ns"], first.start_ns);
      EXPECT_EQ(e["args"]["parent_tid"], first.parent_tid);
      EXPECT_EQ(e["args"]["child_pid"], first.child_pid);
      marker = true;
    }
  EXPECT_TRUE(marker);
}

// Spans come from the kernel or a results file: one that outlasts the span it starts
// in is cut at that span's end, so the begin and end events still nest.
TEST(Trace, SpanOutlastingItsParentEndsWithIt) {
  forkscope::Run run;
  Cell cell;
  cell.mode = "fork";
  Sample s;
  s.seq = 7;
  s.spans = {{"syscall", "syscall", 0, 10'000, "parent"},
             {"copy_process", "syscall;copy_process", 5'000, 15'000, "parent"}};
  cell.samples = {s};
  run.cells = {cell};
  std::vector<std::tuple<std::string, std::string, double>> events;
  const auto doc = nlohmann::json::parse(trace_events(run));
  for (const auto& e : doc["traceEvents"])
    if (e["ph"] == "B" || e["ph"] == "E") events.emplace_back(e["name"], e["ph"], e["ts"]);
  using E = std::tuple<std::string, std::string, double>;
  EXPECT_EQ(events, (std::vector<E>{E{"syscall", "B", 0.0}, E{"copy_process", "B", 5.0}, E{"copy_process", "E", 10.0},
                                    E{"syscall", "E", 10.0}}));
  // Times at the ends of their ranges saturate instead of overflowing (UBSan in the fuzz lane).
  run.cells[0].samples[0].spans = {{"syscall", "syscall", std::numeric_limits<int64_t>::min(), UINT64_MAX, "parent"},
                                   {"teardown", "teardown", std::numeric_limits<int64_t>::max(), UINT64_MAX, "child"}};
  size_t ends = 0;
  const auto extreme = nlohmann::json::parse(trace_events(run));
  for (const auto& e : extreme["traceEvents"]) ends += e["ph"] == "E";
  EXPECT_EQ(ends, 2u);
}

TEST(Charts, LogAxesUnitsAndALegendEntryPerMode) {
  const std::string svg = latency_chart_svg(fixture());
  for (const char* text :
       {"10 µs", "1 ms", "100 ms", "2M", "16M", "128M", "heap size (log scale)", ">fork<", ">pthread<", "p99"})
    EXPECT_NE(svg.find(text), std::string::npos) << text;
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  EXPECT_TRUE(phase_chart_svg(series_by_mode(fixture())[1]).empty()) << "threads have no dup_mm to chart";
  const std::string phases = phase_chart_svg(series_by_mode(fixture())[0]);
  EXPECT_LT(phases.find(">copy_page_range<"), phases.find(">vma_setup<")) << "legend ordered by time at 128M";
}

TEST(Charts, NothingToPlot) {
  EXPECT_NE(latency_chart_svg(forkscope::Run{}).find("no measurements to plot"), std::string::npos);
}

TEST(Html, SelfContainedWithEverySection) {
  const std::string html = html_report(fixture(), featured_cell(fixture()));
  for (const char* id : {"id=\"host\"", "id=\"summary\"", "id=\"growth\"", "id=\"charts\"", "id=\"flame\"",
                         "id=\"breakdown\"", "id=\"phases-available\""})
    EXPECT_NE(html.find(id), std::string::npos) << id;
  // No URL but the SVG namespace: the report opens without network access.
  std::string rest = html;
  for (size_t at; (at = rest.find("http://www.w3.org/2000/svg")) != std::string::npos;) rest.erase(at, 26);
  EXPECT_EQ(rest.find("http"), std::string::npos);
  EXPECT_EQ(rest.find("src="), std::string::npos);
  EXPECT_NE(html.find("copy_page_range +6.26 ms (99%)"), std::string::npos) << "growth as the terminal says it";
  EXPECT_NE(html.find("kprobes are not built into this kernel"), std::string::npos) << "why phases are missing";
}

TEST(Csv, HeaderAndOneRowPerCellAndPhase) {
  const std::string csv = phases_csv(fixture());
  size_t rows = 0;
  for (const Cell& c : fixture().cells) rows += c.phases.size();
  EXPECT_EQ(static_cast<size_t>(std::count(csv.begin(), csv.end(), '\n')), rows + 1);
  EXPECT_EQ(csv.rfind("host,mode,heap_bytes,vmas,launches,", 0), 0u);
  forkscope::Run run;
  Cell c;
  c.mode = "clone:VM,FS";
  c.host = "a \"b\"";
  c.vmas = 4000;
  c.phases.push_back(Phase{"syscall", "syscall", "tracepoint", 1, 1, 10, 10, 10, 10, 10, {}});
  run.cells = {c};
  EXPECT_NE(phases_csv(run).find("\"a \"\"b\"\"\",\"clone:VM,FS\",0,4000,0,syscall"), std::string::npos)
      << phases_csv(run);
}

// A --vmas sweep's cells differ only by VMA count: after the results file's round
// trip each keeps its own rows, told apart by the vmas column.
TEST(Csv, VmaSweepCellsKeepTheirCountThroughTheResultsFile) {
  forkscope::Run run = fixture();
  run.cells.resize(1);
  run.cells[0].vmas = 0;
  run.cells.push_back(run.cells[0]);
  run.cells[1].vmas = 4000;
  const std::string csv = phases_csv(run_from_json(to_json(run)));
  const size_t per_cell = run.cells[0].phases.size();
  ASSERT_GT(per_cell, 0u);
  const std::string cell = ",fork," + std::to_string(run.cells[0].heap_bytes) + ",";
  size_t at0 = 0, at4000 = 0;
  std::istringstream lines(csv);
  for (std::string line; std::getline(lines, line);) {
    at0 += line.find(cell + "0," + std::to_string(run.cells[0].launches) + ",") != std::string::npos;
    at4000 += line.find(cell + "4000," + std::to_string(run.cells[1].launches) + ",") != std::string::npos;
  }
  EXPECT_EQ(at0, per_cell) << csv;
  EXPECT_EQ(at4000, per_cell) << csv;
}

TEST(Text, SameAsRunPrintsAndNoEscapesWithoutColor) {
  const std::string plain = text_report(fixture(), featured_cell(fixture()), false);
  EXPECT_EQ(plain.find('\x1b'), std::string::npos);
  EXPECT_NE(text_report(fixture(), featured_cell(fixture()), true).find("\x1b[1m"), std::string::npos);
  EXPECT_NE(plain.find("how the launch grows with the heap"), std::string::npos);
  EXPECT_NE(plain.find("fork heap 128M: kernel phases per launch"), std::string::npos);
}

// A histogram of n launches all in one slot.
std::vector<uint64_t> one_slot(uint32_t slot, uint64_t n) {
  std::vector<uint64_t> h(slot + 1, 0);
  h[slot] = n;
  return h;
}

TEST(Noise, MedianIntervalCoversTheSlotsOfTheCentralRanks) {
  EXPECT_FALSE(median_interval({}).has_value());
  EXPECT_FALSE(median_interval(one_slot(100, kMinLaunchesForVerdict - 1)).has_value());
  const auto m = median_interval(one_slot(100, 1000));
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->n, 1000u);
  EXPECT_EQ(m->low, hist_slot_low(100));
  EXPECT_EQ(m->high, hist_slot_high(100));
  EXPECT_GE(m->p50, m->low);
  EXPECT_LT(m->p50, m->high);
  // 1000 launches spread evenly over 10 slots: ranks 500 -+ 31 reach the slots next to the middle.
  std::vector<uint64_t> spread(110, 0);
  for (uint32_t s = 100; s < 110; ++s) spread[s] = 100;
  const auto w = median_interval(spread);
  EXPECT_EQ(w->low, hist_slot_low(104));
  EXPECT_EQ(w->high, hist_slot_high(105));
}

Run one_phase_run(const std::vector<uint64_t>& hist, double mean_ns) {
  Run run;
  Cell c;
  c.mode = "fork";
  c.heap_bytes = 2 << 20;
  Phase p{"syscall", "syscall", "tracepoint", 100, 100, 0, 0, mean_ns, 0, 0, hist};
  c.phases = {p};
  run.cells = {c};
  return run;
}

TEST(Diff, SlowerFasterOrNoiseFromTheHistograms) {
  const forkscope::Run base = one_phase_run(one_slot(100, 500), 1000);
  EXPECT_EQ(diff_runs(base, one_phase_run(one_slot(110, 500), 2000), "a", "b")[0].phases[0].verdict, Verdict::kSlower);
  EXPECT_EQ(diff_runs(base, one_phase_run(one_slot(90, 500), 500), "a", "b")[0].phases[0].verdict, Verdict::kFaster);
  // Neighbouring slots touch: a difference within the histogram's resolution is not beyond noise.
  EXPECT_EQ(diff_runs(base, one_phase_run(one_slot(101, 500), 1100), "a", "b")[0].phases[0].verdict, Verdict::kNoise);
  EXPECT_EQ(diff_runs(base, one_phase_run({}, 1100), "a", "b")[0].phases[0].verdict, Verdict::kUnknown);
}

TEST(Diff, ListsCellsAndPhasesOnOneSideOnly) {
  forkscope::Run a = fixture();
  forkscope::Run b = fixture();
  b.cells.erase(b.cells.begin() + 1);  // pthread 2M only in A
  b.cells[0].phases.pop_back();        // teardown only in A's fork 2M
  Cell extra = a.cells[0];
  extra.heap_bytes = 1ull << 30;
  b.cells.push_back(extra);  // fork 1G only in B
  const std::string text = diff_text(a, b, false);
  EXPECT_NE(text.find("cells only in A: pthread 2M"), std::string::npos) << text;
  EXPECT_NE(text.find("cells only in B: fork 1G"), std::string::npos) << text;
  EXPECT_NE(text.find("only in A"), std::string::npos);
  const std::string colored = diff_text(fixture(), fixture_thp(), true);
  EXPECT_NE(colored.find("\x1b[32m"), std::string::npos) << "faster rows are green on a terminal";
}

TEST(Diff, RunsWithoutACommonCellAreAnError) {
  forkscope::Run b = fixture();
  for (Cell& c : b.cells) c.heap_bytes += 4096;
  const std::string msg = usage_message([&] { diff_runs(fixture(), b, "a.json", "b.json"); });
  EXPECT_NE(msg.find("a.json and b.json have no cell in common"), std::string::npos) << msg;
}

TEST(Merge, LabelsEveryCellWithItsHost) {
  forkscope::Run other = fixture_thp();
  other.host.hostname = "big";
  other.host.kernel = "6.1.0-21-amd64";
  other.incomplete = true;
  const forkscope::Run merged = merge_runs({fixture(), other}, {"a.json", "b.json"});
  ASSERT_EQ(merged.cells.size(), fixture().cells.size() + other.cells.size());
  EXPECT_EQ(merged.cells.front().host, "vm 6.18.44-fc-v657");
  EXPECT_EQ(merged.cells.back().host, "big 6.1.0-21-amd64");
  EXPECT_EQ(merged.host.hostname, "vm");
  EXPECT_TRUE(merged.incomplete);
  // Labelled cells survive the file and a second merge keeps their labels.
  const forkscope::Run again = merge_runs({run_from_json(to_json(merged)), forkscope::Run{}}, {"m.json", "empty.json"});
  EXPECT_EQ(again.cells.back().host, "big 6.1.0-21-amd64");
  EXPECT_NE(series_by_mode(merged).back().label().find("on big"), std::string::npos);
}

// Merged results: the same MODE:HEAP on several hosts is chosen with HOST/.
TEST(Merge, CellsOfMergedResultsAreChosenByHost) {
  forkscope::Run other = fixture();
  other.host.hostname = "big";
  other.host.kernel = "6.1.0-21-amd64";
  const forkscope::Run merged = merge_runs({fixture(), other}, {"a.json", "b.json"});
  const std::string ambiguous = usage_message([&] { find_cell(merged, "fork:2M"); });
  EXPECT_EQ(
      ambiguous,
      "--cell fork:2M: 2 cells of the merged results match; choose one with HOST/: \"vm 6.18.44-fc-v657/fork:2M\", "
      "\"big 6.1.0-21-amd64/fork:2M\"");
  EXPECT_EQ(find_cell(merged, "big/fork:2M").host, "big 6.1.0-21-amd64");
  EXPECT_EQ(find_cell(merged, "vm 6.18.44-fc-v657/fork:2M").host, "vm 6.18.44-fc-v657");
  EXPECT_NE(usage_message([&] { find_cell(merged, "small/fork:2M"); }).find("no such cell"), std::string::npos);
  // The same host name on two kernels needs the kernel too.
  forkscope::Run newer = fixture();
  newer.host.kernel = "6.19";
  const forkscope::Run kernels = merge_runs({fixture(), newer}, {"a.json", "b.json"});
  EXPECT_NE(usage_message([&] { find_cell(kernels, "vm/fork:2M"); }).find("2 cells"), std::string::npos);
  EXPECT_EQ(find_cell(kernels, "vm 6.19/fork:2M").host, "vm 6.19");
}

TEST(Merge, RefusesTraceResultsAndKeepsEveryInputsPhases) {
  const forkscope::Run trace = load_results(kData + "/trace-results.json");
  EXPECT_EQ(usage_message([&] {
              merge_runs({fixture(), trace}, {"run.json", "trace.json"});
            }),
            "trace.json holds forkscope trace results; merge combines forkscope run results only (report each trace "
            "on its own)");
  EXPECT_NE(usage_message([&] {
              merge_runs({trace, fixture()}, {"trace.json", "run.json"});
            }).find("trace.json holds"),
            std::string::npos);
  // A user phase of the second input stays listed, so the merged file reads back.
  forkscope::Run other = fixture();
  other.host.hostname = "big";
  other.phases_available.push_back({"anon_vma_fork", "fentry", "", ""});
  Phase user = other.cells[0].phases.back();
  user.name = "anon_vma_fork";
  user.path = "syscall;anon_vma_fork";
  other.cells[0].phases.push_back(user);
  const forkscope::Run merged = merge_runs({fixture(), other}, {"a.json", "b.json"});
  EXPECT_EQ(merged.phases_available.size(), fixture().phases_available.size() + 1);
  EXPECT_EQ(run_from_json(to_json(merged)), merged);
}

TEST(Growth, IsNotShownForTraceResults) {
  const forkscope::Run trace = load_results(kData + "/trace-results.json");
  std::ostringstream growth;
  render_growth(trace, growth, false);
  EXPECT_EQ(growth.str(), "");
  std::ostringstream text;
  render_text_report(trace, featured_cell(trace), text, false);
  EXPECT_EQ(text.str().find("heap"), std::string::npos) << text.str();
  // Run results with two heaps per mode do show it.
  std::ostringstream run_growth;
  render_growth(fixture(), run_growth, false);
  EXPECT_NE(run_growth.str(), "");
}

// Issue 18 item 7: trace results' sizes are means (human units, never raw bytes),
// their p50s are histogram estimates (said), and the HTML names cells COMM:KIND.
TEST(TraceReport, HumanSizesSlotEstimateNoteAndCellSyntax) {
  forkscope::Run trace = load_results(kData + "/trace-results.json");
  ASSERT_FALSE(trace.cells.empty());
  trace.cells[0].kernel.mm_pgtables_bytes = 1107285;  // a mean that is not a whole KiB
  trace.cells[0].kernel.mm_rss_bytes = 4964352 + 100;
  std::ostringstream text;
  render_text_report(trace, featured_cell(trace), text, false);
  const std::string t = text.str();
  EXPECT_NE(t.find(" 1.06 MiB "), std::string::npos) << t;
  EXPECT_NE(t.find(" 4.73 MiB "), std::string::npos) << t;
  EXPECT_EQ(t.find("1107285"), std::string::npos) << t;
  EXPECT_NE(t.find("kernel p50*"), std::string::npos) << t;
  EXPECT_NE(t.find("\n* p50 estimated within a histogram slot"), std::string::npos) << t;
  const std::string html = html_report(trace, featured_cell(trace));
  EXPECT_NE(html.find("--cell COMM:KIND"), std::string::npos);
  EXPECT_EQ(html.find("MODE:HEAP"), std::string::npos);
  EXPECT_NE(html_report(fixture(), featured_cell(fixture())).find("--cell MODE:HEAP"), std::string::npos);
}

TEST(Merge, RejectsDuplicatesSchemasAndSingleInputs) {
  const std::string dup = usage_message([] { merge_runs({fixture(), fixture()}, {"a.json", "b.json"}); });
  EXPECT_NE(dup.find("b.json: cell fork 2M on vm 6.18.44-fc-v657 is already in an earlier input"), std::string::npos)
      << dup;
  forkscope::Run other = fixture_thp();
  other.host.hostname = "big";
  other.schema = "forkscope.results/2";
  const std::string schema = usage_message([&] { merge_runs({fixture(), other}, {"a.json", "b.json"}); });
  EXPECT_NE(schema.find("schema"), std::string::npos) << schema;
  usage_message([] { merge_runs({fixture()}, {"a.json"}); });
}

TEST(Samples, RoundTripAndAreOmittedWhenEmpty) {
  const forkscope::Run& run = fixture();
  const forkscope::Run back = run_from_json(to_json(run));
  ASSERT_EQ(back.cells[0].samples.size(), run.cells[0].samples.size());
  const Sample& s = back.cells[0].samples[0];
  const Sample& t = run.cells[0].samples[0];
  EXPECT_EQ(s.seq, t.seq);
  EXPECT_EQ(s.parent_tid, t.parent_tid);
  EXPECT_EQ(s.child_pid, t.child_pid);
  EXPECT_EQ(s.start_ns, t.start_ns);
  ASSERT_EQ(s.spans.size(), t.spans.size());
  EXPECT_EQ(s.spans.back().task, "child");
  EXPECT_EQ(s.spans.back().dur_ns, t.spans.back().dur_ns);
  EXPECT_EQ(to_json(fixture_thp()).find("\"samples\""), std::string::npos);
  EXPECT_EQ(to_json(fixture_thp()).find("\"host\": \"vm"), std::string::npos) << "no cell host unless merged";
}

TEST(Samples, MalformedSamplesNameTheField) {
  auto edited = [](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json j = nlohmann::json::parse(to_json(fixture()));
    edit(j);
    return j.dump();
  };
  EXPECT_EQ(usage_message([&] {
              run_from_json(edited([](nlohmann::json& j) { j["cells"][0]["samples"][1]["spans"][0]["task"] = "x"; }));
            }),
            "results: cells[0].samples[1].spans[0].task: is \"x\", expected \"parent\" or \"child\"");
  EXPECT_EQ(usage_message([&] { run_from_json(edited([](nlohmann::json& j) { j["cells"][2]["samples"] = 3; })); }),
            "results: cells[2].samples: expected an array");
  EXPECT_EQ(usage_message([&] {
              run_from_json(edited([](nlohmann::json& j) { j["cells"][0]["samples"][0]["child_pid"] = 1ull << 40; }));
            }),
            "results: cells[0].samples[0].child_pid: 1099511627776 is not a task id");
  EXPECT_EQ(usage_message([&] {
              run_from_json(
                  edited([](nlohmann::json& j) { j["cells"][0]["samples"][0]["spans"][0]["start_ns"] = 1.5; }));
            }),
            "results: cells[0].samples[0].spans[0].start_ns: expected an integer");
  EXPECT_EQ(usage_message([&] { run_from_json(edited([](nlohmann::json& j) { j["cells"][0]["host"] = 7; })); }),
            "results: cells[0].host: expected a string");
  // A span may start before the launch's sys_enter.
  const forkscope::Run early = run_from_json(
      edited([](nlohmann::json& j) { j["cells"][0]["samples"][0]["spans"][0]["start_ns"] = -250; }));
  EXPECT_EQ(early.cells[0].samples[0].spans[0].start_ns, -250);
}

}  // namespace
}  // namespace forkscope
