// Cell selection and the per-mode views every report format shares.
#include <fmt/format.h>

#include <algorithm>

#include "forkscope/error.h"
#include "forkscope/report.h"
#include "forkscope/size.h"

namespace forkscope {

const Cell* featured_cell(const Run& run) {
  const Cell* best = nullptr;
  if (run.trace) {  // the group that launched most
    for (const Cell& c : run.cells)
      if (!best || c.launches + c.kernel.execs > best->launches + best->kernel.execs) best = &c;
    return best;
  }
  for (const Cell& c : run.cells) {
    bool better = !best || (c.mode == "fork" && best->mode != "fork") ||
                  (c.mode == best->mode && c.heap_bytes > best->heap_bytes) ||
                  (best->mode != "fork" && c.mode != "fork" && c.heap_bytes > best->heap_bytes);
    if (better) best = &c;
  }
  return best;
}

const Cell& find_cell(const Run& run, const std::string& spec) {
  if (run.trace) {  // COMM:KIND
    std::string cells;
    for (const Cell& c : run.cells) {
      if (spec == c.comm + ":" + c.mode) return c;
      cells += fmt::format("{}{}:{}", cells.empty() ? "" : ", ", c.comm, c.mode);
    }
    throw usage_error(fmt::format("--cell {:?}: no such group; expected COMMAND:KIND, the groups are {}", spec,
                                  cells.empty() ? "none" : cells));
  }
  const size_t colon = spec.rfind(':');
  std::string cells;
  for (const Cell& c : run.cells) cells += fmt::format("{}{}:{}", cells.empty() ? "" : ", ", c.mode, format_size(c.heap_bytes));
  if (colon == std::string::npos || colon == 0)
    throw usage_error(fmt::format("--cell {:?}: expected MODE:HEAP, e.g. fork:64M; the cells are {}", spec, cells));
  const std::string mode = spec.substr(0, colon);
  const uint64_t heap = parse_size(spec.substr(colon + 1));
  for (const Cell& c : run.cells) {
    if (c.mode == mode && c.heap_bytes == heap) return c;
  }
  throw usage_error(fmt::format("--cell {}: no such cell; the cells are {}", spec, cells.empty() ? "none" : cells));
}

std::string cell_label(const Cell& cell) {
  std::string label = cell.comm.empty() ? cell.mode + " " + format_size(cell.heap_bytes) : cell.comm + " " + cell.mode;
  if (!cell.host.empty()) label += " on " + cell.host;
  return label;
}

bool same_cell(const Cell& a, const Cell& b) {
  return a.mode == b.mode && a.heap_bytes == b.heap_bytes && a.host == b.host && a.comm == b.comm;
}

std::string mode_label(const std::string& mode, const std::string& host) {
  return host.empty() ? mode : mode + " on " + host;
}

std::string Series::label() const { return mode_label(mode, host); }

std::vector<Series> series_by_mode(const Run& run) {
  std::vector<Series> series;
  for (const Cell& c : run.cells) {
    auto it = std::find_if(series.begin(), series.end(),
                           [&](const Series& s) { return s.mode == c.mode && s.host == c.host; });
    if (it == series.end()) it = series.insert(series.end(), Series{c.mode, c.host, {}});
    it->cells.push_back(&c);
  }
  for (Series& s : series) {
    std::stable_sort(s.cells.begin(), s.cells.end(),
                     [](const Cell* a, const Cell* b) { return a->heap_bytes < b->heap_bytes; });
  }
  return series;
}

std::vector<HeapGrowth> heap_growth(const std::vector<Series>& series) {
  std::vector<HeapGrowth> out;
  for (const Series& s : series) {
    const Cell* small = s.cells.front();
    const Cell* large = s.cells.back();
    const Phase* a = small->phase("syscall");
    const Phase* b = large->phase("syscall");
    if (small == large || a == nullptr || b == nullptr) continue;
    HeapGrowth g{&s, small, large, a->mean_ns, b->mean_ns, false, {}};
    const double growth = b->mean_ns - a->mean_ns;
    g.flat = growth <= 0.25 * a->mean_ns;
    for (const Phase& p : large->phases) {
      if (!p.path.starts_with("syscall") || p.count == 0) continue;
      const Phase* q = small->phase(p.name);
      const double before = q && q->count ? static_cast<double>(q->self_ns) / static_cast<double>(q->count) : 0;
      const double after = static_cast<double>(p.self_ns) / static_cast<double>(p.count);
      if (after > before)
        g.phases.push_back({p.name == "syscall" ? "unattributed (syscall self)" : p.name, after - before});
    }
    std::stable_sort(g.phases.begin(), g.phases.end(),
                     [](const HeapGrowth::Phase& x, const HeapGrowth::Phase& y) { return x.ns > y.ns; });
    out.push_back(std::move(g));
  }
  return out;
}

std::vector<std::string> launcher_mm_columns(const Cell& cell) {
  const KernelCounts& k = cell.kernel;
  if (k.launches == 0) return {"-", "-", "-", "-"};
  return {format_size(k.mm_rss_bytes), format_size(k.mm_vm_bytes), std::to_string(k.mm_vmas),
          format_size(k.mm_pgtables_bytes)};
}

}  // namespace forkscope
