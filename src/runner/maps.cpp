// The maps snapshot and its match to the kernel's per-mapping aggregates, by order (run and
// trace) or by source address (run with function probes) (mappings.h).
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

std::vector<const MappingInfo*> copyable_of(const std::vector<MappingInfo>& snapshot) {
  std::vector<const MappingInfo*> out;
  for (const MappingInfo& m : snapshot)
    if (!m.dontcopy) out.push_back(&m);
  return out;
}

// A cell's rows: copyable mappings grouped by identity (name, permissions, size), in
// the order first met, the k-th (kMappingSlots on) in one "(other mappings)" row (the
// order method's bound, kept by both methods so their tables compare row by row).
class Rows {
 public:
  explicit Rows(Cell& cell) : cell_(cell) {}
  // The row of the k-th copyable mapping m; fresh: it was just added.
  std::pair<size_t, bool> of(size_t k, const MappingInfo& m) {
    Key key = k < kMappingSlots ? Key{m.name, m.perms, m.end - m.start} : Key{"(other mappings)", "", 0};
    auto [it, fresh] = rows_.emplace(key, cell_.mappings.size());
    if (fresh) {
      Mapping row;
      row.name = std::get<0>(key);
      row.kind = k < kMappingSlots ? m.kind : "other";
      row.perms = std::get<1>(key);
      cell_.mappings.push_back(std::move(row));
    }
    return {it->second, fresh};
  }

 private:
  using Key = std::tuple<std::string, std::string, uint64_t>;
  Cell& cell_;
  std::map<Key, size_t> rows_;
};

void add_to(Mapping& row, uint64_t calls, uint64_t setup_ns, uint64_t cpr_ns) {
  row.calls += calls;
  row.vma_setup_ns += setup_ns;
  row.copy_page_range_ns += cpr_ns;
}

void sort_by_time(Cell& cell) {
  std::stable_sort(cell.mappings.begin(), cell.mappings.end(), [](const Mapping& a, const Mapping& b) {
    return a.vma_setup_ns + a.copy_page_range_ns > b.vma_setup_ns + b.copy_page_range_ns;
  });
}

}  // namespace

void attribute_mappings(const SnapshotFor& snapshot_for, const KernelMappings& kernel, Cell& cell) {
  // Launches per (process, copied-VMA count): slot 0 is every launch's first VMA.
  using Layout = std::pair<uint32_t, uint32_t>;
  std::map<Layout, uint64_t> launches;
  uint64_t copied = 0;
  for (const MappingSlot& s : kernel.slots) {
    if (s.idx != 0) continue;
    launches[{s.tgid, s.nvmas}] += s.calls;
    copied += s.calls;
  }
  if (copied == 0 && kernel.lost == 0) return;
  cell.mapping_method = "order";

  // Rows by identity, in the order first met; the other slot takes every VMA past the
  // bound.  Each matched layout's k-th copyable mapping -> its row; the rows' sizes
  // summed weighted by the launches matched to each layout that has them.
  Rows rows(cell);
  std::map<Layout, std::vector<size_t>> row_of;
  struct Sizes {
    uint64_t launches = 0, vmas = 0, bytes = 0, rss = 0, page_tables = 0;
    const std::vector<MappingInfo>* counted = nullptr;  // the layout whose launches are in
  };
  std::vector<Sizes> sizes;
  uint64_t matched = 0;
  for (const auto& [layout, n] : launches) {
    const std::vector<MappingInfo>* snapshot = n ? snapshot_for(layout.first, layout.second) : nullptr;
    if (snapshot == nullptr) continue;
    const std::vector<const MappingInfo*> copyable = copyable_of(*snapshot);
    if (copyable.size() != layout.second) continue;
    matched += n;
    std::vector<size_t>& of = row_of[layout];
    for (size_t k = 0; k < copyable.size(); k++) {
      const MappingInfo& m = *copyable[k];
      const auto [row, fresh] = rows.of(k, m);
      if (fresh) sizes.emplace_back();
      Sizes& z = sizes[row];
      if (z.counted != snapshot) z.launches += n;
      z.counted = snapshot;
      z.vmas += n;
      z.bytes += (m.end - m.start) * n;
      z.rss += m.rss_bytes * n;
      if (m.rss_bytes) z.page_tables += pte_span_bytes(m.start, m.end) * n;
      of.push_back(row);
    }
  }
  cell.mapping_unattributed = copied - matched + kernel.lost;
  if (matched == 0) return;
  for (size_t i = 0; i < cell.mappings.size(); i++) {
    // Means over the launches whose layout had the mapping: one layout's own figures.
    const Sizes& z = sizes[i];
    const auto mean = [&](uint64_t sum) { return (sum + z.launches / 2) / z.launches; };
    Mapping& row = cell.mappings[i];
    row.launches = matched;
    row.vmas = mean(z.vmas);
    row.bytes = mean(z.bytes);
    row.rss_bytes = mean(z.rss);
    row.page_table_bytes = mean(z.page_tables);
  }
  for (const MappingSlot& s : kernel.slots) {
    auto of = row_of.find({s.tgid, s.nvmas});
    if (of == row_of.end()) continue;
    const size_t k = s.idx < kMappingSlots ? s.idx : kMappingSlots;
    if (k >= of->second.size()) continue;
    add_to(cell.mappings[of->second[k]], s.calls, s.setup_ns, s.cpr_ns);
  }
  sort_by_time(cell);
}

