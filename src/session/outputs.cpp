#include "session/outputs.h"

#include <ctime>

#include "forkscope/catalog.h"
#include "forkscope/analysis.h"
#include "forkscope/session.h"
#include "forkscope/version.h"
#include "forkscope/formats.h"

namespace forkscope {

namespace {

std::string iso_now() {
  char buf[32];
  time_t t = time(nullptr);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

Run start_results(const Tracer& tracer) {
  Run run;
  run.tool_version = FORKSCOPE_VERSION;
  run.started = iso_now();
  run.host = read_host();
  run.backend = backend_name(tracer.plan());
  run.depth = depth_name(tracer.plan().depth);
  run.phases_available = availability(tracer.plan());
  run.bpf_map_bytes = tracer.map_bytes();
  return run;
}

std::pair<std::string, std::string> save_outputs(const Run& run, const std::string& dir) {
  const std::string path = dir + "/results.json";
  save_results(run, path);
  const std::string report = dir + "/report.html";
  write_atomically(report, html_report(run, featured_cell(run)), "report");
  return {path, report};
}

}  // namespace forkscope
