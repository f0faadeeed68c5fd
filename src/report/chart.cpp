// SVG line charts against heap size, log-log: launch times span microseconds to
// tens of milliseconds and heaps megabytes to gigabytes.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <optional>

#include "forkscope/analysis.h"
#include "forkscope/size.h"
#include "forkscope/formats.h"
#include "report/markup.h"

namespace forkscope {
namespace {

using markup::escape;
using markup::num;

constexpr double kWidth = 760, kHeight = 420;
constexpr double kLeft = 78, kRight = 200, kTop = 56, kBottom = 58;  // margins around the plot
constexpr double kPlotRight = kWidth - kRight, kPlotBottom = kHeight - kBottom;
constexpr size_t kMaxPhaseLines = 6;

struct Point {
  double x = 0;                   // heap bytes
  double y = 0;                   // ns
  std::optional<double> whisker;  // ns, drawn from y up to it
  std::string tip;
};

struct Line {
  std::string label;
  std::vector<std::optional<Point>> points;  // one per heap of the chart; a gap breaks the line
};

struct LineChart {
  std::string title;
  std::string subtitle;
  std::string y_title;
  std::vector<uint64_t> heaps;  // ascending: heap sizes, or VMA counts when vma_axis
  bool vma_axis = false;        // the x values are VMA counts, evenly spaced (0 has no log)
  std::vector<Line> lines;
  std::string legend_note;  // what a marker and a whisker mean
};

// Maps [lo, hi] to pixels [p0, p1] by log10.
class LogScale {
 public:
  LogScale(double lo, double hi, double p0, double p1) : l0_(std::log10(lo)), l1_(std::log10(hi)), p0_(p0), p1_(p1) {}
  double operator()(double v) const { return p0_ + (std::log10(v) - l0_) / (l1_ - l0_) * (p1_ - p0_); }

 private:
  double l0_, l1_, p0_, p1_;
};

// The x axis: log10 of heap sizes, or VMA counts at even steps (in the order of
// c.heaps) so a count of 0 has a place.
class XScale {
 public:
  XScale(const LineChart& c, double lo, double hi) : log_(lo, hi, kLeft, kPlotRight), chart_(c) {}
  double operator()(double v) const {
    if (!chart_.vma_axis) return log_(v);
    const auto& xs = chart_.heaps;
    const double i = static_cast<double>(std::lower_bound(xs.begin(), xs.end(), static_cast<uint64_t>(v)) - xs.begin());
    return kLeft + (i + 0.5) / static_cast<double>(xs.size()) * (kPlotRight - kLeft);
  }

