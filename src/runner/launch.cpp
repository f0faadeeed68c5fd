#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>

#include <fmt/format.h>

#include "forkscope/error.h"
#include "forkscope/runner.h"
#include "forkscope/untrusted.h"

extern char** environ;

namespace forkscope {

uint64_t now_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

namespace {

// One shared page (a memfd, so posix_spawn's exec'd child can map it too) where
// the child writes the moment it first runs.
struct StampPage {
  int fd = -1;
  volatile uint64_t* stamp = nullptr;
  StampPage() {
    fd = memfd_create("forkscope-stamp", 0);  // inherited across exec on purpose
    if (fd < 0 || ftruncate(fd, 4096) != 0)
      throw Error(kExitFailure, std::string("memfd_create failed: ") + std::strerror(errno));
    void* p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) throw Error(kExitFailure, std::string("mmap stamp page: ") + std::strerror(errno));
    stamp = static_cast<volatile uint64_t*>(p);
  }
};

StampPage& stamp_page() {
  static StampPage page;
  return page;
}

constexpr unsigned kStampSlots = 4096 / sizeof(uint64_t);

// Each launching thread has its own slot of the page, so threads launching at
// once do not read each other's children's stamps.  Set before every launch,
// so a child made by fork, vfork or clone inherits (or shares) the pointer.
thread_local volatile uint64_t* t_stamp = nullptr;

volatile uint64_t* my_stamp() {
  if (!t_stamp) {
    static std::atomic<unsigned> next{0};
    t_stamp = stamp_page().stamp + next++ % kStampSlots;
  }
  return t_stamp;
}

// The child's only work: say when it runs.  Async-signal-safe.
inline void child_stamp() { *t_stamp = now_ns(); }

// A signal (the user's Ctrl-C) interrupts waitpid; retrying lets the launch in
// flight finish with its child reaped instead of leaving a zombie behind.
bool reap(pid_t pid, int options = 0) {
  pid_t r;
  do {
    r = waitpid(pid, nullptr, options);
  } while (r < 0 && errno == EINTR);
  return r == pid;
}

LaunchSample finish(uint64_t t0, uint64_t t_return, bool reaped_ok) {
  LaunchSample s;
  if (!reaped_ok) s.err = errno;
  uint64_t t_reaped = now_ns();
  s.ok = reaped_ok;
  s.call_to_return = t_return - t0;
  uint64_t child = *my_stamp();
  s.call_to_child = child > t0 ? child - t0 : 0;
  s.call_to_reaped = t_reaped - t0;
  return s;
}

LaunchSample failed(int err) {
  LaunchSample s;
  s.err = err;
  return s;
}

// fork(2) or vfork(2), which differ only in the call: vfork's child borrows the
// parent's memory and stack until it exits, so it does nothing but stamp and _exit.
class ForkLauncher : public Launcher {
 public:
  explicit ForkLauncher(bool vfork) : vfork_(vfork) {}
  LaunchSample launch() override {
    *my_stamp() = 0;
    uint64_t t0 = now_ns();
    pid_t pid = vfork_ ? vfork() : fork();
    if (pid == 0) {
      child_stamp();
      _exit(0);
    }
    uint64_t t1 = now_ns();
    if (pid < 0) return failed(errno);
    return finish(t0, t1, reap(pid));
  }

