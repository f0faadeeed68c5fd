#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <sstream>
#include <string_view>

#include "forkscope/catalog.h"
#include "forkscope/terminal.h"
#include "forkscope/size.h"
#include "report/text.h"

namespace forkscope {
namespace {

using text::Align;
using text::kBold;
using text::kDim;
using text::or_dash;
using text::percent;
using text::repeat;
using text::styled;
using text::Table;

constexpr int kBarWidth = 30;

std::string latency(const Summary& s, uint64_t ns) { return s.n == 0 ? "-" : format_ns(static_cast<double>(ns)); }

std::string bar(double share) {
  if (share <= 0) return "";
  const double blocks = std::min(share, 1.0) * kBarWidth;
  if (blocks < 1) return "▏";
  return repeat("█", static_cast<size_t>(std::lround(blocks)));
}

// One line under the summary when launches failed: where, how many, why, and
// where the failed attempts' kernel time went (it is not in the table).
std::string failures_note(const Run& run) {
  constexpr size_t kNamed = 3;  // cells named before "and N more": the note stays one line
  std::string named;
  size_t cells = 0;
  for (const Cell& c : run.cells) {
    if (c.failed == 0 || ++cells > kNamed) continue;
    named += fmt::format("{}{} {}: {} of {} failed", named.empty() ? "" : "; ", c.mode,
                         format_size(c.heap_bytes) + vmas_label(c.vmas), c.failed, c.launches + c.failed);
    if (!c.failed_errno.empty()) named += " (" + c.failed_errno + ")";
  }
  if (cells == 0) return "";
  if (cells > kNamed) named += fmt::format("; and {} more", cells - kNamed);
  return fmt::format(
      "note: launches failed in {} cell{} ({}); the table counts successful launches only, the "
      "failed attempts' kernel phases are in failed_phases of the results",
      cells, cells == 1 ? "" : "s", named);
}

}  // namespace

std::string launches_label(const Cell& c) {
  std::string s = std::to_string(c.launches);
  if (c.time_capped) s += " (time-capped)";
  if (c.failed > 0) {
    s += fmt::format(", {} failed", c.failed);
    if (!c.failed_errno.empty()) s += " (" + c.failed_errno + ")";
  }
  return s;
}

std::string top_phases(const Cell& c) {
  const Phase* root = c.phase("syscall");
  if (root == nullptr || root->total_ns == 0) return "";
  std::vector<const Phase*> nested;
  for (const Phase& p : c.phases) {
    if (p.path.starts_with(root->path + ";") && p.self_ns > 0) nested.push_back(&p);
  }
  std::stable_sort(nested.begin(), nested.end(),
                   [](const Phase* a, const Phase* b) { return a->self_ns > b->self_ns; });
  std::string out;
  for (size_t i = 0; i < std::min<size_t>(2, nested.size()); ++i) {
    if (i > 0) out += ", ";
    out += nested[i]->name + " " +
           percent(static_cast<double>(nested[i]->self_ns) / static_cast<double>(root->total_ns));
  }
  return out;
}

bool counted_only(const Phase& phase) { return phase.name == "post_launch_cow"; }

uint64_t phase_base(const Cell& cell, const std::string& phase_name) {
  const std::vector<CatalogEntry>& entries = catalog();
  for (const CatalogEntry& e : entries) {
    if (phase_name != e.name) continue;
    int id = e.id;
    for (int hops = 0; id != FS_PH_NONE && hops < FS_NPHASES; hops++) {
      if (id == FS_PH_EXEC || id == FS_PH_EXEC_FIRST_INSN) return cell.kernel.execs;
      const auto parent = std::find_if(entries.begin(), entries.end(),
                                       [&](const CatalogEntry& c) { return c.id == id; });
      id = parent == entries.end() ? FS_PH_NONE : parent->parent;
    }
  }
  return cell.launches;
}

std::vector<TreeRow> phase_tree_rows(const Cell& cell, const Calibration* cal, const std::string& backend) {
  std::vector<TreeRow> rows;
  const bool correct = cal != nullptr && cal->ns_per_event > 0;
  const Phase* root = cell.phase("syscall");
  for (const Phase& p : cell.phases) {
    TreeRow r{&p, static_cast<size_t>(std::count(p.path.begin(), p.path.end(), ';'))};
    const double count = static_cast<double>(std::max<uint64_t>(p.count, 1));
    r.calls_per_launch = static_cast<double>(p.calls) / count;
    r.self_ns = static_cast<double>(p.self_ns) / count;
    r.counted_only = counted_only(p);
    if (correct && !r.counted_only)
      r.corrected_self_ns = std::max(0.0, r.self_ns - observer_cost_ns(p, *cal, backend) / count);
    // Shares are of the launch syscall; phases around it (child_first_run,
    // teardown) happen outside it and get none.
    if (root != nullptr && root->total_ns > 0 && p.path.starts_with("syscall") && !r.counted_only)
      r.share = static_cast<double>(p.total_ns) / static_cast<double>(root->total_ns);
    const uint64_t group = phase_base(cell, p.name);
    r.calls = p.calls == p.count ? "x1" : fmt::format("x{:.1f}", r.calls_per_launch);
    if (p.count < group) r.calls = fmt::format("{} of {}", p.count, group) + (p.calls == p.count ? "" : ", " + r.calls);
    rows.push_back(r);
  }
  return rows;
}

namespace {

std::string p50_of(const Cell& c, const char* phase) {
  const Phase* p = c.phase(phase);
  return p && p->count ? format_ns(static_cast<double>(p->p50_ns)) : "-";
}

// trace: one row per (command, launch kind), then who launched most.
void render_trace_summary(const Run& run, std::ostream& out, bool color) {
  const TraceInfo& t = *run.trace;
  out << fmt::format("traced {} for {:.1f} s", t.target, t.seconds);
  if (t.command_exit >= 0) out << fmt::format("  (command exited {})", t.command_exit);
  out << '\n';
  Table table({Align::kLeft, Align::kLeft, Align::kRight, Align::kRight, Align::kRight, Align::kRight, Align::kRight,
               Align::kRight, Align::kRight, Align::kRight, Align::kRight, Align::kLeft});
  table.add_row({group_heading(run), "kind", "launches", "execs", "kernel p50*", "execve p50*", "RSS", "VM", "VMAs",
                 "page tables", "huge pages", "top kernel phases (self)"});
  for (const Cell& c : run.cells) {
    std::vector<std::string> row = {group_column(c),      c.mode,
                                    launches_label(c),    std::to_string(c.kernel.execs),
                                    p50_of(c, "syscall"), p50_of(c, "execve")};
    for (std::string& v : launcher_mm_columns(c)) row.push_back(std::move(v));
    row.push_back(top_phases(c));
    table.add_row(row);
  }
  table.render(out, color);
  out << styled("RSS, VM, VMAs and page tables: the launching process's, mean at its launches' return", kDim, color)
      << '\n'
      << styled(
             "huge pages: its memory mapped by 2 MiB pages (AnonHugePages, read after its launches); n of N: "
             "some processes ended first",
             kDim, color)
      << '\n'
      << styled("* p50 estimated within a histogram slot (slots are an eighth of a power of two wide: a few % off)",
                kDim, color)
      << '\n';
  const std::vector<ProgramExecs> programs = execs_by_program(run);
  std::string note = t.group_by == "comm"
                         ? ""
                         : fmt::format("grouped by {} (--group-by {})", group_heading(run), t.group_by);
  if (!programs.empty()) note += (note.empty() ? "" : "; ") + std::string("\u2192: the programs the group's execs ran");
  if (!note.empty()) out << styled(note, kDim, color) << '\n';
  if (!programs.empty()) {
    out << '\n';
    Table by_program({Align::kLeft, Align::kRight, Align::kLeft});
    by_program.add_row({"execs by program", "execs", "exec'd by (group kind)"});
    // The first 15 programs, then how many more; the overflow row is always shown.
    size_t listed = 0, hidden = 0;
    for (const ProgramExecs& p : programs) {
      if (!p.other && listed == 15) {
        hidden++;
        continue;
      }
      listed += !p.other;
      by_program.add_row({p.program, std::to_string(p.execs), from_label(p)});
    }
    by_program.render(out, color);
    if (hidden) out << fmt::format("... and {} more programs (results.json has all)\n", hidden);
  }
  if (!t.parents.empty()) {
    out << '\n';
    Table parents({Align::kRight, Align::kLeft, Align::kRight, Align::kRight});
    parents.add_row({"pid", "launching process", "launches", "execs"});
    const size_t shown = std::min<size_t>(t.parents.size(), 10);
    for (size_t i = 0; i < shown; i++) {
      const TraceParent& p = t.parents[i];
      parents.add_row({std::to_string(p.pid), p.exec_comm.empty() ? p.comm : p.comm + " \u2192 " + p.exec_comm,
                       std::to_string(p.launches), std::to_string(p.execs)});
    }
    parents.render(out, color);
    if (t.parents.size() > shown)
      out << fmt::format("... and {} more (results.json has all)\n", t.parents.size() - shown);
  }
}

}  // namespace

void render_summary(const Run& run, std::ostream& out, bool color) {
  out << fmt::format("host {}  kernel {}  {} CPUs  THP {}  backend {}", or_dash(run.host.hostname),
                     or_dash(run.host.kernel), run.host.cpus, or_dash(run.host.thp), or_dash(run.backend));
  if (run.incomplete) out << "  " << styled("[incomplete run]", kBold, color);
  out << '\n';
  if (run.depth == "syscall")
    out << "--depth syscall: copy_process's phases, dup_mmap, exit_mm, the exec phases and the per-VMA work were not traced (--depth full sees them)\n";
  else if (run.depth == "process")
    out << "--depth process: the per-VMA work (vma_setup, copy_page_range) was not traced (--depth full sees it)\n";
  if (run.trace) return render_trace_summary(run, out, color);

  // --overhead: the untraced launch first, the traced one beside it.
  const bool untraced = std::any_of(run.cells.begin(), run.cells.end(), [](const Cell& c) { return c.overhead; });
  std::vector<Align> align{Align::kLeft,  Align::kRight, Align::kLeft,  Align::kRight,
                           Align::kRight, Align::kRight, Align::kRight, Align::kLeft};
  std::vector<std::string> head{"mode",       "heap",      "launches",   "return p50",
                                "return p99", "child p50", "reaped p50", "top kernel phases (self)"};
  if (untraced) {
    align.insert(align.begin() + 3, Align::kRight);
    head.insert(head.begin() + 3, "untraced p50");
  }
  Table t(align);
  t.add_row(head);
  for (const Cell& c : run.cells) {
    const UserSpans& u = c.user;
    std::vector<std::string> row{mode_label(c.mode, c.host),
                                 format_size(c.heap_bytes) + vmas_label(c.vmas),
                                 launches_label(c),
                                 latency(u.call_to_return, u.call_to_return.p50),
                                 latency(u.call_to_return, u.call_to_return.p99),
                                 latency(u.call_to_child, u.call_to_child.p50),
                                 latency(u.call_to_reaped, u.call_to_reaped.p50),
                                 top_phases(c)};
    if (untraced) row.insert(row.begin() + 3, untraced_label(c));
    t.add_row(row);
  }
  t.render(out, color);
  if (const std::string note = failures_note(run); !note.empty()) out << styled(note, kBold, color) << '\n';
}

void render_phase_tree(const Cell& cell, std::ostream& out, bool color, const Calibration* cal,
                       const std::string& backend) {
  const std::string what = cell.comm.empty() ? fmt::format("{} heap {}", cell.mode,
                                                           format_size(cell.heap_bytes) + vmas_label(cell.vmas))
                                             : fmt::format("{} {}", group_label(cell), cell.mode);
  const std::string execs = cell.kernel.execs ? fmt::format(", {} execs", cell.kernel.execs) : "";
  out << styled(fmt::format("{}: kernel phases per launch ({} launches{})", what, cell.launches, execs), kBold, color)
      << '\n';
  if (cell.phases.empty()) {
    out << "no kernel phases were measured for this cell\n";
    return;
  }
  const std::vector<TreeRow> rows = phase_tree_rows(cell, cal, backend);
  const bool corrected = std::any_of(rows.begin(), rows.end(), [](const TreeRow& r) { return r.corrected_self_ns; });
  std::vector<Align> align = {Align::kLeft, Align::kLeft, Align::kRight, Align::kRight, Align::kRight, Align::kRight};
  std::vector<std::string> head = {"phase", "source", "calls", "mean", "self", "share"};
  if (corrected) {
    align.insert(align.begin() + 5, Align::kRight);
    head.insert(head.begin() + 5, "self corr.");
  }
  Table t(align);
  t.add_row(head);
  for (const TreeRow& r : rows) {
    const Phase& p = *r.phase;
    const std::string name = std::string(2 * r.depth, ' ') + p.name;
    if (r.counted_only) {
      t.add_row({name, p.source, fmt::format("{:.1f} faults/launch", r.calls_per_launch)});
      continue;
    }
    std::vector<std::string> row = {
        name, p.source, r.calls, format_ns(p.mean_ns), format_ns(r.self_ns), r.share ? percent(*r.share) : "-"};
    if (corrected) row.insert(row.begin() + 5, r.corrected_self_ns ? format_ns(*r.corrected_self_ns) : "-");
    t.add_row(row, bar(r.share.value_or(0)));
  }
  t.render(out, color);
  if (corrected)
    out << styled("self corr. = self minus the calibrated cost of forkscope's own programs that ran inside it", kDim,
                  color)
        << '\n';
  out << styled(
             "self time of a phase = its time not covered by the phases listed under it; "
             "landmark segments (source derived) run to the next landmark",
             kDim, color)
      << '\n';
}

std::string growth_summary(const HeapGrowth& g) {
  if (g.flat) return "flat: no phase grows with the heap";
  std::string where;
  for (size_t i = 0; i < std::min<size_t>(3, g.phases.size()); ++i) {
    if (i > 0) where += ", ";
    where += fmt::format("{} +{} ({})", g.phases[i].name, format_ns(g.phases[i].ns),
                         percent(g.phases[i].ns / (g.after_ns - g.before_ns)));
  }
  return where;
}

void render_growth(const Run& run, std::ostream& out, bool color) {
  // Trace groups are process groups, not heap sizes: nothing grows with a heap.
  if (run.trace) return;
  const std::vector<Series> series = series_by_mode(run);
  const std::vector<HeapGrowth> growth = heap_growth(series);
  if (growth.empty()) return;
  Table t({Align::kLeft, Align::kRight, Align::kRight, Align::kLeft});
  t.add_row({"mode", "heap", "kernel time", "where the difference goes (self time per launch)"});
  for (const HeapGrowth& g : growth) {
    t.add_row({g.series->label(), format_size(g.small->heap_bytes) + " -> " + format_size(g.large->heap_bytes),
               fmt::format("{} -> {}", format_ns(g.before_ns), format_ns(g.after_ns)), growth_summary(g)});
  }
  out << styled("how the launch grows with the heap (kernel time per launch, smallest -> largest heap)", kBold, color)
      << '\n';
  t.render(out, color);
}

void render_text_report(const Run& run, const Cell* tree_cell, std::ostream& out, bool color) {
  render_summary(run, out, color);
  std::ostringstream growth;
  render_growth(run, growth, color);
  if (!growth.str().empty()) out << "\n" << growth.str();
  if (tree_cell != nullptr) {
    out << "\n";
    render_phase_tree(*tree_cell, out, color, run.calibration ? &*run.calibration : nullptr, run.backend);
    if (!tree_cell->mapping_method.empty()) {
      out << "\n";
      render_mappings(*tree_cell, out, color);
    }
  }
  // trace: every other group that forked has its table too.
  if (run.trace) {
    for (const Cell& c : run.cells) {
      if (&c == tree_cell || c.mapping_method.empty()) continue;
      out << "\n";
      render_mappings(c, out, color);
    }
  }
}

bool stdout_is_tty() {
  const char* term = std::getenv("TERM");
  return isatty(STDOUT_FILENO) == 1 && !(term != nullptr && std::string_view(term) == "dumb") &&
         std::getenv("NO_COLOR") == nullptr;
}

}  // namespace forkscope
