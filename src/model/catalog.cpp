#include "forkscope/catalog.h"

#include "forkscope/stats.h"

namespace forkscope {

const std::vector<CatalogEntry>& catalog() {
  static const std::vector<CatalogEntry> entries = {
#define FS_X_ENTRY(id, name, parent, src, how) {FS_PH_##id, #name, FS_PH_##parent, FS_SRC_##src, how},
      FS_PHASES(FS_X_ENTRY)
#undef FS_X_ENTRY
  };
  return entries;
}

const char* source_name(int source) {
  switch (source) {
    case FS_SRC_TP: return "tracepoint";
    case FS_SRC_DERIVED: return "derived";
    case FS_SRC_FENTRY: return "fentry";
    case FS_SRC_KPROBE: return "kprobe";
    default: return "";
  }
}

uint32_t measured_mask(int backend_source) {
  uint32_t mask = 0;
  for (const auto& e : catalog()) {
    if (backend_source == FS_SRC_TP && e.tp_source != FS_SRC_NONE) mask |= 1u << e.id;
  }
  return mask;
}

std::string phase_path(int id, uint32_t mask) {
  std::string path = catalog().at(id).name;
  for (int p = catalog().at(id).parent; p != FS_PH_NONE; p = catalog().at(p).parent) {
    if (mask & (1u << p)) path = std::string(catalog().at(p).name) + ";" + path;
  }
  return path;
}

std::vector<Phase> build_phases(const std::vector<PhaseAgg>& by_id, uint32_t mask) {
  std::vector<Phase> out;
  for (const auto& e : catalog()) {
    if (e.id >= static_cast<int>(by_id.size())) break;
    const PhaseAgg& a = by_id[e.id];
    if (a.count == 0) continue;
    Phase p;
    p.name = e.name;
    p.path = phase_path(e.id, mask);
    p.source = source_name(e.tp_source);
    p.count = a.count;
    p.calls = a.calls;
    p.total_ns = a.total_ns;
    p.self_ns = a.self_ns;
    p.mean_ns = static_cast<double>(a.total_ns) / static_cast<double>(a.count);
    p.p50_ns = hist_percentile(a.hist, 0.50);
    p.p99_ns = hist_percentile(a.hist, 0.99);
    p.hist = a.hist;
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace forkscope