 private:
  bool vfork_;
};

// A CLONE_VM child may not share the parent's TLS: it gets its slot as argument.
int clone_child(void* slot) {
  *static_cast<volatile uint64_t*>(slot) = now_ns();
  return 0;  // glibc's clone() then calls exit(2) for this task only
}

// clone(2) with an explicit flag set.  Thread-group children cannot be waited
// for: CLONE_PARENT_SETTID + CLONE_CHILD_CLEARTID and a futex tell when they exit.
class CloneLauncher : public Launcher {
 public:
  explicit CloneLauncher(uint64_t flags) : flags_(flags) {
    void* p = mmap(nullptr, kStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (p == MAP_FAILED) throw Error(kExitFailure, std::string("cannot map a child stack: ") + std::strerror(errno));
    stack_ = static_cast<char*>(p);
  }
  ~CloneLauncher() override { munmap(stack_, kStack); }

  LaunchSample launch() override {
    *my_stamp() = 0;
    const bool thread = flags_ & CLONE_THREAD;
    int flags = static_cast<int>(flags_);
    if (thread) flags |= CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID;
    else flags |= SIGCHLD;
    tid_ = 0;
    uint64_t t0 = now_ns();
    pid_t pid = clone(clone_child, stack_ + kStack, flags, const_cast<uint64_t*>(my_stamp()), &tid_, nullptr, &tid_);
    uint64_t t1 = now_ns();
    if (pid < 0) return failed(errno);
    bool ok;
    if (thread) {
      while (true) {
        pid_t v = __atomic_load_n(&tid_, __ATOMIC_ACQUIRE);
        if (v == 0) break;
        syscall(SYS_futex, &tid_, FUTEX_WAIT, v, nullptr, nullptr, 0);
      }
      ok = true;
    } else {
      ok = reap(pid, __WALL);
    }
    return finish(t0, t1, ok);
  }

 private:
  static constexpr size_t kStack = 256 * 1024;
  uint64_t flags_;
  char* stack_ = nullptr;
  pid_t tid_ = 0;
};

// Plain clone without CLONE_VM: the raw syscall, so the child runs on its copy
// of the parent's stack exactly like fork (minus glibc's atfork handlers).
class RawCloneLauncher : public Launcher {
 public:
  LaunchSample launch() override {
    *my_stamp() = 0;
    uint64_t t0 = now_ns();
    long pid = syscall(SYS_clone, SIGCHLD, nullptr, nullptr, nullptr, nullptr);
    if (pid == 0) {
      child_stamp();
      syscall(SYS_exit_group, 0);
    }
    uint64_t t1 = now_ns();
    if (pid < 0) return failed(errno);
    return finish(t0, t1, reap(static_cast<pid_t>(pid)));
  }
};

void* thread_child(void* slot) {
  *static_cast<volatile uint64_t*>(slot) = now_ns();
  return nullptr;
}

class PthreadLauncher : public Launcher {
 public:
  LaunchSample launch() override {
    *my_stamp() = 0;
    pthread_t t;
    uint64_t t0 = now_ns();
    int err = pthread_create(&t, nullptr, thread_child, const_cast<uint64_t*>(my_stamp()));
    uint64_t t1 = now_ns();
    if (err != 0) return failed(err);
    return finish(t0, t1, pthread_join(t, nullptr) == 0);
  }
};

// Launches of forkscope-child, which stamps when it runs: by posix_spawn, or by
// fork or vfork and execve in the child.
class ProgramLauncher : public Launcher {
 public:
  enum class How { kSpawn, kForkExec, kVforkExec };
  ProgramLauncher(std::string program, How how, const std::string& mode) : program_(std::move(program)), how_(how) {
    fd_arg_ = std::to_string(stamp_page().fd);
    if (access(program_.c_str(), X_OK) != 0)
      throw Error(kExitFailure, mode + " mode needs " + program_ + " (built with forkscope); rebuild");
  }
  LaunchSample launch() override {
    *my_stamp() = 0;
    std::string slot = std::to_string(my_stamp() - stamp_page().stamp);
    char* argv[] = {program_.data(), fd_arg_.data(), slot.data(), nullptr};
    pid_t pid;
    uint64_t t0 = now_ns();
    if (how_ == How::kSpawn) {
      int err = posix_spawn(&pid, program_.c_str(), nullptr, nullptr, argv, environ);
      uint64_t t1 = now_ns();
      if (err != 0) return failed(err);
      return finish(t0, t1, reap(pid));
    }
    pid = how_ == How::kVforkExec ? vfork() : fork();
    if (pid == 0) {
      execve(argv[0], argv, environ);
      _exit(127);
    }
    uint64_t t1 = now_ns();
    if (pid < 0) return failed(errno);
    return finish(t0, t1, reap(pid));
  }

