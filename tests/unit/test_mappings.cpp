// Per-mapping attribution: the machine's per-VMA times, the smaps snapshot, the order
// match of the k-th copied VMA to the k-th copyable mapping, and the exact match of
// copy_page_range's source VMA by its start address.
#include <gtest/gtest.h>
#include <linux/types.h>

#include <algorithm>
#include <map>
#include <tuple>
#include <sstream>
#include <vector>

#include "forkscope/formats.h"
#include "forkscope/mappings.h"
#include "forkscope/terminal.h"
#include "forkscope/shared/catalog.h"
#include "forkscope/shared/machine.h"

namespace {

using forkscope::Cell;
using forkscope::KernelMappings;
using forkscope::MappingInfo;
using forkscope::MappingSlot;

constexpr __u64 kUs = 1000;

// The 2 MiB fork of test_machine.cpp, replayed as the BPF side does: each finished
// VMA moved out after the landmark that finished it, the last at the launch's end.
TEST(MachineMappings, EachCopiedVmaHasItsOwnSetupAndCopyTime) {
  fs_config c{};
  fs_config_tracepoint(&c);
  const std::vector<std::pair<int, __u64>> events = {
      {FS_LM_TASK_STRUCT, 4}, {FS_LM_MM_STRUCT, 30}, {FS_LM_MMAP_LOCK, 67}, {FS_LM_VMA_DUP, 73},
      {FS_LM_VMA_DUP, 75},    {FS_LM_VMA_DUP, 77},   {FS_LM_VMA_DUP, 78},   {FS_LM_ANON_VMA, 79},
      {FS_LM_ANON_VMA, 80},   {FS_LM_VMA_DUP, 151},  {FS_LM_ANON_VMA, 152}, {FS_LM_MMAP_UNLOCK, 493},
      {FS_LM_PID, 496},       {FS_LM_NEWTASK, 507},  {FS_LM_SYS_EXIT, 519}};
  fs_launch l{};
  fs_launch_begin(&l, 0, 0, 0);
  std::vector<std::pair<__u64, __u64>> vmas;
  for (const auto& [lm, us] : events) {
    fs_landmark(&l, lm, us * kUs, &c);
    if (l.vma_state & FS_VMA_DONE) {
      EXPECT_EQ(vmas.size() + 2, l.vmas);  // the one before the current VMA
      vmas.push_back({l.vma_done_ns[0], l.vma_done_ns[1]});
      l.vma_state &= ~FS_VMA_DONE;
    }
  }
  vmas.push_back({l.vma_ns[0], l.vma_ns[1]});
  ASSERT_EQ(l.vmas, 5u);
  const std::vector<std::pair<__u64, __u64>> want = {
      {2 * kUs, 0}, {2 * kUs, 0}, {1 * kUs, 0}, {2 * kUs, (151 - 80) * kUs}, {1 * kUs, (493 - 152) * kUs}};
  EXPECT_EQ(vmas, want);
  // Nothing lost or invented: the per-VMA times add up to the phases'.
  __u64 setup = 0, cpr = 0;
  for (const auto& [s, p] : vmas) {
    setup += s;
    cpr += p;
  }
  EXPECT_EQ(setup, l.total_ns[FS_PH_VMA_SETUP]);
  EXPECT_EQ(cpr, l.total_ns[FS_PH_COPY_PAGE_RANGE]);
}

// The exact method (copy_page_range function-probed, dup_mmap by its landmarks as on
// 6.12), replayed as mappings.bpf.h does: at copy_page_range's exit the machine holds
// that VMA's set-up and copy; a VMA whose copy_page_range never ran (VM_WIPEONFORK)
// is found finished at the next VMA (FS_VMA_DONE without FS_VMA_EXACT).
TEST(MachineMappings, AtCopyPageRangesExitTheVmaHoldsItsOwnTimes) {
  fs_config c{};
  fs_config_tracepoint(&c);
  c.landmarks &= ~FS_BIT(FS_PH_COPY_PAGE_RANGE);
  fs_launch l{};
  fs_launch_begin(&l, 0, 0, 0);
  std::vector<std::pair<__u64, __u64>> at_exit, without_copy;
  auto vma = [&](__u64 us) {
    fs_landmark(&l, FS_LM_VMA_DUP, us * kUs, &c);
    if (l.vma_state & FS_VMA_DONE) {
      if (!(l.vma_state & FS_VMA_EXACT)) without_copy.push_back({l.vma_done_ns[0], l.vma_done_ns[1]});
      l.vma_state &= ~(FS_VMA_DONE | FS_VMA_EXACT);
    }
  };
  auto copy = [&](__u64 from, __u64 to) {
    fs_function_entry(&l, FS_PH_COPY_PAGE_RANGE, from * kUs, &c);
    const bool timed = fs_find(&l, FS_PH_COPY_PAGE_RANGE) >= 0;
    fs_function_exit(&l, FS_PH_COPY_PAGE_RANGE, to * kUs, &c);
    ASSERT_TRUE(timed);
    at_exit.push_back({l.vma_ns[0], l.vma_ns[1]});
    l.vma_state |= FS_VMA_EXACT;
  };
  fs_landmark(&l, FS_LM_TASK_STRUCT, 1 * kUs, &c);
  fs_landmark(&l, FS_LM_MM_STRUCT, 2 * kUs, &c);
  fs_landmark(&l, FS_LM_MMAP_LOCK, 3 * kUs, &c);
  vma(4);
  copy(6, 7);
  vma(8);
  fs_landmark(&l, FS_LM_ANON_VMA, 9 * kUs, &c);  // an anon_vma: no bearing on where the set-up ends
  copy(11, 50);
  vma(52);  // no copy_page_range: a VM_WIPEONFORK VMA
  vma(55);
  copy(56, 58);
  fs_landmark(&l, FS_LM_MMAP_UNLOCK, 60 * kUs, &c);
  fs_landmark(&l, FS_LM_SYS_EXIT, 61 * kUs, &c);
  EXPECT_EQ(l.vma_state & FS_VMA_EXACT, FS_VMA_EXACT) << "the last VMA was copied: nothing left at the end";
  const std::vector<std::pair<__u64, __u64>> want = {{2 * kUs, 1 * kUs}, {3 * kUs, 39 * kUs}, {1 * kUs, 2 * kUs}};
  EXPECT_EQ(at_exit, want);
  const std::vector<std::pair<__u64, __u64>> skipped = {{3 * kUs, 0}};
  EXPECT_EQ(without_copy, skipped);
  // Nothing lost or invented: with the VMA left without a copy, the phases' totals.
  __u64 setup = 0, cpr = 0;
  for (const auto& v : {at_exit, without_copy}) {
    for (const auto& [s, p] : v) {
      setup += s;
      cpr += p;
    }
  }
  EXPECT_EQ(setup, l.total_ns[FS_PH_VMA_SETUP]);
  EXPECT_EQ(cpr, l.total_ns[FS_PH_COPY_PAGE_RANGE]);
  EXPECT_EQ(l.calls[FS_PH_VMA_SETUP], 4u);
}

TEST(MachineMappings, ANewLaunchStartsCountingAgain) {
  fs_launch l{};
  l.vmas = 7;
  l.vma_state = FS_VMA_DONE | FS_VMA_LOST;
  l.vma_ns[0] = 5;
  fs_launch_begin(&l, 0, 0, 0);
  EXPECT_EQ(l.vmas, 0u);
  EXPECT_EQ(l.vma_state, 0u);
  EXPECT_EQ(l.vma_ns[0], 0u);
}

constexpr const char* kSmaps =
    "55d0c0000000-55d0c0002000 r--p 00000000 08:01 1234                       /usr/bin/tool\n"
    "Size:                  8 kB\n"
    "Rss:                   8 kB\n"
    "VmFlags: rd mr mw me sd \n"
    "55d0c1000000-55d0c1021000 rw-p 00000000 00:00 0                          [heap]\n"
    "Rss:                  12 kB\n"
    "VmFlags: rd wr mr mw me ac sd \n"
    "7f0000000000-7f0000400000 rw-p 00000000 00:00 0 \n"
    "Rss:                4096 kB\n"
    "VmFlags: rd wr mr mw me ac sd \n"
    "7f0000400000-7f0000401000 rw-p 00000000 00:00 0 \n"
    "Rss:                   4 kB\n"
    "VmFlags: rd wr mr mw me dc ac sd \n"
    "7f0000500000-7f0000501000 r-xp 00000000 08:01 99                         /tmp/evil\x1b[31m name (deleted)\n"
    "Rss:                   0 kB\n"
    "VmFlags: rd ex mr mw me sd \n"
    "7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]\n"
    "Rss:                  16 kB\n"
    "VmFlags: rd wr mr mw me gd ac \n"
    "7ffd00100000-7ffd00102000 r-xp 00000000 00:00 0                          [vdso]\n"
    "Rss:                   4 kB\n"
    "VmFlags: rd ex mr mw me de sd \n"
    "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n"
    "Rss:                   0 kB\n"
    "VmFlags: ex \n";

TEST(Smaps, ParsesNamesKindsRssAndDontCopy) {
  const std::vector<MappingInfo> m = forkscope::parse_smaps(kSmaps);
  ASSERT_EQ(m.size(), 7u);  // [vsyscall] is no VMA of the mm
  EXPECT_EQ(m[0].name, "/usr/bin/tool");
  EXPECT_EQ(m[0].kind, "file");
  EXPECT_EQ(m[0].perms, "r--p");
  EXPECT_EQ(m[0].end - m[0].start, 8192u);
  EXPECT_EQ(m[0].rss_bytes, 8192u);
  EXPECT_EQ(m[1].kind, "heap");
  EXPECT_EQ(m[2].name, "[anon]");
  EXPECT_EQ(m[2].kind, "anon");
  EXPECT_EQ(m[2].rss_bytes, 4096u * 1024);
  EXPECT_FALSE(m[2].dontcopy);
  EXPECT_TRUE(m[3].dontcopy);
  EXPECT_EQ(m[4].name, "/tmp/evil\\x1b[31m name (deleted)");  // made safe where it enters
  EXPECT_EQ(m[5].kind, "stack");
  EXPECT_EQ(m[6].kind, "special");
  for (size_t i = 0; i < m.size(); i++) {
    EXPECT_EQ(m[i].dontcopy, i == 3) << i;
  }
}

TEST(Smaps, ReadsThisProcess) {
  const std::vector<MappingInfo> m = forkscope::read_smaps(getpid());
  ASSERT_FALSE(m.empty());
  bool stack = false;
  for (size_t i = 0; i < m.size(); i++) {
    stack = stack || m[i].kind == "stack";
    if (i) {
      EXPECT_GE(m[i].start, m[i - 1].end);  // address order
    }
  }
  EXPECT_TRUE(stack);
}

TEST(Attribution, MatchingLaunchesGoToTheirMappingsOthersAreCounted) {
  const std::vector<MappingInfo> snap = forkscope::parse_smaps(kSmaps);  // 6 copyable
  KernelMappings k;
  // 10 launches copied 6 VMAs; 3 copied 7 (a mapping appeared): those are not guessed.
  for (uint32_t i = 0; i < 6; i++) k.slots.push_back({6, i, 10, 100 * (i + 1), i == 2 ? 50000u : 10u});
  for (uint32_t i = 0; i < 7; i++) k.slots.push_back({7, i, 3, 999, 999});
  k.lost = 2;
  Cell cell;
  forkscope::attribute_mappings(snap, k, cell);
  EXPECT_EQ(cell.mapping_method, "order");
  EXPECT_EQ(cell.mapping_unattributed, 3u + 2u);
  ASSERT_EQ(cell.mappings.size(), 6u);
  const forkscope::Mapping& top = cell.mappings[0];  // most time first
  EXPECT_EQ(top.name, "[anon]");
  EXPECT_EQ(top.bytes, 4u << 20);
  EXPECT_EQ(top.rss_bytes, 4u << 20);
  EXPECT_EQ(top.page_table_bytes, 2u * 4096);  // two 2 MiB blocks
  EXPECT_EQ(top.launches, 10u);
  EXPECT_EQ(top.calls, 10u);
  EXPECT_EQ(top.vma_setup_ns, 300u);
  EXPECT_EQ(top.copy_page_range_ns, 50000u);
  uint64_t setup = 0;
  for (const forkscope::Mapping& m : cell.mappings) setup += m.vma_setup_ns;
  EXPECT_EQ(setup, 100u + 200 + 300 + 400 + 500 + 600);  // the 7-VMA launches left out
  // The dc mapping is no row; a file mapping with nothing resident has no page tables.
  for (const forkscope::Mapping& m : cell.mappings) {
    EXPECT_FALSE(m.perms == "rw-p" && m.bytes == 4096u) << m.name;
    if (m.rss_bytes == 0) {
      EXPECT_EQ(m.page_table_bytes, 0u);
    }
  }
}

TEST(Attribution, SameIdentityVmasShareARowAndThePastTheBoundOnesTheOtherRow) {
  std::vector<MappingInfo> snap;
  const uint32_t n = forkscope::kMappingSlots + 5;
  for (uint32_t i = 0; i < n; i++)
    snap.push_back({"[anon]", "anon", "rw-p", i * 8192ull, i * 8192ull + 4096, 4096, false});
  KernelMappings k;
  for (uint32_t i = 0; i < forkscope::kMappingSlots; i++) k.slots.push_back({n, i, 4, 40, 80});
  k.slots.push_back({n, forkscope::kMappingSlots, 4 * 5, 7, 9});
  Cell cell;
  forkscope::attribute_mappings(snap, k, cell);
  EXPECT_EQ(cell.mapping_unattributed, 0u);
  ASSERT_EQ(cell.mappings.size(), 2u);
  EXPECT_EQ(cell.mappings[0].vmas, forkscope::kMappingSlots);
  EXPECT_EQ(cell.mappings[0].calls, 4u * forkscope::kMappingSlots);
  EXPECT_EQ(cell.mappings[1].name, "(other mappings)");
  EXPECT_EQ(cell.mappings[1].kind, "other");
  EXPECT_EQ(cell.mappings[1].vmas, 5u);
  EXPECT_EQ(cell.mappings[1].calls, 20u);
  EXPECT_EQ(cell.mappings[1].copy_page_range_ns, 9u);
}

TEST(Attribution, ExactGoesByStartAddressAndCountsEveryOtherAddress) {
  const std::vector<MappingInfo> snap = forkscope::parse_smaps(kSmaps);
  KernelMappings k;
  k.exact = true;
  k.vmas = {{0x55d0c0000000, 10, 100, 5},      // /usr/bin/tool
            {0x7f0000000000, 10, 300, 50000},  // the 4 MiB [anon]
            {0x7ffd00000000, 10, 200, 700},    // [stack]
            {0x7f0000400000, 1, 7, 7},         // the dc mapping: fork does not copy it
            {0x7f0000000000 + 4096, 2, 9, 9},  // inside a mapping, not its start
            {0, 3, 11, 0}};                    // copy_page_range not seen
  k.lost = 4;
  Cell cell;
  cell.kernel.launches = 10;
  forkscope::attribute_mappings(snap, k, cell);
  EXPECT_EQ(cell.mapping_method, "exact");
  EXPECT_EQ(cell.mapping_unattributed, 1u + 2 + 3 + 4);  // VMA copies
  ASSERT_EQ(cell.mappings.size(), 6u);                   // every copyable mapping has its row
  const forkscope::Mapping& top = cell.mappings[0];
  EXPECT_EQ(top.name, "[anon]");
  EXPECT_EQ(top.launches, 10u);
  EXPECT_EQ(top.calls, 10u);
  EXPECT_EQ(top.vma_setup_ns, 300u);
  EXPECT_EQ(top.copy_page_range_ns, 50000u);
  EXPECT_EQ(cell.mappings[1].name, "[stack]");
  EXPECT_EQ(cell.mappings[2].name, "/usr/bin/tool");
  for (size_t i = 3; i < cell.mappings.size(); i++) {
    EXPECT_EQ(cell.mappings[i].calls, 0u) << cell.mappings[i].name;  // [heap], the file, [vdso]: no copy seen
    EXPECT_EQ(cell.mappings[i].launches, 10u);
  }
}

// The same copies, aggregated by each method, give the same table.
TEST(Attribution, OrderAndExactGiveTheSameTablePastTheBoundToo) {
  std::vector<MappingInfo> snap;
  const uint32_t n = forkscope::kMappingSlots + 5;
  for (uint32_t i = 0; i < n; i++) {
    const std::string name = i % 3 ? "[anon]" : "/lib/x.so";
    snap.push_back({name, i % 3 ? "anon" : "file", "rw-p", (i + 1) * 8192ull, (i + 1) * 8192ull + 4096, 4096, false});
  }
  KernelMappings order, exact;
  exact.exact = true;
  for (uint32_t i = 0; i < n; i++) {
    const uint64_t setup = 10 + i, cpr = 3 * i;
    exact.vmas.push_back({snap[i].start, 4, 4 * setup, 4 * cpr});
    if (i < forkscope::kMappingSlots) {
      order.slots.push_back({n, i, 4, 4 * setup, 4 * cpr});
    } else if (i == forkscope::kMappingSlots) {
      order.slots.push_back({n, i, 0, 0, 0});
    }
    if (i >= forkscope::kMappingSlots) {
      MappingSlot& other = order.slots.back();
      other.calls += 4;
      other.setup_ns += 4 * setup;
      other.cpr_ns += 4 * cpr;
    }
  }
  Cell a, b;
  b.kernel.launches = 4;
  forkscope::attribute_mappings(snap, order, a);
  forkscope::attribute_mappings(snap, exact, b);
  EXPECT_EQ(a.mapping_method, "order");
  EXPECT_EQ(b.mapping_method, "exact");
  EXPECT_EQ(a.mappings, b.mappings);
  ASSERT_EQ(b.mappings.size(), 3u);  // [anon], the file, (other mappings)
  EXPECT_EQ(b.mapping_unattributed, 0u);
}

// trace: launches of several processes, each matched to its own snapshot of the count
// it copied; rows by identity across them; a process with no snapshot counted.
TEST(Attribution, TraceMatchesEachProcessToItsOwnSnapshot) {
  const std::vector<MappingInfo> a = forkscope::parse_smaps(kSmaps);  // 6 copyable, [heap] 132K
  const std::vector<MappingInfo> b = {{"[heap]", "heap", "rw-p", 0x1000000, 0x1021000, 0, false},
                                      {"/srv/data", "file", "rw-p", 0x7f0000000000, 0x7f0004000000, 64u << 20, false}};
  KernelMappings k;
  for (uint32_t i = 0; i < 6; i++) k.slots.push_back({6, i, 10, 10, 10, 100});
  k.slots.push_back({2, 0, 5, 1000, 2000, 200});                             // [heap]
  k.slots.push_back({2, 1, 5, 3000, 90000, 200});                            // /srv/data
  for (uint32_t i = 0; i < 3; i++) k.slots.push_back({3, i, 4, 7, 7, 300});  // no snapshot
  for (uint32_t i = 0; i < 6; i++) k.slots.push_back({6, i, 2, 7, 7, 200});  // 200 never had 6
  const auto find = [&](uint32_t tgid, uint32_t nvmas) -> const std::vector<MappingInfo>* {
    if (tgid == 100 && nvmas == 6) return &a;
    if (tgid == 200 && nvmas == 2) return &b;
    return nullptr;
  };
  Cell cell;
  forkscope::attribute_mappings(find, k, cell);
  EXPECT_EQ(cell.mapping_method, "order");
  EXPECT_EQ(cell.mapping_unattributed, 4u + 2u);
  ASSERT_EQ(cell.mappings.size(), 7u);  // a's six and b's file: b's heap is a's row
  const forkscope::Mapping& top = cell.mappings[0];
  EXPECT_EQ(top.name, "/srv/data");
  EXPECT_EQ(top.bytes, 64u << 20);  // its own size, not diluted by the launches without it
  EXPECT_EQ(top.vmas, 1u);
  EXPECT_EQ(top.calls, 5u);
  EXPECT_EQ(top.copy_page_range_ns, 90000u);
  uint64_t setup = 0;
  for (const forkscope::Mapping& m : cell.mappings) {
    EXPECT_EQ(m.launches, 15u) << m.name;  // the group's attributed launches
    setup += m.vma_setup_ns;
    if (m.name == "[heap]") {
      EXPECT_EQ(m.calls, 15u);
      EXPECT_EQ(m.vma_setup_ns, 10u + 1000);
      EXPECT_EQ(m.bytes, 0x21000u);
      EXPECT_EQ(m.rss_bytes, (12u * 1024 * 10 + 0 * 5 + 7) / 15);  // a mean over both processes' launches
    } else if (m.name != "/srv/data") {
      EXPECT_EQ(m.calls, 10u) << m.name;
    }
  }
  EXPECT_EQ(setup, 6u * 10 + 1000 + 3000);  // nothing of the unmatched launches
}

// trace: a process is read when first seen, again when its launches copy a count it
// has no snapshot of (once per new launch), never after its pid was reused.
TEST(ProcessSnapshots, ReadWhenFirstSeenAndWhenTheCountChanges) {
  std::map<pid_t, std::vector<MappingInfo>> layouts;
  const MappingInfo one{"[heap]", "heap", "rw-p", 0x1000, 0x2000, 4096, false};
  const MappingInfo dc{"[anon]", "anon", "rw-p", 0x3000, 0x4000, 0, true};
  layouts[10] = {one, dc, one};  // 2 copyable
  layouts[20] = {one};
  std::vector<pid_t> read;
  forkscope::ProcessSnapshots snaps([&](pid_t pid) {
    read.push_back(pid);
    auto it = layouts.find(pid);
    return it == layouts.end() ? std::vector<MappingInfo>{} : it->second;
  });
  std::vector<std::tuple<uint32_t, size_t, uint32_t>> logged;
  const auto log = [&](uint32_t tgid, size_t copyable, uint32_t nvmas) { logged.push_back({tgid, copyable, nvmas}); };
  snaps.update({{10, 2, 1, 555}, {20, 1, 4, 777}, {30, 5, 1, 999}}, log);
  EXPECT_EQ(read, (std::vector<pid_t>{10, 20, 30}));  // 30 exited: nothing to read
  ASSERT_NE(snaps.find(10, 2), nullptr);
  EXPECT_EQ(snaps.find(10, 2)->size(), 3u);
  EXPECT_EQ(snaps.find(10, 3), nullptr);
  EXPECT_EQ(snaps.find(30, 5), nullptr);
  EXPECT_EQ(logged.size(), 2u);
  // The same counts: nothing read.  30's next launch: tried again.
  snaps.update({{10, 2, 9, 555}, {20, 1, 8, 777}, {30, 5, 1, 999}}, log);
  EXPECT_EQ(read.size(), 3u);
  snaps.update({{30, 5, 2, 999}}, log);
  EXPECT_EQ(read.size(), 4u);
  // 10 mapped one more VMA: read again; the old snapshot stays for the old launches.
  layouts[10].push_back({"[anon]", "anon", "rw-p", 0x9000, 0xa000, 0, false});
  snaps.update({{10, 3, 10, 555}}, log);
  EXPECT_EQ(read.size(), 5u);
  ASSERT_NE(snaps.find(10, 3), nullptr);
  ASSERT_NE(snaps.find(10, 2), nullptr);
  EXPECT_EQ(std::get<1>(logged.back()), 3u);
  // Read after its layout changed again (4 copyable, last launch 3): kept under 4,
  // and not read again until another launch.
  layouts[10].push_back({"[anon]", "anon", "rw-p", 0xb000, 0xc000, 0, false});
  snaps.update({{10, 5, 11, 555}}, log);
  snaps.update({{10, 5, 11, 555}}, log);
  EXPECT_EQ(read.size(), 6u);
  EXPECT_NE(snaps.find(10, 4), nullptr);
  EXPECT_EQ(snaps.find(10, 5), nullptr);
  // 20's pid now names another process: none of its launches can be told apart.
  snaps.update({{20, 1, 9, 12345}}, log);
  EXPECT_EQ(snaps.find(20, 1), nullptr);
  EXPECT_EQ(read.size(), 6u);
  EXPECT_EQ(snaps.reads(), 6u);
}

TEST(Attribution, NothingCopiedLeavesTheCellAlone) {
  Cell cell;
  forkscope::attribute_mappings(forkscope::parse_smaps(kSmaps), KernelMappings{}, cell);
  EXPECT_EQ(cell.mapping_method, "");
  EXPECT_TRUE(cell.mappings.empty());
}

}  // namespace

