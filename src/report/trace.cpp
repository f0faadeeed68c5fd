// Chrome trace-event JSON of the sampled launches.
#include <fmt/format.h>

#include <algorithm>
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
      std::vector<const SampleSpan*> spans;
      for (const SampleSpan& span : s.spans) spans.push_back(&span);
      // Viewers nest complete events of a track by order: parents (earlier, longer) first.
      std::stable_sort(spans.begin(), spans.end(), [](const SampleSpan* a, const SampleSpan* b) {
        return a->start_ns != b->start_ns ? a->start_ns < b->start_ns : a->dur_ns > b->dur_ns;
      });
      for (const SampleSpan* span : spans) {
        events.push_back({{"name", span->name},
                          {"cat", span->task},
                          {"ph", "X"},
                          {"ts", micros(span->start_ns - base)},
                          {"dur", micros(static_cast<int64_t>(span->dur_ns))},
                          {"pid", pid},
                          {"tid", span->task == "child" ? child : parent},
                          {"args", {{"path", span->path}, {"launch", s.seq}, {"launch_start_ns", s.start_ns}}}});
      }
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
