#include "forkscope/cgroups.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

namespace forkscope {

std::optional<CgroupMount> cgroup_mount(const std::string& mountinfo, const std::string& controller) {
  // Lines "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS... - FSTYPE SOURCE SUPEROPTIONS".
  std::ifstream in(mountinfo);
  std::string line;
  while (std::getline(in, line)) {
    const size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream head(line.substr(0, dash)), tail(line.substr(dash + 3));
    std::string id, parent, dev, root, point, fstype, source, options;
    head >> id >> parent >> dev >> root >> point;
    tail >> fstype >> source >> options;
    const bool v2 = controller.empty();
    if (fstype != (v2 ? "cgroup2" : "cgroup")) continue;
    if (!v2 && ("," + options + ",").find("," + controller + ",") == std::string::npos) continue;
    return CgroupMount{point, root};
  }
  return std::nullopt;
}

std::optional<std::string> own_cgroup(const std::string& cgroup_file, const std::string& controller) {
  // Lines "ID:CONTROLLERS:PATH"; v2's is "0::PATH".
  std::ifstream in(cgroup_file);
  std::string line;
  while (std::getline(in, line)) {
    const size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1);
    const bool match = controller.empty() ? line.compare(0, a, "0") == 0 && controllers.empty()
                                          : ("," + controllers + ",").find("," + controller + ",") != std::string::npos;
    if (match) return line.substr(b + 1);
  }
  return std::nullopt;
}

std::string cgroup2_mount_point() {
  const auto mount = cgroup_mount("/proc/self/mountinfo", "");
  return mount ? mount->point : "";
}

std::optional<OwnCgroup> own_cgroup_dir(const std::string& mountinfo, const std::string& cgroup_file,
                                        const std::string& controller) {
  const auto mount = cgroup_mount(mountinfo, controller);
  const auto path = own_cgroup(cgroup_file, controller);
  if (!mount || !path) return std::nullopt;
  std::string rel = *path;
  if (mount->root != "/" && rel.starts_with(mount->root)) rel = rel.substr(mount->root.size());
  if (rel.find("/..") != std::string::npos) return std::nullopt;  // outside what the mount shows
  return OwnCgroup{mount->point, rel};
}

std::string own_cgroup2_dir() {
  const auto own = own_cgroup_dir("/proc/self/mountinfo", "/proc/self/cgroup", "");
  return own ? own->dir() : "";
}

