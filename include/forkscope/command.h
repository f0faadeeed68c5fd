#pragma once
// trace's supervisor of a traced command: started stopped, let go once it is
// followed, stopped with its orphans when tracing ends.
#include <sys/types.h>

#include <string>
#include <vector>

namespace forkscope {

class CommandCgroup;

// pidfd_open(2): a descriptor that polls readable when pid exits; -1 on failure.
int pidfd_open(pid_t pid);

// Processes whose parent is forkscope (the command's orphans, forkscope being
// their subreaper), from /proc/PID/stat's fourth field.
std::vector<pid_t> our_children();

// SIGTERM to every orphan, SIGKILL a second later to those left; all reaped.
void end_orphans();

// The command, started stopped: it runs (as the invoking user under sudo) once
// `go` is called, after its pid is followed, so its first launch is seen.
// With a cgroup (cgroups.h) the command starts in it, and everything it starts
// stays there to be ended with it; without, its orphans (background jobs, daemons)
// come to forkscope, their subreaper, which ends them when tracing stops.  Throws
// Error when it cannot be started.
class Command {
 public:
  Command(const std::vector<std::string>& argv, const CommandCgroup* cgroup);
  ~Command();
  Command(const Command&) = delete;
  Command& operator=(const Command&) = delete;
  pid_t pid() const { return pid_; }
  int pidfd() const { return pidfd_; }
  // Lets it exec; returns errno when the exec failed, else 0.
  int go();
  // Reaps it when it has exited; its exit status, or -1 when killed by a signal.
  bool try_reap();
  // SIGTERM, then SIGKILL after two seconds; reaps it, then ends what it left:
  // everything in its cgroup, or the orphans it left to forkscope the same way.
  void stop();
  int status() const { return status_; }
  // Why the command is not in a cgroup of its own ("" when it is).
  const std::string& uncontained() const { return uncontained_; }

 private:
  pid_t pid_ = -1;
  int go_ = -1, failed_ = -1, pidfd_ = -1;
  const CommandCgroup* cgroup_ = nullptr;
  std::string uncontained_;
  bool reaped_ = false;
  int status_ = -1;
};

}  // namespace forkscope
