#include "session/serve.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "forkscope/analysis.h"
#include "forkscope/error.h"
#include "forkscope/metrics.h"
#include "forkscope/probes.h"
#include "forkscope/runner.h"
#include "forkscope/target.h"
#include "session/followed_mappings.h"

namespace forkscope {

namespace {

double monotonic_s() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

// Reads the tracer at scrape time (no per-event traffic to user space) and hands
// the exporter's registry to the exposer; evicts idle groups, at scrapes and on
// serve's own ticks.  Scrapes may come on two threads.  With mappings, serve's
// ticks also read the launching processes' layouts (FollowedMappings), and each
// group's per-mapping time is attributed at scrape time.
class ScrapeCollector : public prometheus::Collectable {
 public:
  ScrapeCollector(Tracer& tracer, const ServeOptions& o, bool mappings)
      : tracer_(tracer),
        max_groups_(o.max_groups),
        exporter_(o.max_groups, o.evict_after_s, mappings),
        mappings_on_(mappings),
        mappings_(o.verbose) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    const double t0 = monotonic_s();
    refresh(t0);
    exporter_.set_scrape_seconds(monotonic_s() - t0);
    return exporter_.registry()->Collect();
  }

  // Between scrapes: idle groups free their cells even when nobody scrapes.
  void tick() {
    std::lock_guard<std::mutex> lock(mutex_);
    refresh(monotonic_s());
  }

  // Every 100 ms with mappings: the layouts of the processes that launched.
  void poll_mappings() {
    std::lock_guard<std::mutex> lock(mutex_);
    mappings_.poll(tracer_);
  }

 private:
  void refresh(double now) const {
    exporter_.update(snapshot(), now);
    // Eviction in two steps, at least kSettleS apart.  unlink_cell deletes the
    // group's key (no new launch joins the cell) and bumps the cell's generation
    // (records begun under the group count nowhere from then on); a program that
    // found the key just before may still stamp or count with the old group, for
    // microseconds.  The later step reads the cell for the last time, zeroes it and
    // bumps the generation again (recycle_cell), so nothing of the old group
    // reaches the cell's next group.
    if (std::any_of(unlinked_.begin(), unlinked_.end(), [&](const Unlinked& u) { return now - u.since >= kSettleS; })) {
      const KernelByCell kernel = mappings_on_ ? tracer_.read_all_mappings() : KernelByCell{};
      std::erase_if(unlinked_, [&](const Unlinked& u) {
        if (now - u.since < kSettleS) return false;
        exporter_.retire(sample(u.group, kernel), now);
        tracer_.recycle_cell(u.group.cell);
        return true;
      });
    }
    for (uint32_t cell : exporter_.idle_cells(now)) {
      if (std::any_of(unlinked_.begin(), unlinked_.end(), [&](const Unlinked& u) { return u.group.cell == cell; }))
        continue;
      const auto group = std::find_if(groups_.begin(), groups_.end(),
                                      [&](const TraceGroup& g) { return g.cell == cell; });
      if (group == groups_.end()) continue;
      tracer_.unlink_cell(cell);
      unlinked_.push_back({*group, now});
    }
  }

  using KernelByCell = std::map<uint32_t, KernelMappings>;

  // kernel: every cell's per-mapping aggregates (read_all_mappings), with mappings.
  GroupSample sample(const TraceGroup& g, const KernelByCell& kernel) const {
    const KernelCounts k = tracer_.read_counts(g.cell);
    GroupSample out;
    out.cell = g.cell;
    out.comm = g.comm;
    out.other = g.other;
    out.kind = g.other ? "mixed" : g.flags == FS_GROUP_EXEC_ONLY ? "exec" : launch_kind(g.flags);
    out.launches = k.launches;
    out.execs = k.execs;
    out.dropped = k.lost;
    if (k.failed) out.failed = tracer_.read_failed_errnos(g.cell);
    if (k.launches == 0 && k.failed == 0 && k.execs == 0) return out;
    const RunPlan& plan = tracer_.plan();
    const std::vector<PhaseAgg> phases = tracer_.read_phases(g.cell);
    for (int id = 0; id < FS_NPHASES; id++) {
      const PhaseAgg& a = phases[id];
      out.program_runs += a.events + a.fn_events;
      if (!plan.measured(id) || a.count == 0) continue;
      out.phases.push_back({plan.name[id], a.count, a.total_ns, a.hist});
    }
    if (const auto of = kernel.find(g.cell); mappings_on_ && of != kernel.end()) {
      Cell c;
      mappings_.attribute(of->second, c);
      for (const Mapping& m : c.mappings)
        out.mapping_ns[m.kind == "other" ? kOtherMappings : mapping_label(m)] += m.vma_setup_ns + m.copy_page_range_ns;
      out.mapping_unattributed = c.mapping_unattributed;
    }
    return out;
  }

