#include "forkscope/command.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>

#include "forkscope/cgroups.h"
#include "forkscope/error.h"
#include "forkscope/results.h"

namespace forkscope {

int pidfd_open(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

std::vector<pid_t> our_children() {
  std::vector<pid_t> out;
  const pid_t self = getpid();
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(e.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const size_t paren = stat.rfind(')');  // the command name may hold spaces
    if (paren == std::string::npos) continue;
    char state;
    int ppid = 0;
    if (std::sscanf(stat.c_str() + paren + 1, " %c %d", &state, &ppid) == 2 && ppid == self)
      out.push_back(static_cast<pid_t>(std::stoi(name)));
  }
  return out;
}

void end_orphans() {
  for (int round = 0; round < 300; round++) {
    while (waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    const std::vector<pid_t> left = our_children();
    if (left.empty()) return;
    for (pid_t p : left) kill(p, round < 100 ? SIGTERM : SIGKILL);
    usleep(10000);
  }
}

Command::Command(const std::vector<std::string>& argv, const CommandCgroup* cgroup) {
  int go[2], failed[2];
  if (pipe2(go, O_CLOEXEC) != 0 || pipe2(failed, O_CLOEXEC) != 0)
    throw Error(kExitFailure, std::string("pipe: ") + std::strerror(errno));
  std::optional<FileOwner> user = invoking_user();
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const std::string name = std::filesystem::path(argv[0]).filename().string();
  std::string user_name;  // for initgroups: the user's own supplementary groups
  if (user) {
    if (const passwd* pw = getpwuid(user->uid)) user_name = pw->pw_name;
  }
  // Orphans of the command (its background jobs, daemons) come to forkscope, which
  // ends them when tracing stops.
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  const pid_t parent = getpid();
  pid_ = fork();
  if (pid_ < 0) throw Error(kExitFailure, std::string("fork: ") + std::strerror(errno));
  if (pid_ == 0) {
    close(go[1]);
    close(failed[0]);
    prctl(PR_SET_NAME, name.c_str());  // its own exec is grouped under its name
    signal(SIGPIPE, SIG_DFL);          // forkscope ignores it; the command must not
    char byte;
    if (read(go[0], &byte, 1) != 1) _exit(127);
    int err = 0;
    if (user) {
      const int groups = user_name.empty() ? setgroups(0, nullptr) : initgroups(user_name.c_str(), user->gid);
      if (groups != 0 || setgid(user->gid) != 0 || setuid(user->uid) != 0) err = errno;
    }
    // After setuid, which clears it: forkscope killed, the command does not outlive it.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(127);
    if (!err) {
      execvp(args[0], args.data());
      err = errno;
    }
    if (write(failed[1], &err, sizeof err) < 0) _exit(127);
    _exit(127);
  }
  close(go[0]);
  close(failed[1]);
  // Into its cgroup before it runs: all it starts is born there.
  if (!cgroup) uncontained_ = "no cgroup of its own";
  else if (int err = cgroup->adopt(pid_); err != 0)
    uncontained_ = "cannot move it into " + cgroup->path() + ": " + std::strerror(err);
  else cgroup_ = cgroup;
  go_ = go[1];
  failed_ = failed[0];
  pidfd_ = pidfd_open(pid_);
}

Command::~Command() {
  if (pid_ > 0 && !reaped_) {
    stop();
  }
  if (go_ >= 0) close(go_);
  if (failed_ >= 0) close(failed_);
  if (pidfd_ >= 0) close(pidfd_);
}

int Command::go() {
  char byte = 1;
  if (write(go_, &byte, 1) != 1) return errno;
  close(go_);
  go_ = -1;
  int err = 0;
  ssize_t n = read(failed_, &err, sizeof err);  // EOF: the exec happened (the pipe was close-on-exec)
  return n == static_cast<ssize_t>(sizeof err) ? err : 0;
}

bool Command::try_reap() {
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) != pid_) return false;
  reaped_ = true;
  status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return true;
}

void Command::stop() {
  if (!reaped_) {
    kill(pid_, SIGTERM);
    for (int i = 0; i < 200 && !try_reap(); i++) usleep(10000);
    if (!reaped_) {
      kill(pid_, SIGKILL);
      int status;
      while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      reaped_ = true;
    }
  }
  if (cgroup_) {
    cgroup_->end_all();
  } else {
    end_orphans();
  }
}

}  // namespace forkscope
