// The self-contained HTML report: inline style, inline SVG, no external resources,
// so it opens from disk on a machine without network access.
#include <fmt/format.h>

#include <algorithm>

#include "forkscope/size.h"
#include "forkscope/formats.h"
#include "report/markup.h"
#include "report/text.h"

namespace forkscope {
namespace {

using markup::escape;

constexpr const char* kStyle = R"CSS(
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1d1d1f; background: #f4f4f6; }
main { max-width: 1240px; margin: 0 auto; padding: 12px 24px 40px; }
header { background: #20242c; color: #f4f4f6; padding: 18px 24px; }
header h1 { margin: 0; font-size: 22px; }
header p { margin: 4px 0 0; color: #c8ccd4; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #d0d0d8; padding-bottom: 4px; }
section { background: #fff; padding: 4px 16px 14px; margin-top: 16px; border-radius: 6px; box-shadow: 0 1px 2px #0002; }
table { border-collapse: collapse; margin: 6px 0; }
th, td { padding: 3px 10px; text-align: left; vertical-align: top; }
th { border-bottom: 2px solid #c0c0c8; font-weight: 600; }
tr:nth-child(even) td { background: #f7f7fa; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.dim, .note { color: #666; }
td.phase { white-space: pre; font-family: ui-monospace, monospace; }
.bar { display: inline-block; height: 10px; min-width: 1px; background: #e8743b; border-radius: 2px; }
.kv th { border: 0; text-align: right; color: #555; font-weight: normal; }
.badge { background: #b3261e; color: #fff; border-radius: 3px; padding: 1px 6px; font-size: 12px; }
.missing td { color: #8a4b00; }
details { margin: 6px 0; }
summary { cursor: pointer; font-weight: 600; }
svg { max-width: 100%; height: auto; display: block; margin: 8px 0; }
)CSS";

std::string td(const std::string& text, const char* cls = nullptr) {
  return cls ? fmt::format(R"(<td class="{}">{}</td>)", cls, escape(text)) : "<td>" + escape(text) + "</td>";
}

std::string header_row(const std::vector<std::string>& names) {
  std::string out = "<tr>";
  for (const std::string& n : names) out += fmt::format("<th>{}</th>", escape(n));
  return out + "</tr>\n";
}

std::string latency(const Summary& s, uint64_t ns) { return s.n == 0 ? "-" : format_ns(static_cast<double>(ns)); }

std::string host_section(const Run& run) {
  const Host& h = run.host;
  std::string out = "<section id=\"host\"><h2>Host</h2>\n<table class=\"kv\">\n";
  auto row = [&](const char* key, const std::string& value) {
    out += fmt::format("<tr><th>{}</th><td>{}</td></tr>\n", key, escape(text::or_dash(value)));
  };
  row("host", h.hostname);
  row("kernel", h.kernel);
  row("arch", h.arch);
  row("CPUs", std::to_string(h.cpus));
  row("transparent huge pages", h.thp);
  row("backend", run.backend);
  row("started", run.started);
  row("forkscope", run.tool_version);
  out += "</table>\n";
  std::vector<std::string> hosts;
  for (const Cell& c : run.cells) {
    if (!c.host.empty() && std::find(hosts.begin(), hosts.end(), c.host) == hosts.end()) hosts.push_back(c.host);
  }
  if (!hosts.empty()) {
    out += fmt::format(
        "<p class=\"note\">Merged results from {} hosts; each cell names its own. The host, backend and phase "
        "availability above are the first input's.</p>\n",
        hosts.size());
  }
  if (run.incomplete)
    out +=
        "<p><span class=\"badge\">incomplete</span> the run was interrupted; these are the cells done by then.</p>\n";
  return out + "</section>\n";
}

// trace: one row per (group, launch kind), then the execs by program.
std::string trace_summary_section(const Run& run) {
  const TraceInfo& t = *run.trace;
  const std::string by = t.group_by == "comm"  ? "launching command"
                         : t.group_by == "exe" ? "the launching task's executable"
                         : t.group_by == "pid" ? "launching process"
                                               : "the launching task's cgroup";
  std::string out = fmt::format(
      "<section id=\"summary\"><h2>Launches</h2>\n<p class=\"note\">Traced {} for {:.1f} s{}. Grouped by {} "
      "(<code>--group-by {}</code>) and launch kind; \u2192 names the programs a group's execs ran. RSS, VM, VMAs "
      "and page tables are the launching process's at its launches (means); huge pages its anonymous memory "
      "mapped by 2 MiB pages (smaps_rollup AnonHugePages, read after its launches; n of N when processes ended before "
      "they were read).</p>\n<table>\n",
      escape(t.target), t.seconds, t.command_exit >= 0 ? fmt::format(", the command exited {}", t.command_exit) : "",
      by, escape(t.group_by));
  out += header_row({group_heading(run), "kind", "launches", "execs", "kernel time", "execve", "RSS", "VM", "VMAs",
                     "page tables", "huge pages", "top kernel phases (self)"});
  for (const Cell& c : run.cells) {
    const Phase* sys = c.phase("syscall");
    const Phase* exec = c.phase("execve");
    out += "<tr>" + td(group_column(c)) + td(c.mode) + td(launches_label(c), "n") +
           td(std::to_string(c.kernel.execs), "n") + td(sys ? format_ns(sys->mean_ns) : "-", "n") +
           td(exec ? format_ns(exec->mean_ns) : "-", "n");
    for (const std::string& v : launcher_mm_columns(c)) out += td(v, "n");
    out += td(top_phases(c)) + "</tr>\n";
  }
  out += "</table>\n";
  const std::vector<ProgramExecs> programs = execs_by_program(run);
  if (!programs.empty()) {
    out +=
        "<h3 id=\"execs-by-program\">Execs by program</h3>\n<p class=\"note\">Every exec the groups count, by "
        "the file execve was given (a script, not its interpreter), and the groups whose tasks ran it.</p>\n"
        "<table>\n";
    out += header_row({"program", "execs", "exec'd by (group kind)"});
    for (const ProgramExecs& p : programs) {
      std::string from;
      for (const std::string& f : p.from) from += (from.empty() ? "" : ", ") + f;
      out += "<tr>" + td(p.program) + td(std::to_string(p.execs), "n") + td(from) + "</tr>\n";
    }
    out += "</table>\n";
  }
  return out + "</section>\n";
}

std::string summary_section(const Run& run) {
  if (run.trace) return trace_summary_section(run);
  std::string out =
      "<section id=\"summary\"><h2>Launches</h2>\n<p class=\"note\">User-side latency per launch: call to return "
      "in the parent, call until the child runs, call until it is reaped or joined. Kernel time is the launch "
      "syscall's mean.</p>\n<table>\n";
  // --overhead: the untraced launch first, the traced one beside it.
  const bool untraced = std::any_of(run.cells.begin(), run.cells.end(), [](const Cell& c) { return c.overhead; });
  std::vector<std::string> head{"mode",       "heap",        "launches",
                                "return p50", "return p99",  "child p50",
                                "reaped p50", "kernel time", "top kernel phases (self)"};
  if (untraced) head.insert(head.begin() + 3, "untraced p50");
  out += header_row(head);
  for (const Cell& c : run.cells) {
    const UserSpans& u = c.user;
    const Phase* sys = c.phase("syscall");
    out += "<tr>" + td(mode_label(c.mode, c.host)) + td(format_size(c.heap_bytes) + vmas_label(c.vmas), "n") +
           td(launches_label(c)) + (untraced ? td(untraced_label(c), "n") : "") +
           td(latency(u.call_to_return, u.call_to_return.p50), "n") +
           td(latency(u.call_to_return, u.call_to_return.p99), "n") +
           td(latency(u.call_to_child, u.call_to_child.p50), "n") +
           td(latency(u.call_to_reaped, u.call_to_reaped.p50), "n") + td(sys ? format_ns(sys->mean_ns) : "-", "n") +
           td(top_phases(c)) + "</tr>\n";
  }
  return out + "</table>\n</section>\n";
}

std::string growth_section(const std::vector<Series>& series) {
  const std::vector<HeapGrowth> growth = heap_growth(series);
  std::string out = "<section id=\"growth\"><h2>How the launch grows with the heap</h2>\n";
  if (growth.empty()) return out + "<p class=\"note\">One heap size per mode: nothing to compare.</p>\n</section>\n";
  out +=
      "<p class=\"note\">Kernel time per launch from the smallest to the largest heap, and the phases whose self "
      "time per launch takes the difference.</p>\n<table>\n";
  out += header_row({"mode", "heap", "kernel time", "where the difference goes (self time per launch)"});
  for (const HeapGrowth& g : growth) {
    out += "<tr>" + td(g.series->label()) +
           td(format_size(g.small->heap_bytes) + " → " + format_size(g.large->heap_bytes), "n") +
           td(format_ns(g.before_ns) + " → " + format_ns(g.after_ns), "n") + td(growth_summary(g)) + "</tr>\n";
  }
  return out + "</table>\n</section>\n";
}

// Merged results of several kernels (or hosts): per swept point, the kernels side
// by side, the untraced launch first (what the kernel costs without our
// programs), then the traced launch and the kernel phases; then a chart per
// phase against the swept variable, a line per kernel.
std::string kernels_section(const Run& run) {
  const std::vector<std::string> hosts = cell_hosts(run);
  if (hosts.size() < 2 || run.trace) return "";
  std::string out =
      "<section id=\"kernels\"><h2>Kernels compared</h2>\n<p class=\"note\">The same cells on each kernel. "
      "Untraced launch: call to return with every forkscope program detached (--overhead), the kernel's own "
      "cost; compare it first, since forkscope's programs cost differently on each kernel and backend. Phases: "
      "mean inclusive time per launch, traced.</p>\n";
  std::vector<const Cell*> firsts;  // one cell per (mode, heap, VMA count), the first host's or the first seen
  for (const Cell& c : run.cells) {
    if (std::none_of(firsts.begin(), firsts.end(), [&](const Cell* f) {
          return f->mode == c.mode && f->heap_bytes == c.heap_bytes && f->vmas == c.vmas;
        }))
      firsts.push_back(&c);
  }
  auto on = [&](const Cell& like, const std::string& host) -> const Cell* {
    for (const Cell& c : run.cells)
      if (c.host == host && c.mode == like.mode && c.heap_bytes == like.heap_bytes && c.vmas == like.vmas) return &c;
    return nullptr;
  };
  std::vector<std::string> head{"cell", "measure"};
  head.insert(head.end(), hosts.begin(), hosts.end());
  out += "<table class=\"kernels\">\n" + header_row(head);
  for (const Cell* f : firsts) {
    const std::string what = f->mode + " " + format_size(f->heap_bytes) + vmas_label(f->vmas);
    auto row = [&](const std::string& measure, auto&& value) {
      out += "<tr>" + td(what) + td(measure);
      for (const std::string& h : hosts) {
        const Cell* c = on(*f, h);
        out += td(c ? value(*c) : "-", "n");
      }
      out += "</tr>\n";
    };
    row("untraced launch p50", [](const Cell& c) { return untraced_label(c); });
    row("traced launch p50", [](const Cell& c) { return latency(c.user.call_to_return, c.user.call_to_return.p50); });
    for (const Phase& p : f->phases) {
      if (!p.path.starts_with("syscall")) continue;
      row(std::string(2 * static_cast<size_t>(std::count(p.path.begin(), p.path.end(), ';')), ' ') + p.name,
          [&](const Cell& c) {
            const Phase* q = c.phase(p.name);
            return q && q->count
                       ? format_ns(q->mean_ns) +
                             (q->calls > q->count ? fmt::format(" ({:.0f} calls)", static_cast<double>(q->calls) /
                                                                                       static_cast<double>(q->count))
                                                  : "")
                       : std::string("-");
          });
    }
  }
  out += "</table>\n";
  std::vector<std::string> modes;
  for (const Cell* f : firsts)
    if (std::find(modes.begin(), modes.end(), f->mode) == modes.end()) modes.push_back(f->mode);
  for (const std::string& mode : modes) {
    for (const char* phase : {"untraced", "syscall", "dup_mmap", "vma_setup", "copy_page_range"})
      out += kernel_chart_svg(run, mode, phase);
  }
  return out + "</section>\n";
}

std::string charts_section(const Run& run, const std::vector<Series>& series) {
  // trace groups have no heap axis (and no user-side times).
  if (run.trace) return "<section id=\"charts\"><h2>Charts</h2>\n" + group_chart_svg(run) + "</section>\n";
  std::string out = "<section id=\"charts\"><h2>Charts</h2>\n" + latency_chart_svg(run);
  for (const Series& s : series) out += phase_chart_svg(s);
  return out + "</section>\n";
}

std::string flame_section(const Run& run, const Cell* cell) {
  if (cell == nullptr) return "";
  // Trace results name their groups GROUP:KIND, run results MODE:HEAP (analysis.h's find_cell).
  const std::string spec = run.trace ? group_spec(run) + ":KIND" : "MODE:HEAP";
  return fmt::format(
      "<section id=\"flame\"><h2>Flame graph: {}</h2>\n<p class=\"note\">Width is time; the launch syscall's "
      "phases are warm, the child's first run and teardown (other tasks) cool. Click a phase to zoom, Reset zoom "
      "to go back, Search to highlight phases by name. <code>forkscope report --format flame --cell {}</code> "
      "draws another cell.</p>\n{}</section>\n",
      escape(cell_label(*cell)), spec, flame_svg(run, *cell));
}

std::string tree_table(const Run& run, const Cell& cell) {
  if (cell.phases.empty()) return "<p class=\"note\">No kernel phases were measured for this cell.</p>\n";
  const std::vector<TreeRow> rows = phase_tree_rows(cell, run.calibration ? &*run.calibration : nullptr, run.backend);
  const bool corrected = std::any_of(rows.begin(), rows.end(), [](const TreeRow& r) { return r.corrected_self_ns; });
  std::string out = "<table class=\"tree\">\n";
  out += std::string("<tr><th>phase</th><th>source</th><th>calls</th><th>mean</th><th>self</th>") +
         (corrected ? "<th title=\"self minus the calibrated cost of forkscope's programs inside it\">self corr.</th>"
                    : "") +
         "<th colspan=\"2\">share of the syscall</th></tr>\n";
  for (const TreeRow& r : rows) {
    const Phase& p = *r.phase;
    out += "<tr>" + td(std::string(2 * r.depth, ' ') + p.name, "phase") + td(p.source, "dim");
    if (r.counted_only) {
      out += td(fmt::format("{:.1f} faults/launch", r.calls_per_launch), "n") +
             fmt::format("<td colspan=\"{}\"></td></tr>\n", corrected ? 5 : 4);
      continue;
    }
    out += td(r.calls, "n") + td(format_ns(p.mean_ns), "n") + td(format_ns(r.self_ns), "n");
    if (corrected) out += td(r.corrected_self_ns ? format_ns(*r.corrected_self_ns) : "-", "n");
    if (r.share) {
      out += td(text::percent(*r.share), "n") +
             fmt::format(R"(<td><span class="bar" style="width:{:.0f}px"></span></td>)", std::min(*r.share, 1.0) * 240);
    } else {
      out += td("-", "n") + "<td></td>";
    }
    out += "</tr>\n";
  }
  return out + "</table>\n";
}

std::string breakdown_section(const Run& run, const Cell* featured) {
  std::string out =
      "<section id=\"breakdown\"><h2>Phase breakdown per cell</h2>\n<p class=\"note\">Per launch in which the "
      "phase ran. Self time is the time not covered by the phases listed under it; landmark segments (source "
      "derived) run to the next landmark, so they are upper bounds.</p>\n";
  for (const Cell& c : run.cells) {
    out += fmt::format("<details{}><summary>{} ({} launches)</summary>\n{}</details>\n", &c == featured ? " open" : "",
                       escape(cell_label(c)), c.launches, tree_table(run, c));
  }
  return out + "</section>\n";
}

std::string availability_section(const Run& run) {
  std::string out =
      "<section id=\"phases-available\"><h2>Phases available</h2>\n<p class=\"note\">What this kernel let "
      "forkscope see, how each phase is bounded, and why the others are missing.</p>\n<table>\n";
  out += header_row({"phase", "source", "bounded by", "why not measured"});
  for (const PhaseAvailability& a : run.phases_available) {
    out += fmt::format("<tr{}>", a.source.empty() ? " class=\"missing\"" : "") + td(a.name) +
           td(a.source.empty() ? "not measured" : a.source) + td(a.how) + td(a.reason) + "</tr>\n";
  }
  return out + "</table>\n</section>\n";
}

}  // namespace

std::string html_report(const Run& run, const Cell* flame_cell) {
  const std::vector<Series> series = series_by_mode(run);
  std::string out = fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      "<title>forkscope: {} {}</title>\n<style>{}</style>\n</head>\n<body>\n"
      "<header><h1>forkscope: where the kernel spends the time of a launch</h1>\n"
      "<p>{} · kernel {} · {} CPUs · THP {} · backend {} · {} cells</p></header>\n<main>\n",
      escape(run.host.hostname), escape(run.host.kernel), kStyle, escape(text::or_dash(run.host.hostname)),
      escape(text::or_dash(run.host.kernel)), run.host.cpus, escape(text::or_dash(run.host.thp)),
      escape(text::or_dash(run.backend)), run.cells.size());
  out += host_section(run);
  out += summary_section(run);
  if (!run.trace) out += growth_section(series);
  out += kernels_section(run);
  out += charts_section(run, series);
  out += flame_section(run, flame_cell);
  if (flame_cell) out += mappings_html(*flame_cell);
  out += breakdown_section(run, flame_cell);
  out += availability_section(run);
  out += fmt::format(
      "<footer><p class=\"note\">Written by forkscope {} from results file schema {}. Self-contained: opens "
      "without network access.</p></footer>\n</main>\n</body>\n</html>\n",
      escape(run.tool_version), escape(run.schema));
  return out;
}

}  // namespace forkscope
