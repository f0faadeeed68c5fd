#pragma once
// The signals that end a session: SIGINT (Ctrl-C), SIGTERM, SIGHUP (terminal
// closed) and SIGQUIT.  Caught from before anything is loaded, so a signal at any
// moment ends forkscope the documented way (exit 1, or the results so far), never
// by the default action; one inherited as ignored (nohup, a shell's background
// job) stays ignored.
#include <atomic>

#include "forkscope/error.h"

namespace forkscope {

// Installs the handlers.  The first signal sets stop_requested(); with
// second_ends, a second one ends the process at once, as its default action would,
// after reaping the launch in flight (a child of the runner must not be left to
// forkscope's parent).
void catch_stop_signals(bool second_ends);

// Set by the first stop signal: the flag the sweep and the trace loop watch.
const std::atomic<bool>* stop_requested();

// What a stop signal before the first launch ends with: exit 1, nothing written.
inline Error interrupted_at_start() { return Error(kExitFailure, "interrupted while starting; nothing was written"); }

}  // namespace forkscope
