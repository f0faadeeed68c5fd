#pragma once
// `forkscope serve`'s metrics: the in-kernel aggregates of trace's groups, read
// at scrape time, turned into a prometheus::Registry.  Pure C++ (no libbpf): the
// session reads the tracer into a MetricsSnapshot, the exporter does the rest.
//
// The kernel keeps cumulative totals per group cell (at most --max-groups cells,
// the rest in its overflow cell, comm="(other)"); the exporter turns them into
// deltas per update and adds each delta to the group's label set (comm, kind).
// A group idle for evict_after_s is evicted: the session frees its kernel cell
// after handing the exporter its last sample (retire), and the label set's
// series leave the exposition while its totals stay in memory, so when the
// command comes back (in whichever cell) its counters resume where they were.
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

// One kernel group (command, launch kind), cumulative since it took its cell.
struct GroupSample {
  uint32_t cell = 0;   // the kernel's cell: the group's identity while it holds it
  std::string comm;    // raw bytes from the kernel: attacker-controlled
  std::string kind;    // fork, vfork, thread, clone-vm, clone:FLAGS, exec; "mixed" for the kernel's overflow cell
  bool other = false;  // the kernel's overflow cell (groups past its cells)
  uint64_t launches = 0, execs = 0;
  std::map<std::string, uint64_t> failed;  // failed launches by error: "EAGAIN", ..., "other"
  std::vector<PhaseSample> phases;
  uint64_t program_runs = 0;  // our BPF programs that ran inside its launches
  uint64_t dropped = 0;       // its launches the kernel side could not track (state map full)
  // Per-mapping attribution (serve at --depth full): vma_setup + copy_page_range ns
  // per mapping label (mapping_label; "(other mappings)" for the VMAs past the
  // kernel's bound), and the launches that copied VMAs but could not be attributed.
  // Both may go down (a pid reused, a snapshot gone): only growth is exported.
  std::map<std::string, uint64_t> mapping_ns;
  uint64_t mapping_unattributed = 0;
};

// Totals of the whole kernel side (a group's own are in its GroupSample: they go
// when its cell is recycled).
struct HealthSample {
  uint64_t stale_records = 0;       // records dropped because their group was evicted meanwhile
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

// A comm as a label value.  It is safe text already (the tracer passes every comm
// through safe_text where it enters: control bytes, invalid UTF-8 and backslashes
// escaped); a process that names itself "(other)" becomes \x28other), which no
// safe text can be (its backslash would be doubled), so it never shares the
// overflow group's label value.
std::string comm_label(const std::string& comm);

inline const char* kOtherComm = "(other)";
// forkscope_mapping_copy_seconds_total: each label set's top mappings (by total)
// have a series of their own; the others' growth goes to this label.
inline constexpr size_t kTopMappings = 5;
inline const char* kOtherMappings = "(other mappings)";

class MetricsExporter {
 public:
  // max_groups: the kernel's group cells (bounds the retained label sets);
  // evict_after_s: idle time after which a group is evicted (idle_cells);
  // mappings: the samples carry per-mapping attribution (the forkscope_mapping_* families).
  MetricsExporter(size_t max_groups, double evict_after_s, bool mappings = false);
  ~MetricsExporter();
  MetricsExporter(const MetricsExporter&) = delete;
  MetricsExporter& operator=(const MetricsExporter&) = delete;

  // Adds what grew since the previous update.  now_s: a monotonic clock.
  void update(const MetricsSnapshot& snapshot, double now_s);
  // Named groups whose totals have not grown for evict_after_s.
  std::vector<uint32_t> idle_cells(double now_s) const;
  // A group's last sample, read after the kernel unlinked it and before its cell
  // is zeroed: its growth is added, its series leave the exposition (while no
  // other cell feeds the same label set) and the cell is forgotten.
  void retire(const GroupSample& last, double now_s);
  void set_scrape_seconds(double seconds);
  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

