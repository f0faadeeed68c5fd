#pragma once
// Runs the real forkscope binary and captures what it printed and how it exited.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace forkscope::test {

struct Outcome {
  int exit_code = -1;
  std::string out;
  std::string err;
};

inline std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// uid >= 0: drop to that user (and group) before exec, to test missing privileges.
inline Outcome run_forkscope(const std::vector<std::string>& args, int uid = -1) {
  char out_path[] = "/tmp/fs-test-out-XXXXXX";
  char err_path[] = "/tmp/fs-test-err-XXXXXX";
  int out_fd = mkstemp(out_path), err_fd = mkstemp(err_path);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    if (uid >= 0 && (setgid(uid) != 0 || setuid(uid) != 0)) _exit(99);
    std::vector<char*> argv{const_cast<char*>(FORKSCOPE_BIN)};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(FORKSCOPE_BIN, argv.data());
    _exit(98);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  Outcome o;
  o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  close(out_fd);
  close(err_fd);
  o.out = slurp(out_path);
  o.err = slurp(err_path);
  unlink(out_path);
  unlink(err_path);
  return o;
}

inline std::string make_temp_dir() {
  char dir[] = "/tmp/fs-test-XXXXXX";
  return mkdtemp(dir);
}

inline int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

}  // namespace forkscope::test
