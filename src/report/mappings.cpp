// Where dup_mmap's time goes, by mapping (issue 14): the terminal table, the finding,
// the CSV rows, the HTML section and the mapping frames of the flame graph.
#include <fmt/format.h>

#include <algorithm>

#include "forkscope/analysis.h"
#include "forkscope/terminal.h"
#include "forkscope/size.h"
#include "forkscope/formats.h"
#include "report/markup.h"
#include "report/text.h"

namespace forkscope {
namespace {

using namespace text;

uint64_t mapping_ns(const Mapping& m) { return m.vma_setup_ns + m.copy_page_range_ns; }

double per_launch(uint64_t ns, uint64_t launches) {
  return launches ? static_cast<double>(ns) / static_cast<double>(launches) : 0;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string upper_first(std::string s) {
  if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = static_cast<char>(s[0] - 'a' + 'A');
  return s;
}

// Which snapshot the order method matched against: run's at the cell's start,
// trace's of each launching process.
const char* snapshot_when(const Cell& cell) {
  return cell.comm.empty() ? "at the cell's start"
                           : "of the launching process, read when it first forked and again when its layout changed";
}

}  // namespace

std::string mapping_label(const Mapping& m) {
  if (m.kind == "other") return fmt::format("{} ({} VMAs)", m.name, m.vmas);
  std::string label = fmt::format("{} {} {}", m.name, m.perms, format_size(m.bytes));
  if (m.vmas > 1) label += fmt::format(" ({} VMAs)", m.vmas);
  return label;
}

std::string mapping_finding(const Cell& cell) {
  uint64_t cpr = 0;
  for (const Mapping& m : cell.mappings) cpr += m.copy_page_range_ns;
  if (cell.mappings.empty() || cpr == 0) return "";
  const Mapping& top = *std::max_element(cell.mappings.begin(), cell.mappings.end(),
                                         [](const Mapping& a, const Mapping& b) {
                                           return a.copy_page_range_ns < b.copy_page_range_ns;
                                         });
  const double share = static_cast<double>(top.copy_page_range_ns) / static_cast<double>(cpr);
  // Only a mapping that holds most of the copy is a finding.
  if (share <= 0.5) return "";
  return fmt::format(
      "{} holds {} of copy_page_range ({} per fork, {} resident): a smaller or huge-page-backed "
      "region, MADV_DONTFORK, or vfork/posix_spawn when the child only execs would cut it",
      mapping_label(top), percent(share), format_ns(per_launch(top.copy_page_range_ns, top.launches)),
      format_bytes(static_cast<double>(top.rss_bytes)));
}

std::string mapping_unattributed_text(const Cell& cell) {
  const bool exact = cell.mapping_method == "exact";
  const uint64_t n = cell.mapping_unattributed;
  return fmt::format("{} {}", n, exact ? (n == 1 ? "VMA copy" : "VMA copies") : (n == 1 ? "launch" : "launches"));
}

std::string mapping_method_text(const Cell& cell) {
  if (cell.mapping_method == "exact")
    return fmt::format(
        "method exact: copy_page_range's source VMA (its argument) is the mapping of /proc/PID/smaps {} that "
        "begins at its address; VMA copies at any other address are counted, not attributed",
        snapshot_when(cell));
  return fmt::format(
      "method order: the k-th VMA fork copied is the k-th copyable mapping of /proc/PID/smaps {}; launches that "
      "copied another number of VMAs are counted, not attributed",
      snapshot_when(cell));
}

void render_mappings(const Cell& cell, std::ostream& out, bool color, size_t top) {
  if (cell.mapping_method.empty()) return;
  out << styled(fmt::format("where dup_mmap's time goes, by mapping ({}; per fork, {} launches attributed, {} not)",
                            cell_label(cell), cell.mappings.empty() ? 0 : cell.mappings.front().launches,
                            mapping_unattributed_text(cell)),
                kBold, color)
      << '\n';
  if (cell.mappings.empty()) {
    out << fmt::format("nothing copied matched the snapshot of the mappings {}: nothing attributed\n",
                       snapshot_when(cell));
    return;
  }
  uint64_t all = 0;
  for (const Mapping& m : cell.mappings) all += mapping_ns(m);
  Table t({Align::kLeft, Align::kLeft, Align::kRight, Align::kRight, Align::kRight, Align::kRight, Align::kRight,
           Align::kRight});
  t.add_row({"mapping", "kind", "rss", "VMAs/fork", "vma_setup", "copy_page_range", "total", "share"});
  for (size_t i = 0; i < std::min(top, cell.mappings.size()); i++) {
    const Mapping& m = cell.mappings[i];
    const double share = all ? static_cast<double>(mapping_ns(m)) / static_cast<double>(all) : 0;
    t.add_row({mapping_label(m), m.kind, format_bytes(static_cast<double>(m.rss_bytes)),
               fmt::format("{:.0f}", per_launch(m.calls, m.launches)),
               format_ns(per_launch(m.vma_setup_ns, m.launches)),
               format_ns(per_launch(m.copy_page_range_ns, m.launches)),
               format_ns(per_launch(mapping_ns(m), m.launches)), percent(share)});
  }
  if (cell.mappings.size() > top) {
    uint64_t rest = 0;
    for (size_t i = top; i < cell.mappings.size(); i++) rest += mapping_ns(cell.mappings[i]);
    t.add_row({fmt::format("{} more mappings", cell.mappings.size() - top), "", "", "", "", "",
               format_ns(per_launch(rest, cell.mappings.front().launches)),
               percent(all ? static_cast<double>(rest) / static_cast<double>(all) : 0)});
  }
  t.render(out, color);
  out << styled(mapping_method_text(cell), kDim, color) << '\n';
  if (const std::string f = mapping_finding(cell); !f.empty()) out << styled("finding: " + f, kBold, color) << '\n';
}

std::string mappings_csv(const Run& run) {
  std::string out =
      "host,mode,heap_bytes,comm,group,method,unattributed,mapping,kind,perms,vmas,bytes,rss_bytes,page_table_bytes,"
      "launches,calls,vma_setup_ns,copy_page_range_ns\n";
  const std::string run_host = run.host.hostname + " " + run.host.kernel;
  for (const Cell& c : run.cells) {
    for (const Mapping& m : c.mappings) {
      out += fmt::format("{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
                         csv_field(c.host.empty() ? run_host : c.host), csv_field(c.mode), c.heap_bytes,
                         csv_field(c.comm), csv_field(c.group), c.mapping_method, c.mapping_unattributed,
                         csv_field(m.name), m.kind, csv_field(m.perms), m.vmas, m.bytes, m.rss_bytes,
                         m.page_table_bytes, m.launches, m.calls, m.vma_setup_ns, m.copy_page_range_ns);
    }
  }
  return out;
}

std::string mappings_html(const Cell& cell, size_t top) {
  using markup::escape;
  if (cell.mappings.empty()) return "";
  uint64_t all = 0;
  for (const Mapping& m : cell.mappings) all += mapping_ns(m);
  std::string out = fmt::format(
      "<section id=\"mappings\"><h2>Where dup_mmap's time goes, by mapping: {}</h2>\n<p class=\"note\">Per fork, "
      "{} launches attributed, {} not. {}.</p>\n<table>\n"
      "<tr><th>mapping</th><th>kind</th><th>rss</th><th>VMAs/fork</th><th>vma_setup</th><th>copy_page_range</th>"
      "<th>share</th><th></th></tr>\n",
      escape(cell_label(cell)), cell.mappings.front().launches, escape(mapping_unattributed_text(cell)),
      escape(upper_first(mapping_method_text(cell))));
  for (size_t i = 0; i < std::min(top, cell.mappings.size()); i++) {
    const Mapping& m = cell.mappings[i];
    const double share = all ? static_cast<double>(mapping_ns(m)) / static_cast<double>(all) : 0;
    out += fmt::format(
        "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{:.0f}</td><td class=\"n\">{}</td>"
        "<td class=\"n\">{}</td><td class=\"n\">{}</td><td><div class=\"bar\" style=\"width:{:.1f}px\"></div></td></tr>\n",
        escape(mapping_label(m)), escape(m.kind), escape(format_bytes(static_cast<double>(m.rss_bytes))),
        per_launch(m.calls, m.launches), escape(format_ns(per_launch(m.vma_setup_ns, m.launches))),
        escape(format_ns(per_launch(m.copy_page_range_ns, m.launches))), escape(percent(share)), share * 200);
  }
  out += "</table>\n";
  if (const std::string f = mapping_finding(cell); !f.empty()) out += "<p><b>Finding:</b> " + escape(f) + "</p>\n";
  return out + "</section>\n";
}

}  // namespace forkscope
