#include "report/text.h"

#include <fmt/format.h>

#include <algorithm>

namespace forkscope::text {

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

std::string percent(double share) {
  if (share > 0 && share < 0.005) return "<1%";
  return fmt::format("{:.0f}%", share * 100);
}

void Table::render(std::ostream& out, bool color) const {
  const std::vector<size_t> width = widths();
  std::vector<std::string> lines;
  size_t widest = 0;
  for (const Row& row : rows_) {
    lines.push_back(format(row, width));
    widest = std::max(widest, display_width(lines.back()));
  }
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) {
      out << (rows_[i].style != nullptr ? styled(lines[i], rows_[i].style, color) : lines[i]) << '\n';
      continue;
    }
    out << styled(lines[i], kBold, color) << '\n';
    out << styled(repeat("─", widest), kDim, color) << '\n';
  }
}

size_t Table::span_width(const std::vector<size_t>& width, size_t first) const {
  size_t w = 2 * (width.size() - 1 - first);
  for (size_t c = first; c < width.size(); ++c) w += width[c];
  return w;
}

std::vector<size_t> Table::widths() const {
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

std::string Table::format(const Row& row, const std::vector<size_t>& width) const {
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

}  // namespace forkscope::text
