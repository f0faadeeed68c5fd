// Folded stacks and the flame graph of one cell's phase tree.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <string_view>

#include "forkscope/analysis.h"
#include "forkscope/size.h"
#include "forkscope/formats.h"
#include "report/markup.h"

namespace forkscope {
namespace {

using markup::escape;
using markup::num;

constexpr double kWidth = 1200;
constexpr double kPad = 10;
constexpr double kFrameHeight = 18;
constexpr double kTop = 64;         // title, subtitle, controls
constexpr double kBottom = 30;      // details line
constexpr double kCharWidth = 7.2;  // 12px monospace

// One frame: a phase path with its own (self) time and the time of its subtree.
// Frames are kept flat, each after its parent, so no walk of the tree recurses
// (a phase path may be as deep as the reader allows).
struct Frame {
  std::string name;
  std::string path;
  uint64_t self_ns = 0;
  uint64_t total_ns = 0;
  int depth = 0;
  size_t parent = 0;
  std::vector<size_t> children;
};

struct Stack {
  std::string path;
  uint64_t self_ns = 0;
};

// Each phase's self time by path; with per-mapping attribution, vma_setup's and
// copy_page_range's split into one frame per mapping under them (the part no
// attributed launch accounts for stays the phase's own).
std::vector<Stack> stacks(const Cell& cell) {
  std::vector<Stack> out;
  for (const Phase& p : cell.phases) {
    if (p.self_ns == 0) continue;
    const bool setup = p.name == "vma_setup", cpr = p.name == "copy_page_range";
    uint64_t left = p.self_ns;
    if (setup || cpr) {
      for (const Mapping& m : cell.mappings) {
        const uint64_t ns = std::min(left, setup ? m.vma_setup_ns : m.copy_page_range_ns);
        if (ns == 0) continue;
        std::string name = mapping_label(m);
        std::replace(name.begin(), name.end(), ';', ':');  // a path separator in a file name
        out.push_back({p.path + ";" + name, ns});
        left -= ns;
      }
    }
    if (left) out.push_back({p.path, left});
  }
  return out;
}

// The tree the folded lines describe, so the graph and the folded output agree.
// frames[0] is the root.
std::vector<Frame> build_tree(const Cell& cell) {
  std::vector<Frame> frames{Frame{"all", "", 0, 0, 0, 0, {}}};
  for (const Stack& p : stacks(cell)) {
    size_t at = 0;
    size_t begin = 0;
    while (true) {
      const size_t end = p.path.find(';', begin);
      const std::string name = p.path.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
      const std::vector<size_t>& kids = frames[at].children;
      auto it = std::find_if(kids.begin(), kids.end(), [&](size_t k) { return frames[k].name == name; });
      if (it != kids.end()) {
        at = *it;
      } else {
        frames.push_back(Frame{name, p.path.substr(0, end), 0, 0, frames[at].depth + 1, at, {}});
        frames[at].children.push_back(frames.size() - 1);
        at = frames.size() - 1;
      }
      if (end == std::string::npos) break;
      begin = end + 1;
    }
    frames[at].self_ns += p.self_ns;
  }
  // Children come after their parents: summing from the back adds each subtree once.
  for (Frame& f : frames) f.total_ns = f.self_ns;
  for (size_t i = frames.size() - 1; i > 0; --i) frames[frames[i].parent].total_ns += frames[i].total_ns;
  return frames;
}

// Warm colours for the launch syscall's phases, cool ones for the time around it
// (the child's first run and teardown happen in other tasks).
std::string frame_color(const Frame& f) {
  const uint32_t h = markup::hash(f.name);
  const double v1 = (h & 0xff) / 255.0, v2 = ((h >> 8) & 0xff) / 255.0;
  if (f.path.empty()) return "rgb(200,200,200)";
  if (f.path.starts_with("syscall")) {
    return fmt::format("rgb({},{},{})", 205 + static_cast<int>(50 * v1), static_cast<int>(80 + 150 * v2),
                       static_cast<int>(55 * v1));
  }
  return fmt::format("rgb({},{},{})", static_cast<int>(60 + 60 * v1), static_cast<int>(160 + 60 * v2), 220);
}

// The label that fits in w pixels: the name, shortened with "..", or nothing.
std::string fit(const std::string& name, double w) {
  const auto chars = static_cast<size_t>(std::max(0.0, (w - 6) / kCharWidth));
  if (chars >= name.size()) return name;
  if (chars < 3) return "";
  return name.substr(0, chars - 2) + "..";
}

class FlameWriter {
 public:
  FlameWriter(const Cell& cell, const std::vector<Frame>& frames, double height)
      : cell_(cell), frames_(frames), root_(frames.front()), bottom_(height - kBottom - kFrameHeight) {}

