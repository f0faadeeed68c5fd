// One row per cell and phase, for spreadsheets and plotting scripts.  A cell is
// (host, mode, heap_bytes, vmas): vmas is the swept extra-VMA count (--vmas); a
// trace group is (comm, group, mode), group empty under --group-by comm.
#include <fmt/format.h>

#include "forkscope/formats.h"

namespace forkscope {
namespace {

// RFC 4180: a field with a comma, quote or line break is quoted, quotes doubled.
std::string field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace

std::string phases_csv(const Run& run) {
  std::string out =
      "host,mode,heap_bytes,vmas,launches,phase,path,source,count,calls,total_ns,self_ns,mean_ns,self_per_launch_ns,"
      "p50_ns,p99_ns,comm,group\n";
  const std::string run_host = run.host.hostname + " " + run.host.kernel;
  for (const Cell& c : run.cells) {
    const std::string prefix = fmt::format("{},{},{},{},{}", field(c.host.empty() ? run_host : c.host), field(c.mode),
                                           c.heap_bytes, c.vmas, c.launches);
    const std::string group = field(c.comm) + "," + field(c.group);
    for (const Phase& p : c.phases) {
      const double self = p.count ? static_cast<double>(p.self_ns) / static_cast<double>(p.count) : 0;
      out += fmt::format("{},{},{},{},{},{},{},{},{:.1f},{:.1f},{},{},{}\n", prefix, field(p.name), field(p.path),
                         field(p.source), p.count, p.calls, p.total_ns, p.self_ns, p.mean_ns, self, p.p50_ns, p.p99_ns,
                         group);
    }
  }
  return out;
}

}  // namespace forkscope
