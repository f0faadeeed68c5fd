#pragma once
// `forkscope serve`'s metrics: the in-kernel aggregates of trace's groups, read
// at scrape time, turned into a prometheus::Registry.  Pure C++ (no libbpf): the
// session reads the tracer into a MetricsSnapshot, the exporter does the rest.
//
// The kernel keeps cumulative totals per group; the exporter turns them into
// deltas per scrape and adds each delta to its group's label set, or to
// comm="(other)" when --max-groups label sets are taken.  A label set idle for
// evict_after_s may give its place to a new group; its totals stay in memory, so
// when it comes back its counters resume where they were (never backwards).
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace prometheus {
class Registry;
class Counter;
class Gauge;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace forkscope {

// One phase of one group: launches in which it was seen, their inclusive time and
// the in-kernel log-linear histogram (FS_HIST_SLOTS slots, fs_hist_slot()).
struct PhaseSample {
  std::string name;
  uint64_t count = 0;
  uint64_t total_ns = 0;
  std::vector<uint64_t> hist;
};

// One kernel group (command, launch kind), cumulative since the tracer opened.
struct GroupSample {
  std::string comm;    // raw bytes from the kernel: attacker-controlled
  std::string kind;    // fork, vfork, thread, clone-vm, clone:FLAGS, exec; "mixed" for the kernel's overflow cell
  bool other = false;  // the kernel's overflow cell (groups past its cells)
  uint64_t launches = 0, failed = 0, execs = 0;
  std::vector<PhaseSample> phases;
};

struct HealthSample {
  uint64_t program_runs = 0;        // our BPF programs that ran inside traced launches
  uint64_t events_dropped = 0;      // launches the kernel side could not track (state map full)
  bool kernel_groups_full = false;  // new groups land in the kernel's overflow cell
  uint64_t map_bytes = 0;
};

struct MetricsSnapshot {
  std::vector<GroupSample> groups;
  HealthSample health;
};

// The phases exported as forkscope_phase_seconds (others stay in `trace`).
const std::vector<std::string>& exported_phases();

// Bucket upper bounds of forkscope_phase_seconds, in seconds: 2^k ns for k = 8..34
// (256 ns .. 17.2 s).  Each is a boundary of the in-kernel histogram (8 slots per
// power of two), so the kernel's slots fold into them exactly; the only rounding
// is that a value of exactly 2^k ns counts in the bucket above.
const std::vector<double>& phase_bucket_bounds();
// The in-kernel slot's bucket: an index into phase_bucket_bounds(), or its size (+Inf).
size_t bucket_of_slot(size_t slot);

// A comm as a label value: printable ASCII stays, every other byte (and the
// backslash) becomes \xNN, and a comm named "(other)" becomes \x28other), so
// two processes never share a label value by accident.
std::string safe_comm(const std::string& comm);

inline const char* kOtherComm = "(other)";

class MetricsExporter {
 public:
  // max_groups: label sets of their own; evict_after_s: idle time after which a
  // label set may give its place to a new group.
  MetricsExporter(size_t max_groups, double evict_after_s);
  ~MetricsExporter();
  MetricsExporter(const MetricsExporter&) = delete;
  MetricsExporter& operator=(const MetricsExporter&) = delete;

  // Adds what grew since the previous update.  now_s: a monotonic clock.
  void update(const MetricsSnapshot& snapshot, double now_s);
  void set_scrape_seconds(double seconds);
  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }
  size_t folded_groups() const;

 private:
  struct Hist {
    std::vector<double> buckets;  // increments per bucket, +Inf last
    double sum = 0;
  };
  // Cumulative totals of one label set (comm, kind), kept while it is evicted.
  struct LabelSet {
    std::string comm, kind;
    double launches = 0, failed = 0;
    std::map<std::string, Hist> phases;
    double last_active = 0;
    bool exposed = false;
    prometheus::Counter* launches_metric = nullptr;
    prometheus::Counter* failed_metric = nullptr;
    std::map<std::string, prometheus::Histogram*> phase_metrics;
  };
  // The previous raw totals of one kernel group.
  struct Previous {
    uint64_t launches = 0, failed = 0, execs = 0;
    std::map<std::string, PhaseSample> phases;
  };
  using Key = std::pair<std::string, std::string>;  // (label comm, kind)

  LabelSet& label_set_for(const GroupSample& g, double now_s);
  void expose(LabelSet& s);
  void hide(LabelSet& s);
  void sync_execs();

  size_t max_groups_;
  double evict_after_s_;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* launches_;
  prometheus::Family<prometheus::Counter>* failures_;
  prometheus::Family<prometheus::Counter>* execs_;
  prometheus::Family<prometheus::Histogram>* phase_seconds_;
  prometheus::Counter* program_runs_;
  prometheus::Counter* events_dropped_;
  prometheus::Gauge* folded_metric_;
  prometheus::Gauge* kernel_full_;
  prometheus::Gauge* scrape_seconds_;
  prometheus::Gauge* map_bytes_;
  std::map<Key, Previous> previous_;           // by (raw comm, kind)
  std::map<Key, LabelSet> sets_;               // by (label comm, kind)
  std::map<std::string, double> execs_total_;  // by label comm, kept like LabelSet
  std::map<std::string, prometheus::Counter*> execs_metric_;
  HealthSample health_prev_;
  size_t folded_ = 0;
};

}  // namespace forkscope
