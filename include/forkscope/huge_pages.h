#pragma once
// trace: the launching processes' huge-page backing.  The kernel's mm counters do not
// tell huge pages apart, and no tracepoint sees fork copy a PMD-mapped huge page
// (copy_huge_pmd), so each launching process's AnonHugePages is read from
// /proc/PID/smaps_rollup (anonymous memory mapped by PMDs) at the first poll after
// its launches, and given to each of those launches, per cell.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string_view>
#include <tuple>
#include <vector>

#include "forkscope/results.h"

namespace forkscope {

// A launching process's successful launches in one cell, as the kernel counted them
// (bpf huge_launchers).
struct CellLauncher {
  uint32_t tgid = 0;
  uint32_t cell = 0;
  uint64_t launches = 0;
  uint64_t start_ns = 0;  // the process's start: another value means the pid was reused
};

// AnonHugePages of smaps_rollup text in bytes; nullopt when the line is missing or
// not a number (an empty file: a process without mm, a zombie).
std::optional<uint64_t> parse_anon_huge_bytes(std::string_view smaps_rollup);
// The same of /proc/PID/smaps_rollup; nullopt also when the process is gone.
std::optional<uint64_t> read_anon_huge_bytes(pid_t pid);

class LauncherHugePages {
 public:
  using Reader = std::function<std::optional<uint64_t>(pid_t)>;
  // on_read(tgid, launches over its cells, bytes or nullopt) after each read (-v).
  using OnRead = std::function<void(uint32_t, uint64_t, std::optional<uint64_t>)>;
  explicit LauncherHugePages(Reader read = read_anon_huge_bytes) : read_(std::move(read)) {}
  // Every 100 ms at most while following: reads each process with launches since the
  // last poll (once however many cells it launched in) and gives those launches its
  // value; launches of a process that cannot be read (gone) stay without one.  The
  // read walks the process's page tables under its mmap lock, which a fork waits for
  // (about 14 ms for 1 GiB of small pages on this 6.18, 0.09 ms for 1 GiB of huge
  // pages): a process is read again only after kPausePerRead times its last read's
  // time, so we hold its lock 1% of the time at most; launches in between wait for
  // that read, but for the last poll (last: when tracing ends), which reads whatever waits.
  void poll(const std::vector<CellLauncher>& launchers, const OnRead& on_read = {}, bool last = false);
  static constexpr int kPausePerRead = 100;
  // Into k: mm_anon_huge_bytes, the mean over the cell's launches valued, and
  // mm_anon_huge_launches, how many were; untouched when none was.
  void fill(uint32_t cell, KernelCounts& k) const;

 private:
  struct Sum {
    double bytes = 0;  // bytes x launches
    uint64_t launches = 0;
  };
  using Clock = std::chrono::steady_clock;
  Reader read_;
  std::map<uint32_t, Clock::time_point> not_before_;  // per process: its next read
  // Launches already read (valued or not), per (tgid, cell, start_ns).
  std::map<std::tuple<uint32_t, uint32_t, uint64_t>, uint64_t> seen_;
  std::map<uint32_t, Sum> cells_;
};

}  // namespace forkscope
