#pragma once
// What the commands check and prepare before they load anything into the kernel
// or launch anything, so a missing feature or a bad output path costs one line on
// stderr and leaves nothing behind.
#include <string>

namespace forkscope {

// Root (CAP_SYS_ADMIN; CAP_BPF + CAP_PERFMON alone are refused), kernel BTF,
// tracefs and the BPF filesystem, mounting the last two when they are missing.  Throws privilege_error (exit 3)
// saying what is missing and how to provide it.
void check_kernel_access();

// Checks, creating nothing, that DIR can hold results: no part of the path is a
// symbolic link that belongs to neither root nor the invoking user (one planted in
// /tmp, say), the path is not too long, an existing DIR is a directory where a file
// can really be made (tried: root passes access() on /sys), results.json and
// report.html there are not directories, and a missing DIR can be made under its
// nearest existing parent (tried).  Throws usage_error (exit 2).
void check_out_dir(const std::string& dir);

// check_out_dir, then creates what is missing (given to the invoking user under
// sudo).  Called once the results exist, so an interrupted start leaves nothing.
void prepare_out_dir(const std::string& dir);

// The same rules for one output file (report -o, merge -o): its directory must
// exist and no part of the path may be another user's symbolic link.  OPTION
// names it in the message.  Throws usage_error (exit 2).
void check_out_file(const std::string& path, const std::string& option);

}  // namespace forkscope
