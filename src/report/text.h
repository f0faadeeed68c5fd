#pragma once
// Terminal text helpers shared by the report library's renderers: styling that
// is only applied on request, and a table that aligns columns by display width.
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace forkscope::text {

inline constexpr const char* kBold = "\x1b[1m";
inline constexpr const char* kDim = "\x1b[2m";
inline constexpr const char* kRed = "\x1b[31m";
inline constexpr const char* kGreen = "\x1b[32m";
inline constexpr const char* kReset = "\x1b[0m";

// Terminal columns of UTF-8 text, one per code point: "µs" is 3 bytes but 2 columns.
size_t display_width(std::string_view s);
std::string repeat(std::string_view s, size_t n);
std::string styled(const std::string& text, const char* style, bool color);
std::string or_dash(const std::string& s);
// "41%", with "<1%" so that a small but present share does not read as nothing.
std::string percent(double share);

enum class Align { kLeft, kRight };

// A text table whose columns are as wide as their widest cell.  A row with fewer
// cells than columns has its last cell span the remaining columns, right-aligned;
// a row's tail (a bar) follows the last column unpadded.  A row may carry a style
// (colour) applied to the whole line when rendering in colour.
class Table {
 public:
  explicit Table(std::vector<Align> align) : align_(std::move(align)) {}

  void add_row(std::vector<std::string> cells, std::string tail = {}, const char* style = nullptr) {
    rows_.push_back({std::move(cells), std::move(tail), style});
  }

  // The first row is the header: bold, underlined by a dim rule as wide as the table.
  void render(std::ostream& out, bool color) const;

 private:
  struct Row {
    std::vector<std::string> cells;
    std::string tail;
    const char* style;
  };

  bool spans(const Row& row) const { return row.cells.size() < align_.size(); }
  size_t span_width(const std::vector<size_t>& width, size_t first) const;
  std::vector<size_t> widths() const;
  std::string format(const Row& row, const std::vector<size_t>& width) const;

  std::vector<Align> align_;
  std::vector<Row> rows_;
};

}  // namespace forkscope::text
