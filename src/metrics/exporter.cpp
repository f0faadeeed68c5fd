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

// Evicted label sets kept beyond the exposed ones, so a returning group resumes.
size_t retained_limit(size_t max_groups) { return 8 * max_groups + 64; }

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

std::string safe_comm(const std::string& comm) {
  if (comm == kOtherComm) return "\\x28other)";
  std::string out;
  for (unsigned char c : comm) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    }
  }
  return out;
}

MetricsExporter::MetricsExporter(size_t max_groups, double evict_after_s)
    : max_groups_(max_groups), evict_after_s_(evict_after_s), registry_(std::make_shared<prometheus::Registry>()) {
  using prometheus::BuildCounter, prometheus::BuildGauge, prometheus::BuildHistogram;
  launches_ =
      &BuildCounter()
           .Name("forkscope_launches_total")
           .Help("Launches (fork, vfork, clone, thread) whose syscall returned a child, by launching command and kind")
           .Register(*registry_);
  failures_ = &BuildCounter()
                   .Name("forkscope_launch_failures_total")
                   .Help("Launch syscalls that returned an error, by launching command and kind")
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
  program_runs_ = &BuildCounter()
                       .Name("forkscope_program_runs_total")
                       .Help("forkscope's BPF programs that ran inside traced launches (their observer cost)")
                       .Register(*registry_)
                       .Add({});
  events_dropped_ = &BuildCounter()
                         .Name("forkscope_events_dropped_total")
                         .Help("Launches the kernel side could not track (its per-task state map was full)")
                         .Register(*registry_)
                         .Add({});
  folded_metric_ =
      &BuildGauge()
           .Name("forkscope_groups_folded")
           .Help("Groups (command, kind) counted under comm=\"(other)\" because --max-groups label sets are taken")
           .Register(*registry_)
           .Add({});
  kernel_full_ =
      &BuildGauge()
           .Name("forkscope_kernel_groups_full")
           .Help(
               "1 when the kernel's group cells are all taken: new commands count in comm=\"(other)\", kind=\"mixed\"")
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

void MetricsExporter::expose(LabelSet& s) {
  if (s.exposed) return;
  const prometheus::Labels labels = {{"comm", s.comm}, {"kind", s.kind}};
  s.launches_metric = &launches_->Add(labels);
  s.launches_metric->Increment(s.launches);
  s.failed_metric = &failures_->Add(labels);
  s.failed_metric->Increment(s.failed);
  for (auto& [phase, h] : s.phases) {
    prometheus::Histogram* m = &phase_seconds_->Add({{"comm", s.comm}, {"kind", s.kind}, {"phase", phase}},
                                                    phase_bucket_bounds());
    m->ObserveMultiple(h.buckets, h.sum);
    s.phase_metrics[phase] = m;
  }
  s.exposed = true;
}

void MetricsExporter::hide(LabelSet& s) {
  if (!s.exposed) return;
  launches_->Remove(s.launches_metric);
  failures_->Remove(s.failed_metric);
  for (auto& [phase, m] : s.phase_metrics) phase_seconds_->Remove(m);
  s.launches_metric = s.failed_metric = nullptr;
  s.phase_metrics.clear();
  s.exposed = false;
}

MetricsExporter::LabelSet& MetricsExporter::label_set_for(const GroupSample& g, double now_s) {
  auto make = [&](const std::string& comm, const std::string& kind) -> LabelSet& {
    LabelSet& s = sets_[{comm, kind}];
    s.comm = comm;
    s.kind = kind;
    return s;
  };
  // The "(other)" label sets are always exposed: they are bounded by the kinds.
  auto other = [&]() -> LabelSet& {
    LabelSet& s = make(kOtherComm, g.kind);
    expose(s);
    return s;
  };
  if (g.other) return other();
  const Key key{safe_comm(g.comm), g.kind};
  auto it = sets_.find(key);
  if (it != sets_.end() && it->second.exposed) return it->second;

  size_t exposed = 0;
  LabelSet* idlest = nullptr;
  for (auto& [k, s] : sets_) {
    if (!s.exposed || s.comm == kOtherComm) continue;
    exposed++;
    if (!idlest || s.last_active < idlest->last_active) idlest = &s;
  }
  if (exposed >= max_groups_) {
    if (!idlest || now_s - idlest->last_active < evict_after_s_) return other();
    hide(*idlest);
  }
  LabelSet& s = make(key.first, key.second);
  expose(s);
  return s;
}

void MetricsExporter::update(const MetricsSnapshot& snapshot, double now_s) {
  size_t folded = 0;
  for (const GroupSample& g : snapshot.groups) {
    Previous& before = previous_[{g.comm, g.other ? "(overflow)" : g.kind}];
    const uint64_t launches = grown(g.launches, before.launches), failed = grown(g.failed, before.failed),
                   execs = grown(g.execs, before.execs);
    // Per phase: growth of each slot, folded into the exported buckets.
    std::map<std::string, Hist> phases;
    for (const PhaseSample& p : g.phases) {
      if (std::find(exported_phases().begin(), exported_phases().end(), p.name) == exported_phases().end()) continue;
      const PhaseSample& old = before.phases[p.name];
      const bool reset = p.count < old.count;
      Hist h;
      h.buckets.assign(phase_bucket_bounds().size() + 1, 0);
      uint64_t observed = 0;
      for (size_t slot = 0; slot < p.hist.size(); slot++) {
        const uint64_t was = reset || slot >= old.hist.size() ? 0 : old.hist[slot];
        const uint64_t d = grown(p.hist[slot], was);
        h.buckets[bucket_of_slot(slot)] += static_cast<double>(d);
        observed += d;
      }
      h.sum = static_cast<double>(grown(p.total_ns, reset ? 0 : old.total_ns)) / 1e9;
      if (observed > 0) phases[p.name] = std::move(h);
    }
    const bool active = launches || failed || execs || !phases.empty();
    if (active) {
      LabelSet& s = label_set_for(g, now_s);
      s.last_active = now_s;
      s.launches += static_cast<double>(launches);
      s.failed += static_cast<double>(failed);
      if (s.exposed) {
        s.launches_metric->Increment(static_cast<double>(launches));
        s.failed_metric->Increment(static_cast<double>(failed));
      }
      for (auto& [name, h] : phases) {
        Hist& total = s.phases[name];
        if (total.buckets.empty()) total.buckets.assign(h.buckets.size(), 0);
        for (size_t i = 0; i < h.buckets.size(); i++) total.buckets[i] += h.buckets[i];
        total.sum += h.sum;
        if (!s.exposed) continue;
        prometheus::Histogram*& m = s.phase_metrics[name];
        if (!m) m = &phase_seconds_->Add({{"comm", s.comm}, {"kind", s.kind}, {"phase", name}}, phase_bucket_bounds());
        m->ObserveMultiple(h.buckets, h.sum);
      }
      execs_total_[s.comm] += static_cast<double>(execs);
    }
    before.launches = g.launches;
    before.failed = g.failed;
    before.execs = g.execs;
    for (const PhaseSample& p : g.phases) before.phases[p.name] = p;
    if (!g.other) {
      auto it = sets_.find({safe_comm(g.comm), g.kind});
      folded += it == sets_.end() || !it->second.exposed;
    }
  }
  sync_execs();

  // Forget the longest-idle evicted label sets past the retention limit.
  while (sets_.size() > retained_limit(max_groups_)) {
    auto idlest = sets_.end();
    for (auto it = sets_.begin(); it != sets_.end(); ++it)
      if (!it->second.exposed && (idlest == sets_.end() || it->second.last_active < idlest->second.last_active))
        idlest = it;
    if (idlest == sets_.end()) break;
    sets_.erase(idlest);
  }

  const HealthSample& h = snapshot.health;
  program_runs_->Increment(static_cast<double>(grown(h.program_runs, health_prev_.program_runs)));
  events_dropped_->Increment(static_cast<double>(grown(h.events_dropped, health_prev_.events_dropped)));
  health_prev_ = h;
  folded_ = folded;
  folded_metric_->Set(static_cast<double>(folded));
  kernel_full_->Set(h.kernel_groups_full ? 1 : 0);
  map_bytes_->Set(static_cast<double>(h.map_bytes));
}

// forkscope_execs_total{comm} exists while a label set of that comm is exposed
// (and always for "(other)"); its total is kept meanwhile.
void MetricsExporter::sync_execs() {
  std::map<std::string, bool> wanted;
  for (const auto& [key, s] : sets_)
    if (s.exposed || s.comm == kOtherComm) wanted[s.comm] = true;
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

size_t MetricsExporter::folded_groups() const { return folded_; }

}  // namespace forkscope