 private:
  LogScale log_;
  const LineChart& chart_;
};

// A group chart bar's tooltip: its mean, and in how many of the group's launches
// (execs) the part was seen when not in all.
std::string seen_text(const Cell& c, const std::string& part, double mean_ns) {
  const Phase* p = c.phase(part);
  const uint64_t seen = p ? p->count : 0, base = phase_base(c, part);
  const std::string of = seen < base ? fmt::format("seen in {} of {}", seen, base) : "";
  if (mean_ns <= 0) return of.empty() ? "not seen" : of;
  return of.empty() ? format_ns(mean_ns) : format_ns(mean_ns) + ", " + of;
}

// "1 µs", "20 ms": tick labels are round numbers, so no padding digits.
std::string tick_label(double ns) {
  static constexpr std::array<std::pair<double, const char*>, 4> kUnits = {
      {{1, "ns"}, {1e3, "µs"}, {1e6, "ms"}, {1e9, "s"}}};
  size_t unit = 0;
  while (unit + 1 < kUnits.size() && ns >= kUnits[unit + 1].first * 0.999) ++unit;
  return fmt::format("{:g} {}", std::round(ns / kUnits[unit].first * 1000) / 1000, kUnits[unit].second);
}

void axes(const LineChart& c, const XScale& xs, const LogScale& ys, double y_lo, double y_hi, std::string& out) {
  out += fmt::format(R"(<rect x="{}" y="{}" width="{}" height="{}" fill="#fff" stroke="#999"/>)"
                     "\n",
                     num(kLeft), num(kTop), num(kPlotRight - kLeft), num(kPlotBottom - kTop));
  // Decades carry labels; 2x and 5x get a grid line, and a label too when the
  // range is short enough for them to fit.
  const bool label_minor = std::log10(y_hi / y_lo) <= 2.01;
  for (double decade = y_lo; decade <= y_hi * 1.001; decade *= 10) {
    for (double m : {1.0, 2.0, 5.0}) {
      const double v = decade * m;
      if (v > y_hi * 1.001) break;
      const double y = ys(v);
      const bool major = m == 1.0;
      out += fmt::format(R"(<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="{}"/>)", num(kLeft), num(kPlotRight), num(y),
                         num(y), major ? "#ccc" : "#eee");
      if (major || label_minor)
        out += fmt::format(R"(<text x="{}" y="{}" text-anchor="end" fill="{}">{}</text>)", num(kLeft - 6), num(y + 4),
                           major ? "#333" : "#777", tick_label(v));
      out += '\n';
    }
  }
  for (uint64_t h : c.heaps) {
    const double x = xs(static_cast<double>(h));
    out += fmt::format(R"(<line x1="{0}" x2="{0}" y1="{1}" y2="{2}" stroke="#eee"/>)"
                       R"(<text x="{0}" y="{3}" text-anchor="middle">{4}</text>)"
                       "\n",
                       num(x), num(kTop), num(kPlotBottom), num(kPlotBottom + 18),
                       c.vma_axis ? std::to_string(h) : format_size(h));
  }
  out += fmt::format(R"(<text x="{}" y="{}" text-anchor="middle">{}</text>)"
                     "\n",
                     num((kLeft + kPlotRight) / 2), num(kHeight - 14),
                     c.vma_axis ? "extra VMAs (evenly spaced)" : "heap size (log scale)");
  out += fmt::format(R"~(<text transform="translate(16 {}) rotate(-90)" text-anchor="middle">{}</text>)~"
                     "\n",
                     num((kTop + kPlotBottom) / 2), escape(c.y_title));
}

void legend(const LineChart& c, std::string& out) {
  double y = kTop + 8;
  for (size_t i = 0; i < c.lines.size(); ++i, y += 20) {
    out += fmt::format(R"(<line x1="{0}" x2="{1}" y1="{2}" y2="{2}" stroke="{3}" stroke-width="2.5"/>)"
                       R"(<circle cx="{4}" cy="{2}" r="3.5" fill="{3}"/>)"
                       R"(<text x="{5}" y="{6}">{7}</text>)"
                       "\n",
                       num(kPlotRight + 14), num(kPlotRight + 38), num(y), markup::palette(i), num(kPlotRight + 26),
                       num(kPlotRight + 44), num(y + 4), escape(c.lines[i].label));
  }
  if (!c.legend_note.empty())
    out += fmt::format(R"(<text x="{}" y="{}" fill="#555" font-size="11">{}</text>)"
                       "\n",
                       num(kPlotRight + 14), num(y + 8), escape(c.legend_note));
}

std::string render(const LineChart& c) {
  std::string out = fmt::format(
      R"(<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{0}" height="{1}" viewBox="0 0 {0} {1}" )"
      R"(font-family="sans-serif" font-size="12">)"
      "\n"
      R"(<rect width="100%" height="100%" fill="#fafafa"/>)"
      "\n"
      R"(<text x="{2}" y="22" font-size="15" font-weight="bold">{3}</text>)"
      "\n"
      R"(<text x="{2}" y="40" fill="#555">{4}</text>)"
      "\n",
      num(kWidth), num(kHeight), num(kLeft), escape(c.title), escape(c.subtitle));

