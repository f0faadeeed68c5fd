#include "forkscope/catalog.h"
#include "forkscope/error.h"
#include "forkscope/shared/hist.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace forkscope {
namespace {

TEST(Catalog, EveryPhaseOnceInIdOrder) {
  const auto& entries = catalog();
  ASSERT_EQ(entries.size(), static_cast<size_t>(FS_NPHASES));
  std::set<std::string> names;
  for (size_t i = 0; i < entries.size(); ++i) {
    EXPECT_EQ(entries[i].id, static_cast<int>(i));
    EXPECT_TRUE(names.insert(entries[i].name).second) << "duplicate " << entries[i].name;
    EXPECT_NE(std::string(entries[i].how), "");
  }
}

TEST(Catalog, ParentsPrecedeChildren) {
  for (const auto& e : catalog()) {
    if (e.parent == FS_PH_NONE) continue;
    EXPECT_LT(e.parent, e.id) << e.name;
    EXPECT_EQ(fs_catalog_parent(e.id), e.parent) << e.name;
  }
}

TEST(Catalog, TracepointPlanMeasuresWhatLandmarksCanSee) {
  const RunPlan plan = tracepoint_plan();
  for (const CatalogEntry& e : catalog()) {
    EXPECT_EQ(plan.measured(e.id), e.tp_source != FS_SRC_NONE) << e.name;
    EXPECT_EQ(plan.cfg.parent[e.id], e.parent) << e.name;
    EXPECT_EQ(plan.reason[e.id].empty(), plan.measured(e.id)) << e.name;
  }
  EXPECT_FALSE(plan.measured(FS_PH_KERNEL_CLONE));
  EXPECT_FALSE(plan.measured(FS_PH_SCHED_FORK));
  EXPECT_FALSE(plan.measured(FS_PH_USER0));
  EXPECT_EQ(plan.cfg.landmarks, plan.cfg.measured);
  // Unused --phase slots are not listed; every other catalog phase is.
  EXPECT_EQ(availability(plan).size(), static_cast<size_t>(FS_NPHASES - FS_USER_PHASES));
}

// The plan at each --depth: exactly the phases of that depth and shallower are
// measured, the others say why not, and the programs and landmarks follow.
TEST(Depth, PlanMeasuresThePhasesOfItsDepth) {
  const RunPlan full = tracepoint_plan();
  for (Depth depth : {Depth::kSyscall, Depth::kProcess, Depth::kFull}) {
    RunPlan plan = tracepoint_plan();
    set_depth(plan, depth);
    EXPECT_EQ(plan.depth, depth);
    for (const CatalogEntry& e : catalog()) {
      const bool deeper = phase_depth(e.id) > depth;
      EXPECT_EQ(plan.measured(e.id), full.measured(e.id) && !deeper) << depth_name(depth) << " " << e.name;
      if (deeper) EXPECT_EQ(plan.reason[e.id], std::string("not at --depth ") + depth_name(depth)) << e.name;
      else EXPECT_EQ(plan.reason[e.id], full.reason[e.id]) << e.name;
    }
    EXPECT_EQ(plan.cfg.landmarks, plan.cfg.measured) << depth_name(depth);
    EXPECT_EQ(plan.allocation_programs(), depth != Depth::kSyscall);
    EXPECT_EQ(plan.mmap_lock_programs(), depth != Depth::kSyscall);
  }
  RunPlan syscall = tracepoint_plan();
  set_detail(syscall, false);
  set_depth(syscall, Depth::kSyscall);
  std::set<std::string> measured;
  for (const CatalogEntry& e : catalog())
    if (syscall.measured(e.id)) measured.insert(e.name);
  EXPECT_EQ(measured, (std::set<std::string>{"syscall", "wake_up_new_task", "vfork_wait", "child_first_run", "teardown",
                                             "reap", "execve", "exec_first_insn"}));
  // Phases still add up: a syscall-depth child opens under the syscall.
  EXPECT_EQ(phase_path(syscall, FS_PH_WAKE_UP_NEW_TASK), "syscall;wake_up_new_task");
  RunPlan process = tracepoint_plan();
  set_depth(process, Depth::kProcess);
  EXPECT_TRUE(process.measured(FS_PH_DUP_MMAP));
  EXPECT_TRUE(process.measured(FS_PH_EXEC_LOAD));
  EXPECT_FALSE(process.measured(FS_PH_VMA_SETUP));
  EXPECT_FALSE(process.measured(FS_PH_COPY_PAGE_RANGE));
}

TEST(Depth, PerVmaLandmarksOnlyAtFull) {
  for (__u32 lm : {FS_LM_TASK_STRUCT, FS_LM_CREDS, FS_LM_PID, FS_LM_VMA_DUP, FS_LM_ANON_VMA})
    EXPECT_FALSE(landmark_at_depth(lm, Depth::kSyscall)) << lm;
  EXPECT_TRUE(landmark_at_depth(FS_LM_TASK_STRUCT, Depth::kProcess));
  EXPECT_TRUE(landmark_at_depth(FS_LM_PID, Depth::kProcess));
  EXPECT_FALSE(landmark_at_depth(FS_LM_VMA_DUP, Depth::kProcess));
  EXPECT_FALSE(landmark_at_depth(FS_LM_ANON_VMA, Depth::kProcess));
  EXPECT_TRUE(landmark_at_depth(FS_LM_VMA_DUP, Depth::kFull));
  EXPECT_TRUE(landmark_at_depth(FS_LM_ANON_VMA, Depth::kFull));
}

TEST(Depth, ParsesItsNamesAndRejectsOthers) {
  for (Depth d : {Depth::kSyscall, Depth::kProcess, Depth::kFull}) EXPECT_EQ(parse_depth(depth_name(d)), d);
  EXPECT_THROW(parse_depth("deep"), Error);
}

TEST(SyscallHooks, LaunchExecExitAndWaitWithNoReturnForExit) {
  std::set<std::string> names, returning;
  for (const HookedSyscall& s : hooked_syscalls()) {
    names.insert(s.name);
    if (s.returns) returning.insert(s.name);
  }
  EXPECT_EQ(names, (std::set<std::string>{"clone", "clone3", "fork", "vfork", "execve", "execveat", "exit",
                                          "exit_group", "wait4", "waitid"}));
  EXPECT_EQ(names.size(), hooked_syscalls().size());
  EXPECT_EQ(returning,
            (std::set<std::string>{"clone", "clone3", "fork", "vfork", "execve", "execveat", "wait4", "waitid"}));
}

TEST(SyscallHooks, TextNamesTheKindAndTheSyscallsOfTheOtherKind) {
  RunPlan plan = tracepoint_plan();
  plan.syscall_hooks = SyscallHooks::kRaw;
  EXPECT_EQ(syscall_hooks_text(plan), "raw sys_enter/sys_exit");
  plan.syscall_hooks = SyscallHooks::kPerSyscall;
  EXPECT_EQ(syscall_hooks_text(plan), "per-syscall tracepoints");
  plan.syscall_hooks = SyscallHooks::kFunctions;
  plan.syscall_source.assign(hooked_syscalls().size(), FS_SRC_FENTRY);
  EXPECT_EQ(syscall_hooks_text(plan), "fentry/fexit on the syscall functions");
  // Debian's 6.1: fork and vfork are no ftrace location, so kprobes take them.
  for (size_t i = 0; i < hooked_syscalls().size(); i++) {
    const std::string name = hooked_syscalls()[i].name;
    if (name == "fork" || name == "vfork") plan.syscall_source[i] = FS_SRC_KPROBE;
  }
  EXPECT_EQ(syscall_hooks_text(plan), "fentry/fexit on the syscall functions, kprobe/kretprobe on fork, vfork");
  plan.syscall_source.assign(hooked_syscalls().size(), FS_SRC_KPROBE);
  EXPECT_EQ(syscall_hooks_text(plan), "kprobe/kretprobe on the syscall functions");
}

TEST(Catalog, PhasePathNamesMeasuredAncestors) {
  RunPlan plan = tracepoint_plan();
  EXPECT_EQ(phase_path(plan, FS_PH_COPY_PAGE_RANGE), "syscall;copy_process;dup_mm;dup_mmap;copy_page_range");
  EXPECT_EQ(phase_path(plan, FS_PH_SYSCALL), "syscall");
  EXPECT_EQ(phase_path(plan, FS_PH_WAKE_UP_NEW_TASK), "syscall;wake_up_new_task");
  EXPECT_EQ(phase_path(plan, FS_PH_TEARDOWN), "teardown");
  plan.cfg.measured |= FS_BIT(FS_PH_KERNEL_CLONE);
  EXPECT_EQ(phase_path(plan, FS_PH_COPY_PROCESS), "syscall;kernel_clone;copy_process");
  // A --phase slot placed under dup_mmap takes its function's name.
  plan.cfg.measured |= FS_BIT(FS_PH_USER0);
  plan.cfg.parent[FS_PH_USER0] = FS_PH_DUP_MMAP;
  plan.name[FS_PH_USER0] = "anon_vma_fork";
  EXPECT_EQ(phase_path(plan, FS_PH_USER0), "syscall;kernel_clone;copy_process;dup_mm;dup_mmap;anon_vma_fork");
}

TEST(BuildPhases, ComputesMeansAndPercentilesAndDropsUnseenPhases) {
  std::vector<PhaseAgg> by_id(FS_NPHASES);
  for (auto& a : by_id) a.hist.assign(FS_HIST_SLOTS, 0);
  PhaseAgg& sys = by_id[FS_PH_SYSCALL];
  sys.count = 4;
  sys.calls = 4;
  sys.total_ns = 4 + 5 + 6 + 7;
  sys.self_ns = 10;
  for (uint64_t v : {4, 5, 6, 7}) ++sys.hist[fs_hist_slot(v)];
  PhaseAgg& cpr = by_id[FS_PH_COPY_PAGE_RANGE];
  cpr.count = 2;
  cpr.calls = 6;
  cpr.total_ns = 3000;
  cpr.self_ns = 3000;
  cpr.hist[fs_hist_slot(1000)] = 1;
  cpr.hist[fs_hist_slot(2000)] = 1;

  const std::vector<Phase> phases = build_phases(by_id, tracepoint_plan());
  ASSERT_EQ(phases.size(), 2u);
  EXPECT_EQ(phases[0].name, "syscall");
  EXPECT_EQ(phases[0].path, "syscall");
  EXPECT_EQ(phases[0].source, "tracepoint");
  EXPECT_DOUBLE_EQ(phases[0].mean_ns, 5.5);
  EXPECT_EQ(phases[0].p50_ns, 5u);  // values below 8 ns are exact
  EXPECT_EQ(phases[0].p99_ns, 7u);
  EXPECT_EQ(phases[0].hist.size(), static_cast<size_t>(FS_HIST_SLOTS));

  EXPECT_EQ(phases[1].name, "copy_page_range");
  EXPECT_EQ(phases[1].path, "syscall;copy_process;dup_mm;dup_mmap;copy_page_range");
  EXPECT_EQ(phases[1].source, "derived");
  EXPECT_EQ(phases[1].count, 2u);
  EXPECT_EQ(phases[1].calls, 6u);
  EXPECT_DOUBLE_EQ(phases[1].mean_ns, 1500.0);
  const uint32_t low = fs_hist_slot(1000), high = fs_hist_slot(2000);
  EXPECT_GE(phases[1].p50_ns, hist_slot_low(low));
  EXPECT_LT(phases[1].p50_ns, hist_slot_high(low));
  EXPECT_GE(phases[1].p99_ns, hist_slot_low(high));
  EXPECT_LT(phases[1].p99_ns, hist_slot_high(high));
}

}  // namespace
}  // namespace forkscope
