#include "forkscope/terminal.h"
#include "forkscope/formats.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <sstream>

namespace forkscope {
namespace {

Phase phase(const std::string& path, uint64_t count, uint64_t calls, uint64_t total_ns, uint64_t self_ns,
            const std::string& source = "derived") {
  Phase p;
  p.path = path;
  p.name = path.substr(path.rfind(';') + 1);
  p.source = source;
  p.count = count;
  p.calls = calls;
  p.total_ns = total_ns;
  p.self_ns = self_ns;
  p.mean_ns = static_cast<double>(total_ns) / static_cast<double>(count);
  return p;
}

Summary latency(uint64_t p50, uint64_t p99) {
  Summary s;
  s.n = 1000;
  s.min = p50 / 2;
  s.mean = static_cast<double>(p50);
  s.p50 = p50;
  s.p90 = p99 - 1;
  s.p99 = p99;
  s.max = p99 * 3;
  return s;
}

// A fork at 2 MiB as the tracepoint backend measures it (1000 launches, per-launch
// times as in the recorded sequence of test_machine.cpp) and a thread.
Run fixed_run() {
  Run run;
  run.host = {"lab", "6.1.0-21-amd64", "x86_64", 2, "madvise"};
  run.backend = "tracepoint";
  Cell fork;
  fork.mode = "fork";
  fork.heap_bytes = 2 << 20;
  fork.iterations = 1000;
  fork.launches = 1000;
  fork.user = {latency(61234, 98765), latency(70100, 120000), latency(250000, 400000)};
  const uint64_t n = 1000, us = 1000 * n;  // one microsecond per launch, summed over the launches
  fork.phases = {
      phase("syscall", n, n, 519 * us, 11 * us, "tracepoint"),
      phase("syscall;copy_process", n, n, 503 * us, 0),
      phase("syscall;copy_process;dup_task_struct", n, n, 7 * us, 7 * us),
      phase("syscall;copy_process;copy_creds", n, n, 7 * us, 7 * us),
      phase("syscall;copy_process;dup_mm", n, n, 466 * us, 40 * us),
      phase("syscall;copy_process;dup_mm;dup_mmap", n, n, 426 * us, 6 * us, "tracepoint"),
      phase("syscall;copy_process;dup_mm;dup_mmap;vma_setup", n, 5 * n, 8 * us, 8 * us),
      phase("syscall;copy_process;dup_mm;dup_mmap;copy_page_range", n, 2 * n, 412 * us, 412 * us),
      phase("syscall;copy_process;alloc_pid", n, n, 11 * us, 11 * us),
      phase("syscall;wake_up_new_task", n, n, 5 * us, 5 * us, "tracepoint"),
      phase("child_first_run", n, n, 30 * us, 30 * us, "tracepoint"),
      phase("post_launch_cow", n, 23 * n, 0, 0, "tracepoint"),
      phase("teardown", n, n, 90 * us, 90 * us, "tracepoint"),
  };
  Cell thread;
  thread.mode = "pthread";
  thread.heap_bytes = 2 << 20;
  thread.iterations = 1000;
  thread.launches = 812;
  thread.time_capped = true;
  thread.failed = 3;
  thread.failed_errno = "EAGAIN";
  thread.user = {latency(9500, 15000), latency(12000, 20000), latency(30000, 50000)};
  run.cells = {fork, thread};
  return run;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

size_t columns(const std::string& s) {
  return static_cast<size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

// The row up to the bar column: without the bar and the gap before it.
std::string before_bar(std::string row) {
  for (const std::string block : {"█", "▏"}) {
    while (row.size() >= block.size() && row.compare(row.size() - block.size(), block.size(), block) == 0)
      row.erase(row.size() - block.size());
  }
  row.erase(row.find_last_not_of(' ') + 1);
  return row;
}

size_t blocks(const std::string& row) {
  size_t n = 0;
  for (size_t at = row.find("█"); at != std::string::npos; at = row.find("█", at + 1)) ++n;
  return n;
}

std::string render_tree(const Cell& cell, bool color) {
  std::ostringstream out;
  render_phase_tree(cell, out, color);
  return out.str();
}

std::string render_table(const Run& run, bool color) {
  std::ostringstream out;
  render_summary(run, out, color);
  return out.str();
}

TEST(Summary, OneAlignedRowPerCell) {
  const std::vector<std::string> lines = lines_of(render_table(fixed_run(), false));
  // Header line, column header, rule, two cells, and a note: the thread cell had failures.
  ASSERT_EQ(lines.size(), 6u) << render_table(fixed_run(), false);
  EXPECT_EQ(lines[5].rfind("note: launches failed in 1 cell (pthread 2M: 3 of 815 failed (EAGAIN))", 0), 0u)
      << lines[5];
  EXPECT_NE(lines[0].find("lab"), std::string::npos);
  EXPECT_NE(lines[0].find("6.1.0-21-amd64"), std::string::npos);
  EXPECT_NE(lines[0].find("2 CPUs"), std::string::npos);
  EXPECT_NE(lines[0].find("madvise"), std::string::npos);
  EXPECT_NE(lines[0].find("tracepoint"), std::string::npos);
  EXPECT_EQ(lines[0].find("incomplete"), std::string::npos);

  const std::string& fork = lines[3];
  const std::string& thread = lines[4];
  EXPECT_EQ(fork.rfind("fork", 0), 0u);
  EXPECT_EQ(thread.rfind("pthread", 0), 0u);
  for (const char* text : {"2M", "1000", "61.2 µs", "98.8 µs", "70.1 µs", "250 µs", "copy_page_range 79%, dup_mm 8%"})
    EXPECT_NE(fork.find(text), std::string::npos) << text << " in " << fork;
  for (const char* text : {"812 (time-capped), 3 failed (EAGAIN)", "9.50 µs", "15.0 µs", "12.0 µs", "30.0 µs"})
    EXPECT_NE(thread.find(text), std::string::npos) << text << " in " << thread;

  // Right-aligned columns end at the same display column in the header and both rows,
  // although "µs" takes more bytes than columns.
  const size_t p50_end = columns(lines[1].substr(0, lines[1].find("return p50") + 10));
  EXPECT_EQ(columns(fork.substr(0, fork.find("61.2 µs") + std::string("61.2 µs").size())), p50_end);
  EXPECT_EQ(columns(thread.substr(0, thread.find("9.50 µs") + std::string("9.50 µs").size())), p50_end);
}

TEST(Summary, MarksIncompleteRunsAndHasNoEscapesWithoutColor) {
  auto run = fixed_run();
  run.incomplete = true;
  const std::string plain = render_table(run, false);
  EXPECT_NE(lines_of(plain)[0].find("incomplete"), std::string::npos);
  EXPECT_EQ(plain.find('\x1b'), std::string::npos);
  EXPECT_NE(render_table(run, true).find("\x1b[1m"), std::string::npos);
}

TEST(PhaseTree, RowsInTreeOrderWithIndentation) {
  const auto run = fixed_run();
  const std::vector<std::string> lines = lines_of(render_tree(run.cells[0], false));
  EXPECT_EQ(lines.front(), "fork heap 2M: kernel phases per launch (1000 launches)");
  EXPECT_EQ(lines.back(),
            "self time of a phase = its time not covered by the phases listed under it; landmark segments "
            "(source derived) run to the next landmark");
  // Title, column header, rule, one row per phase, footer.
  ASSERT_EQ(lines.size(), 3 + run.cells[0].phases.size() + 1);
  for (size_t i = 0; i < run.cells[0].phases.size(); ++i) {
    const Phase& p = run.cells[0].phases[i];
    const std::string& row = lines[3 + i];
    const std::string indent(2 * static_cast<size_t>(std::count(p.path.begin(), p.path.end(), ';')), ' ');
    EXPECT_EQ(row.rfind(indent + p.name + " ", 0), 0u) << row;
  }
}

TEST(PhaseTree, DataRowsAlignUpToTheBar) {
  const auto run = fixed_run();
  const std::vector<std::string> lines = lines_of(render_tree(run.cells[0], false));
  const size_t width = columns(before_bar(lines[1]));
  for (size_t i = 3; i + 1 < lines.size(); ++i) EXPECT_EQ(columns(before_bar(lines[i])), width) << lines[i];
}

TEST(PhaseTree, ShowsPerLaunchFiguresSharesAndBars) {
  const auto run = fixed_run();
  const std::vector<std::string> lines = lines_of(render_tree(run.cells[0], false));
  auto row = [&](const std::string& name) {
    for (const std::string& l : lines) {
      if (l.find(" " + name + " ") != std::string::npos || l.rfind(name + " ", 0) == 0) return l;
    }
    return std::string();
  };
  const std::string syscall = row("syscall");
  EXPECT_NE(syscall.find("519 µs"), std::string::npos) << syscall;
  EXPECT_NE(syscall.find("11.0 µs"), std::string::npos) << syscall;
  EXPECT_NE(syscall.find("100%  █"), std::string::npos) << syscall;
  EXPECT_EQ(blocks(syscall), 30u) << syscall;
  const std::string cpr = row("copy_page_range");
  EXPECT_NE(cpr.find("x2.0"), std::string::npos) << cpr;
  EXPECT_NE(cpr.find("412 µs"), std::string::npos) << cpr;
  EXPECT_NE(cpr.find("79%"), std::string::npos) << cpr;
  EXPECT_EQ(blocks(cpr), 24u) << cpr;  // 79% of 30
  EXPECT_NE(row("vma_setup").find("x5.0"), std::string::npos);
  const std::string creds = row("copy_creds");
  EXPECT_NE(creds.find("▏"), std::string::npos) << "1% is under one block: " << creds;
  EXPECT_NE(row("copy_process").find("x1"), std::string::npos);
  EXPECT_NE(row("post_launch_cow").find("23.0 faults/launch"), std::string::npos) << row("post_launch_cow");
  EXPECT_EQ(row("post_launch_cow").find("µs"), std::string::npos);
  // Outside the launch call: no share of the syscall, no bar.
  EXPECT_EQ(row("teardown").find("%"), std::string::npos) << row("teardown");
  EXPECT_EQ(blocks(row("teardown")), 0u) << row("teardown");
  EXPECT_NE(before_bar(row("teardown")).find(" -"), std::string::npos) << row("teardown");
}

// A phase seen in fewer launches than the group has (children gone unseen) says so
// in both tables, instead of a bare per-launch figure.
TEST(PhaseTree, SaysNOfNForPhasesSeenInFewerLaunches) {
  auto run = fixed_run();
  Cell& fork = run.cells[0];
  for (Phase& p : fork.phases)
    if (p.name == "teardown") p.count = p.calls = 976;
  const std::vector<std::string> lines = lines_of(render_tree(fork, false));
  const auto teardown = std::find_if(lines.begin(), lines.end(),
                                     [](const std::string& l) { return l.rfind("teardown ", 0) == 0; });
  ASSERT_NE(teardown, lines.end());
  EXPECT_NE(teardown->find("976 of 1000"), std::string::npos) << *teardown;
  EXPECT_EQ(teardown->find("x1"), std::string::npos) << *teardown;
  const std::string html = html_report(run, &fork);
  EXPECT_NE(html.find(">976 of 1000<"), std::string::npos);
  // A trace's group chart says it in the bar's tooltip.
  fork.comm = "sh";
  run.trace = TraceInfo{"-- sh -c true", 0.4, 0, {}};
  const std::string traced = html_report(run, &fork);
  EXPECT_NE(traced.find(": teardown 90.0 µs, seen in 976 of 1000</title>"), std::string::npos);
  EXPECT_NE(traced.find(": reap seen in 0 of 1000</title>"), std::string::npos) << "reap is missing";
  // Phases seen in every launch keep their per-launch figure.
  for (const std::string& l : lines) {
    if (l.rfind("syscall ", 0) == 0) {
      EXPECT_NE(l.find("x1"), std::string::npos) << l;
    }
  }
}

TEST(PhaseTree, NoEscapesWithoutColor) {
  const auto run = fixed_run();
  EXPECT_EQ(render_tree(run.cells[0], false).find('\x1b'), std::string::npos);
  const std::string colored = render_tree(run.cells[0], true);
  EXPECT_NE(colored.find("\x1b[1m"), std::string::npos);
  EXPECT_NE(colored.find("\x1b[2m"), std::string::npos);
}

TEST(PhaseTree, CellWithoutPhases) {
  const auto run = fixed_run();
  const std::vector<std::string> lines = lines_of(render_tree(run.cells[1], false));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "pthread heap 2M: kernel phases per launch (812 launches)");
  EXPECT_EQ(lines[1], "no kernel phases were measured for this cell");
}

TEST(Color, OffWhenNoColorIsSetOrTheTerminalIsDumb) {
  const char* term = std::getenv("TERM");
  const std::string saved = term != nullptr ? term : "";
  setenv("NO_COLOR", "1", 1);
  EXPECT_FALSE(stdout_is_tty());
  unsetenv("NO_COLOR");
  setenv("TERM", "dumb", 1);
  EXPECT_FALSE(stdout_is_tty());
  if (term != nullptr) {
    setenv("TERM", saved.c_str(), 1);
  } else {
    unsetenv("TERM");
  }
}

}  // namespace
}  // namespace forkscope

namespace forkscope {
namespace {

Cell growth_cell(const std::string& mode, uint64_t heap, uint64_t cpr_us, uint64_t other_us) {
  const uint64_t n = 100, us = 1000 * n;
  Cell c;
  c.mode = mode;
  c.heap_bytes = heap;
  c.launches = n;
  c.phases = {phase("syscall", n, n, (cpr_us + other_us + 10) * us, 10 * us, "tracepoint"),
              phase("syscall;copy_process", n, n, (cpr_us + other_us) * us, other_us * us)};
  if (cpr_us) c.phases.push_back(phase("syscall;copy_process;copy_page_range", n, n, cpr_us * us, cpr_us * us));
  return c;
}

TEST(Growth, NamesThePhaseTheHeapGrowthGoesTo) {
  forkscope::Run run;
  run.cells = {growth_cell("fork", 2 << 20, 40, 20), growth_cell("pthread", 2 << 20, 0, 10),
               growth_cell("fork", 512 << 20, 2840, 20), growth_cell("pthread", 512 << 20, 0, 11)};
  std::ostringstream out;
  render_growth(run, out, false);
  const std::vector<std::string> lines = lines_of(out.str());
  ASSERT_EQ(lines.size(), 5u) << out.str();  // title, header, rule, fork, pthread
  EXPECT_EQ(lines[3].rfind("fork", 0), 0u);
  EXPECT_NE(lines[3].find("2M -> 512M"), std::string::npos) << lines[3];
  EXPECT_NE(lines[3].find("70.0 µs -> 2.87 ms"), std::string::npos) << lines[3];
  EXPECT_NE(lines[3].find("copy_page_range +2.80 ms (100%)"), std::string::npos) << lines[3];
  EXPECT_NE(lines[4].find("flat"), std::string::npos) << lines[4];
  EXPECT_EQ(out.str().find('\x1b'), std::string::npos);
}

TEST(Growth, SilentForASingleHeap) {
  forkscope::Run run;
  run.cells = {growth_cell("fork", 2 << 20, 40, 20)};
  std::ostringstream out;
  render_growth(run, out, false);
  EXPECT_TRUE(out.str().empty());
}

}  // namespace
}  // namespace forkscope

namespace forkscope {
namespace {

TEST(Overhead, PrintsTheProbeCostPerKindWhenMeasured) {
  forkscope::Run run;
  std::ostringstream none;
  render_overhead(run, none);
  EXPECT_EQ(none.str().find("function-probe cost"), std::string::npos) << none.str();

  run.calibration = Calibration{};  // function probes, no --overhead: only the probe costs
  run.calibration->probe_cost_ns = {{"fentry", 575}, {"kprobe", 1109}};
  std::ostringstream out;
  render_overhead(run, out);
  EXPECT_NE(out.str().find("function-probe cost"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("fentry/fexit 575 ns, kprobe/kretprobe 1.11 µs"), std::string::npos) << out.str();
  EXPECT_EQ(out.str().find("observer cost"), std::string::npos) << "no --overhead calibration to show: " << out.str();
  EXPECT_NE(out.str().find("overhead not measured"), std::string::npos) << out.str();
}

// The corrected self time takes out the calibrated cost of the programs that ran
// inside the phase: tracepoint runs at ns_per_event, function-probe runs at half
// the pair cost of the phase's own kind.
TEST(PhaseTree, CorrectedSelfTakesOutOurProgramsCost) {
  Cell c;
  c.launches = 2;
  Phase sys{"syscall", "syscall", "tracepoint", 2, 2, 20000, 4000};
  sys.events = 4;  // 2 per launch
  Phase cp{"copy_process", "syscall;copy_process", "kprobe", 2, 2, 16000, 16000};
  cp.fn_events = 4;  // 2 per launch
  c.phases = {sys, cp};
  Calibration cal;
  cal.ns_per_event = 300;
  cal.probe_cost_ns = {{"fentry", 500}, {"kprobe", 1000}};
  const std::vector<TreeRow> rows = phase_tree_rows(c, &cal, "fentry");
  ASSERT_EQ(rows.size(), 2u);
  ASSERT_TRUE(rows[0].corrected_self_ns.has_value());
  EXPECT_DOUBLE_EQ(*rows[0].corrected_self_ns, 2000 - 2 * 300.0);
  EXPECT_DOUBLE_EQ(*rows[1].corrected_self_ns, 8000 - 2 * 500.0);  // kprobe's pair: 1000 ns
  EXPECT_FALSE(phase_tree_rows(c).front().corrected_self_ns.has_value()) << "no calibration, no correction";
  std::ostringstream out;
  render_phase_tree(c, out, false, &cal, "fentry");
  EXPECT_NE(out.str().find("self corr."), std::string::npos) << out.str();
}

}  // namespace
}  // namespace forkscope
