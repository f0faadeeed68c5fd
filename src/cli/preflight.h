#pragma once
// What `forkscope run` checks and prepares before it loads anything into the
// kernel or launches anything, so a missing feature or a bad output directory
// costs one line on stderr and leaves nothing behind.
#include <string>

namespace forkscope {

// Root (or CAP_BPF + CAP_PERFMON), kernel BTF, tracefs and the BPF filesystem,
// mounting the last two when they are missing.  Throws privilege_error (exit 3)
// saying what is missing and how to provide it.
void check_kernel_access();

// Makes DIR ready for results: refuses a path through a symbolic link that
// belongs to neither root nor the invoking user (one planted in /tmp, say),
// creates what is missing (given to the invoking user under sudo) and checks it
// is a writable directory.  Throws usage_error (exit 2).
void prepare_out_dir(const std::string& dir);

}  // namespace forkscope
