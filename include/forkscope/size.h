#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace forkscope {

// "0", "4096", "512K", "2M", "1G", "1.5G" (binary units, optional trailing B/iB).
// Throws usage_error with the offending text on anything else.
uint64_t parse_size(const std::string& text);
std::vector<uint64_t> parse_size_list(const std::string& text);
// 2097152 -> "2M", 1536 -> "1.5K": short, for labels.
std::string format_size(uint64_t bytes);
// 61234 -> "61.2 µs" (ns, µs, ms, s chosen per value).
std::string format_ns(double ns);

}  // namespace forkscope
