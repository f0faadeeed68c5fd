#include <algorithm>
#include <fstream>
#include <sstream>

#include "forkscope/probes.h"

namespace forkscope {

Kallsyms Kallsyms::load() {
  Kallsyms k;
  std::ifstream in("/proc/kallsyms");
  std::string line;
  while (std::getline(in, line)) {
    // "ffffffff81354870 T copy_process" (modules add "\t[mod]")
    auto sp1 = line.find(' ');
    if (sp1 == std::string::npos || sp1 + 3 > line.size()) continue;
    char type = line[sp1 + 1];
    if (type != 't' && type != 'T') continue;
    uint64_t addr = std::strtoull(line.substr(0, sp1).c_str(), nullptr, 16);
    std::string name = line.substr(sp1 + 3);
    if (auto tab = name.find('\t'); tab != std::string::npos) name.resize(tab);
    if (addr != 0) k.readable_ = true;
    k.syms_.emplace_back(addr, std::move(name));
  }
  std::sort(k.syms_.begin(), k.syms_.end());
  return k;
}

std::optional<KsymRange> Kallsyms::find(const std::string& name) const {
  if (!readable_) return std::nullopt;
  for (size_t i = 0; i < syms_.size(); i++) {
    if (syms_[i].second != name) continue;
    KsymRange r{name, syms_[i].first, 0};
    for (size_t j = i + 1; j < syms_.size(); j++) {
      if (syms_[j].first > r.start) {
        r.end = syms_[j].first;
        break;
      }
    }
    if (r.end == 0) return std::nullopt;
    return r;
  }
  return std::nullopt;
}

bool Kallsyms::has(const std::string& name) const {
  return std::any_of(syms_.begin(), syms_.end(), [&](const auto& s) { return s.second == name; });
}

}  // namespace forkscope
