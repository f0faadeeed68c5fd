#pragma once
// The serve session: follows launches like `trace` does and exports the in-kernel
// aggregates to Prometheus at scrape time until SIGINT or SIGTERM.
#include <sys/types.h>

#include <cstddef>
#include <string>

namespace forkscope {

struct ServeOptions {
  std::string listen = "127.0.0.1:9464";  // ADDR:PORT or [ADDR6]:PORT, validated by the CLI
  pid_t pid = 0;                          // follow this process and what it launches
  std::string cgroup;                     // or a cgroup v2 directory
  // neither: every task but forkscope (-a)
  size_t max_groups = 20;      // kernel group cells = label sets of their own; the rest in comm="(other)"
  double evict_after_s = 600;  // a group without growth this long frees its cell (counters kept)
  std::string backend = "auto";
  // --depth syscall|process|full: process, the cheapest with the syscall and dup_mmap
  // (copy_page_range and per-mapping time need full).
  std::string depth = "process";
  bool quiet = false;
  bool verbose = false;
};

// Runs until SIGINT or SIGTERM; every BPF program is detached when it returns.
// Throws usage_error when it cannot listen (exit 2).
int serve_session(const ServeOptions& o);

}  // namespace forkscope