  double lo = 0, hi = 0;
  for (const Line& l : c.lines) {
    for (const auto& p : l.points) {
      if (!p) continue;
      lo = lo == 0 ? p->y : std::min(lo, p->y);
      hi = std::max({hi, p->y, p->whisker.value_or(0)});
    }
  }
  if (lo <= 0 || c.heaps.empty()) {
    out += fmt::format(R"(<text x="{}" y="{}" text-anchor="middle">no measurements to plot</text>)"
                       "\n</svg>\n",
                       num(kWidth / 2), num(kHeight / 2));
    return out;
  }
  const double y_lo = std::pow(10, std::floor(std::log10(lo)));
  double y_hi = std::pow(10, std::ceil(std::log10(hi)));
  if (y_hi <= y_lo) y_hi = y_lo * 10;
  // A single heap still needs a span: half to double it.
  const double x_lo = static_cast<double>(c.heaps.front()) / (c.heaps.size() == 1 ? 2 : 1.25);
  const double x_hi = static_cast<double>(c.heaps.back()) * (c.heaps.size() == 1 ? 2 : 1.25);
  const XScale xs(c, std::max(x_lo, 1.0), std::max(x_hi, 2.0));
  const LogScale ys(y_lo, y_hi, kPlotBottom, kTop);
  axes(c, xs, ys, y_lo, y_hi, out);

  for (size_t i = 0; i < c.lines.size(); ++i) {
    const Line& l = c.lines[i];
    const char* color = markup::palette(i);
    // Whiskers of different lines at one heap sit side by side.
    const double shift = (static_cast<double>(i) - static_cast<double>(c.lines.size() - 1) / 2) * 5;
    std::string points;
    auto flush = [&] {
      if (points.find(' ') != std::string::npos)
        out += fmt::format(R"(<polyline fill="none" stroke="{}" stroke-width="2.5" points="{}"/>)"
                           "\n",
                           color, points);
      points.clear();
    };
    for (const auto& p : l.points) {
      if (!p) {
        flush();
        continue;
      }
      if (!points.empty()) points += ' ';
      points += num(xs(p->x) + shift) + "," + num(ys(p->y));
    }
    flush();
    for (const auto& p : l.points) {
      if (!p) continue;
      const double x = xs(p->x) + shift, y = ys(p->y);
      out += "<g>";
      if (p->whisker && *p->whisker > p->y) {
        const double yw = ys(*p->whisker);
        out += fmt::format(R"(<line x1="{0}" x2="{0}" y1="{1}" y2="{2}" stroke="{3}" stroke-width="1.5"/>)"
                           R"(<line x1="{4}" x2="{5}" y1="{2}" y2="{2}" stroke="{3}" stroke-width="1.5"/>)",
                           num(x), num(y), num(yw), color, num(x - 4), num(x + 4));
      }
      out += fmt::format(R"(<circle cx="{}" cy="{}" r="3.5" fill="{}"><title>{}</title></circle></g>)"
                         "\n",
                         num(x), num(y), color, escape(p->tip));
    }
  }
  legend(c, out);
  out += "</svg>\n";
  return out;
}

std::vector<uint64_t> heaps_of(const std::vector<const Cell*>& cells) {
  std::vector<uint64_t> heaps;
  for (const Cell* c : cells) heaps.push_back(c->heap_bytes);
  std::sort(heaps.begin(), heaps.end());
  heaps.erase(std::unique(heaps.begin(), heaps.end()), heaps.end());
  return heaps;
}

size_t heap_index(const std::vector<uint64_t>& heaps, uint64_t heap) {
  return static_cast<size_t>(std::lower_bound(heaps.begin(), heaps.end(), heap) - heaps.begin());
}

double self_per_launch(const Phase& p) {
  return static_cast<double>(p.self_ns) / static_cast<double>(std::max<uint64_t>(p.count, 1));
}

}  // namespace

