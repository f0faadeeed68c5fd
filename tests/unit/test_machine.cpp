// The landmark state machine the BPF side runs, fed with recorded event sequences.
#include <gtest/gtest.h>
#include <linux/types.h>

#include <cstring>
#include <random>
#include <vector>

#include "forkscope/shared/catalog.h"
#include "forkscope/shared/hist.h"
#include "forkscope/shared/machine.h"

namespace {

struct Event {
  int landmark;
  __u64 us;
};

constexpr __u64 kNsPerUs = 1000;

fs_config tracepoint_config() {
  fs_config c{};
  fs_config_tracepoint(&c);
  return c;
}

const fs_config kTp = tracepoint_config();

// Deepest chain the catalog allows under the tracepoint mask:
// syscall > copy_process > dup_mm > dup_mmap > vma_setup or copy_page_range.
constexpr __u32 kDeepestTree = 5;

fs_launch replay(const std::vector<Event>& events, __u32 flags = 0) {
  fs_launch l{};
  fs_launch_begin(&l, 0, 0, 0);
  l.flags = flags;
  for (const Event& e : events) fs_landmark(&l, e.landmark, e.us * kNsPerUs, &kTp);
  return l;
}

// One fork() of a process with a 2 MiB heap, recorded on a real kernel (sys_enter at 0).
const std::vector<Event> kFork2M = {
    {FS_LM_TASK_STRUCT, 4},   {FS_LM_CREDS, 11},     {FS_LM_FILES, 18},     {FS_LM_FS, 25},
    {FS_LM_SIGHAND, 26},      {FS_LM_SIGNAL, 28},    {FS_LM_MM_STRUCT, 30}, {FS_LM_MMAP_LOCK, 67},
    {FS_LM_VMA_DUP, 73},      {FS_LM_VMA_DUP, 75},   {FS_LM_VMA_DUP, 77},   {FS_LM_VMA_DUP, 78},
    {FS_LM_ANON_VMA, 79},     {FS_LM_ANON_VMA, 80},  {FS_LM_VMA_DUP, 151},  {FS_LM_ANON_VMA, 152},
    {FS_LM_MMAP_UNLOCK, 493}, {FS_LM_PID, 496},      {FS_LM_NEWTASK, 507},  {FS_LM_FORK_DONE, 513},
    {FS_LM_WAKEUP_NEW, 518},  {FS_LM_SYS_EXIT, 519},
};

void expect_phase(const fs_launch& l, int phase, __u64 total_us, __u64 self_us, __u32 calls) {
  SCOPED_TRACE(testing::Message() << "phase " << phase);
  EXPECT_EQ(l.total_ns[phase], total_us * kNsPerUs);
  EXPECT_EQ(l.self_ns[phase], self_us * kNsPerUs);
  EXPECT_EQ(l.calls[phase], calls);
}

// The breakdown adds up: a phase's self time is its total minus the totals of the
// phases nested directly under it, and the self times of the tree sum to the syscall.
void expect_self_adds_up(const fs_launch& l) {
  __u64 all_self = 0;
  for (int ph = 0; ph < FS_NPHASES; ++ph) {
    __u64 children = 0;
    for (int c = 0; c < FS_NPHASES; ++c) {
      if (c != ph && fs_effective_parent(&kTp, c) == ph) children += l.total_ns[c];
    }
    EXPECT_EQ(l.self_ns[ph], l.total_ns[ph] - children) << "phase " << ph;
    all_self += l.self_ns[ph];
  }
  EXPECT_EQ(all_self, l.total_ns[FS_PH_SYSCALL]);
}

bool same_totals(const fs_launch& a, const fs_launch& b) {
  return std::memcmp(a.total_ns, b.total_ns, sizeof a.total_ns) == 0 &&
         std::memcmp(a.self_ns, b.self_ns, sizeof a.self_ns) == 0 && std::memcmp(a.calls, b.calls, sizeof a.calls) == 0;
}

std::vector<Event> with_inserted(std::vector<Event> events, Event extra) {
  size_t i = 0;
  while (i < events.size() && events[i].us <= extra.us) ++i;
  events.insert(events.begin() + static_cast<std::ptrdiff_t>(i), extra);
  return events;
}

TEST(Machine, ForkWithTwoMegabyteHeap) {
  const fs_launch l = replay(kFork2M);
  EXPECT_EQ(l.depth, 0u);
  expect_phase(l, FS_PH_SYSCALL, 519, 11, 1);  // 0..4, 507..513, 518..519
  expect_phase(l, FS_PH_KERNEL_CLONE, 0, 0, 0);
  expect_phase(l, FS_PH_COPY_PROCESS, 507 - 4, 0, 1);  // its landmarks cover it all
  expect_phase(l, FS_PH_DUP_TASK_STRUCT, 11 - 4, 11 - 4, 1);
  expect_phase(l, FS_PH_COPY_CREDS, 18 - 11, 18 - 11, 1);
  expect_phase(l, FS_PH_COPY_FILES, 25 - 18, 25 - 18, 1);
  expect_phase(l, FS_PH_COPY_FS, 26 - 25, 26 - 25, 1);
  expect_phase(l, FS_PH_COPY_SIGHAND, 28 - 26, 28 - 26, 1);
  expect_phase(l, FS_PH_COPY_SIGNAL, 30 - 28, 30 - 28, 1);
  expect_phase(l, FS_PH_DUP_MM, 496 - 30, (67 - 30) + (496 - 493), 1);
  expect_phase(l, FS_PH_DUP_MMAP, 493 - 67, 73 - 67, 1);
  // Five VMAs set up: 73..75, 75..77, 77..78, 78..80 (to its last anon_vma) and 151..152.
  expect_phase(l, FS_PH_VMA_SETUP, 2 + 2 + 1 + 2 + 1, 2 + 2 + 1 + 2 + 1, 5);
  // Two VMAs have an anon_vma, so copied page tables: each from the end of its set-up
  // to the next VMA or the unlock.  The three without one keep their tails in vma_setup.
  expect_phase(l, FS_PH_COPY_PAGE_RANGE, (151 - 80) + (493 - 152), (151 - 80) + (493 - 152), 2);
  expect_phase(l, FS_PH_ALLOC_PID, 507 - 496, 507 - 496, 1);
  expect_phase(l, FS_PH_WAKE_UP_NEW_TASK, 518 - 513, 518 - 513, 1);
  expect_phase(l, FS_PH_VFORK_WAIT, 0, 0, 0);
  expect_phase(l, FS_PH_CHILD_FIRST_RUN, 0, 0, 0);
  expect_phase(l, FS_PH_POST_LAUNCH_COW, 0, 0, 0);
  expect_phase(l, FS_PH_TEARDOWN, 0, 0, 0);
  expect_self_adds_up(l);
}

// The same fork on a kernel whose per-VMA lock is a slab object of its own
// (Debian 6.12): each vm_area_dup allocates the VMA (call site vm_area_dup+0x1f)
// and then its lock (vm_area_dup+0x46), recorded in the 6.12 guest with the
// kmem_cache_alloc tracepoint.  Fed through fs_alloc_landmark as the BPF side
// does, the lock allocations start no VMA: the same breakdown as one
// allocation per VMA, five vma_setup calls, not ten.
TEST(Machine, PerVmaLockAllocationIsNotAnotherVma) {
  constexpr __u64 kVmaSite = 0xffffffff81301a1f, kLockSite = 0xffffffff81301a46, kOtherSite = 0xffffffff81300000;
  fs_launch l{};
  fs_launch_begin(&l, 0, 0, 0);
  int lock_allocs = 0;
  for (const Event& e : kFork2M) {
    const __u64 ts = e.us * kNsPerUs;
    if (e.landmark == FS_LM_VMA_DUP) {
      fs_alloc_landmark(&l, FS_LM_VMA_DUP, kVmaSite, ts, &kTp);
      fs_alloc_landmark(&l, FS_LM_VMA_DUP, kLockSite, ts + 400, &kTp);  // a few hundred ns later
      ++lock_allocs;
    } else {
      fs_alloc_landmark(&l, e.landmark, kOtherSite, ts, &kTp);
    }
  }
  ASSERT_EQ(lock_allocs, 5);
  const fs_launch one_alloc_per_vma = replay(kFork2M);
  EXPECT_EQ(l.calls[FS_PH_VMA_SETUP], 5u);
  EXPECT_EQ(l.calls[FS_PH_COPY_PAGE_RANGE], 2u);
  EXPECT_TRUE(same_totals(l, one_alloc_per_vma));
  expect_self_adds_up(l);
}

TEST(Machine, ThreadLaunchHasNoMemoryPhases) {
  const fs_launch l = replay({{FS_LM_TASK_STRUCT, 1},
                              {FS_LM_PID, 3},
                              {FS_LM_NEWTASK, 4},
                              {FS_LM_FORK_DONE, 5},
                              {FS_LM_WAKEUP_NEW, 6},
                              {FS_LM_SYS_EXIT, 7}});
  EXPECT_EQ(l.depth, 0u);
  expect_phase(l, FS_PH_SYSCALL, 7, 7 - 3 - 1, 1);
  expect_phase(l, FS_PH_COPY_PROCESS, 3, 0, 1);
  expect_phase(l, FS_PH_DUP_TASK_STRUCT, 2, 2, 1);
  expect_phase(l, FS_PH_ALLOC_PID, 1, 1, 1);
  expect_phase(l, FS_PH_WAKE_UP_NEW_TASK, 1, 1, 1);
  for (int ph : {FS_PH_DUP_MM, FS_PH_DUP_MMAP, FS_PH_VMA_SETUP, FS_PH_COPY_PAGE_RANGE, FS_PH_COPY_FILES}) {
    EXPECT_EQ(l.calls[ph], 0u) << ph;
    EXPECT_EQ(l.total_ns[ph], 0u) << ph;
  }
  expect_self_adds_up(l);
}

TEST(Machine, StrayMmapLockIsIgnored) {
  const fs_launch baseline = replay(kFork2M);
  // During copy_files (dup_mm not open), inside a VMA's set-up (dup_mm open but not on
  // top), and while alloc_pid runs: none may open dup_mmap.
  for (__u64 at : {20, 76, 500}) {
    SCOPED_TRACE(at);
    EXPECT_TRUE(same_totals(replay(with_inserted(kFork2M, {FS_LM_MMAP_LOCK, at})), baseline));
  }
  // An unlock with no dup_mmap open closes nothing.
  EXPECT_TRUE(same_totals(replay(with_inserted(kFork2M, {FS_LM_MMAP_UNLOCK, 12})), baseline));
}

TEST(Machine, AnonVmaAllocationOutsideVmaSetupIsIgnored) {
  const fs_launch baseline = replay(kFork2M);
  // In copy_creds, in dup_mm before and after dup_mmap, in alloc_pid, in wake_up_new_task:
  // none may mark a VMA as copying page tables.
  for (__u64 at : {12, 40, 495, 500, 515}) {
    SCOPED_TRACE(at);
    EXPECT_TRUE(same_totals(replay(with_inserted(kFork2M, {FS_LM_ANON_VMA, at})), baseline));
  }
}

TEST(Machine, OnlyVmasWithAnonVmaCopyPageTables) {
  // Three VMAs; only the second allocates anon_vma structures.
  const fs_launch l = replay({{FS_LM_TASK_STRUCT, 1},
                              {FS_LM_MM_STRUCT, 2},
                              {FS_LM_MMAP_LOCK, 3},
                              {FS_LM_VMA_DUP, 4},
                              {FS_LM_VMA_DUP, 10},
                              {FS_LM_ANON_VMA, 11},
                              {FS_LM_ANON_VMA, 12},
                              {FS_LM_VMA_DUP, 40},
                              {FS_LM_MMAP_UNLOCK, 45},
                              {FS_LM_PID, 46},
                              {FS_LM_NEWTASK, 47},
                              {FS_LM_SYS_EXIT, 50}});
  expect_phase(l, FS_PH_VMA_SETUP, (10 - 4) + (12 - 10) + (45 - 40), (10 - 4) + (12 - 10) + (45 - 40), 3);
  expect_phase(l, FS_PH_COPY_PAGE_RANGE, 40 - 12, 40 - 12, 1);
  expect_self_adds_up(l);
}

// Our runs counted after a VMA's set-up ended (its last anon_vma allocation) move
// with the tail to copy_page_range, so the corrected self times go to the right phase.
TEST(Machine, RunsInAVmasTailMoveToCopyPageRange) {
  fs_launch l{};
  fs_launch_begin(&l, 0, 0, 0);
  auto at = [&](int lm, __u64 us) {
    fs_count_event(&l, 0);
    fs_landmark(&l, lm, us * kNsPerUs, &kTp);
  };
  at(FS_LM_TASK_STRUCT, 1);
  at(FS_LM_MM_STRUCT, 2);
  at(FS_LM_MMAP_LOCK, 3);
  at(FS_LM_VMA_DUP, 4);
  at(FS_LM_ANON_VMA, 5);
  at(FS_LM_ANON_VMA, 6);
  fs_count_event(&l, 0);  // e.g. mm_page_alloc of a page table (--detail), in the tail
  fs_count_event(&l, 0);
  at(FS_LM_VMA_DUP, 20);
  // A run's cost comes before the time it reads: each run is charged to the segment
  // it ends.  vm_area_dup's to dup_mmap, the two anon_vma runs to the set-up, and
  // the two in the tail plus the next vm_area_dup's to copy_page_range.
  EXPECT_EQ(l.events[FS_PH_DUP_MMAP], 1u);
  EXPECT_EQ(l.events[FS_PH_VMA_SETUP], 2u);
  EXPECT_EQ(l.events[FS_PH_COPY_PAGE_RANGE], 3u);
  EXPECT_EQ(l.total_ns[FS_PH_COPY_PAGE_RANGE], (20 - 6) * kNsPerUs);
}

// A user phase around the anon_vma work (--phase anon_vma_fork:vma_setup) hides the
// allocations from the set-up's top, yet the VMA still copies page tables; and a user
// phase under copy_page_range (--phase copy_pte_range:copy_page_range) opens the tail.
TEST(Machine, UserPhasesInAndUnderTheInferredCopy) {
  fs_config c = tracepoint_config();
  c.parent[FS_PH_USER0] = FS_PH_VMA_SETUP;
  c.parent[FS_PH_USER1] = FS_PH_COPY_PAGE_RANGE;
  c.measured |= FS_BIT(FS_PH_USER0) | FS_BIT(FS_PH_USER1);
  fs_launch l{};
  fs_launch_begin(&l, 0, 0, 0);
  auto us = [](__u64 v) { return v * kNsPerUs; };
  fs_landmark(&l, FS_LM_TASK_STRUCT, us(1), &c);
  fs_landmark(&l, FS_LM_MM_STRUCT, us(2), &c);
  fs_landmark(&l, FS_LM_MMAP_LOCK, us(3), &c);
  fs_landmark(&l, FS_LM_VMA_DUP, us(4), &c);
  fs_function_entry(&l, FS_PH_USER0, us(5), &c);
  fs_landmark(&l, FS_LM_ANON_VMA, us(6), &c);
  fs_function_exit(&l, FS_PH_USER0, us(8), &c);    // the set-up ends here
  fs_function_entry(&l, FS_PH_USER1, us(10), &c);  // opens copy_page_range at 8
  fs_function_exit(&l, FS_PH_USER1, us(15), &c);
  fs_landmark(&l, FS_LM_MMAP_UNLOCK, us(20), &c);
  fs_landmark(&l, FS_LM_PID, us(21), &c);
  fs_landmark(&l, FS_LM_NEWTASK, us(22), &c);
  fs_landmark(&l, FS_LM_SYS_EXIT, us(23), &c);
  expect_phase(l, FS_PH_USER0, 3, 3, 1);
  expect_phase(l, FS_PH_VMA_SETUP, 8 - 4, 8 - 4 - 3, 1);
  expect_phase(l, FS_PH_COPY_PAGE_RANGE, 20 - 8, 20 - 8 - 5, 1);
  expect_phase(l, FS_PH_USER1, 5, 5, 1);
  EXPECT_EQ(l.depth, 0u);
}

TEST(Machine, VforkWaitsFromWakeupToSysExit) {
  const std::vector<Event> vfork = {{FS_LM_TASK_STRUCT, 2}, {FS_LM_CREDS, 5},      {FS_LM_PID, 20},
                                    {FS_LM_NEWTASK, 25},    {FS_LM_FORK_DONE, 27}, {FS_LM_WAKEUP_NEW, 30},
                                    {FS_LM_SYS_EXIT, 830}};
  const fs_launch l = replay(vfork, FS_LF_VFORK);
  EXPECT_EQ(l.depth, 0u);
  expect_phase(l, FS_PH_VFORK_WAIT, 800, 800, 1);
  expect_phase(l, FS_PH_WAKE_UP_NEW_TASK, 3, 3, 1);
  expect_phase(l, FS_PH_SYSCALL, 830, 830 - 800 - 3 - 23, 1);
  expect_self_adds_up(l);

  const fs_launch plain = replay(vfork);
  expect_phase(plain, FS_PH_VFORK_WAIT, 0, 0, 0);
  expect_phase(plain, FS_PH_SYSCALL, 830, 830 - 3 - 23, 1);
}

TEST(Machine, LandmarksAfterSysExitChangeNothing) {
  fs_launch l = replay(kFork2M);
  const fs_launch done = l;
  __u64 ts = 600 * kNsPerUs;
  for (int round = 0; round < 2; ++round) {
    for (int lm = FS_LM_TASK_STRUCT; lm < FS_LM_COUNT; ++lm) fs_landmark(&l, lm, ts += kNsPerUs, &kTp);
  }
  EXPECT_EQ(l.depth, 0u);
  EXPECT_TRUE(same_totals(l, done));
}

TEST(Machine, FullStackRefusesAnotherPhase) {
  fs_launch l{};
  for (__u32 i = 0; i < FS_STACK_DEPTH; ++i) l.stack[i] = {100, 0, FS_PH_SYSCALL, 0};
  l.stack[FS_STACK_DEPTH - 1].phase = FS_PH_DUP_MMAP;
  l.depth = FS_STACK_DEPTH;
  const fs_launch before = l;

  fs_landmark(&l, FS_LM_VMA_DUP, 200, &kTp);  // vma_setup's parent is on top: nothing to pop, no room
  EXPECT_EQ(l.depth, static_cast<__u32>(FS_STACK_DEPTH));
  EXPECT_EQ(l.cpr_candidate, 0u);
  EXPECT_EQ(std::memcmp(l.stack, before.stack, sizeof l.stack), 0);
  EXPECT_TRUE(same_totals(l, before));
}

TEST(Machine, CorruptDepthIsNeverFollowedPastTheStack) {
  fs_launch l{};
  for (auto& f : l.stack) f = {100, 0, FS_PH_SYSCALL, 0};
  l.depth = FS_STACK_DEPTH + 5;
  const fs_launch before = l;
  for (int lm = FS_LM_TASK_STRUCT; lm < FS_LM_COUNT; ++lm) fs_landmark(&l, lm, 200, &kTp);
  EXPECT_EQ(l.depth, static_cast<__u32>(FS_STACK_DEPTH + 5));
  EXPECT_EQ(fs_top(&l), FS_PH_NONE);
  EXPECT_TRUE(same_totals(l, before));
}

// Arbitrary landmark orders, as a lost or reordered event would give: the stack never
// grows past the catalog's depth and the breakdown still adds up.
TEST(Machine, RandomLandmarkSequencesStayConsistent) {
  std::mt19937 rng(4242);
  std::uniform_int_distribution<int> landmark(FS_LM_TASK_STRUCT, FS_LM_WAKEUP_NEW);
  std::uniform_int_distribution<__u64> gap(0, 50000);
  for (int launch = 0; launch < 2000; ++launch) {
    fs_launch l{};
    __u64 ts = gap(rng);
    fs_launch_begin(&l, 0, 0, ts);
    if (launch % 3 == 0) l.flags |= FS_LF_VFORK;
    const int n = 1 + static_cast<int>(rng() % 60);
    for (int i = 0; i < n; ++i) {
      fs_landmark(&l, landmark(rng), ts += gap(rng), &kTp);
      ASSERT_LE(l.depth, kDeepestTree);
    }
    fs_landmark(&l, FS_LM_SYS_EXIT, ts += gap(rng), &kTp);
    ASSERT_EQ(l.depth, 0u);
    for (int ph : {FS_PH_KERNEL_CLONE, FS_PH_CHILD_FIRST_RUN, FS_PH_POST_LAUNCH_COW, FS_PH_TEARDOWN})
      EXPECT_EQ(l.calls[ph], 0u) << ph;
    expect_self_adds_up(l);
    if (HasFailure()) return;
  }
}

// fentry/kprobe backends: functions bound copy_process, dup_mmap and copy_page_range
// exactly; the inlined dup_mm and dup_task_struct still come from landmarks in the
// same stack, and landmarks of function-probed phases are ignored.
TEST(Machine, HybridFunctionProbesAndLandmarksNest) {
  fs_config c = tracepoint_config();
  for (int ph :
       {FS_PH_KERNEL_CLONE, FS_PH_COPY_PROCESS, FS_PH_DUP_MMAP, FS_PH_COPY_PAGE_RANGE, FS_PH_WAKE_UP_NEW_TASK}) {
    c.measured |= FS_BIT(ph);
    c.landmarks &= ~FS_BIT(ph);
  }
  fs_launch l{};
  fs_launch_begin(&l, 0, 0, 0);
  l.flags |= FS_LF_VFORK;
  auto us = [](__u64 v) { return v * kNsPerUs; };
  fs_function_entry(&l, FS_PH_KERNEL_CLONE, us(1), &c);
  fs_function_entry(&l, FS_PH_COPY_PROCESS, us(2), &c);
  fs_landmark(&l, FS_LM_TASK_STRUCT, us(4), &c);  // dup_task_struct by landmark
  fs_landmark(&l, FS_LM_MM_STRUCT, us(10), &c);   // dup_mm by landmark: closes dup_task_struct
  fs_landmark(&l, FS_LM_MMAP_LOCK, us(11), &c);   // ignored: dup_mmap is probed as a function
  fs_function_entry(&l, FS_PH_DUP_MMAP, us(12), &c);
  fs_landmark(&l, FS_LM_VMA_DUP, us(13), &c);
  fs_function_entry(&l, FS_PH_COPY_PAGE_RANGE, us(15), &c);  // closes that VMA's set-up
  fs_landmark(&l, FS_LM_ANON_VMA, us(16), &c);               // ignored
  fs_function_exit(&l, FS_PH_COPY_PAGE_RANGE, us(40), &c);
  fs_landmark(&l, FS_LM_VMA_DUP, us(41), &c);
  fs_function_entry(&l, FS_PH_COPY_PAGE_RANGE, us(42), &c);
  fs_function_exit(&l, FS_PH_COPY_PAGE_RANGE, us(60), &c);
  fs_landmark(&l, FS_LM_MMAP_UNLOCK, us(61), &c);  // ignored
  fs_function_exit(&l, FS_PH_DUP_MMAP, us(62), &c);
  fs_landmark(&l, FS_LM_PID, us(64), &c);      // alloc_pid by landmark: closes dup_mm
  fs_landmark(&l, FS_LM_NEWTASK, us(70), &c);  // ignored: copy_process ends at its exit
  fs_function_exit(&l, FS_PH_COPY_PROCESS, us(72), &c);
  fs_landmark(&l, FS_LM_FORK_DONE, us(73), &c);  // ignored
  fs_function_entry(&l, FS_PH_WAKE_UP_NEW_TASK, us(74), &c);
  fs_landmark(&l, FS_LM_WAKEUP_NEW, us(76), &c);  // ignored: vfork_wait opens at the exit
  fs_function_exit(&l, FS_PH_WAKE_UP_NEW_TASK, us(78), &c);
  fs_function_exit(&l, FS_PH_KERNEL_CLONE, us(90), &c);
  fs_landmark(&l, FS_LM_SYS_EXIT, us(91), &c);

  expect_phase(l, FS_PH_SYSCALL, 91, 2, 1);
  expect_phase(l, FS_PH_KERNEL_CLONE, 89, 89 - 70 - 4 - 12, 1);
  expect_phase(l, FS_PH_COPY_PROCESS, 70, 70 - 6 - 54 - 8, 1);
  expect_phase(l, FS_PH_DUP_TASK_STRUCT, 6, 6, 1);
  expect_phase(l, FS_PH_DUP_MM, 54, 54 - 50, 1);
  expect_phase(l, FS_PH_DUP_MMAP, 50, 50 - 2 - 1 - 25 - 18, 1);
  expect_phase(l, FS_PH_VMA_SETUP, 3, 3, 2);
  expect_phase(l, FS_PH_COPY_PAGE_RANGE, 43, 43, 2);
  expect_phase(l, FS_PH_ALLOC_PID, 8, 8, 1);
  expect_phase(l, FS_PH_WAKE_UP_NEW_TASK, 4, 4, 1);
  expect_phase(l, FS_PH_VFORK_WAIT, 12, 12, 1);
  EXPECT_EQ(l.depth, 0u);
}

// A sampled launch keeps every closed span, in closing order, for its timeline.
TEST(Machine, SampledLaunchRecordsEverySpan) {
  fs_launch l{};
  fs_launch_begin(&l, 3, 7, 0);
  for (const Event& e : kFork2M) fs_landmark(&l, e.landmark, e.us * kNsPerUs, &kTp);
  EXPECT_EQ(l.rec_type, static_cast<__u32>(FS_REC_LAUNCH));
  EXPECT_EQ(l.seq, 7u);
  __u32 calls = 0;
  for (int ph = 0; ph < FS_NPHASES; ++ph) calls += l.calls[ph];
  ASSERT_EQ(l.nspans, calls);
  EXPECT_EQ(l.spans_dropped, 0u);
  __u64 per_phase[FS_NPHASES] = {};
  for (__u32 i = 0; i < l.nspans; ++i) per_phase[l.spans[i].phase] += l.spans[i].dur;
  for (int ph = 0; ph < FS_NPHASES; ++ph) EXPECT_EQ(per_phase[ph], l.total_ns[ph]) << ph;
  const fs_span& last = l.spans[l.nspans - 1];
  EXPECT_EQ(last.phase, static_cast<__u32>(FS_PH_SYSCALL));
  EXPECT_EQ(last.start, 0u);
  EXPECT_EQ(last.dur, 519 * kNsPerUs);
  EXPECT_EQ(l.spans[0].phase, static_cast<__u32>(FS_PH_DUP_TASK_STRUCT));
}

TEST(Machine, UnsampledLaunchRecordsNoSpansAndFullOnesCountDrops) {
  fs_launch l{};
  fs_launch_begin(&l, 0, 0, 0);
  for (const Event& e : kFork2M) fs_landmark(&l, e.landmark, e.us * kNsPerUs, &kTp);
  EXPECT_EQ(l.nspans, 0u);
  fs_launch m{};
  fs_launch_begin(&m, 0, 1, 0);
  __u64 ts = 0;
  fs_landmark(&m, FS_LM_TASK_STRUCT, ts += 10, &kTp);
  fs_landmark(&m, FS_LM_MM_STRUCT, ts += 10, &kTp);
  fs_landmark(&m, FS_LM_MMAP_LOCK, ts += 10, &kTp);
  for (int i = 0; i < FS_MAX_SPANS + 10; ++i) fs_landmark(&m, FS_LM_VMA_DUP, ts += 10, &kTp);
  fs_landmark(&m, FS_LM_SYS_EXIT, ts += 10, &kTp);
  EXPECT_LE(m.nspans, static_cast<__u32>(FS_MAX_SPANS));
  EXPECT_GT(m.spans_dropped, 0u);
  EXPECT_EQ(m.nspans + m.spans_dropped, m.calls[FS_PH_VMA_SETUP] + 5);
  // The outermost spans, which close last, are still there.
  bool syscall = false, copy_process = false;
  for (__u32 i = 0; i < m.nspans; ++i) {
    syscall |= m.spans[i].phase == FS_PH_SYSCALL;
    copy_process |= m.spans[i].phase == FS_PH_COPY_PROCESS;
  }
  EXPECT_TRUE(syscall);
  EXPECT_TRUE(copy_process);
}

TEST(Machine, HistSlotIsMonotoneAndClamped) {
  EXPECT_EQ(fs_hist_slot(0), 0u);
  EXPECT_EQ(fs_hist_slot(7), 7u);
  EXPECT_EQ(fs_hist_slot(8), 8u);
  EXPECT_EQ(fs_hist_slot(~0ULL), static_cast<__u32>(FS_HIST_SLOTS - 1));
  __u32 previous = 0;
  for (__u64 v = 0; v < (1ULL << 20); v += 1 + v / 64) {
    const __u32 slot = fs_hist_slot(v);
    ASSERT_GE(slot, previous) << v;
    previous = slot;
  }
  for (int b = 0; b < 64; ++b) {
    const __u64 v = 1ULL << b;
    EXPECT_EQ(fs_log2(v), static_cast<__u32>(b));
    if (b > 0) {
      EXPECT_EQ(fs_log2(v - 1), static_cast<__u32>(b - 1));
    }
    EXPECT_GE(fs_hist_slot(v), fs_hist_slot(v - 1)) << v;
  }
}

}  // namespace