  MetricsSnapshot snapshot() const {
    MetricsSnapshot s;
    groups_ = tracer_.read_groups();
    const KernelByCell kernel = mappings_on_ ? tracer_.read_all_mappings() : KernelByCell{};
    size_t named = 0;
    for (const TraceGroup& g : groups_) {
      named += !g.other;
      s.groups.push_back(sample(g, kernel));
    }
    s.health.stale_records = tracer_.stale_records();
    s.health.kernel_groups_full = named >= max_groups_;
    s.health.map_bytes = tracer_.map_bytes();
    return s;
  }

  Tracer& tracer_;
  size_t max_groups_;
  mutable std::vector<TraceGroup> groups_;  // as the last snapshot read them
  // Groups unlinked (first step of eviction) and when, awaiting their last read.
  struct Unlinked {
    TraceGroup group;
    double since;
  };
  static constexpr double kSettleS = 0.1;
  mutable std::vector<Unlinked> unlinked_;
  mutable std::mutex mutex_;
  mutable MetricsExporter exporter_;
  bool mappings_on_;
  FollowedMappings mappings_;
};

// A bind of our own first: the exposer's failure would not say why.
void check_can_listen(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  std::string host = listen.substr(0, colon);
  const int port = std::stoi(listen.substr(colon + 1));
  const bool v6 = host.size() >= 2 && host.front() == '[';
  if (v6) host = host.substr(1, host.size() - 2);
  const int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw Error(kExitFailure, std::string("socket: ") + std::strerror(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // as civetweb does
  int r;
  if (v6) {
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET6, host.c_str(), &a.sin6_addr);
    r = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  } else {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, host.c_str(), &a.sin_addr);
    r = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  }
  if (r == 0) r = ::listen(fd, 1);
  const int err = errno;
  close(fd);
  if (r != 0) throw usage_error("--listen " + listen + ": " + std::strerror(err) + "; choose another address or port");
}

}  // namespace

int serve_session(const ServeOptions& o) {
  check_can_listen(o.listen);
  const int cgroup_fd = o.cgroup.empty() ? -1 : open_cgroup(o.cgroup);
  PlanOptions plan;
  plan.backend = parse_backend(o.backend);
  plan.depth = parse_depth(o.depth);
  plan.exec = true;
  plan.probe_cost = false;  // no probe-cost calibration: no spare slot
  std::unique_ptr<Tracer> tracer = Tracer::open(plan_run(plan), o.verbose, kTraceGroups + 1, /*following=*/true);
  // Per-VMA times come with --depth full: per-mapping attribution, as trace's.
  const bool mappings = plan.depth == Depth::kFull;
  Follow follow;
  follow.all = o.pid == 0 && cgroup_fd < 0;
  follow.root = o.pid;
  follow.cgroup_fd = cgroup_fd;
  follow.samples_per_group = 0;  // no span-by-span records: nothing flows to user space per launch
  follow.groups = static_cast<uint32_t>(o.max_groups);  // one kernel cell per label set
  follow.mappings = mappings;
  tracer->follow(follow);
  if (cgroup_fd >= 0) close(cgroup_fd);

  // Blocked before the exposer starts its threads, which inherit the mask: the
  // signals come to sigwait below.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  auto collector = std::make_shared<ScrapeCollector>(*tracer, o, mappings);
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(o.listen, 2);
  } catch (const std::exception& e) {
    throw usage_error("--listen " + o.listen + ": cannot listen (" + e.what() + "); choose another address or port");
  }
  exposer->RegisterCollectable(collector);
  if (!o.quiet) {
    const std::string target = o.pid               ? "-p " + std::to_string(o.pid)
                               : !o.cgroup.empty() ? "--cgroup " + o.cgroup
                                                   : "-a";
    std::fprintf(stderr, "forkscope: %s backend attached; tracing %s; metrics on http://%s/metrics until Ctrl-C\n",
                 backend_name(tracer->plan()).c_str(), target.c_str(), o.listen.c_str());
  }
  // Ticks between scrapes evict idle groups whether or not anyone scrapes: within
  // one tick (--evict-after / 4, 0.25 to 30 s) past --evict-after without growth;
  // with --evict-after 0 (never) a tick has nothing to do, so it comes every 30 s.
  // With mappings, the launching processes' layouts are read every 100 ms meanwhile.
  const double tick_s = o.evict_after_s > 0 ? std::clamp(o.evict_after_s / 4, 0.25, 30.0) : 30.0;
  const double wait_s = mappings ? 0.1 : tick_s;
  const timespec wait = {static_cast<time_t>(wait_s), static_cast<long>((wait_s - std::floor(wait_s)) * 1e9)};
  double last_tick = monotonic_s();
  int sig = -1;
  while (sig < 0) {
    sig = sigtimedwait(&stop, nullptr, &wait);
    if (sig >= 0) break;
    if (mappings) collector->poll_mappings();
    if (const double now = monotonic_s(); now - last_tick >= tick_s) {
      last_tick = now;
      collector->tick();
    }
  }
  // Scrapes end before the tracer they read goes; then every program is detached.
  exposer.reset();
  collector.reset();
  tracer.reset();
  if (!o.quiet) std::fprintf(stderr, "forkscope: %s: detached\n", strsignal(sig));
  return kExitOk;
}

}  // namespace forkscope