  // Depth first, each frame before its children, with an explicit stack.
  void frames(std::string& out) const {
    std::vector<std::pair<size_t, uint64_t>> todo{{0, 0}};  // frame, offset
    while (!todo.empty()) {
      const auto [i, offset] = todo.back();
      todo.pop_back();
      frame(frames_[i], offset, out);
      uint64_t child_offset = offset;
      std::vector<std::pair<size_t, uint64_t>> kids;
      for (size_t c : frames_[i].children) {
        kids.emplace_back(c, child_offset);
        child_offset += frames_[c].total_ns;
      }
      todo.insert(todo.end(), kids.rbegin(), kids.rend());
    }
  }

 private:
  void frame(const Frame& f, uint64_t offset_ns, std::string& out) const {
    const int depth = f.depth;
    const double total = static_cast<double>(root_.total_ns);
    const double fx = static_cast<double>(offset_ns) / total;
    const double fw = static_cast<double>(f.total_ns) / total;
    const double x = kPad + fx * (kWidth - 2 * kPad);
    const double w = fw * (kWidth - 2 * kPad);
    const double y = bottom_ - depth * kFrameHeight;
    out += fmt::format(R"(<g class="f" data-x="{:.6f}" data-w="{:.6f}" data-d="{}" data-n="{}">)", fx, fw, depth,
                       escape(f.name));
    out += "<title>" + escape(tooltip(f)) + "</title>";
    out += fmt::format(R"(<rect x="{}" y="{}" width="{}" height="{}" rx="2" fill="{}"/>)", num(x), num(y), num(w),
                       num(kFrameHeight - 1), frame_color(f));
    out += fmt::format(R"(<text x="{}" y="{}">{}</text></g>)", num(x + 3), num(y + 12.5), escape(fit(f.name, w)));
    out += '\n';
  }

  // Per launch in which the phase ran (as the terminal tree says), and its share of the graph.
  std::string tooltip(const Frame& f) const {
    const double share = static_cast<double>(f.total_ns) / static_cast<double>(root_.total_ns);
    if (f.path.empty()) {
      return fmt::format("{}: {} per launch over {} launches (100%)", cell_label(cell_),
                         per_launch(f.total_ns, cell_.launches), cell_.launches);
    }
    const Phase* p = nullptr;
    for (const Phase& q : cell_.phases) {
      if (q.path == f.path) p = &q;
    }
    const uint64_t count = p != nullptr ? p->count : cell_.launches;
    return fmt::format("{}: {} per launch, self {} ({:.1f}%)", f.path, per_launch(f.total_ns, count),
                       per_launch(f.self_ns, count), share * 100);
  }

  static std::string per_launch(uint64_t ns, uint64_t count) {
    return format_ns(static_cast<double>(ns) / static_cast<double>(std::max<uint64_t>(count, 1)));
  }

  const Cell& cell_;
  const std::vector<Frame>& frames_;
  const Frame& root_;
  double bottom_;
};

// Click a frame to zoom to it, "Reset zoom" or a click on the root to zoom out,
// "Search" highlights the frames whose names match a regular expression and says
// how much of the graph they cover.  Only attributes of existing elements change,
// so the script needs no namespace URLs.
constexpr std::string_view kScript = R"JS(
(function () {
  const svg = document.currentScript.closest('svg');
  const frames = Array.from(svg.querySelectorAll('g.f'));
  const pad = +svg.dataset.pad, width = +svg.dataset.width, charWidth = +svg.dataset.charWidth;
  const reset = svg.querySelector('.reset'), matched = svg.querySelector('.matched');
  const details = svg.querySelector('.details');
  function fit(name, w) {
    const chars = Math.floor(Math.max(0, (w - 6) / charWidth));
    if (chars >= name.length) return name;
    return chars < 3 ? '' : name.slice(0, chars - 2) + '..';
  }
  function place(f, x, w) {
    const rect = f.querySelector('rect'), text = f.querySelector('text');
    const px = pad + x * (width - 2 * pad), pw = w * (width - 2 * pad);
    rect.setAttribute('x', px.toFixed(1));
    rect.setAttribute('width', pw.toFixed(1));
    text.setAttribute('x', (px + 3).toFixed(1));
    text.textContent = fit(f.dataset.n, pw);
    f.style.display = '';
  }
  function zoom(target) {
    const x0 = +target.dataset.x, w0 = +target.dataset.w, d0 = +target.dataset.d, eps = 1e-9;
    for (const f of frames) {
      const x = +f.dataset.x, w = +f.dataset.w, d = +f.dataset.d;
      const inside = x >= x0 - eps && x + w <= x0 + w0 + eps;
      if (d >= d0 && inside) {
        place(f, (x - x0) / w0, w / w0);
        f.classList.remove('parent');
      } else if (d < d0 && x <= x0 + eps && x + w >= x0 + w0 - eps) {
        place(f, 0, 1);
        f.classList.add('parent');
      } else {
        f.style.display = 'none';
      }
    }
    reset.style.display = d0 === 0 ? 'none' : '';
  }
  function search() {
    const term = window.prompt('Search phases (regular expression)', '');
    if (term === null) return;
    let re;
    try { re = new RegExp(term); } catch (e) { matched.textContent = 'not a regular expression'; return; }
    let covered = 0, end = -1;
    for (const f of frames) {
      const hit = term !== '' && re.test(f.dataset.n);
      f.classList.toggle('hit', hit);
      const x = +f.dataset.x, w = +f.dataset.w;
      if (hit && x >= end) { covered += w; end = x + w; }
    }
    matched.textContent = term === '' ? '' : 'matched ' + (100 * covered).toFixed(1) + '%';
  }
  frames.sort((a, b) => (+a.dataset.x) - (+b.dataset.x) || (+b.dataset.w) - (+a.dataset.w));
  for (const f of frames) {
    f.addEventListener('click', () => zoom(f));
    f.addEventListener('mouseover', () => { details.textContent = f.querySelector('title').textContent; });
    f.addEventListener('mouseout', () => { details.textContent = ' '; });
  }
  const root = svg.querySelector('g.f[data-d="0"]');
  reset.addEventListener('click', () => zoom(root));
  svg.querySelector('.search').addEventListener('click', search);
  svg.dataset.ready = '1';
})();
)JS";

}  // namespace

