#pragma once
// Runs the real forkscope binary and captures what it printed and how it exited.
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace forkscope::test {

struct Outcome {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Built with AddressSanitizer (the sanitizer lane): its allocator maps memory while
// a cell runs, so the runner's exact VMA layout is not stable there.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kAddressSanitizer = true;
#else
inline constexpr bool kAddressSanitizer = false;
#endif
#else
inline constexpr bool kAddressSanitizer = false;
#endif

inline std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// What the child changes about itself before it execs forkscope.  The test
// process is single-threaded, so running arbitrary code after fork is safe.
struct ChildSetup {
  int uid = -1;                       // >= 0: drop to this user (and group)
  std::vector<std::string> env;       // NAME=VALUE added to the environment
  std::function<bool()> before_exec;  // e.g. join a cgroup, drop capabilities; false: give up
};

// A forkscope started and not yet waited for; its output goes to files.
struct Started {
  pid_t pid = -1;
  std::string out_path, err_path;
};

inline Started start_forkscope(const std::vector<std::string>& args, const ChildSetup& setup = {}) {
  char out_path[] = "/tmp/fs-test-out-XXXXXX";
  char err_path[] = "/tmp/fs-test-err-XXXXXX";
  int out_fd = mkstemp(out_path), err_fd = mkstemp(err_path);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    if (setup.uid >= 0 && (setgid(setup.uid) != 0 || setuid(setup.uid) != 0)) _exit(99);
    for (const auto& e : setup.env) putenv(const_cast<char*>(e.c_str()));
    if (setup.before_exec && !setup.before_exec()) _exit(97);
    std::vector<char*> argv{const_cast<char*>(FORKSCOPE_BIN)};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(FORKSCOPE_BIN, argv.data());
    _exit(98);
  }
  close(out_fd);
  close(err_fd);
  return {pid, out_path, err_path};
}

// Waits for it to exit; the exit code is 128 + signal when a signal ended it.
inline Outcome finish_forkscope(const Started& s) {
  int status = 0;
  while (waitpid(s.pid, &status, 0) < 0 && errno == EINTR) {
  }
  Outcome o;
  o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  o.out = slurp(s.out_path);
  o.err = slurp(s.err_path);
  unlink(s.out_path.c_str());
  unlink(s.err_path.c_str());
  return o;
}

inline Outcome run_forkscope(const std::vector<std::string>& args, const ChildSetup& setup) {
  return finish_forkscope(start_forkscope(args, setup));
}

// uid >= 0: drop to that user (and group) before exec, to test missing privileges.
inline Outcome run_forkscope(const std::vector<std::string>& args, int uid = -1) {
  ChildSetup setup;
  setup.uid = uid;
  return run_forkscope(args, setup);
}

// The backend `forkscope doctor` finds --backend auto would use on this kernel
// ("fentry", "kprobe" or "tracepoint"), so tests follow the kernel they run on;
// "" when doctor cannot say.
inline std::string doctor_auto_backend() {
  const Outcome o = run_forkscope({"doctor"});
  const std::string mark = "loaded and attached as --backend auto would: ";
  const size_t at = o.out.find(mark);
  if (o.exit_code != 0 || at == std::string::npos) return "";
  const size_t from = at + mark.size();
  return o.out.substr(from, o.out.find('\n', from) - from);
}

// The cgroup v2 hierarchy: /sys/fs/cgroup itself, or its "unified" part on hybrid systems.
// Where a hierarchy of type fstype (cgroup2, cgroup) is mounted, from mountinfo
// ("... MOUNTPOINT ... - FSTYPE ..."); "" when none is.
inline std::string cgroup_mount_of(const std::string& fstype) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    const size_t dash = line.find(" - ");
    if (dash == std::string::npos || line.compare(dash + 3, fstype.size() + 1, fstype + " ") != 0) continue;
    std::istringstream head(line.substr(0, dash));
    std::string field, point;
    for (int i = 0; i < 5 && head >> field; i++) point = field;
    return point;
  }
  return "";
}

inline std::string cgroup2_root() { return cgroup_mount_of("cgroup2"); }

inline std::string make_temp_dir() {
  char dir[] = "/tmp/fs-test-XXXXXX";
  if (mkdtemp(dir) == nullptr) throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
  return dir;
}

// A make_temp_dir removed with everything in it when the test ends, however it
// ends (a failed ASSERT returns early).
class TempDir {
 public:
  TempDir() : path_(make_temp_dir()) {}
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& str() const { return path_; }
  operator const std::string&() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  friend std::string operator+(const TempDir& dir, const std::string& tail) { return dir.path_ + tail; }

 private:
  std::string path_;
};

inline int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

}  // namespace forkscope::test