std::string latency_chart_svg(const Run& run) {
  LineChart c;
  c.title = "Launch time against heap size";
  c.subtitle = "user side, launch call to return in the parent: p50 per launch, whisker up to p99";
  c.y_title = "time per launch (log scale)";
  c.legend_note = "dot p50, whisker to p99";
  std::vector<const Cell*> all;
  for (const Cell& cell : run.cells) all.push_back(&cell);
  c.heaps = heaps_of(all);
  for (const Series& s : series_by_mode(run)) {
    Line line{s.label(), std::vector<std::optional<Point>>(c.heaps.size())};
    for (const Cell* cell : s.cells) {
      const Summary& u = cell->user.call_to_return;
      if (u.n == 0 || u.p50 == 0) continue;
      const auto p50 = static_cast<double>(u.p50), p99 = static_cast<double>(u.p99);
      line.points[heap_index(c.heaps, cell->heap_bytes)] = Point{static_cast<double>(cell->heap_bytes), p50, p99,
                                                                 fmt::format("{}: p50 {}, p99 {} ({} launches)",
                                                                             cell_label(*cell), format_ns(p50),
                                                                             format_ns(p99), u.n)};
    }
    c.lines.push_back(std::move(line));
  }
  return render(c);
}

std::string phase_chart_svg(const Series& series) {
  const bool fork_like = std::any_of(series.cells.begin(), series.cells.end(),
                                     [](const Cell* c) { return c->phase("dup_mm") != nullptr; });
  if (!fork_like) return "";
  LineChart c;
  c.title = "Where " + series.label() + " spends the kernel time, by heap size";
  c.subtitle = "self time per launch of each phase inside the launch syscall";
  c.y_title = "self time per launch (log scale)";
  c.heaps = heaps_of(series.cells);
  // The phases with the most self time at the largest heap, most first: the
  // legend reads as the answer to "which phase grows".
  const Cell* largest = series.cells.back();
  std::vector<const Phase*> ranked;
  for (const Phase& p : largest->phases) {
    if (p.path.starts_with("syscall") && p.self_ns > 0) ranked.push_back(&p);
  }
  std::stable_sort(ranked.begin(), ranked.end(),
                   [](const Phase* a, const Phase* b) { return self_per_launch(*a) > self_per_launch(*b); });
  if (ranked.size() > kMaxPhaseLines) ranked.resize(kMaxPhaseLines);
  for (const Phase* r : ranked) {
    Line line{r->name == "syscall" ? "syscall (self)" : r->name, std::vector<std::optional<Point>>(c.heaps.size())};
    for (const Cell* cell : series.cells) {
      const Phase* p = cell->phase(r->name);
      if (p == nullptr || p->self_ns == 0) continue;
      line.points[heap_index(c.heaps, cell->heap_bytes)] = Point{static_cast<double>(cell->heap_bytes),
                                                                 self_per_launch(*p), std::nullopt,
                                                                 fmt::format("{} {}: self {} per launch", r->name,
                                                                             format_size(cell->heap_bytes),
                                                                             format_ns(self_per_launch(*p)))};
    }
    c.lines.push_back(std::move(line));
  }
  return render(c);
}

std::string kernel_chart_svg(const Run& run, const std::string& mode, const std::string& phase) {
  const std::vector<std::string> hosts = cell_hosts(run);
  std::vector<const Cell*> cells;
  std::vector<uint64_t> vmas;
  for (const Cell& c : run.cells) {
    if (c.mode != mode) continue;
    cells.push_back(&c);
    if (std::find(vmas.begin(), vmas.end(), c.vmas) == vmas.end()) vmas.push_back(c.vmas);
  }
  LineChart c;
  c.vma_axis = vmas.size() > 1;
  if (c.vma_axis) {
    std::sort(vmas.begin(), vmas.end());
    c.heaps = vmas;
  } else {
    c.heaps = heaps_of(cells);
  }
  const bool untraced = phase == "untraced";
  c.title = fmt::format("{} of {} by kernel, against {}", untraced ? "Untraced launch" : phase, mode,
                        c.vma_axis ? "VMA count" : "heap size");
  c.subtitle = untraced ? "call to return with every forkscope program detached (--overhead), p50"
                        : "mean inclusive time per launch, traced";
  c.y_title = "time per launch (log scale)";
  size_t drawn = 0;
  for (const std::string& host : hosts) {
    // One line per kernel and, on a VMA axis, per heap size.
    std::vector<uint64_t> heaps = c.vma_axis ? heaps_of(cells) : std::vector<uint64_t>{0};
    for (uint64_t heap : heaps) {
      Line line{host + (c.vma_axis && heaps.size() > 1 ? ", heap " + format_size(heap) : ""),
                std::vector<std::optional<Point>>(c.heaps.size())};
      size_t points = 0;
      for (const Cell* cell : cells) {
        if (cell->host != host || (c.vma_axis && cell->heap_bytes != heap)) continue;
        double y = 0;
        if (untraced) {
          y = cell->overhead ? static_cast<double>(cell->overhead->untraced.p50) : 0;
        } else if (const Phase* p = cell->phase(phase); p && p->count) {
          y = p->mean_ns;
        }
        if (y <= 0) continue;
        const uint64_t x = c.vma_axis ? cell->vmas : cell->heap_bytes;
        line.points[heap_index(c.heaps, x)] = Point{static_cast<double>(x), y, std::nullopt,
                                                    fmt::format("{}: {}", cell_label(*cell), format_ns(y))};
        points++;
      }
      if (points > 0) c.lines.push_back(std::move(line));
      drawn = std::max(drawn, points);
    }
  }
  if (c.lines.size() < 2 || drawn < 2) return "";
  return render(c);
}