std::string folded_stacks(const Cell& cell) {
  std::string out;
  for (const Stack& s : stacks(cell)) out += fmt::format("{} {}\n", s.path, s.self_ns);
  return out;
}

std::string flame_svg(const Run& run, const Cell& cell) {
  const std::vector<Frame> tree = build_tree(cell);
  const Frame& root = tree.front();
  int depth = 0;
  for (const Frame& f : tree) depth = std::max(depth, f.depth);
  const double height = kTop + (depth + 1) * kFrameHeight + kBottom;
  const std::string host = cell.host.empty() ? run.host.hostname + " " + run.host.kernel : cell.host;
  std::string out = fmt::format(
      R"(<svg xmlns="http://www.w3.org/2000/svg" class="flame" width="{0}" height="{1}" viewBox="0 0 {0} {1}" )"
      R"(data-pad="{2}" data-width="{0}" data-char-width="{3}" font-family="monospace" font-size="12">)"
      "\n",
      num(kWidth), num(height), num(kPad), kCharWidth);
  out += R"(<style>
.flame g.f { cursor: pointer; }
.flame g.f:hover rect { stroke: #333; stroke-width: 0.5; }
.flame g.f.parent rect { opacity: 0.5; }
.flame g.f.hit rect { fill: rgb(230,0,230); }
.flame .control { cursor: pointer; fill: #2a5db0; }
</style>
)";
  out += fmt::format(R"(<rect width="100%" height="100%" fill="#fdfaf3"/>)"
                     "\n"
                     R"(<text x="{}" y="22" text-anchor="middle" font-size="16" font-weight="bold">{}</text>)"
                     "\n",
                     num(kWidth / 2),
                     escape(cell.comm.empty()
                                ? fmt::format("{}, heap {}: kernel time by phase", cell.mode,
                                              format_size(cell.heap_bytes) + vmas_label(cell.vmas))
                                : fmt::format("{} {}: kernel time by phase", group_label(cell), cell.mode)));
  out += fmt::format(R"(<text x="{}" y="40" text-anchor="middle" fill="#555">{}</text>)"
                     "\n",
                     num(kWidth / 2),
                     escape(
                         fmt::format("host {}, backend {}; {} launches; width = time (self time summed over launches)",
                                     host, run.backend, cell.launches)));
  out += fmt::format(R"(<text class="control reset" x="{}" y="58" style="display:none">Reset zoom</text>)"
                     R"(<text class="control search" x="{}" y="58" text-anchor="end">Search</text>)"
                     R"(<text class="matched" x="{}" y="{}" text-anchor="end"> </text>)"
                     "\n",
                     num(kPad), num(kWidth - kPad), num(kWidth - kPad), num(height - 10));
  out += fmt::format(R"(<text class="details" x="{}" y="{}"> </text>)"
                     "\n",
                     num(kPad), num(height - 10));
  if (root.total_ns == 0) {
    out +=
        fmt::format(R"(<text x="{}" y="{}" text-anchor="middle">no kernel phase time was measured for this cell</text>)"
                    "\n",
                    num(kWidth / 2), num(kTop + kFrameHeight));
  } else {
    FlameWriter(cell, tree, height).frames(out);
  }
  out += "<script><![CDATA[";
  out += kScript;
  out += "]]></script>\n</svg>\n";
  return out;
}

}  // namespace forkscope
