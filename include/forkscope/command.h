#pragma once
// trace's supervisor of a traced command: started stopped, let go once it is
// followed, stopped with its orphans when tracing ends.
#include <sys/types.h>

#include <string>
#include <vector>

namespace forkscope {

// pidfd_open(2): a descriptor that polls readable when pid exits; -1 on failure.
int pidfd_open(pid_t pid);

// Processes whose parent is forkscope (the command's orphans, forkscope being
// their subreaper), from /proc/PID/stat's fourth field.
std::vector<pid_t> our_children();

// SIGTERM to every orphan, SIGKILL a second later to those left; all reaped.
void end_orphans();

// The command, started stopped: it runs (as the invoking user under sudo) once
// `go` is called, after its pid is followed, so its first launch is seen.
// Orphans of the command (its background jobs, daemons) come to forkscope, which
// ends them when tracing stops.  Throws Error when it cannot be started.
class Command {
 public:
  explicit Command(const std::vector<std::string>& argv);
  ~Command();
  Command(const Command&) = delete;
  Command& operator=(const Command&) = delete;
  pid_t pid() const { return pid_; }
  int pidfd() const { return pidfd_; }
  // Lets it exec; returns errno when the exec failed, else 0.
  int go();
  // Reaps it when it has exited; its exit status, or -1 when killed by a signal.
  bool try_reap();
  // SIGTERM, then SIGKILL after two seconds; reaps it, then the orphans it left
  // to forkscope (the subreaper) the same way.
  void stop();
  int status() const { return status_; }

 private:
  pid_t pid_ = -1;
  int go_ = -1, failed_ = -1, pidfd_ = -1;
  bool reaped_ = false;
  int status_ = -1;
};

}  // namespace forkscope
