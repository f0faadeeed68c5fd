#pragma once
// What trace and serve follow besides a command of their own: a running process
// (-p) or a cgroup (--cgroup).  The checks run at validation, before anything is
// loaded, and change nothing; the sessions open the cgroup.
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <set>
#include <string>

namespace forkscope {

// The thread group of a pid: -p may name any thread of the process.
pid_t thread_group_of(pid_t pid);

// Throws usage_error when -p PID names nothing to follow (no process, forkscope
// itself, a zombie, a kernel thread); else returns the process's thread group.
pid_t check_pid_target(pid_t pid);

// Throws usage_error when PATH is not a cgroup v2 directory.
void check_cgroup_target(const std::string& path);

// A descriptor of the cgroup v2 directory PATH, for Follow::cgroup_fd; throws usage_error.
int open_cgroup(const std::string& path);

// trace --group-by cgroup: the paths of these cgroup v2 ids ("/" the root, "/a/b"
// below it, as /proc/PID/cgroup writes them), found by walking the v2 hierarchy
// where /proc/self/mountinfo says it is mounted (a v2 cgroup's id is its
// directory's inode number).  Ids not found (cgroups removed since) are left out.
std::map<uint64_t, std::string> cgroup_paths(const std::set<uint64_t>& ids);

}  // namespace forkscope