namespace {

// Whether the cgroup (open as dir) holds no live task: cgroup.events "populated 0".
bool empty(int dir) {
  const int fd = openat(dir, "cgroup.events", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return true;
  char buf[256];
  const ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return true;
  buf[n] = 0;
  return std::strstr(buf, "populated 0") != nullptr;
}

std::vector<pid_t> members(int dir) {
  std::vector<pid_t> out;
  const int fd = openat(dir, "cgroup.procs", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) text.append(buf, static_cast<size_t>(n));
  close(fd);
  std::istringstream in(text);
  for (long p; in >> p;) out.push_back(static_cast<pid_t>(p));
  return out;
}

// SIGKILL to everything in the cgroup: cgroup.kill (Linux 5.14) in one step, or
// each member in turn where the kernel has none.
void kill_all(int dir) {
  const int fd = openat(dir, "cgroup.kill", O_WRONLY | O_CLOEXEC);
  if (fd >= 0) {
    const bool killed = write(fd, "1", 1) == 1;
    close(fd);
    if (killed) return;
  }
  for (pid_t p : members(dir)) kill(p, SIGKILL);
}

// Waits up to `seconds` for the cgroup to empty, reaping forkscope's orphans
// (children of a subreaper) meanwhile; a caller that is no parent reaps nothing.
bool wait_empty(int dir, double seconds) {
  for (int i = 0; i < seconds * 100; i++) {
    while (waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    if (empty(dir)) return true;
    usleep(10000);
  }
  return empty(dir);
}

// Closes descriptors first..last: close_range (Linux 5.9), else one by one.
void close_from_to(int first, unsigned last) {
  if (first < 0 || static_cast<unsigned>(first) > last) return;
  if (syscall(SYS_close_range, static_cast<unsigned>(first), last, 0) == 0) return;
  const long max = sysconf(_SC_OPEN_MAX);
  for (long fd = first; fd <= static_cast<long>(last) && fd < max; fd++) close(static_cast<int>(fd));
}

// The watchdog: waits for forkscope's end of the pipe to close (forkscope done, or
// dead by any signal), then kills what is left in the cgroup and removes it.
[[noreturn]] void watch(int pipe_read, int dir, const std::string& path) {
  setsid();  // a signal to forkscope's process group does not reach it
  prctl(PR_SET_NAME, "forkscope-watch");
  for (int sig : {SIGHUP, SIGINT, SIGTERM, SIGQUIT, SIGPIPE, SIGUSR1, SIGUSR2}) signal(sig, SIG_IGN);
  // Nothing of forkscope's but the pipe and the cgroup: no BPF object stays open here.
  const int lo = std::min(pipe_read, dir), hi = std::max(pipe_read, dir);
  close_from_to(0, lo - 1);
  close_from_to(lo + 1, hi - 1);
  close_from_to(hi + 1, ~0U);
  if (const int null = open("/dev/null", O_RDWR); null >= 0 && null != 0) {
    dup2(null, 0);
    close(null);
  }
  dup2(0, 1);
  dup2(0, 2);
  char byte;
  while (read(pipe_read, &byte, 1) != 0) {  // EOF: forkscope is gone, or done
    if (errno != EINTR) break;
  }
  kill_all(dir);
  for (int i = 0; i < 500 && !empty(dir); i++) usleep(10000);
  rmdir(path.c_str());
  _exit(0);
}

}  // namespace

std::unique_ptr<CommandCgroup> CommandCgroup::create(std::string& why) {
  const std::string parent = own_cgroup2_dir();
  if (parent.empty()) {
    why = "no cgroup v2 is mounted (no cgroup2 line in /proc/self/mountinfo)";
    return nullptr;
  }
  const std::string path = parent + "/forkscope-" + std::to_string(getpid());
  if (mkdir(path.c_str(), 0755) != 0) {
    why = "cannot create " + path + ": " + std::strerror(errno);
    return nullptr;
  }
  const int dir = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int fds[2];
  if (dir < 0 || pipe2(fds, O_CLOEXEC) != 0) {
    why = "cannot open " + path + ": " + std::strerror(errno);
    if (dir >= 0) close(dir);
    rmdir(path.c_str());
    return nullptr;
  }
  const pid_t watchdog = fork();
  if (watchdog == 0) {
    close(fds[1]);
    watch(fds[0], dir, path);
  }
  close(fds[0]);
  if (watchdog < 0) {
    why = std::string("cannot start the watchdog: ") + std::strerror(errno);
    close(fds[1]);
    close(dir);
    rmdir(path.c_str());
    return nullptr;
  }
  return std::unique_ptr<CommandCgroup>(new CommandCgroup(path, dir, fds[1], watchdog));
}

int CommandCgroup::adopt(pid_t pid) const {
  const int fd = openat(dir_, "cgroup.procs", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  const std::string text = std::to_string(pid);
  const int err = write(fd, text.c_str(), text.size()) == static_cast<ssize_t>(text.size()) ? 0 : errno;
  close(fd);
  return err;
}

void CommandCgroup::end_all() const {
  if (empty(dir_)) return;
  for (pid_t p : members(dir_)) kill(p, SIGTERM);
  if (wait_empty(dir_, 1.0)) return;
  kill_all(dir_);
  wait_empty(dir_, 5.0);
}

CommandCgroup::~CommandCgroup() {
  end_all();
  rmdir(path_.c_str());
  close(dir_);
  close(watch_pipe_);  // the watchdog finds the cgroup gone and ends
  while (waitpid(watchdog_, nullptr, 0) < 0 && errno == EINTR) {
  }
}

}  // namespace forkscope
