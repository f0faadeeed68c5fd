// Cell selection and the per-mode views every report format shares.
#include <fmt/format.h>

#include <algorithm>
#include <optional>

#include "forkscope/error.h"
#include "forkscope/analysis.h"
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

namespace {

// A cell as --cell names it: MODE:HEAP (MODE:HEAP@VMAS with extra VMAs), or
// GROUP:KIND for trace results (GROUP: the command, or --group-by's executable,
// pid or cgroup).
std::string cell_spec(const Run& run, const Cell& c) {
  if (run.trace) return (c.group.empty() ? c.comm : c.group) + ":" + c.mode;
  return c.mode + ":" + format_size(c.heap_bytes) + (c.vmas ? "@" + std::to_string(c.vmas) : "");
}

// With HOST/ in front for cells of merged results.
std::string qualified_spec(const Run& run, const Cell& c) {
  return c.host.empty() ? cell_spec(run, c) : c.host + "/" + cell_spec(run, c);
}

// HOST is the cell's host as merge labels it ("hostname kernel") or its hostname.
bool on_host(const Cell& c, const std::string& host) {
  return c.host == host || c.host.substr(0, c.host.find(' ')) == host;
}

std::vector<const Cell*> cells_named(const Run& run, const std::string& spec, const std::string* host) {
  std::vector<const Cell*> found;
  if (run.trace) {
    for (const Cell& c : run.cells) {
      if (spec == cell_spec(run, c) && (host == nullptr || on_host(c, *host))) found.push_back(&c);
    }
    return found;
  }
  const size_t colon = spec.rfind(':');
  if (colon == std::string::npos || colon == 0) return found;
  const std::string mode = spec.substr(0, colon);
  std::string size = spec.substr(colon + 1);
  std::optional<uint64_t> vmas;  // MODE:HEAP alone matches every VMA count
  if (const size_t at = size.find('@'); at != std::string::npos) {
    vmas = parse_whole_number(size.substr(at + 1));
    if (!vmas) return found;
    size.resize(at);
  }
  const uint64_t heap = parse_size(size);
  for (const Cell& c : run.cells) {
    if (c.mode == mode && c.heap_bytes == heap && (!vmas || c.vmas == *vmas) && (host == nullptr || on_host(c, *host)))
      found.push_back(&c);
  }
  return found;
}

}  // namespace

const Cell& find_cell(const Run& run, const std::string& spec) {
  std::vector<const Cell*> found = cells_named(run, spec, nullptr);
  // Host names hold no '/', so the first one ends HOST/ (a trace COMM may hold one:
  // the whole spec was tried first).
  if (const size_t slash = spec.find('/'); found.empty() && slash != std::string::npos) {
    const std::string host = spec.substr(0, slash);
    found = cells_named(run, spec.substr(slash + 1), &host);
  }
  if (found.size() == 1) return *found.front();
  std::string choices;
  for (const Cell* c : found) choices += fmt::format("{}{:?}", choices.empty() ? "" : ", ", qualified_spec(run, *c));
  if (found.size() > 1)
    throw usage_error(fmt::format("--cell {}: {} cells {}match; choose one with {}: {}", spec, found.size(),
                                  found.front()->host.empty() ? "" : "of the merged results ",
                                  found.front()->host.empty() ? "@VMAS" : "HOST/", choices));
  for (const Cell& c : run.cells) choices += fmt::format("{}{}", choices.empty() ? "" : ", ", qualified_spec(run, c));
  if (choices.empty()) choices = "none";
  if (run.trace)
    throw usage_error(
        fmt::format("--cell {:?}: no such group; expected {}:KIND, the groups are {}", spec, group_spec(run), choices));
  if (spec.find(':') == std::string::npos)
    throw usage_error(fmt::format("--cell {:?}: expected MODE:HEAP, e.g. fork:64M; the cells are {}", spec, choices));
  throw usage_error(fmt::format("--cell {}: no such cell; the cells are {}", spec, choices));
}

std::vector<std::string> cell_hosts(const Run& run) {
  std::vector<std::string> hosts;
  for (const Cell& c : run.cells)
    if (!c.host.empty() && std::find(hosts.begin(), hosts.end(), c.host) == hosts.end()) hosts.push_back(c.host);
  return hosts;
}

std::string untraced_label(const Cell& cell) {
  if (!cell.overhead || cell.overhead->untraced.n == 0) return "-";
  return format_ns(static_cast<double>(cell.overhead->untraced.p50));
}

std::string vmas_label(uint64_t vmas) { return vmas ? " +" + std::to_string(vmas) + " VMAs" : ""; }

