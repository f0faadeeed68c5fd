#include "forkscope/target.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "forkscope/cgroups.h"
#include "forkscope/error.h"
#include "forkscope/untrusted.h"

namespace forkscope {

namespace {

// The state field of /proc/.../stat ("pid (comm) S ..."): comm may hold anything, so
// read from the last ')'.
std::string stat_state(const std::string& stat_path) {
  std::ifstream in(stat_path);
  std::string stat;
  std::getline(in, stat);
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return "";
  return stat.substr(paren + 2, 1);
}

// Whether a thread of PID's group has not exited yet.
bool threads_left(pid_t pid) {
  std::error_code ec;
  for (const auto& t : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    const std::string state = stat_state(t.path() / "stat");
    if (!state.empty() && state != "Z" && state != "X") return true;
  }
  return false;
}

// Why PID has nothing to follow, or "" when it names a live user-space process.
// A zombie has exited (it launches nothing more) and a kernel thread's launches
// are the kernel's own, never a user's workload.
std::string untraceable(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  std::getline(in, stat);
  // "pid (comm) S ppid pgrp session tty tpgid flags ...": comm may hold anything, so from the last ')'.
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return "";
  std::istringstream fields(stat.substr(paren + 1));
  std::string state;
  long skip = 0;
  unsigned long flags = 0;
  fields >> state >> skip >> skip >> skip >> skip >> skip >> flags;
  // A leader that ended with pthread_exit is a zombie too, while its other threads
  // live on and launch: the process is followed until its last thread ends.
  if ((state == "Z" || state == "X") && !threads_left(pid))
    return "it has exited (a zombie waiting for its parent), so it launches nothing more";
  constexpr unsigned long kPfKthread = 0x00200000;  // include/linux/sched.h PF_KTHREAD
  if (flags & kPfKthread) return "it is a kernel thread; give a user-space process, or -a for the whole system";
  return "";
}

}  // namespace

pid_t thread_group_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("Tgid:", 0) == 0) return static_cast<pid_t>(std::stol(line.substr(5)));
  return pid;
}

pid_t check_pid_target(pid_t pid) {
  if (pid <= 0 || (kill(pid, 0) != 0 && errno == ESRCH))
    throw usage_error("-p " + std::to_string(pid) + ": no such process");
  const pid_t group = thread_group_of(pid);
  if (group == getpid()) throw usage_error("-p: forkscope cannot trace itself");
  if (const std::string why = untraceable(pid); !why.empty())
    throw usage_error("-p " + std::to_string(pid) + ": nothing to trace: " + why);
  return group;
}

void check_cgroup_target(const std::string& path) {
  // Wherever this machine mounts cgroup v2 (/sys/fs/cgroup, or /sys/fs/cgroup/unified
  // beside v1 controllers): the hint names it.
  const std::string mount = cgroup2_mount_point();
  const std::string hint = mount.empty() ? "; this machine mounts no cgroup v2 hierarchy (follow the process: -p PID)"
                                         : "; give a directory under " + safe_text(mount) + ", the cgroup v2 mount";
  struct statfs fs;
  if (statfs(path.c_str(), &fs) != 0)
    throw usage_error("--cgroup " + safe_text(path) + ": " + std::strerror(errno) + hint);
  if (fs.f_type == CGROUP_SUPER_MAGIC)
    throw usage_error("--cgroup " + safe_text(path) + ": a cgroup v1 directory, which BPF cannot follow" + hint);
  if (fs.f_type != CGROUP2_SUPER_MAGIC)
    throw usage_error("--cgroup " + safe_text(path) + ": not a cgroup v2 directory" + hint);
}

int open_cgroup(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw usage_error("--cgroup " + safe_text(path) + ": " + std::strerror(errno));
  return fd;
}

}  // namespace forkscope
