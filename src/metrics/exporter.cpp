#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <cstdio>

#include "forkscope/metrics.h"

namespace forkscope {

namespace {

constexpr int kFirstBound = 8, kLastBound = 34;  // 2^k ns

// Growth of a cumulative kernel total; a total that went down (the tracer was
// opened again) counts from zero.
uint64_t grown(uint64_t now, uint64_t before) { return now >= before ? now - before : now; }

// Evicted label sets remembered, so a returning group resumes (the longest idle go first).
size_t retained_limit(size_t max_groups) { return 8 * max_groups + 64; }

// Mapping labels ranked per label set; past them, a label's growth goes to kOtherMappings.
constexpr size_t kMappingLabels = 64;

}  // namespace

const std::vector<std::string>& exported_phases() {
  static const std::vector<std::string> phases = {"syscall",         "copy_process",     "dup_mmap",
                                                  "copy_page_range", "wake_up_new_task", "vfork_wait",
                                                  "child_first_run", "teardown",         "reap",
                                                  "execve"};
  return phases;
}

const std::vector<double>& phase_bucket_bounds() {
  static const std::vector<double> bounds = [] {
    std::vector<double> b;
    for (int k = kFirstBound; k <= kLastBound; k++) b.push_back(static_cast<double>(1ull << k) / 1e9);
    return b;
  }();
  return bounds;
}

size_t bucket_of_slot(size_t slot) {
  // Slots below 8 hold 0..7 ns; slot s >= 8 holds values in [2^m, 2^(m+1)) with
  // m = s / 8 + 2 (fs_hist_slot), so its bucket is le = 2^(m+1).
  const int m = slot < 8 ? 2 : static_cast<int>(slot / 8) + 2;
  const int k = std::max(m + 1, kFirstBound);
  return k > kLastBound ? phase_bucket_bounds().size() : static_cast<size_t>(k - kFirstBound);
}

std::string comm_label(const std::string& comm) { return comm == kOtherComm ? "\\x28other)" : comm; }

MetricsExporter::MetricsExporter(size_t max_groups, double evict_after_s, bool mappings)
    : max_groups_(max_groups),
      evict_after_s_(evict_after_s),
      mappings_(mappings),
      registry_(std::make_shared<prometheus::Registry>()) {
  using prometheus::BuildCounter, prometheus::BuildGauge, prometheus::BuildHistogram;
  // Per group.
  launches_ =
      &BuildCounter()
           .Name("forkscope_launches_total")
           .Help("Launches (fork, vfork, clone, thread) whose syscall returned a child, by launching command and kind")
           .Register(*registry_);
  failures_ = &BuildCounter()
                   .Name("forkscope_launch_failures_total")
                   .Help(
                       "Launch syscalls that returned an error, by launching command, kind and errno (EAGAIN, "
                       "ENOMEM, EINVAL, ...; other: an error outside kernel/fork.c's)")
                   .Register(*registry_);
  execs_ = &BuildCounter()
                .Name("forkscope_execs_total")
                .Help(
                    "Successful execve/execveat in children of the command's launches (kind exec: in tasks "
                    "launched before serve started)")
                .Register(*registry_);
  phase_seconds_ = &BuildHistogram()
                        .Name("forkscope_phase_seconds")
                        .Help("Inclusive time of a launch phase per launch, from the in-kernel log-linear histogram")
                        .Register(*registry_);
  if (mappings_) {
    mapping_seconds_ = &BuildCounter()
                            .Name("forkscope_mapping_copy_seconds_total")
                            .Help(
                                "dup_mmap's vma_setup + copy_page_range time per mapping of the launching "
                                "processes (name perms size), the top 5 per command and kind; mapping=\"(other "
                                "mappings)\": the others' time while they were not in the top 5")
                            .Register(*registry_);
    unattributed_ = &BuildCounter()
                         .Name("forkscope_mapping_unattributed_launches_total")
                         .Help(
                             "Launches that copied VMAs but whose mappings could not be matched (no snapshot of "
                             "their process's layout: it changed or exited before it was read, or its pid was reused)")
                         .Register(*registry_);
  }
  // forkscope's own health.
  program_runs_ = &BuildCounter()
                       .Name("forkscope_program_runs_total")
                       .Help("forkscope's BPF programs that ran inside traced launches (their observer cost)")
                       .Register(*registry_)
                       .Add({});
  events_dropped_ = &BuildCounter()
                         .Name("forkscope_events_dropped_total")
                         .Help(
                             "Launches and child events the kernel side could not track (its per-task state map "
                             "was full) or dropped because their group was evicted meanwhile")
                         .Register(*registry_)
                         .Add({});
  groups_metric_ = &BuildGauge()
                        .Name("forkscope_groups")
                        .Help("Groups (command, kind) holding a kernel cell and a label set of their own now")
                        .Register(*registry_)
                        .Add({});
  evicted_metric_ = &BuildCounter()
                         .Name("forkscope_groups_evicted_total")
                         .Help("Groups evicted after --evict-after idle: their kernel cell freed for a new group")
                         .Register(*registry_)
                         .Add({});
  kernel_full_ = &BuildGauge()
                      .Name("forkscope_kernel_groups_full")
                      .Help(
                          "1 when --max-groups kernel cells are all taken: new commands count in "
                          "comm=\"(other)\", kind=\"mixed\" until a group is evicted")
                      .Register(*registry_)
                      .Add({});
  scrape_seconds_ = &BuildGauge()
                         .Name("forkscope_scrape_duration_seconds")
                         .Help("Time this scrape took to read the in-kernel aggregates and update the metrics")
                         .Register(*registry_)
                         .Add({});
  map_bytes_ =
      &BuildGauge().Name("forkscope_bpf_map_bytes").Help("Memory of forkscope's BPF maps").Register(*registry_).Add({});
}

MetricsExporter::~MetricsExporter() = default;

void MetricsExporter::add_failure(LabelSet& s, const std::string& err, double increment) {
  s.failed[err] += increment;
  if (!s.exposed) return;
  prometheus::Counter*& m = s.failed_metrics[err];
  if (!m) {
    m = &failures_->Add({{"comm", s.comm}, {"kind", s.kind}, {"errno", err}});
    increment = s.failed[err];  // the label set's whole total
  }
  m->Increment(increment);
}

void MetricsExporter::add_phase(LabelSet& s, const std::string& phase, const Hist& increment) {
  Hist& total = s.phases[phase];
  if (total.buckets.empty()) total.buckets.assign(increment.buckets.size(), 0);
  for (size_t i = 0; i < increment.buckets.size(); i++) total.buckets[i] += increment.buckets[i];
  total.sum += increment.sum;
  if (!s.exposed) return;
  prometheus::Histogram*& m = s.phase_metrics[phase];
  if (!m) {
    m = &phase_seconds_->Add({{"comm", s.comm}, {"kind", s.kind}, {"phase", phase}}, phase_bucket_bounds());
    m->ObserveMultiple(total.buckets, total.sum);  // the label set's whole total
    return;
  }
  m->ObserveMultiple(increment.buckets, increment.sum);
}

void MetricsExporter::add_mappings(LabelSet& s, const std::map<std::string, uint64_t>& increments,
                                   uint64_t unattributed) {
  if (!mappings_) return;
  std::map<std::string, double> grew;
  double other = 0;
  for (const auto& [raw, ns] : increments) {
    const std::string& label = raw;  // safe_text'd where it entered (the layout snapshot)
    const double seconds = static_cast<double>(ns) / 1e9;
    if (label == kOtherMappings || (!s.mapping_s.contains(label) && s.mapping_s.size() >= kMappingLabels)) {
      other += seconds;
      continue;
    }
    s.mapping_s[label] += seconds;
    grew[label] += seconds;
  }
  std::vector<std::pair<double, std::string>> ranked;
  for (const auto& [label, total] : s.mapping_s) ranked.emplace_back(-total, label);
  std::sort(ranked.begin(), ranked.end());
  std::vector<std::string> top;
  for (size_t i = 0; i < ranked.size() && i < kTopMappings; i++) top.push_back(ranked[i].second);
  const auto on_top = [&](const std::string& label) { return std::find(top.begin(), top.end(), label) != top.end(); };
  for (const auto& [label, seconds] : grew)
    if (!on_top(label)) other += seconds;
  s.other_mappings_s += other;
  s.unattributed += static_cast<double>(unattributed);
  if (!s.exposed) return;
  for (auto it = s.mapping_metrics.begin(); it != s.mapping_metrics.end();) {
    if (it->first == kOtherMappings || on_top(it->first)) {
      ++it;
      continue;
    }
    mapping_seconds_->Remove(it->second);
    it = s.mapping_metrics.erase(it);
  }
  for (const std::string& label : top) {
    prometheus::Counter*& m = s.mapping_metrics[label];
    if (!m) {
      m = &mapping_seconds_->Add({{"comm", s.comm}, {"kind", s.kind}, {"mapping", label}});
      m->Increment(s.mapping_s[label]);  // the label's whole total
    } else if (const auto g = grew.find(label); g != grew.end()) {
      m->Increment(g->second);
    }
  }
  if (!s.mapping_s.empty() || s.other_mappings_s > 0) {
    prometheus::Counter*& m = s.mapping_metrics[kOtherMappings];
    if (!m) {
      m = &mapping_seconds_->Add({{"comm", s.comm}, {"kind", s.kind}, {"mapping", kOtherMappings}});
      other = s.other_mappings_s;
    }
    m->Increment(other);
  }
  if (!s.unattributed_metric) {
    s.unattributed_metric = &unattributed_->Add({{"comm", s.comm}, {"kind", s.kind}});
    unattributed = 0;
    s.unattributed_metric->Increment(s.unattributed);
  }
  s.unattributed_metric->Increment(static_cast<double>(unattributed));
}

// A label set's series come back with its totals: its counters continue.
void MetricsExporter::expose(LabelSet& s) {
  if (s.exposed) return;
  s.exposed = true;
  s.launches_metric = &launches_->Add({{"comm", s.comm}, {"kind", s.kind}});
  s.launches_metric->Increment(s.launches);
  for (const auto& [err, total] : s.failed) add_failure(s, err, 0);
  for (const auto& [phase, total] : s.phases) add_phase(s, phase, Hist{});
  add_mappings(s, {}, 0);
}

void MetricsExporter::hide(LabelSet& s) {
  if (!s.exposed) return;
  launches_->Remove(s.launches_metric);
  for (auto& [err, m] : s.failed_metrics) failures_->Remove(m);
  for (auto& [phase, m] : s.phase_metrics) phase_seconds_->Remove(m);
  for (auto& [label, m] : s.mapping_metrics) mapping_seconds_->Remove(m);
  if (s.unattributed_metric) unattributed_->Remove(s.unattributed_metric);
  s.launches_metric = nullptr;
  s.failed_metrics.clear();
  s.phase_metrics.clear();
  s.mapping_metrics.clear();
  s.unattributed_metric = nullptr;
  s.exposed = false;
}

MetricsExporter::Growth MetricsExporter::growth(const GroupSample& g, const Previous& before) {
  Growth out;
  out.launches = grown(g.launches, before.launches);
  out.execs = grown(g.execs, before.execs);
  for (const auto& [err, n] : g.failed) {
    const auto was = before.failed.find(err);
    const uint64_t d = grown(n, was == before.failed.end() ? 0 : was->second);
    if (d) out.failed[err] = d;
  }
  // Per phase: growth of each slot, folded into the exported buckets.
  for (const PhaseSample& p : g.phases) {
    if (std::find(exported_phases().begin(), exported_phases().end(), p.name) == exported_phases().end()) continue;
    const auto was = before.phases.find(p.name);
    const PhaseSample empty;
    const PhaseSample& old = was == before.phases.end() ? empty : was->second;
    const bool reset = p.count < old.count;
    Hist h;
    h.buckets.assign(phase_bucket_bounds().size() + 1, 0);
    uint64_t observed = 0;
    for (size_t slot = 0; slot < p.hist.size(); slot++) {
      const uint64_t d = grown(p.hist[slot], reset || slot >= old.hist.size() ? 0 : old.hist[slot]);
      h.buckets[bucket_of_slot(slot)] += static_cast<double>(d);
      observed += d;
    }
    h.sum = static_cast<double>(grown(p.total_ns, reset ? 0 : old.total_ns)) / 1e9;
    if (observed > 0) out.phases[p.name] = std::move(h);
  }
  // Attribution may go down (a pid reused): only what grew counts.
  for (const auto& [label, ns] : g.mapping_ns) {
    const auto was = before.mapping_ns.find(label);
    const uint64_t old = was == before.mapping_ns.end() ? 0 : was->second;
    if (ns > old) out.mapping_ns[label] = ns - old;
  }
  if (g.mapping_unattributed > before.mapping_unattributed)
    out.unattributed = g.mapping_unattributed - before.mapping_unattributed;
  return out;
}

MetricsExporter::LabelSet& MetricsExporter::add(const GroupSample& g, double now_s) {
  auto [at, first] = previous_.try_emplace(g.cell);
  Previous& before = at->second;
  if (first) before.last_active = now_s;
  before.named = !g.other;
  const Growth d = growth(g, before);
  program_runs_->Increment(static_cast<double>(grown(g.program_runs, before.program_runs)));
  events_dropped_->Increment(static_cast<double>(grown(g.dropped, before.dropped)));

  const Key key = g.other ? Key{kOtherComm, "mixed"} : Key{comm_label(g.comm), g.kind};
  LabelSet& s = sets_[key];
  s.comm = key.first;
  s.kind = key.second;
  if (!g.other && std::find(s.cells.begin(), s.cells.end(), g.cell) == s.cells.end()) s.cells.push_back(g.cell);
  expose(s);
  if (d.any()) {
    before.last_active = s.last_active = now_s;
    s.launches += static_cast<double>(d.launches);
    if (s.exposed) s.launches_metric->Increment(static_cast<double>(d.launches));
    for (const auto& [err, n] : d.failed) add_failure(s, err, static_cast<double>(n));
    for (const auto& [phase, h] : d.phases) add_phase(s, phase, h);
    execs_total_[s.comm] += static_cast<double>(d.execs);
  }
  // (Apart: a snapshot read late attributes launches that already counted.)
  if (!d.mapping_ns.empty() || d.unattributed) add_mappings(s, d.mapping_ns, d.unattributed);
  before.launches = g.launches;
  before.execs = g.execs;
  before.program_runs = g.program_runs;
  before.dropped = g.dropped;
  before.failed = g.failed;
  for (const PhaseSample& p : g.phases) before.phases[p.name] = p;
  before.mapping_ns = g.mapping_ns;
  before.mapping_unattributed = g.mapping_unattributed;
  return s;
}

void MetricsExporter::update(const MetricsSnapshot& snapshot, double now_s) {
  for (const GroupSample& g : snapshot.groups) add(g, now_s);
  sync_execs();
  forget_retained();

  const HealthSample& h = snapshot.health;
  events_dropped_->Increment(static_cast<double>(grown(h.stale_records, health_prev_.stale_records)));
  health_prev_ = h;
  size_t named = 0;
  for (const auto& [cell, p] : previous_) named += p.named;
  groups_metric_->Set(static_cast<double>(named));
  kernel_full_->Set(h.kernel_groups_full ? 1 : 0);
  map_bytes_->Set(static_cast<double>(h.map_bytes));
}

std::vector<uint32_t> MetricsExporter::idle_cells(double now_s) const {
  std::vector<uint32_t> out;
  for (const auto& [cell, p] : previous_)
    if (evict_after_s_ > 0 && p.named && now_s - p.last_active >= evict_after_s_) out.push_back(cell);
  return out;
}

void MetricsExporter::retire(const GroupSample& last, double now_s) {
  if (last.other) return;
  LabelSet& s = add(last, now_s);
  std::erase(s.cells, last.cell);
  if (s.cells.empty()) hide(s);
  previous_.erase(last.cell);
  evicted_metric_->Increment();
  groups_metric_->Decrement();
  sync_execs();
}

// Forget the longest-idle evicted label sets past the retention limit.
void MetricsExporter::forget_retained() {
  while (sets_.size() > retained_limit(max_groups_)) {
    auto idlest = sets_.end();
    for (auto it = sets_.begin(); it != sets_.end(); ++it)
      if (!it->second.exposed && (idlest == sets_.end() || it->second.last_active < idlest->second.last_active))
        idlest = it;
    if (idlest == sets_.end()) break;
    sets_.erase(idlest);
  }
}

// forkscope_execs_total{comm} exists while a label set of that comm is exposed
// (and always for "(other)"); its total is kept meanwhile.
void MetricsExporter::sync_execs() {
  std::map<std::string, bool> wanted;
  for (const auto& [key, s] : sets_)
    if (s.exposed) wanted[s.comm] = true;
  for (auto it = execs_metric_.begin(); it != execs_metric_.end();) {
    if (wanted.count(it->first)) {
      ++it;
      continue;
    }
    execs_->Remove(it->second);
    it = execs_metric_.erase(it);
  }
  for (const auto& [comm, yes] : wanted) {
    prometheus::Counter*& m = execs_metric_[comm];
    if (!m) m = &execs_->Add({{"comm", comm}});
    const double total = execs_total_[comm];
    if (total > m->Value()) m->Increment(total - m->Value());
  }
  for (auto it = execs_total_.begin(); it != execs_total_.end();) {
    bool keep = wanted.count(it->first) > 0;
    for (const auto& [key, s] : sets_) keep |= s.comm == it->first;
    it = keep ? std::next(it) : execs_total_.erase(it);
  }
}

void MetricsExporter::set_scrape_seconds(double seconds) { scrape_seconds_->Set(seconds); }

}  // namespace forkscope