std::string group_label(const Cell& cell) {
  if (cell.group.empty()) return cell.comm;
  const std::string base = cell.group.substr(cell.group.rfind('/') + 1);
  return cell.comm.empty() || base == cell.comm ? cell.group : cell.group + " (" + cell.comm + ")";
}

std::string group_spec(const Run& run) {
  const std::string by = run.trace ? run.trace->group_by : "comm";
  return by == "exe" ? "EXECUTABLE" : by == "pid" ? "PID" : by == "cgroup" ? "CGROUP" : "COMM";
}

std::string group_heading(const Run& run) {
  const std::string by = run.trace ? run.trace->group_by : "comm";
  return by == "exe" ? "executable" : by == "comm" ? "command" : by;
}

std::string exec_targets(const Cell& cell) {
  std::vector<std::string> names;
  for (const ExecProgram& e : cell.exec_programs) {
    std::string base = e.program.substr(e.program.rfind('/') + 1);
    if (std::find(names.begin(), names.end(), base) == names.end()) names.push_back(std::move(base));
  }
  if (cell.exec_programs_other) names.push_back("...");
  if (names.empty()) return "";
  std::string out = names[0];
  if (names.size() > 1) out += ", " + names[1];
  if (names.size() > 2) out += fmt::format(" +{}", names.size() - 2);
  return out;
}

std::string group_column(const Cell& cell) {
  const std::string to = exec_targets(cell);
  return to.empty() ? group_label(cell) : group_label(cell) + " \u2192 " + to;
}

std::vector<ProgramExecs> execs_by_program(const Run& run) {
  std::vector<ProgramExecs> out;
  ProgramExecs other{"(other programs)", 0, {}, true};
  for (const Cell& c : run.cells) {
    const std::string from = group_label(c) + " " + c.mode;
    for (const ExecProgram& e : c.exec_programs) {
      auto it = std::find_if(out.begin(), out.end(), [&](const ProgramExecs& p) { return p.program == e.program; });
      if (it == out.end()) it = out.insert(out.end(), {e.program, 0, {}, false});
      it->execs += e.execs;
      it->from.push_back(from);
    }
    if (c.exec_programs_other) {
      other.execs += c.exec_programs_other;
      other.from.push_back(from);
    }
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const ProgramExecs& a, const ProgramExecs& b) { return a.execs > b.execs; });
  if (other.execs) out.push_back(std::move(other));
  return out;
}

std::string from_label(const ProgramExecs& p) {
  std::string out;
  for (size_t i = 0; i < p.from.size() && i < 3; i++) out += (i ? ", " : "") + p.from[i];
  if (p.from.size() > 3) out += fmt::format(" +{} more", p.from.size() - 3);
  return out;
}

std::string cell_label(const Cell& cell) {
  std::string label = cell.comm.empty() ? cell.mode + " " + format_size(cell.heap_bytes)
                                        : group_label(cell) + " " + cell.mode;
  label += vmas_label(cell.vmas);
  if (!cell.host.empty()) label += " on " + cell.host;
  return label;
}

bool same_cell(const Cell& a, const Cell& b) {
  return a.mode == b.mode && a.heap_bytes == b.heap_bytes && a.vmas == b.vmas && a.host == b.host && a.comm == b.comm &&
         a.group == b.group;
}

std::string mode_label(const std::string& mode, const std::string& host) {
  return host.empty() ? mode : mode + " on " + host;
}

std::string Series::label() const { return mode_label(mode + vmas_label(vmas), host); }

std::vector<Series> series_by_mode(const Run& run) {
  std::vector<Series> series;
  for (const Cell& c : run.cells) {
    auto it = std::find_if(series.begin(), series.end(),
                           [&](const Series& s) { return s.mode == c.mode && s.host == c.host && s.vmas == c.vmas; });
    if (it == series.end()) it = series.insert(series.end(), Series{c.mode, c.host, c.vmas, {}});
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
  if (k.launches == 0) return {"-", "-", "-", "-", "-"};
  // Means over the launches: human sizes, not exact labels (a mean is rarely whole KiB).
  auto size = [](uint64_t bytes) { return format_bytes(static_cast<double>(bytes)); };
  // Huge pages: over the launches whose process was read in time, "n of N" when not all.
  std::string huge = k.mm_anon_huge_launches == 0 ? "-" : size(k.mm_anon_huge_bytes);
  if (k.mm_anon_huge_launches != 0 && k.mm_anon_huge_launches < k.launches)
    huge += fmt::format(" ({} of {})", k.mm_anon_huge_launches, k.launches);
  return {size(k.mm_rss_bytes), size(k.mm_vm_bytes), std::to_string(k.mm_vmas), size(k.mm_pgtables_bytes), huge};
}

}  // namespace forkscope
