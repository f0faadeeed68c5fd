#include "session/signals.h"

#include <signal.h>
#include <sys/wait.h>

#include <cerrno>

namespace forkscope {

namespace {

std::atomic<bool> g_stop{false};
volatile sig_atomic_t g_second_ends = 0;

void on_stop_signal(int sig) {
  if (!g_stop.exchange(true) || !g_second_ends) return;
  // The second: only async-signal-safe calls.  The runner's children exit by
  // themselves (a launch's child does nothing but exit or exec a program that
  // exits), so waiting for them is short; __WALL includes clone children that
  // send no SIGCHLD.
  const int saved = errno;
  while (waitpid(-1, nullptr, __WALL) > 0 || errno == EINTR) {
  }
  errno = saved;
  signal(sig, SIG_DFL);
  raise(sig);
}

}  // namespace

void catch_stop_signals(bool second_ends) {
  g_second_ends = second_ends;
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) {
    struct sigaction old = {};
    if (sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_IGN) continue;
    struct sigaction sa = {};
    sa.sa_handler = on_stop_signal;
    // Restarted: a signal during start-up must not fail a read of kallsyms or BTF.
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, nullptr);
  }
}

const std::atomic<bool>* stop_requested() { return &g_stop; }

}  // namespace forkscope
