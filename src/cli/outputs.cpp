#include "cli/outputs.h"

#include <ctime>

#include "forkscope/catalog.h"
#include "forkscope/report.h"
#include "forkscope/visual.h"

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
  run.tool_version = "0.1.0";
  run.started = iso_now();
  run.host = read_host();
  run.backend = backend_name(tracer.plan());
  run.phases_available = availability(tracer.plan());
  run.bpf_map_bytes = tracer.map_bytes();
  return run;
}

void read_kernel_side(Tracer& tracer, uint32_t index, Cell& cell) {
  cell.kernel = tracer.read_counts(index);
  std::vector<PhaseAgg> aggs = tracer.read_phases(index);
  if (tracer.plan().detail) {
    PhaseAgg& cow = aggs[FS_PH_POST_LAUNCH_COW];
    cow.count = cell.kernel.launches;
    cow.calls = cell.kernel.faults_parent + cell.kernel.faults_child;
  }
  cell.phases = build_phases(aggs, tracer.plan());
  cell.failed_phases = build_phases(tracer.read_failed_phases(index), tracer.plan());
  cell.samples = tracer.drain_samples(index);
}

std::pair<std::string, std::string> save_outputs(const Run& run, const std::string& dir) {
  const std::string path = dir + "/results.json";
  save_results(run, path);
  const std::string report = dir + "/report.html";
  write_atomically(report, html_report(run, featured_cell(run)), "report");
  return {path, report};
}

}  // namespace forkscope