namespace {

// The exact method (run): each source VMA's start resolved in the one snapshot.  Rows
// as the order method makes them (by identity, the kMappingSlots-th copyable mapping
// on in "(other mappings)"), so the two methods' tables compare row by row.
void attribute_by_address(const std::vector<MappingInfo>& snapshot, const KernelMappings& kernel, Cell& cell) {
  if (kernel.vmas.empty() && kernel.lost == 0) return;
  cell.mapping_method = "exact";
  cell.mapping_unattributed = kernel.lost;
  const std::vector<const MappingInfo*> copyable = copyable_of(snapshot);
  std::map<uint64_t, size_t> index_of;  // start address -> k-th copyable mapping
  for (size_t k = 0; k < copyable.size(); k++) index_of.emplace(copyable[k]->start, k);
  std::vector<size_t> row_of;  // made at the first address found: no match, no rows
  for (const MappingVma& v : kernel.vmas) {
    auto it = v.start != 0 ? index_of.find(v.start) : index_of.end();
    if (it == index_of.end()) {
      cell.mapping_unattributed += v.calls;
      continue;
    }
    if (row_of.empty()) {
      Rows rows(cell);
      for (size_t k = 0; k < copyable.size(); k++) {
        const MappingInfo& m = *copyable[k];
        Mapping& row = cell.mappings[row_of.emplace_back(rows.of(k, m).first)];
        row.launches = cell.kernel.launches;
        row.vmas += 1;
        row.bytes += m.end - m.start;
        row.rss_bytes += m.rss_bytes;
        if (m.rss_bytes) row.page_table_bytes += pte_span_bytes(m.start, m.end);
      }
    }
    add_to(cell.mappings[row_of[it->second]], v.calls, v.setup_ns, v.cpr_ns);
  }
  sort_by_time(cell);
}

}  // namespace

void attribute_mappings(const std::vector<MappingInfo>& snapshot, const KernelMappings& kernel, Cell& cell) {
  if (kernel.exact) return attribute_by_address(snapshot, kernel, cell);
  const size_t copyable = copyable_of(snapshot).size();
  attribute_mappings([&](uint32_t, uint32_t nvmas) { return nvmas == copyable ? &snapshot : nullptr; }, kernel, cell);
}

void ProcessSnapshots::update(const std::vector<LauncherLayout>& launchers,
                              const std::function<void(uint32_t, size_t, uint32_t)>& on_read) {
  for (const LauncherLayout& l : launchers) {
    auto it = procs_.find(l.tgid);
    if (it == procs_.end()) {
      if (procs_.size() >= kMaxProcesses) continue;
      it = procs_.emplace(l.tgid, Process{}).first;
      it->second.start_ns = l.start_ns;
    }
    Process& p = it->second;
    if (p.reused) continue;
    if (p.start_ns != l.start_ns) {  // another process under the same pid: its launches are mixed in
      p.reused = true;
      p.by_count.clear();
      continue;
    }
    if (p.by_count.contains(l.nvmas) || p.tried_at == l.launches || p.by_count.size() >= kMaxLayouts) continue;
    p.tried_at = l.launches;
    std::vector<MappingInfo> snapshot = read_(static_cast<pid_t>(l.tgid));
    reads_++;
    if (snapshot.empty()) continue;  // gone (or exec'd into nothing readable)
    const size_t copyable = copyable_of(snapshot).size();
    if (on_read) on_read(l.tgid, copyable, l.nvmas);
    p.by_count.emplace(static_cast<uint32_t>(copyable), std::move(snapshot));
  }
}

const std::vector<MappingInfo>* ProcessSnapshots::find(uint32_t tgid, uint32_t nvmas) const {
  auto p = procs_.find(tgid);
  if (p == procs_.end() || p->second.reused) return nullptr;
  auto s = p->second.by_count.find(nvmas);
  return s == p->second.by_count.end() ? nullptr : &s->second;
}

}  // namespace forkscope