// trace: per group, the mean kernel time of each part of a launch, as bars on a
// linear scale (groups have no heap axis).
std::string group_chart_svg(const Run& run) {
  const std::array<const char*, 6> parts = {"syscall",         "child_first_run", "execve",
                                            "exec_first_insn", "teardown",        "reap"};
  double hi = 0;
  for (const Cell& c : run.cells)
    for (const char* name : parts)
      if (const Phase* p = c.phase(name); p && p->count) hi = std::max(hi, p->mean_ns);
  if (run.cells.empty() || hi <= 0) return "";
  constexpr double kBar = 11, kGap = 10, kLabel = 190, kChartRight = 170;
  const double row = kBar * parts.size() + kGap;
  const double height = kTop + row * static_cast<double>(run.cells.size()) + 30;
  const double plot = kWidth - kLabel - kChartRight;
  std::string out = fmt::format(
      R"(<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{0}" height="{1}" viewBox="0 0 {0} {1}" )"
      R"(font-family="sans-serif" font-size="12">)"
      "\n<text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"bold\">Kernel time per launch, by group</text>\n"
      "<text x=\"10\" y=\"40\" fill=\"#555\">mean per launch (per exec for the exec parts); bars share one linear scale</text>\n",
      num(kWidth), num(height));
  for (size_t i = 0; i < parts.size(); i++)
    out += fmt::format(R"(<rect x="{}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{}">{}</text>)"
                       "\n",
                       num(kWidth - kChartRight + 20), num(kTop + 16.0 * static_cast<double>(i)), markup::palette(i),
                       num(kWidth - kChartRight + 34), num(kTop + 9 + 16.0 * static_cast<double>(i)), parts[i]);
  double y = kTop;
  for (const Cell& c : run.cells) {
    out += fmt::format(R"(<text x="{}" y="{}" text-anchor="end">{}</text>)"
                       "\n",
                       num(kLabel - 8), num(y + row / 2), escape(cell_label(c)));
    for (size_t i = 0; i < parts.size(); i++) {
      const Phase* p = c.phase(parts[i]);
      const double v = p && p->count ? p->mean_ns : 0;
      const double w = v / hi * plot;
      out += fmt::format(R"(<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}: {} {}</title></rect>)"
                         "\n",
                         num(kLabel), num(y + kBar * static_cast<double>(i)), num(w), num(kBar - 2), markup::palette(i),
                         escape(cell_label(c)), parts[i], seen_text(c, parts[i], v));
      if (v > 0)
        out += fmt::format(R"(<text x="{}" y="{}" font-size="10">{}</text>)"
                           "\n",
                           num(kLabel + w + 4), num(y + kBar * static_cast<double>(i) + 8), format_ns(v));
    }
    y += row;
  }
  return out + "</svg>\n";
}

}  // namespace forkscope
