// `forkscope diff`: two runs side by side, with a noise judgement per phase.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "forkscope/diff_merge.h"
#include "forkscope/error.h"
#include "forkscope/analysis.h"
#include "forkscope/size.h"
#include "forkscope/stats.h"
#include "report/text.h"

namespace forkscope {
namespace {

using text::Align;
using text::Table;

// The histogram slot holding the rank-th smallest value (1-based, rank <= total).
uint32_t slot_of_rank(const std::vector<uint64_t>& hist, uint64_t rank) {
  uint64_t seen = 0;
  for (size_t s = 0; s < hist.size(); ++s) {
    seen += hist[s];
    if (seen >= rank) return static_cast<uint32_t>(s);
  }
  return static_cast<uint32_t>(hist.size() - 1);
}

Verdict judge(const Phase& a, const Phase& b) {
  const auto x = median_interval(a.hist);
  const auto y = median_interval(b.hist);
  if (!x || !y) return Verdict::kUnknown;
  // Intervals in neighbouring slots touch: that is the histogram's resolution, not a difference.
  if (x->high < y->low) return Verdict::kSlower;
  if (y->high < x->low) return Verdict::kFaster;
  return Verdict::kNoise;
}

std::vector<PhaseDiff> diff_phases(const Cell& a, const Cell& b) {
  std::vector<PhaseDiff> out;
  for (const Phase& p : a.phases) {
    auto q = std::find_if(b.phases.begin(), b.phases.end(), [&](const Phase& x) { return x.path == p.path; });
    PhaseDiff d{p.path, &p, q == b.phases.end() ? nullptr : &*q};
    if (d.b != nullptr) d.verdict = judge(p, *d.b);
    out.push_back(d);
  }
  for (const Phase& q : b.phases) {
    if (std::none_of(a.phases.begin(), a.phases.end(), [&](const Phase& x) { return x.path == q.path; }))
      out.push_back({q.path, nullptr, &q});
  }
  return out;
}

bool same_mapping(const Mapping& x, const Mapping& y) {
  return x.name == y.name && x.perms == y.perms && x.bytes == y.bytes && x.kind == y.kind;
}

std::vector<MappingDiff> diff_mappings(const Cell& a, const Cell& b) {
  std::vector<MappingDiff> out;
  for (const Mapping& m : a.mappings) {
    auto n = std::find_if(b.mappings.begin(), b.mappings.end(), [&](const Mapping& x) { return same_mapping(m, x); });
    out.push_back({&m, n == b.mappings.end() ? nullptr : &*n});
  }
  for (const Mapping& n : b.mappings) {
    if (std::none_of(a.mappings.begin(), a.mappings.end(), [&](const Mapping& x) { return same_mapping(x, n); }))
      out.push_back({nullptr, &n});
  }
  return out;
}

// vma_setup + copy_page_range per fork that copied it.
double mapping_per_fork(const Mapping* m) {
  if (m == nullptr || m->launches == 0) return 0;
  return static_cast<double>(m->vma_setup_ns + m->copy_page_range_ns) / static_cast<double>(m->launches);
}

void render_mappings_diff(const CellDiff& c, std::ostream& out, bool color) {
  if (c.mappings.empty()) return;
  std::vector<const MappingDiff*> rows;
  for (const MappingDiff& d : c.mappings) rows.push_back(&d);
  std::stable_sort(rows.begin(), rows.end(), [](const MappingDiff* x, const MappingDiff* y) {
    return std::max(mapping_per_fork(x->a), mapping_per_fork(x->b)) >
           std::max(mapping_per_fork(y->a), mapping_per_fork(y->b));
  });
  out << text::styled(fmt::format("by mapping (vma_setup + copy_page_range per fork; unattributed {} in A, {} in B)",
                                  mapping_unattributed_text(*c.a), mapping_unattributed_text(*c.b)),
                      text::kBold, color)
      << '\n';
  Table t({Align::kLeft, Align::kRight, Align::kRight, Align::kRight, Align::kRight});
  t.add_row({"mapping", "A", "B", "delta", "ratio"});
  for (size_t i = 0; i < std::min<size_t>(10, rows.size()); i++) {
    const MappingDiff& d = *rows[i];
    const double a = mapping_per_fork(d.a), b = mapping_per_fork(d.b);
    std::string delta = "-", ratio = "-";
    if (d.a != nullptr && d.b != nullptr) {
      delta = (b > a ? "+" : b < a ? "-" : "") + format_ns(std::fabs(b - a));
      if (a > 0) ratio = fmt::format("x{:.2f}", b / a);
    }
    t.add_row({mapping_label(d.a != nullptr ? *d.a : *d.b), d.a ? format_ns(a) : "only in B",
               d.b ? format_ns(b) : "only in A", delta, ratio});
  }
  t.render(out, color);
}

std::string verdict_text(const PhaseDiff& d) {
  if (d.a == nullptr) return "only in B";
  if (d.b == nullptr) return "only in A";
  if (counted_only(*d.a)) return "counted, not timed";
  switch (d.verdict) {
    case Verdict::kSlower: return "slower";
    case Verdict::kFaster: return "faster";
    case Verdict::kNoise: return "within noise";
    case Verdict::kUnknown: break;
  }
  return "no histogram";
}

const char* verdict_style(const PhaseDiff& d) {
  if (d.a == nullptr || d.b == nullptr) return text::kDim;
  if (d.verdict == Verdict::kSlower) return text::kRed;
  if (d.verdict == Verdict::kFaster) return text::kGreen;
  return nullptr;
}

// Per launch in which the phase ran: time, or faults for a counted-only phase.
double per_launch(const Phase& p) {
  return counted_only(p) ? static_cast<double>(p.calls) / static_cast<double>(std::max<uint64_t>(p.count, 1))
                         : p.mean_ns;
}

std::string amount(const Phase& p, double v) {
  return counted_only(p) ? fmt::format("{:.1f} faults", v) : format_ns(v);
}

std::string mean(const Phase* p) { return p == nullptr ? "-" : amount(*p, per_launch(*p)); }

std::string median(const Phase* p) {
  const auto m = p == nullptr ? std::nullopt : median_interval(p->hist);
  return m ? format_ns(static_cast<double>(m->p50)) : "-";
}

void render_cell(const CellDiff& c, std::ostream& out, bool color) {
  const Summary& ua = c.a->user.call_to_return;
  const Summary& ub = c.b->user.call_to_return;
  out << text::styled(fmt::format("{}: {} launches in A, {} in B; return p50 {} -> {}", cell_label(*c.a), c.a->launches,
                                  c.b->launches, format_ns(static_cast<double>(ua.p50)),
                                  format_ns(static_cast<double>(ub.p50))),
                      text::kBold, color)
      << '\n';
  // trace: the launchers' huge pages, where either side has them (the same page
  // tables can fork many times faster with THP).
  const KernelCounts& ka = c.a->kernel;
  const KernelCounts& kb = c.b->kernel;
  if (ka.mm_anon_huge_launches != 0 || kb.mm_anon_huge_launches != 0) {
    auto huge = [](const KernelCounts& k) {
      return k.mm_anon_huge_launches == 0 ? std::string("-") : format_bytes(static_cast<double>(k.mm_anon_huge_bytes));
    };
    out << fmt::format("launching process: huge pages {} -> {}, page tables {} -> {}, RSS {} -> {}\n", huge(ka),
                       huge(kb), format_bytes(static_cast<double>(ka.mm_pgtables_bytes)),
                       format_bytes(static_cast<double>(kb.mm_pgtables_bytes)),
                       format_bytes(static_cast<double>(ka.mm_rss_bytes)),
                       format_bytes(static_cast<double>(kb.mm_rss_bytes)));
  }
  if (c.phases.empty()) {
    out << "no kernel phases on either side\n";
    return;
  }
  Table t({Align::kLeft, Align::kRight, Align::kRight, Align::kRight, Align::kRight, Align::kRight, Align::kRight,
           Align::kLeft});
  t.add_row({"phase", "A mean", "B mean", "delta", "ratio", "A p50", "B p50", "B vs A (p50 beyond noise?)"});
  for (const PhaseDiff& d : c.phases) {
    const Phase* any = d.a != nullptr ? d.a : d.b;
    const auto depth = static_cast<size_t>(std::count(d.path.begin(), d.path.end(), ';'));
    const std::string name = std::string(2 * depth, ' ') + any->name;
    std::string delta = "-", ratio = "-";
    if (d.a != nullptr && d.b != nullptr) {
      const double a = per_launch(*d.a), b = per_launch(*d.b);
      // Fault counts show one decimal: a difference below it has no sign.
      const double diff = counted_only(*d.a) ? std::round((b - a) * 10) / 10 : b - a;
      delta = (diff > 0 ? "+" : diff < 0 ? "-" : "") + amount(*d.a, std::fabs(diff));
      if (a > 0) ratio = fmt::format("x{:.2f}", b / a);
    }
    t.add_row({name, mean(d.a), mean(d.b), delta, ratio, median(d.a), median(d.b), verdict_text(d)}, {},
              verdict_style(d));
  }
  t.render(out, color);
  render_mappings_diff(c, out, color);
}

}  // namespace

std::optional<MedianInterval> median_interval(const std::vector<uint64_t>& hist) {
  const uint64_t n = std::accumulate(hist.begin(), hist.end(), uint64_t{0});
  if (n < kMinLaunchesForVerdict) return std::nullopt;
  const double half = 0.98 * std::sqrt(static_cast<double>(n));
  const double mid = static_cast<double>(n) / 2;
  const auto lo = static_cast<uint64_t>(std::max(1.0, std::floor(mid - half)));
  const auto hi = static_cast<uint64_t>(std::min(static_cast<double>(n), std::ceil(mid + half) + 1));
  return MedianInterval{n, hist_percentile(hist, 0.5), hist_slot_low(slot_of_rank(hist, lo)),
                        hist_slot_high(slot_of_rank(hist, hi))};
}

std::vector<CellDiff> diff_runs(const Run& a, const Run& b, const std::string& a_name, const std::string& b_name) {
  // Groups of traces grouped differently never match: say why instead of "no cell in common".
  if (a.trace && b.trace && a.trace->group_by != b.trace->group_by)
    throw usage_error(fmt::format("{} groups launches by {} and {} by {}; diff traces taken with the same --group-by",
                                  a_name, a.trace->group_by, b_name, b.trace->group_by));
  std::vector<CellDiff> out;
  size_t matched = 0;
  for (const Cell& x : a.cells) {
    auto y = std::find_if(b.cells.begin(), b.cells.end(), [&](const Cell& c) { return same_cell(x, c); });
    if (y == b.cells.end()) {
      out.push_back({&x, nullptr, {}});
      continue;
    }
    out.push_back({&x, &*y, diff_phases(x, *y), diff_mappings(x, *y)});
    ++matched;
  }
  for (const Cell& y : b.cells) {
    if (std::none_of(a.cells.begin(), a.cells.end(), [&](const Cell& c) { return same_cell(c, y); }))
      out.push_back({nullptr, &y, {}});
  }
  if (matched == 0)
    throw usage_error(
        fmt::format("{} and {} have no cell in common (cells match by mode, heap size and VMA count); diff "
                    "results of the same modes, heap sizes and VMA counts",
                    a_name, b_name));
  return out;
}

void render_diff(const std::vector<CellDiff>& diff, const std::string& a_name, const std::string& b_name,
                 std::ostream& out, bool color) {
  out << fmt::format("A: {}\nB: {}\n", a_name, b_name);
  out << text::styled(
             "per launch: mean and (from the histograms) p50 of each phase; \"slower\"/\"faster\" only "
             "where the p50s' 95% intervals, widened to whole histogram slots, neither overlap nor touch",
             text::kDim, color)
      << '\n';
  std::vector<std::string> only_a, only_b;
  for (const CellDiff& c : diff) {
    if (c.a == nullptr) {
      only_b.push_back(cell_label(*c.b));
    } else if (c.b == nullptr) {
      only_a.push_back(cell_label(*c.a));
    } else {
      out << '\n';
      render_cell(c, out, color);
    }
  }
  auto list = [&](const char* side, const std::vector<std::string>& cells) {
    if (cells.empty()) return;
    std::string joined;
    for (const std::string& c : cells) joined += (joined.empty() ? "" : ", ") + c;
    out << '\n' << fmt::format("cells only in {}: {}", side, joined) << '\n';
  };
  list("A", only_a);
  list("B", only_b);
}

}  // namespace forkscope
