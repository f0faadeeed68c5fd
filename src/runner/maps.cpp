// The maps snapshot and its match to the kernel's per-mapping aggregates, by order or
// by address (mappings.h).
#include "forkscope/mappings.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <tuple>

#include "forkscope/untrusted.h"

namespace forkscope {
namespace {

std::string kind_of(const std::string& name) {
  if (name == "[heap]") return "heap";
  if (name == "[stack]" || name.starts_with("[stack:")) return "stack";
  if (name == "[anon]" || name.starts_with("[anon:") || name.starts_with("[anon_shmem:")) return "anon";
  if (name.starts_with("[")) return "special";
  return "file";
}

// 4 KiB of last-level page table per 2 MiB block the range covers.
uint64_t pte_span_bytes(uint64_t start, uint64_t end) {
  constexpr uint64_t kBlock = uint64_t{2} << 20;
  if (end <= start) return 0;
  return ((end - 1) / kBlock - start / kBlock + 1) * 4096;
}

}  // namespace

std::vector<MappingInfo> parse_smaps(std::string_view text) {
  std::vector<MappingInfo> out;
  bool skip = false;  // the current entry is [vsyscall]
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    uint64_t start = 0, end = 0;
    char perms[5] = {};
    int name_at = 0;
    // A mapping line: "start-end perms offset dev inode [name]"; field lines have a colon first.
    const std::string head(line.substr(0, 128));
    if (std::sscanf(head.c_str(), "%" SCNx64 "-%" SCNx64 " %4s %*x %*s %*u %n", &start, &end, perms, &name_at) >= 3 &&
        name_at > 0) {
      std::string_view raw = line.substr(static_cast<size_t>(name_at));
      while (!raw.empty() && raw.front() == ' ') raw.remove_prefix(1);
      std::string name = raw.empty() ? "[anon]" : safe_text(raw);
      skip = name == "[vsyscall]";
      if (skip) continue;
      MappingInfo m;
      m.kind = kind_of(name);
      m.name = std::move(name);
      m.perms = perms;
      m.start = start;
      m.end = end;
      out.push_back(std::move(m));
      continue;
    }
    if (skip || out.empty()) continue;
    if (line.starts_with("Rss:")) {
      uint64_t kb = 0;
      if (std::sscanf(std::string(line).c_str(), "Rss: %" SCNu64, &kb) == 1) out.back().rss_bytes = kb * 1024;
    } else if (line.starts_with("VmFlags:")) {
      for (size_t at = 8; at + 2 <= line.size(); at += 3) {
        while (at < line.size() && line[at] == ' ') at++;
        if (line.substr(at, 2) == "dc") out.back().dontcopy = true;
      }
    }
  }
  return out;
}

std::vector<MappingInfo> read_smaps(pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/smaps";
  FILE* f = std::fopen(path.c_str(), "re");
  if (!f) return {};
  std::string text;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) text.append(buf, n);
  std::fclose(f);
  return parse_smaps(text);
}

namespace {

// The rows of a cell: the snapshot's copyable mappings grouped by identity, in the
// order first met, every mapping past the first kMappingSlots in one "(other
// mappings)" row (the order method's bound, kept by both so their tables compare).
// Returns each copyable mapping's row.
std::vector<size_t> mapping_rows(const std::vector<const MappingInfo*>& copyable, uint64_t launches, Cell& cell) {
  using Key = std::tuple<std::string, std::string, uint64_t>;
  std::map<Key, size_t> rows;
  std::vector<size_t> row_of(copyable.size());
  for (size_t k = 0; k < copyable.size(); k++) {
    const MappingInfo& m = *copyable[k];
    Key key = k < kMappingSlots ? Key{m.name, m.perms, m.end - m.start} : Key{"(other mappings)", "", 0};
    auto [it, fresh] = rows.emplace(key, cell.mappings.size());
    if (fresh) {
      Mapping row;
      row.name = std::get<0>(key);
      row.kind = k < kMappingSlots ? m.kind : "other";
      row.perms = std::get<1>(key);
      row.launches = launches;
      cell.mappings.push_back(std::move(row));
    }
    Mapping& row = cell.mappings[it->second];
    row.vmas += 1;
    row.bytes += m.end - m.start;
    row.rss_bytes += m.rss_bytes;
    if (m.rss_bytes) row.page_table_bytes += pte_span_bytes(m.start, m.end);
    row_of[k] = it->second;
  }
  return row_of;
}

void add_to(Mapping& row, uint64_t calls, uint64_t setup_ns, uint64_t cpr_ns) {
  row.calls += calls;
  row.vma_setup_ns += setup_ns;
  row.copy_page_range_ns += cpr_ns;
}

void attribute_by_order(const std::vector<const MappingInfo*>& copyable, const KernelMappings& kernel, Cell& cell) {
  const auto expected = static_cast<uint32_t>(copyable.size());
  // Launches per copied-VMA count: slot 0 is every launch's first VMA.
  uint64_t copied = 0, matched = 0;
  for (const MappingSlot& s : kernel.slots) {
    if (s.idx != 0) continue;
    copied += s.calls;
    if (s.nvmas == expected) matched += s.calls;
  }
  if (copied == 0 && kernel.lost == 0) return;
  cell.mapping_method = "order";
  cell.mapping_unattributed = copied - matched + kernel.lost;
  if (matched == 0) return;
  const std::vector<size_t> row_of = mapping_rows(copyable, matched, cell);
  for (const MappingSlot& s : kernel.slots) {
    if (s.nvmas != expected) continue;
    const size_t k = s.idx < kMappingSlots ? s.idx : kMappingSlots;
    if (k >= copyable.size()) continue;
    add_to(cell.mappings[row_of[k]], s.calls, s.setup_ns, s.cpr_ns);
  }
}

void attribute_by_address(const std::vector<const MappingInfo*>& copyable, const KernelMappings& kernel, Cell& cell) {
  if (kernel.vmas.empty() && kernel.lost == 0) return;
  cell.mapping_method = "exact";
  cell.mapping_unattributed = kernel.lost;
  std::map<uint64_t, size_t> index_of;  // start address -> k-th copyable mapping
  for (size_t k = 0; k < copyable.size(); k++) index_of.emplace(copyable[k]->start, k);
  std::vector<size_t> row_of;
  for (const MappingVma& v : kernel.vmas) {
    auto it = v.start != 0 ? index_of.find(v.start) : index_of.end();
    if (it == index_of.end()) {
      cell.mapping_unattributed += v.calls;
      continue;
    }
    if (row_of.empty()) row_of = mapping_rows(copyable, cell.kernel.launches, cell);
    add_to(cell.mappings[row_of[it->second]], v.calls, v.setup_ns, v.cpr_ns);
  }
}

}  // namespace

void attribute_mappings(const std::vector<MappingInfo>& snapshot, const KernelMappings& kernel, Cell& cell) {
  std::vector<const MappingInfo*> copyable;
  for (const MappingInfo& m : snapshot)
    if (!m.dontcopy) copyable.push_back(&m);
  if (kernel.exact) {
    attribute_by_address(copyable, kernel, cell);
  } else {
    attribute_by_order(copyable, kernel, cell);
  }
  std::stable_sort(cell.mappings.begin(), cell.mappings.end(), [](const Mapping& a, const Mapping& b) {
    return a.vma_setup_ns + a.copy_page_range_ns > b.vma_setup_ns + b.copy_page_range_ns;
  });
}

}  // namespace forkscope