 private:
  std::string program_;
  std::string fd_arg_;
  How how_;
};

const std::map<std::string, uint64_t>& flag_names() {
  static const std::map<std::string, uint64_t> names = {
      {"VM", CLONE_VM},           {"FS", CLONE_FS},         {"FILES", CLONE_FILES},
      {"SIGHAND", CLONE_SIGHAND}, {"THREAD", CLONE_THREAD}, {"SYSVSEM", CLONE_SYSVSEM},
      {"IO", CLONE_IO},           {"VFORK", CLONE_VFORK},   {"PARENT", CLONE_PARENT},
  };
  return names;
}

}  // namespace

std::string clone_flags_label(uint64_t flags) {
  // What launches seen by trace may carry beyond the flags run can ask for.
  static const std::map<std::string, uint64_t> more = {
      {"UNTRACED", CLONE_UNTRACED},   {"NEWNS", CLONE_NEWNS},         {"NEWPID", CLONE_NEWPID},
      {"NEWNET", CLONE_NEWNET},       {"NEWUSER", CLONE_NEWUSER},     {"NEWUTS", CLONE_NEWUTS},
      {"NEWIPC", CLONE_NEWIPC},       {"NEWCGROUP", CLONE_NEWCGROUP}, {"CLEAR_SIGHAND", 0x100000000ull},
      {"INTO_CGROUP", 0x200000000ull}};
  std::map<std::string, uint64_t> names = flag_names();
  names.insert(more.begin(), more.end());
  std::string label;
  for (const auto& [n, v] : names) {
    if (flags & v) {
      label += (label.empty() ? "" : "|") + n;
      flags &= ~v;
    }
  }
  if (flags) label += fmt::format("{}{:#x}", label.empty() ? "" : "|", flags);
  return label.empty() ? "none" : label;
}

std::string launch_kind(uint64_t flags) {
  // One name per flag set, so (command, kind) names one group: the usual sets get
  // their usual names, every other set its flags.
  if (flags == 0) return "fork";
  if (flags == (CLONE_VM | CLONE_VFORK)) return "vfork";
  if (flags == (CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM)) return "thread";
  if (flags == CLONE_VM) return "clone-vm";
  return "clone:" + clone_flags_label(flags);
}

const std::vector<std::string>& known_modes() {
  static const std::vector<std::string> modes = {"fork",    "vfork",       "clone",     "clone-vm",
                                                 "pthread", "posix_spawn", "fork-exec", "vfork-exec"};
  return modes;
}

LaunchSpec parse_clone_flags(const std::string& names) {
  LaunchSpec spec;
  if (names.empty()) throw usage_error("--clone-flags is empty; give CLONE_* names, e.g. --clone-flags VM,FS");
  for (size_t begin = 0;;) {
    const size_t comma = names.find(',', begin);
    std::string name = names.substr(begin, comma == std::string::npos ? std::string::npos : comma - begin);
    if (name.empty())
      throw usage_error("--clone-flags " + safe_text(names) + ": an empty name; give names separated by single commas");
    for (auto& c : name) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
    if (name.rfind("CLONE_", 0) == 0) name = name.substr(6);
    auto it = flag_names().find(name);
    if (it == flag_names().end()) {
      std::string all;
      for (const auto& [n, v] : flag_names()) all += (all.empty() ? "" : ",") + n;
      throw usage_error("unknown clone flag '" + safe_text(name) + "' in --clone-flags; known: " + all);
    }
    spec.clone_flags |= it->second;
    if (comma == std::string::npos) break;
    begin = comma + 1;
  }
  // The child of CLONE_PARENT is forkscope's sibling: its exit goes to forkscope's
  // parent, so forkscope could neither wait for it nor reap it.
  if (spec.clone_flags & CLONE_PARENT)
    throw usage_error(
        "--clone-flags: PARENT makes each child a sibling of forkscope, which forkscope cannot wait for "
        "or reap; leave PARENT out");
  if ((spec.clone_flags & CLONE_SIGHAND) && !(spec.clone_flags & CLONE_VM))
    throw usage_error("--clone-flags: SIGHAND needs VM (the kernel refuses it with EINVAL)");
  if ((spec.clone_flags & CLONE_THREAD) && !(spec.clone_flags & CLONE_SIGHAND))
    throw usage_error("--clone-flags: THREAD needs SIGHAND and VM (the kernel refuses it with EINVAL)");
  for (const auto& [n, v] : flag_names()) {
    if (spec.clone_flags & v) spec.flags_label += (spec.flags_label.empty() ? "" : "|") + n;
  }
  if (spec.flags_label.empty()) spec.flags_label = "none";
  spec.mode = "clone:" + spec.flags_label;
  return spec;
}

LaunchSpec parse_mode(const std::string& mode) {
  LaunchSpec spec;
  spec.mode = mode == "spawn-exec" ? "posix_spawn" : mode;  // posix_spawn is a spawn and an exec
  const std::string& m = spec.mode;
  if (m == "clone") {
    spec.flags_label = "none";
  } else if (m == "clone-vm") {
    spec.clone_flags = CLONE_VM;
    spec.flags_label = "VM";
  } else if (m == "pthread") {
    spec.flags_label = "VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID";
  } else if (m == "vfork") {
    spec.flags_label = "VM|VFORK";
  } else if (m == "posix_spawn" || m == "vfork-exec") {
    spec.flags_label = "VM|VFORK (then exec)";
  } else if (m == "fork-exec") {
    spec.flags_label = "none (then exec)";
  } else if (m != "fork") {
    std::string all;
    for (const auto& m : known_modes()) all += (all.empty() ? "" : ",") + m;
    throw usage_error("unknown mode '" + safe_text(mode) + "'; choose from " + all +
                      " (or --clone-flags for a custom CLONE_* set)");
  }
  return spec;
}

std::unique_ptr<Launcher> make_launcher(const LaunchSpec& spec, const std::string& child_program) {
  stamp_page();
  if (spec.mode == "fork" || spec.mode == "vfork") return std::make_unique<ForkLauncher>(spec.mode == "vfork");
  if (spec.mode == "clone") return std::make_unique<RawCloneLauncher>();
  if (spec.mode == "pthread") return std::make_unique<PthreadLauncher>();
  using How = ProgramLauncher::How;
  if (spec.mode == "posix_spawn") return std::make_unique<ProgramLauncher>(child_program, How::kSpawn, spec.mode);
  if (spec.mode == "fork-exec") return std::make_unique<ProgramLauncher>(child_program, How::kForkExec, spec.mode);
  if (spec.mode == "vfork-exec") return std::make_unique<ProgramLauncher>(child_program, How::kVforkExec, spec.mode);
  return std::make_unique<CloneLauncher>(spec.clone_flags);  // clone-vm and clone:<FLAGS>
}

}  // namespace forkscope
