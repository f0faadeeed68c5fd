// Chrome trace-event JSON of the sampled launches.
#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <string_view>
#include <nlohmann/json.hpp>

#include "forkscope/formats.h"

namespace forkscope {
namespace {

using Json = nlohmann::ordered_json;

Json metadata(const char* name, int pid, int tid, Json args) {
  Json m = {{"name", name}, {"ph", "M"}, {"pid", pid}};
  if (tid >= 0) m["tid"] = tid;
  m["args"] = std::move(args);
  return m;
}

// Trace-event times are microseconds; fractions keep the nanoseconds.
double micros(int64_t ns) { return static_cast<double>(ns) / 1000.0; }

// Times from a results file are untrusted: a sum past the range saturates.
int64_t later(int64_t at, uint64_t by) {
  int64_t sum = 0;
  return by > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
                 __builtin_add_overflow(at, static_cast<int64_t>(by), &sum)
             ? std::numeric_limits<int64_t>::max()
             : sum;
}
// A time relative to the launch's first (at >= base).
double since(int64_t at, int64_t base) {
  int64_t diff = 0;
  return micros(__builtin_sub_overflow(at, base, &diff) ? std::numeric_limits<int64_t>::max() : diff);
}

// One task's spans as begin and end events in time order, an enclosing span around the
// spans it contains. Not complete (X) events: speedscope ends those at ts + dur in
// floating point, a hair after the next span's start, and nests that span in the one
// that just ended.
void add_track(Json& events, const std::vector<SampleSpan>& all, const char* task, int64_t base, int pid, int tid) {
  std::vector<const SampleSpan*> spans;
  for (const SampleSpan& span : all)
    if (span.task == task) spans.push_back(&span);
  std::stable_sort(spans.begin(), spans.end(), [](const SampleSpan* a, const SampleSpan* b) {
    return a->start_ns != b->start_ns ? a->start_ns < b->start_ns : a->dur_ns > b->dur_ns;
  });
  auto event = [&](const SampleSpan& span, const char* ph, int64_t at) {
    events.push_back(
        {{"name", span.name}, {"cat", span.task}, {"ph", ph}, {"ts", since(at, base)}, {"pid", pid}, {"tid", tid}});
  };
  std::vector<std::pair<const SampleSpan*, int64_t>> open;  // with their ends
  auto close_until = [&](int64_t at) {
    for (; !open.empty() && open.back().second <= at; open.pop_back())
      event(*open.back().first, "E", open.back().second);
  };
  for (const SampleSpan* span : spans) {
    close_until(span->start_ns);
    int64_t end = later(span->start_ns, span->dur_ns);
    // A span that outlasts the one it starts in ends with it: the events must nest.
    if (!open.empty()) end = std::min(end, open.back().second);
    event(*span, "B", span->start_ns);
    open.emplace_back(span, end);
  }
  close_until(std::numeric_limits<int64_t>::max());
}

}  // namespace

std::string trace_events(const Run& run) {
  Json events = Json::array();
  for (size_t ci = 0; ci < run.cells.size(); ++ci) {
    const Cell& cell = run.cells[ci];
    if (cell.samples.empty()) continue;
    const int pid = static_cast<int>(ci) + 1;
    events.push_back(metadata("process_name", pid, -1, {{"name", cell_label(cell)}}));
    events.push_back(metadata("process_sort_index", pid, -1, {{"sort_index", pid}}));
    for (size_t si = 0; si < cell.samples.size(); ++si) {
      const Sample& s = cell.samples[si];
      // Two tracks per launch; the runner's own tid is the same for every launch.
      const int parent = 2 * static_cast<int>(si) + 1, child = parent + 1;
      events.push_back(metadata("thread_name", pid, parent,
                                {{"name", fmt::format("launch {} parent (tid {})", s.seq, s.parent_tid)}}));
      events.push_back(
          metadata("thread_name", pid, child, {{"name", fmt::format("launch {} child (pid {})", s.seq, s.child_pid)}}));
      events.push_back(metadata("thread_sort_index", pid, parent, {{"sort_index", parent}}));
      events.push_back(metadata("thread_sort_index", pid, child, {{"sort_index", child}}));

      // Every launch starts at 0, so the tracks line up; a span before sys_enter moves it.
      int64_t base = 0;
      for (const SampleSpan& span : s.spans) base = std::min(base, span.start_ns);
      // The launch's own numbers ride on a marker at its start: speedscope names a frame
      // by its event's name and args, so the spans carry none (one frame per phase).
      events.push_back({{"name", "launch"},
                        {"cat", "parent"},
                        {"ph", "i"},
                        {"s", "t"},
                        {"ts", since(0, base)},
                        {"pid", pid},
                        {"tid", parent},
                        {"args",
                         {{"launch", s.seq},
                          {"launch_start_ns", s.start_ns},
                          {"parent_tid", s.parent_tid},
                          {"child_pid", s.child_pid}}}});
      for (const char* task : {"parent", "child"})
        add_track(events, s.spans, task, base, pid, task == std::string_view("child") ? child : parent);
    }
  }
  const Json doc = {{"traceEvents", std::move(events)},
                    {"displayTimeUnit", "ns"},
                    {"otherData",
                     {{"tool", "forkscope " + run.tool_version},
                      {"host", run.host.hostname},
                      {"kernel", run.host.kernel},
                      {"backend", run.backend},
                      {"started", run.started}}}};
  return doc.dump(1, ' ', false, Json::error_handler_t::replace) + "\n";
}

}  // namespace forkscope
