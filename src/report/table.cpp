#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string_view>

#include "forkscope/report.h"
#include "forkscope/size.h"

namespace forkscope {
namespace {

constexpr const char* kBold = "\x1b[1m";
constexpr const char* kDim = "\x1b[2m";
constexpr const char* kReset = "\x1b[0m";
constexpr int kBarWidth = 30;

// Terminal columns of UTF-8 text, one per code point: "µs" is 3 bytes but 2 columns.
size_t display_width(std::string_view s) {
  return static_cast<size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

std::string repeat(std::string_view s, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += s;
  return out;
}

std::string styled(const std::string& text, const char* style, bool color) {
  return color ? style + text + kReset : text;
}

std::string or_dash(const std::string& s) { return s.empty() ? "-" : s; }

// "41%", with "<1%" so that a small but present share does not read as nothing.
std::string percent(double share) {
  if (share > 0 && share < 0.005) return "<1%";
  return fmt::format("{:.0f}%", share * 100);
}

enum class Align { kLeft, kRight };

// A text table whose columns are as wide as their widest cell.  A row with fewer
// cells than columns has its last cell span the remaining columns, right-aligned;
// a row's tail (a bar) follows the last column unpadded.
class Table {
 public:
  explicit Table(std::vector<Align> align) : align_(std::move(align)) {}

  void add_row(std::vector<std::string> cells, std::string tail = {}) {
    rows_.push_back({std::move(cells), std::move(tail)});
  }

  // The first row is the header: bold, underlined by a dim rule as wide as the table.
  void render(std::ostream& out, bool color) const {
    const std::vector<size_t> width = widths();
    std::vector<std::string> lines;
    size_t widest = 0;
    for (const Row& row : rows_) {
      lines.push_back(format(row, width));
      widest = std::max(widest, display_width(lines.back()));
    }
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i > 0) {
        out << lines[i] << '\n';
        continue;
      }
      out << styled(lines[i], kBold, color) << '\n';
      out << styled(repeat("─", widest), kDim, color) << '\n';
    }
  }

 private:
  struct Row {
    std::vector<std::string> cells;
    std::string tail;
  };

  bool spans(const Row& row) const { return row.cells.size() < align_.size(); }

  size_t span_width(const std::vector<size_t>& width, size_t first) const {
    size_t w = 2 * (width.size() - 1 - first);
    for (size_t c = first; c < width.size(); ++c) w += width[c];
    return w;
  }

  std::vector<size_t> widths() const {
    std::vector<size_t> width(align_.size(), 0);
    for (const Row& row : rows_) {
      if (spans(row)) continue;
      for (size_t c = 0; c < row.cells.size(); ++c) width[c] = std::max(width[c], display_width(row.cells[c]));
    }
    // A spanning cell wider than the columns it covers widens the first of them.
    for (const Row& row : rows_) {
      if (!spans(row) || row.cells.empty()) continue;
      const size_t first = row.cells.size() - 1;
      const size_t need = display_width(row.cells.back());
      const size_t have = span_width(width, first);
      if (need > have) width[first] += need - have;
    }
    return width;
  }

  std::string format(const Row& row, const std::vector<size_t>& width) const {
    std::string line;
    for (size_t c = 0; c < row.cells.size(); ++c) {
      const bool last_spans = spans(row) && c + 1 == row.cells.size();
      const size_t w = last_spans ? span_width(width, c) : width[c];
      const Align align = last_spans ? Align::kRight : align_[c];
      const std::string& text = row.cells[c];
      const std::string fill(w - std::min(w, display_width(text)), ' ');
      if (c > 0) line += "  ";
      line += align == Align::kRight ? fill + text : text + fill;
    }
    line.erase(line.find_last_not_of(' ') + 1);
    if (!row.tail.empty()) line += "  " + row.tail;
    return line;
  }

  std::vector<Align> align_;
  std::vector<Row> rows_;
};

std::string latency(const Summary& s, uint64_t ns) { return s.n == 0 ? "-" : format_ns(static_cast<double>(ns)); }

std::string launches_label(const Cell& c) {
  std::string s = std::to_string(c.launches);
  if (c.time_capped) s += " (time-capped)";
  if (c.failed > 0) {
    s += fmt::format(", {} failed", c.failed);
    if (!c.failed_errno.empty()) s += " (" + c.failed_errno + ")";
  }
  return s;
}

// The two phases inside the syscall with the most self time, as shares of the
// syscall: where a launch's kernel time actually goes.
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

std::string bar(double share) {
  if (share <= 0) return "";
  const double blocks = std::min(share, 1.0) * kBarWidth;
  if (blocks < 1) return "▏";
  return repeat("█", static_cast<size_t>(std::lround(blocks)));
}

}  // namespace

void render_summary(const Run& run, std::ostream& out, bool color) {
  out << fmt::format("host {}  kernel {}  {} CPUs  THP {}  backend {}", or_dash(run.host.hostname),
                     or_dash(run.host.kernel), run.host.cpus, or_dash(run.host.thp), or_dash(run.backend));
  if (run.incomplete) out << "  " << styled("[incomplete run]", kBold, color);
  out << '\n';

  Table t({Align::kLeft, Align::kRight, Align::kLeft, Align::kRight, Align::kRight, Align::kRight, Align::kRight,
           Align::kLeft});
  t.add_row({"mode", "heap", "launches", "return p50", "return p99", "child p50", "reaped p50",
             "top kernel phases (self)"});
  for (const Cell& c : run.cells) {
    const UserSpans& u = c.user;
    t.add_row({c.mode, format_size(c.heap_bytes), launches_label(c), latency(u.call_to_return, u.call_to_return.p50),
               latency(u.call_to_return, u.call_to_return.p99), latency(u.call_to_child, u.call_to_child.p50),
               latency(u.call_to_reaped, u.call_to_reaped.p50), top_phases(c)});
  }
  t.render(out, color);
}