namespace {

// An execve, as the mm landmarks of a real kernel order it (sys_enter at 0).
fs_launch replay_exec(const std::vector<Event>& events) {
  fs_launch l{};
  fs_exec_begin(&l, 0, 0, /*old_mm=*/0x1000, &kTp);
  for (const Event& e : events) fs_landmark(&l, e.landmark, e.us * kNsPerUs, &kTp);
  return l;
}

// The mm landmarks: which mm is locked, and which mm the task has at that moment.
TEST(ExecLandmarks, TellTheOldMmTheNewMmAndTheOneBeingBuiltApart) {
  fs_launch l{};
  fs_exec_begin(&l, 0, 0, 0x1000, &kTp);
  EXPECT_EQ(fs_exec_lock_landmark(&l, 0x2000, 0x1000), 0);                    // bprm's new mm, not ours yet
  EXPECT_EQ(fs_exec_lock_landmark(&l, 0x1000, 0x1000), FS_LM_EXEC_OLD_LOCK);  // exec_mmap
  EXPECT_EQ(fs_exec_lock_landmark(&l, 0x1000, 0x2000), FS_LM_EXEC_OLD_EXIT);  // exit_mmap of the old mm
  EXPECT_EQ(fs_exec_lock_landmark(&l, 0x2000, 0x2000), FS_LM_EXEC_NEW_LOCK);  // ELF load
}

// 6.18, after fork: exec_mmap locks the old mm, drops it (its exit), then the ELF load.
TEST(ExecLandmarks, ForkChildExecOnAKernelWhoseExecMmapLocksTheOldMm) {
  const fs_launch l = replay_exec({{FS_LM_EXEC_OLD_LOCK, 140},
                                   {FS_LM_EXEC_OLD_EXIT, 142},
                                   {FS_LM_EXEC_OLD_EXIT, 150},
                                   {FS_LM_EXEC_NEW_LOCK, 230},
                                   {FS_LM_EXEC_NEW_LOCK, 240},
                                   {FS_LM_EXEC_DONE, 360},
                                   {FS_LM_SYS_EXIT, 362}});
  expect_phase(l, FS_PH_EXEC, 362, 2, 1);
  expect_phase(l, FS_PH_EXEC_BPRM, 140, 140, 1);
  expect_phase(l, FS_PH_EXEC_MMAP, 90, 2, 1);
  expect_phase(l, FS_PH_EXEC_OLD_MM, 88, 88, 1);
  expect_phase(l, FS_PH_EXEC_LOAD, 130, 130, 1);
  EXPECT_EQ(l.depth, 0u);
}

// 6.1: exec_mmap takes no lock on the old mm; its exit is the first sign of the switch.
TEST(ExecLandmarks, OldMmExitOpensBeginNewExecWhenExecMmapTookNoLock) {
  const fs_launch l = replay_exec(
      {{FS_LM_EXEC_OLD_EXIT, 100}, {FS_LM_EXEC_NEW_LOCK, 180}, {FS_LM_EXEC_DONE, 300}, {FS_LM_SYS_EXIT, 301}});
  expect_phase(l, FS_PH_EXEC_BPRM, 100, 100, 1);
  expect_phase(l, FS_PH_EXEC_MMAP, 80, 0, 1);
  expect_phase(l, FS_PH_EXEC_OLD_MM, 80, 80, 1);
  expect_phase(l, FS_PH_EXEC_LOAD, 120, 120, 1);
  expect_phase(l, FS_PH_EXEC, 301, 1, 1);
}

// After vfork the old mm is the parent's: exec drops a reference, nothing exits.
TEST(ExecLandmarks, VforkChildExecHasNoOldMmExit) {
  const fs_launch l = replay_exec(
      {{FS_LM_EXEC_OLD_LOCK, 50}, {FS_LM_EXEC_NEW_LOCK, 60}, {FS_LM_EXEC_DONE, 90}, {FS_LM_SYS_EXIT, 91}});
  expect_phase(l, FS_PH_EXEC_MMAP, 10, 10, 1);
  EXPECT_EQ(l.calls[FS_PH_EXEC_OLD_MM], 0u);
  // A late lock of the old mm (after the new one) is not its exit.
  fs_launch again = replay_exec(
      {{FS_LM_EXEC_OLD_LOCK, 50}, {FS_LM_EXEC_NEW_LOCK, 60}, {FS_LM_EXEC_OLD_EXIT, 70}, {FS_LM_SYS_EXIT, 91}});
  EXPECT_EQ(again.calls[FS_PH_EXEC_OLD_MM], 0u);
}

}  // namespace
