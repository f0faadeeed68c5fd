#pragma once
// The kernel side: host facts, privilege and feature checks, kernel symbols, and
// the tracepoint backend that loads the BPF skeleton.  The only place that knows
// about libbpf.
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "forkscope/catalog.h"
#include "forkscope/results.h"

namespace forkscope {

struct KsymRange {
  std::string name;
  uint64_t start = 0;
  uint64_t end = 0;  // start of the next text symbol
};

// Text symbols of /proc/kallsyms.  Addresses read as zero (kptr_restrict) make
// every lookup fail, which the caller reports.
class Kallsyms {
 public:
  static Kallsyms load();
  std::optional<KsymRange> find(const std::string& name) const;
  bool readable() const { return readable_; }

 private:
  std::vector<std::pair<uint64_t, std::string>> syms_;  // sorted by address
  bool readable_ = false;
};

Host read_host();

// Each throws privilege_error (exit 3) with what is missing and what to do.
void check_privileges();
// Mounts tracefs at /sys/kernel/tracing when it is not mounted; returns false
// (and says why in *why) when that fails.
bool ensure_tracefs(std::string* why);

// One line of `forkscope doctor`.
struct FeatureCheck {
  std::string name;
  bool ok = false;
  std::string detail;
};
std::vector<FeatureCheck> probe_features();

// fentry on a kernel function, tried for real (load + attach a minimal program).
// Returns "" when it works, otherwise the reason.
std::string try_fentry(const std::string& function);
bool kprobes_available(std::string* why);
bool function_in_btf(const std::string& function);

// Tracepoint backend: landmark tracepoints, per-task phase stack, per-CPU aggregates.
class TracepointBackend {
 public:
  // Loads and attaches every program; throws Error(3) when the kernel refuses.
  static std::unique_ptr<TracepointBackend> open(bool verbose);
  ~TracepointBackend();
  TracepointBackend(const TracepointBackend&) = delete;
  TracepointBackend& operator=(const TracepointBackend&) = delete;

  void set_target(pid_t tgid);
  void set_cell(uint32_t cell);  // FS_NO_CELL stops attribution
  std::vector<PhaseAgg> read_phases(uint32_t cell) const;
  // Phases of the launches whose syscall failed (no histograms).
  std::vector<PhaseAgg> read_failed_phases(uint32_t cell) const;
  KernelCounts read_counts(uint32_t cell) const;
  const std::vector<PhaseAvailability>& availability() const { return availability_; }
  uint64_t map_bytes() const;  // memory of the BPF maps, for the report

 private:
  TracepointBackend() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::vector<PhaseAvailability> availability_;
};

void set_libbpf_verbose(bool verbose);

}  // namespace forkscope
