#include "forkscope/huge_pages.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace forkscope {

std::optional<uint64_t> parse_anon_huge_bytes(std::string_view text) {
  static constexpr std::string_view kKey = "AnonHugePages:";
  size_t at = 0;
  while (at < text.size()) {
    const size_t end = std::min(text.find('\n', at), text.size());
    std::string_view line = text.substr(at, end - at);
    at = end + 1;
    if (!line.starts_with(kKey)) continue;
    line.remove_prefix(kKey.size());
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    uint64_t kib = 0;
    size_t digits = 0;
    for (; digits < line.size() && line[digits] >= '0' && line[digits] <= '9'; digits++) {
      if (kib > (UINT64_MAX >> 10) / 10) return std::nullopt;  // past any memory
      kib = kib * 10 + static_cast<uint64_t>(line[digits] - '0');
    }
    if (digits == 0 || line.substr(digits) != " kB") return std::nullopt;
    return kib << 10;
  }
  return std::nullopt;
}

std::optional<uint64_t> read_anon_huge_bytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/smaps_rollup");
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return parse_anon_huge_bytes(text.str());
}

void LauncherHugePages::poll(const std::vector<CellLauncher>& launchers, const OnRead& on_read, bool last) {
  std::map<uint32_t, std::optional<uint64_t>> read;  // this poll's reads, per process
  std::map<uint32_t, uint64_t> launched;             // per process, over its cells
  for (const CellLauncher& l : launchers) launched[l.tgid] += l.launches;
  for (const CellLauncher& l : launchers) {
    uint64_t& seen = seen_[{l.tgid, l.cell, l.start_ns}];
    // An entry the kernel's LRU map evicted and began again counts from 0.
    if (l.launches < seen) seen = 0;
    if (l.launches == seen) continue;
    auto it = read.find(l.tgid);
    if (it == read.end()) {
      // Not before its pause is over: its launches wait for a later poll.
      const auto now = Clock::now();
      if (const auto pause = not_before_.find(l.tgid); !last && pause != not_before_.end() && now < pause->second)
        continue;
      it = read.emplace(l.tgid, read_(static_cast<pid_t>(l.tgid))).first;
      const auto took = Clock::now() - now;
      // A read under 1 ms pauses less than the 100 ms between polls: none at all.
      if (took * kPausePerRead > std::chrono::milliseconds(100)) not_before_[l.tgid] = now + took * kPausePerRead;
      if (on_read) on_read(l.tgid, launched[l.tgid], it->second);
    }
    const uint64_t fresh = l.launches - seen;
    seen = l.launches;
    if (!it->second) continue;  // gone, or no mm any more: these launches stay without a value
    Sum& s = cells_[l.cell];
    s.bytes += static_cast<double>(*it->second) * static_cast<double>(fresh);
    s.launches += fresh;
  }
}

void LauncherHugePages::fill(uint32_t cell, KernelCounts& k) const {
  const auto it = cells_.find(cell);
  if (it == cells_.end() || it->second.launches == 0) return;
  k.mm_anon_huge_bytes = static_cast<uint64_t>(it->second.bytes / static_cast<double>(it->second.launches));
  k.mm_anon_huge_launches = it->second.launches;
}

}  // namespace forkscope
