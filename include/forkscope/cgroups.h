#pragma once
// Where this machine's cgroup hierarchies are and which cgroup forkscope is in
// (from /proc/self/mountinfo and /proc/self/cgroup), and trace's own cgroup for a
// traced command: everything the command starts stays in it, and nothing in it
// outlives forkscope, even when forkscope is killed.
#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>

namespace forkscope {

// Where the hierarchy holding `controller` is mounted (cgroup v2 when controller
// is empty), and its root as that mount sees it; from a mountinfo file.
struct CgroupMount {
  std::string point, root;
};
std::optional<CgroupMount> cgroup_mount(const std::string& mountinfo, const std::string& controller);

// This process's cgroup path in the hierarchy of `controller` (v2: empty), from a
// /proc/PID/cgroup file.
std::optional<std::string> own_cgroup(const std::string& cgroup_file, const std::string& controller);

// This process's cgroup in the hierarchy of `controller` as its mount shows it:
// the mount point and the path under it ("/": the mount's root).  nullopt when the
// hierarchy is not mounted, the process is in none, or its cgroup is outside what
// the mount shows.
struct OwnCgroup {
  std::string point, rel;
  std::string dir() const { return point + (rel == "/" ? "" : rel); }
};
std::optional<OwnCgroup> own_cgroup_dir(const std::string& mountinfo, const std::string& cgroup_file,
                                        const std::string& controller);

// This process's cgroup as a directory of the v2 mount ("" when there is none).
std::string own_cgroup2_dir();

// The cgroup v2 mount point ("" when nothing mounts cgroup2).
std::string cgroup2_mount_point();

// A cgroup v2 directory of its own for trace's command, under forkscope's own
// cgroup, with a watchdog process (forkscope-watch, in a session of its own) that
// kills everything in it and removes it when forkscope ends for any reason,
// SIGKILL included.  create() returns null, with `why`, where no cgroup v2 can be
// made (none mounted, read-only, no permission).
class CommandCgroup {
 public:
  static std::unique_ptr<CommandCgroup> create(std::string& why);
  ~CommandCgroup();
  CommandCgroup(const CommandCgroup&) = delete;
  CommandCgroup& operator=(const CommandCgroup&) = delete;
  const std::string& path() const { return path_; }
  // Moves pid into the cgroup; errno on failure, else 0.
  int adopt(pid_t pid) const;
  // SIGTERM to everything in the cgroup, cgroup.kill (SIGKILL, in one step) a
  // second later to what is left; the orphans among them are reaped.
  void end_all() const;

 private:
  CommandCgroup(std::string path, int dir, int watch_pipe, pid_t watchdog)
      : path_(std::move(path)), dir_(dir), watch_pipe_(watch_pipe), watchdog_(watchdog) {}
  std::string path_;
  int dir_ = -1, watch_pipe_ = -1;
  pid_t watchdog_ = -1;
};

}  // namespace forkscope