 private:
  struct Hist {
    std::vector<double> buckets;  // increments per bucket, +Inf last
    double sum = 0;
  };
  // Cumulative totals of one label set (comm, kind), kept while it is evicted.
  struct LabelSet {
    std::string comm, kind;
    double launches = 0;
    std::map<std::string, double> failed;  // by errno label
    std::map<std::string, Hist> phases;
    // Per-mapping seconds by (escaped) label, at most kMappingLabels of them (the
    // rest counted into kOtherMappings); the top kTopMappings exposed.
    std::map<std::string, double> mapping_s;
    double other_mappings_s = 0;  // growth of the others while they were not on top
    double unattributed = 0;
    std::vector<uint32_t> cells;  // the kernel groups feeding it now
    double last_active = 0;
    bool exposed = false;
    prometheus::Counter* launches_metric = nullptr;
    std::map<std::string, prometheus::Counter*> failed_metrics;
    std::map<std::string, prometheus::Histogram*> phase_metrics;
    std::map<std::string, prometheus::Counter*> mapping_metrics;  // by label, kOtherMappings included
    prometheus::Counter* unattributed_metric = nullptr;
  };
  // The previous raw totals of one kernel cell.
  struct Previous {
    uint64_t launches = 0, execs = 0, program_runs = 0, dropped = 0;
    std::map<std::string, uint64_t> failed;
    std::map<std::string, PhaseSample> phases;
    std::map<std::string, uint64_t> mapping_ns;
    uint64_t mapping_unattributed = 0;
    double last_active = 0;  // last growth, or first sight
    bool named = false;
  };
  // What grew in one kernel cell since the previous update.
  struct Growth {
    uint64_t launches = 0, execs = 0;
    std::map<std::string, uint64_t> failed;
    std::map<std::string, Hist> phases;
    std::map<std::string, uint64_t> mapping_ns;  // only the labels that grew
    uint64_t unattributed = 0;
    bool any() const { return launches || execs || !failed.empty() || !phases.empty(); }
  };
  using Key = std::pair<std::string, std::string>;  // (label comm, kind)

  // A cell's growth into its label set; its raw totals become the previous ones.
  LabelSet& add(const GroupSample& g, double now_s);
  static Growth growth(const GroupSample& g, const Previous& before);
  void expose(LabelSet& s);
  void hide(LabelSet& s);
  // Each family's series of a label set, created as its totals appear.
  void add_failure(LabelSet& s, const std::string& err, double increment);
  void add_phase(LabelSet& s, const std::string& phase, const Hist& increment);
  // A cell's per-mapping growth into its label set: the labels ranked by total, the
  // top kTopMappings with a series each (one that comes onto the top starts at its
  // label's whole total, one that leaves it goes from the exposition), the growth of
  // the others into kOtherMappings's.
  void add_mappings(LabelSet& s, const std::map<std::string, uint64_t>& increments, uint64_t unattributed);
  void sync_execs();
  void forget_retained();

  size_t max_groups_;
  double evict_after_s_;
  bool mappings_;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* launches_;
  prometheus::Family<prometheus::Counter>* failures_;
  prometheus::Family<prometheus::Counter>* execs_;
  prometheus::Family<prometheus::Histogram>* phase_seconds_;
  prometheus::Family<prometheus::Counter>* mapping_seconds_ = nullptr;  // with mappings only
  prometheus::Family<prometheus::Counter>* unattributed_ = nullptr;
  prometheus::Counter* program_runs_;
  prometheus::Counter* events_dropped_;
  prometheus::Gauge* groups_metric_;
  prometheus::Counter* evicted_metric_;
  prometheus::Gauge* kernel_full_;
  prometheus::Gauge* scrape_seconds_;
  prometheus::Gauge* map_bytes_;
  std::map<uint32_t, Previous> previous_;      // by kernel cell
  std::map<Key, LabelSet> sets_;               // by (label comm, kind)
  std::map<std::string, double> execs_total_;  // by label comm, kept like LabelSet
  std::map<std::string, prometheus::Counter*> execs_metric_;
  HealthSample health_prev_;
};

}  // namespace forkscope
