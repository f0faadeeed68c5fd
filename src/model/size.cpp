#include "forkscope/size.h"

#include <fmt/format.h>

#include <array>
#include <cctype>
#include <cmath>
#include <limits>
#include <string_view>

#include "forkscope/error.h"

namespace forkscope {
namespace {

constexpr const char* kAccepted =
    "expected a non-negative number of bytes with an optional K, M, G or T suffix "
    "(binary: 1K = 1024), e.g. 4096, 512K, 2M, 1.5G";

// Fraction digits after which parse_size gives up: six keep the arithmetic in
// 64 bits (10^6 << 40 < 2^64), more than any size a user types needs.
constexpr size_t kMaxFractionDigits = 6;

[[noreturn]] void reject(const std::string& text, std::string_view why) {
  throw usage_error(fmt::format("invalid size {:?}: {}; {}", text, why, kAccepted));
}

int unit_shift(char c) {
  switch (std::tolower(static_cast<unsigned char>(c))) {
    case 'k': return 10;
    case 'm': return 20;
    case 'g': return 30;
    case 't': return 40;
    default: return -1;
  }
}

std::string_view take_digits(std::string_view text, size_t& i) {
  const size_t begin = i;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  return text.substr(begin, i - begin);
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  const size_t b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

// bytes / 2^shift as an exact decimal ("1.5"): a binary fraction always terminates.
std::string exact_quotient(uint64_t bytes, int shift) {
  std::string out = std::to_string(bytes >> shift);
  const uint64_t unit = uint64_t{1} << shift;
  uint64_t rest = bytes & (unit - 1);
  if (rest != 0) out += '.';
  while (rest != 0) {
    rest *= 10;
    out += static_cast<char>('0' + rest / unit);
    rest %= unit;
  }
  return out;
}

}  // namespace

uint64_t parse_size(const std::string& text) {
  if (text.empty()) reject(text, "it is empty");
  if (text[0] == '-') reject(text, "a size cannot be negative");
  size_t i = 0;
  const std::string_view whole = take_digits(text, i);
  if (whole.empty()) reject(text, "it does not start with a digit");
  std::string_view fraction;
  if (i < text.size() && text[i] == '.') {
    ++i;
    fraction = take_digits(text, i);
    if (fraction.empty()) reject(text, "the decimal point needs digits after it");
    if (fraction.size() > kMaxFractionDigits) reject(text, "too many digits after the decimal point");
  }
  int shift = 0;
  if (i < text.size() && unit_shift(text[i]) > 0) shift = unit_shift(text[i++]);
  const std::string suffix = lowercase(std::string_view(text).substr(i));
  if (!(suffix.empty() || suffix == "b" || (shift > 0 && suffix == "ib")))
    reject(text, fmt::format("unknown suffix {:?}", std::string_view(text).substr(i)));
  if (shift == 0 && !fraction.empty()) reject(text, "a byte count cannot have a fraction");

  uint64_t value = 0;
  for (char c : whole) {
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (std::numeric_limits<uint64_t>::max() - digit) / 10) reject(text, "it is too large");
    value = value * 10 + digit;
  }
  if (value > (std::numeric_limits<uint64_t>::max() >> shift)) reject(text, "it is too large");
  value <<= shift;

  // The fraction of a unit, rounded down to whole bytes.  It is below 2^shift and the
  // low shift bits of value are zero, so adding it cannot overflow.
  uint64_t numerator = 0, denominator = 1;
  for (char c : fraction) {
    numerator = numerator * 10 + static_cast<uint64_t>(c - '0');
    denominator *= 10;
  }
  return value + (numerator << shift) / denominator;
}

std::optional<uint64_t> parse_whole_number(std::string_view text) {
  if (text.empty()) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    const auto digit = static_cast<uint64_t>(c - '0');
    if (value > (UINT64_MAX - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

std::vector<uint64_t> parse_size_list(const std::string& text) {
  std::vector<uint64_t> sizes;
  size_t begin = 0;
  while (true) {
    const size_t comma = text.find(',', begin);
    const std::string_view item = trim(
        std::string_view(text).substr(begin, comma == std::string::npos ? std::string::npos : comma - begin));
    if (item.empty())
      throw usage_error(
          fmt::format("invalid size list {:?}: item {} is empty; expected sizes separated by commas, "
                      "e.g. 4K,2M,1G",
                      text, sizes.size() + 1));
    sizes.push_back(parse_size(std::string(item)));
    if (comma == std::string::npos) return sizes;
    begin = comma + 1;
  }
}

// The shortest exact label over all units, so parse_size(format_size(b)) == b; on a
// tie the larger unit wins ("1.5K" over "1536").  A quotient with b binary places has
// b decimal places; past three, the next smaller unit (ten places fewer, at most four
// more integer digits) is shorter, so parse_size's fraction limit is never reached.
std::string format_size(uint64_t bytes) {
  static constexpr std::array<std::pair<int, char>, 4> kUnits = {{{40, 'T'}, {30, 'G'}, {20, 'M'}, {10, 'K'}}};
  std::string best;
  for (const auto& [shift, letter] : kUnits) {
    if (bytes < (uint64_t{1} << shift)) continue;
    const std::string label = exact_quotient(bytes, shift) + letter;
    if (best.empty() || label.size() < best.size()) best = label;
  }
  const std::string plain = std::to_string(bytes);
  return best.empty() || plain.size() < best.size() ? plain : best;
}

std::string format_ns(double ns) {
  static constexpr std::array<std::pair<double, const char*>, 4> kUnits = {
      {{1, "ns"}, {1e3, "µs"}, {1e6, "ms"}, {1e9, "s"}}};
  size_t unit = 0;
  while (unit + 1 < kUnits.size() && std::fabs(ns) >= kUnits[unit + 1].first) ++unit;
  // Three significant digits; nanoseconds are whole.  Rounding can carry into the
  // next decade (9.996 -> 10.0) or the next unit (999.6 ns -> 1.00 µs).
  auto decimals = [&](double v) { return unit == 0 || std::fabs(v) >= 100 ? 0 : std::fabs(v) >= 10 ? 1 : 2; };
  auto round_to = [](double v, int d) { return std::round(v * std::pow(10.0, d)) / std::pow(10.0, d); };
  const double v = ns / kUnits[unit].first;
  int d = decimals(v);
  double r = round_to(v, d);
  if (decimals(r) != d) {
    d = decimals(r);
    r = round_to(v, d);
  }
  if (std::fabs(r) >= 1000 && unit + 1 < kUnits.size()) {
    ++unit;
    r /= 1000;
    d = decimals(r);
  }
  return fmt::format("{:.{}f} {}", r, d, kUnits[unit].second);
}

std::string format_bytes(double bytes) {
  static constexpr std::array<const char*, 5> kUnits = {"B", "KiB", "MiB", "GiB", "TiB"};
  size_t unit = 0;
  double v = bytes;
  while (unit + 1 < kUnits.size() && std::fabs(v) >= 1024) {
    v /= 1024;
    ++unit;
  }
  // Three significant digits; bytes are whole.  Past 999.5 a value is shown in the
  // next unit (1000 KiB -> 0.98 MiB), so no label has four digits.
  auto decimals = [&](double x) { return unit == 0 || std::fabs(x) >= 99.95 ? 0 : std::fabs(x) >= 9.995 ? 1 : 2; };
  if (std::fabs(v) >= 999.5 && unit + 1 < kUnits.size()) {
    v /= 1024;
    ++unit;
  }
  return fmt::format("{:.{}f} {}", v, decimals(v), kUnits[unit]);
}

}  // namespace forkscope