void render_phase_tree(const Cell& cell, std::ostream& out, bool color) {
  out << styled(fmt::format("{} heap {}: kernel phases per launch ({} launches)", cell.mode,
                            format_size(cell.heap_bytes), cell.launches),
                kBold, color)
      << '\n';
  if (cell.phases.empty()) {
    out << "no kernel phases were measured for this cell\n";
    return;
  }
  Table t({Align::kLeft, Align::kLeft, Align::kRight, Align::kRight, Align::kRight, Align::kRight});
  t.add_row({"phase", "source", "calls", "mean", "self", "share"});
  for (const Phase& p : cell.phases) {
    const auto depth = static_cast<size_t>(std::count(p.path.begin(), p.path.end(), ';'));
    const std::string name = std::string(2 * depth, ' ') + p.name;
    // Per launch means per launch in which the phase ran, as mean_ns is.
    const double count = static_cast<double>(std::max<uint64_t>(p.count, 1));
    const double calls = static_cast<double>(p.calls) / count;
    // The catalog counts copy-on-write faults without timing them.
    if (p.name == "post_launch_cow") {
      t.add_row({name, p.source, fmt::format("{:.1f} faults/launch", calls)});
      continue;
    }
    // Shares are of the launch syscall; phases around it (child_first_run,
    // teardown) happen outside it and get none.
    const Phase* root = cell.phase("syscall");
    const bool has_root = root != nullptr && root->total_ns > 0 && p.path.starts_with("syscall");
    const double share = has_root ? static_cast<double>(p.total_ns) / static_cast<double>(root->total_ns) : 0;
    t.add_row({name, p.source, p.calls == p.count ? "x1" : fmt::format("x{:.1f}", calls), format_ns(p.mean_ns),
               format_ns(static_cast<double>(p.self_ns) / count), has_root ? percent(share) : "-"},
              bar(share));
  }
  t.render(out, color);
  out << styled("self time of a phase = its time not covered by the phases listed under it; "
                "landmark segments (source derived) run to the next landmark",
                kDim, color)
      << '\n';
}

void render_growth(const Run& run, std::ostream& out, bool color) {
  // Modes in first-seen order, each with its smallest and largest heap cell.
  std::vector<std::pair<const Cell*, const Cell*>> spans;
  for (const Cell& c : run.cells) {
    auto it = std::find_if(spans.begin(), spans.end(), [&](const auto& s) { return s.first->mode == c.mode; });
    if (it == spans.end()) {
      spans.push_back({&c, &c});
      continue;
    }
    if (c.heap_bytes < it->first->heap_bytes) it->first = &c;
    if (c.heap_bytes > it->second->heap_bytes) it->second = &c;
  }
  Table t({Align::kLeft, Align::kRight, Align::kRight, Align::kLeft});
  t.add_row({"mode", "heap", "kernel time", "where the difference goes (self time per launch)"});
  size_t rows = 0;
  for (const auto& [small, large] : spans) {
    const Phase* a = small->phase("syscall");
    const Phase* b = large->phase("syscall");
    if (small == large || a == nullptr || b == nullptr) continue;
    const double growth = b->mean_ns - a->mean_ns;
    struct Delta {
      std::string name;
      double ns;
    };
    std::vector<Delta> deltas;
    for (const Phase& p : large->phases) {
      if (!p.path.starts_with("syscall") || p.count == 0) continue;
      const Phase* q = small->phase(p.name);
      const double before = q && q->count ? static_cast<double>(q->self_ns) / static_cast<double>(q->count) : 0;
      const double after = static_cast<double>(p.self_ns) / static_cast<double>(p.count);
      deltas.push_back({p.name == "syscall" ? "unattributed (syscall self)" : p.name, after - before});
    }
    std::stable_sort(deltas.begin(), deltas.end(), [](const Delta& x, const Delta& y) { return x.ns > y.ns; });
    std::string where;
    if (growth <= 0.25 * a->mean_ns) {
      where = "flat: no phase grows with the heap";
    } else {
      for (size_t i = 0; i < std::min<size_t>(3, deltas.size()); ++i) {
        if (deltas[i].ns <= 0) break;
        if (i > 0) where += ", ";
        where += fmt::format("{} +{} ({})", deltas[i].name, format_ns(deltas[i].ns), percent(deltas[i].ns / growth));
      }
    }
    t.add_row({small->mode, format_size(small->heap_bytes) + " -> " + format_size(large->heap_bytes),
               fmt::format("{} -> {}", format_ns(a->mean_ns), format_ns(b->mean_ns)), where});
    rows++;
  }
  if (rows == 0) return;
  out << styled("how the launch grows with the heap (kernel time per launch, smallest -> largest heap)", kBold, color)
      << '\n';
  t.render(out, color);
}

bool stdout_is_tty() {
  const char* term = std::getenv("TERM");
  return isatty(STDOUT_FILENO) == 1 && !(term != nullptr && std::string_view(term) == "dumb") &&
         std::getenv("NO_COLOR") == nullptr;
}

}  // namespace forkscope
