// What trace calls a launch, from the clone flags the syscall asked for.
#include <gtest/gtest.h>
#include <sched.h>

#include "forkscope/runner.h"

namespace forkscope {
namespace {

TEST(LaunchKind, NamesWhatTheFlagsShare) {
  EXPECT_EQ(launch_kind(0), "fork");
  EXPECT_EQ(launch_kind(CLONE_VM | CLONE_VFORK), "vfork");  // glibc's posix_spawn, dash's commands
  EXPECT_EQ(launch_kind(CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM), "thread");
  EXPECT_EQ(launch_kind(CLONE_VM), "clone-vm");
  EXPECT_EQ(launch_kind(CLONE_FS | CLONE_FILES), "clone:FILES|FS");
  EXPECT_EQ(launch_kind(CLONE_NEWPID), "clone:NEWPID");
  // Other sets with THREAD or VFORK are named by their flags: no two sets share a name.
  EXPECT_EQ(launch_kind(CLONE_VFORK), "clone:VFORK");
  EXPECT_EQ(launch_kind(CLONE_VM | CLONE_SIGHAND | CLONE_THREAD), "clone:SIGHAND|THREAD|VM");
}

TEST(LaunchKind, LabelsEveryFlagAndShowsUnknownBitsInHex) {
  EXPECT_EQ(clone_flags_label(0), "none");
  EXPECT_EQ(clone_flags_label(CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_UNTRACED), "FILES|FS|UNTRACED|VM");
  EXPECT_EQ(clone_flags_label(CLONE_VM | 0x400000000ull), "VM|0x400000000");
}

}  // namespace
}  // namespace forkscope