namespace {

forkscope::Cell attributed_cell() {
  forkscope::Cell c;
  c.mode = "fork";
  c.heap_bytes = 512u << 20;
  c.mapping_method = "order";
  c.mapping_unattributed = 1;
  c.mappings = {{"[anon]", "anon", "rw-p", 1, 512u << 20, 512u << 20, 1u << 20, 10, 10, 100, 9700},
                {"/usr/lib/libc.so.6, \"x\"", "file", "r--p", 1, 16384, 16384, 4096, 10, 10, 200, 300}};
  return c;
}

TEST(MappingReports, TheFindingNamesTheMappingHoldingMostOfTheCopy) {
  const forkscope::Cell c = attributed_cell();
  EXPECT_EQ(forkscope::mapping_label(c.mappings[0]), "[anon] rw-p 512M");
  const std::string f = forkscope::mapping_finding(c);
  EXPECT_EQ(f.rfind("[anon] rw-p 512M holds 97% of copy_page_range (970 ns per fork", 0), 0u) << f;
  forkscope::Cell even = c;
  even.mappings[1].copy_page_range_ns = 9700;  // no mapping holds over half
  EXPECT_EQ(forkscope::mapping_finding(even), "");
}

TEST(MappingReports, TableCsvAndHtmlHaveARowPerMapping) {
  forkscope::Run run;
  run.cells = {attributed_cell()};
  std::ostringstream table;
  forkscope::render_mappings(run.cells[0], table, false);
  EXPECT_NE(table.str().find("10 launches attributed, 1 launch not"), std::string::npos) << table.str();
  EXPECT_NE(table.str().find("method order:"), std::string::npos) << table.str();
  forkscope::Cell exact = run.cells[0];
  exact.mapping_method = "exact";
  exact.mapping_unattributed = 3;
  std::ostringstream exact_table;
  forkscope::render_mappings(exact, exact_table, false);
  EXPECT_NE(exact_table.str().find("10 launches attributed, 3 VMA copies not"), std::string::npos) << exact_table.str();
  EXPECT_NE(exact_table.str().find("method exact: copy_page_range's source VMA"), std::string::npos)
      << exact_table.str();
  EXPECT_NE(forkscope::mappings_html(exact).find("3 VMA copies not. Method exact:"), std::string::npos)
      << forkscope::mappings_html(exact);
  EXPECT_NE(table.str().find("finding: [anon] rw-p 512M"), std::string::npos) << table.str();
  const std::string csv = forkscope::mappings_csv(run);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 3);
  EXPECT_NE(csv.find(",\"/usr/lib/libc.so.6, \"\"x\"\"\",file,r--p,1,16384,"), std::string::npos) << csv;
  const std::string html = forkscope::mappings_html(run.cells[0]);
  EXPECT_NE(html.find("/usr/lib/libc.so.6, &quot;x&quot;"), std::string::npos) << html;
  std::ostringstream none;
  forkscope::render_mappings(forkscope::Cell{}, none, false);
  EXPECT_EQ(none.str(), "");
  EXPECT_EQ(forkscope::mappings_html(forkscope::Cell{}), "");
}

}  // namespace
