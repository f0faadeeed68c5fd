#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace forkscope {

// "0", "4096", "512K", "2M", "1G", "1.5G" (binary units, optional trailing B/iB).
// Throws usage_error with the offending text on anything else.
uint64_t parse_size(const std::string& text);
std::vector<uint64_t> parse_size_list(const std::string& text);
// The one parser of counts given on the command line (--iterations, --threads,
// --cpu, -p, ...): decimal digits only, so "0x10", " 5", "+5", "-1" and "" are not
// numbers (strtoul would take most of them); nullopt also past UINT64_MAX.
std::optional<uint64_t> parse_whole_number(std::string_view text);
// 2097152 -> "2M", 1536 -> "1.5K": short, for labels.
std::string format_size(uint64_t bytes);
// A measured size, e.g. a mean: 1107285 -> "1.06 MiB", 812 -> "812 B" (binary
// units, three significant digits).  format_size is for exact labels (--heap, --cell).
std::string format_bytes(double bytes);
// 61234 -> "61.2 µs" (ns, µs, ms, s chosen per value).
std::string format_ns(double ns);

}  // namespace forkscope
