#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "forkscope/error.h"
#include "forkscope/shared/catalog.h"
#include "forkscope/runner.h"
#include "forkscope/size.h"

namespace forkscope {

namespace {

volatile uint64_t g_heap_sink;  // where the heap's checksum goes, so the heap stays alive

void pin_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof(set), &set) != 0) {
    throw usage_error("--cpu " + std::to_string(cpu) + ": cannot pin (" + std::strerror(errno) +
                      "); choose a CPU between 0 and " + std::to_string(sysconf(_SC_NPROCESSORS_ONLN) - 1));
  }
}

std::string vmas_note(const Cell& c) { return c.vmas ? " +" + std::to_string(c.vmas) + " VMAs" : ""; }

// A live line on a terminal, a line per finished cell otherwise, nothing when quiet.
class Progress {
 public:
  Progress(bool quiet, size_t cells) : quiet_(quiet), tty_(isatty(2)), cells_(cells) {}
  void update(size_t index, const Cell& c, uint64_t done, double elapsed) {
    if (quiet_ || !tty_) return;
    uint64_t now = now_ns();
    if (now - last_ < 100'000'000ull) return;
    last_ = now;
    std::fprintf(stderr, "\r\033[K[%zu/%zu] %-12s heap %-6s%s %6llu/%llu launches  %.1fs", index + 1, cells_,
                 c.mode.c_str(), format_size(c.heap_bytes).c_str(), vmas_note(c).c_str(),
                 static_cast<unsigned long long>(done), static_cast<unsigned long long>(c.iterations), elapsed);
  }
  void finished(size_t index, const Cell& c) {
    if (quiet_) return;
    if (tty_) std::fprintf(stderr, "\r\033[K");
    // A cell whose every launch failed has no latency to show: it says why instead.
    std::string result = c.launches == 0 && c.failed > 0
                             ? "every launch failed (" + c.failed_errno + ")"
                             : "p50 " + format_ns(static_cast<double>(c.user.call_to_return.p50));
    if (c.launches > 0 && c.failed > 0) result += ", " + std::to_string(c.failed) + " failed (" + c.failed_errno + ")";
    std::fprintf(stderr, "[%zu/%zu] %-12s heap %-6s%s %llu launches in %.1fs%s, %s\n", index + 1, cells_,
                 c.mode.c_str(), format_size(c.heap_bytes).c_str(), vmas_note(c).c_str(),
                 static_cast<unsigned long long>(c.launches), c.seconds, c.time_capped ? " (time cap)" : "",
                 result.c_str());
  }

 private:
  bool quiet_, tty_;
  size_t cells_;
  uint64_t last_ = 0;
};

// What one extra launching thread measured.
struct ThreadResult {
  std::vector<uint64_t> ret, child, reaped;
  uint64_t failed = 0;
  std::string failed_errno;
  void add(const LaunchSample& s) {
    if (s.ok) {
      ret.push_back(s.call_to_return);
      reaped.push_back(s.call_to_reaped);
      if (s.call_to_child) child.push_back(s.call_to_child);
    } else {
      if (failed++ == 0) failed_errno = strerrorname_np(s.err) ? strerrorname_np(s.err) : std::to_string(s.err);
    }
  }
};

// The memory layouts of the sweep, in order: each heap with each VMA count.
std::vector<std::pair<uint64_t, uint64_t>> heap_vma_pairs(const SweepOptions& opt) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  for (uint64_t heap : opt.heaps)
    for (uint64_t vmas : opt.vma_counts) out.emplace_back(heap, vmas);
  return out;
}

}  // namespace

std::vector<uint64_t> launch_block(Launcher& launcher, uint64_t n, const std::atomic<bool>* stop) {
  std::vector<uint64_t> out;
  for (uint64_t j = 0; j < n && !(stop && stop->load()); j++) {
    LaunchSample u = launcher.launch();
    if (u.ok) out.push_back(u.call_to_return);
  }
  return out;
}

std::vector<uint64_t> untraced_block(Launcher& launcher, uint64_t n, const std::function<void(bool)>& trace,
                                     const std::atomic<bool>* stop) {
  trace(false);
  std::vector<uint64_t> out = launch_block(launcher, n, stop);
  trace(true);
  return out;
}

size_t sweep_cells_count(const SweepOptions& opt) {
  return opt.heaps.size() * opt.vma_counts.size() * opt.modes.size();
}

std::vector<Cell> run_sweep(const SweepOptions& opt, const CellHooks& hooks, const std::atomic<bool>* stop) {
  if (opt.cpu >= 0) pin_to_cpu(opt.cpu);
  std::vector<Cell> cells;
  Progress progress(opt.quiet, sweep_cells_count(opt));
  std::vector<uint64_t> ret, child, reaped;
  // Touched before any launch, so recording a sample does not fault a fresh page.
  ret.assign(opt.iterations, 0);
  child.assign(opt.iterations, 0);
  reaped.assign(opt.iterations, 0);

  for (const auto& [heap_bytes, vmas] : heap_vma_pairs(opt)) {
    if (stop->load()) break;
    Heap heap(heap_bytes, opt.thp, vmas, opt.touch_vmas);
    for (const LaunchSpec& spec : opt.modes) {
      if (stop->load()) break;
      const uint32_t index = static_cast<uint32_t>(cells.size());
      Cell cell;
      cell.mode = spec.mode;
      cell.clone_flags = spec.flags_label;
      cell.heap_bytes = heap_bytes;
      cell.vmas = vmas;
      cell.vma_touch = vmas > 0 && !opt.touch_vmas ? "none" : "";
      cell.thp = thp_layout_name(opt.thp);
      cell.iterations = opt.iterations;
      auto launcher = make_launcher(spec, opt.child_program);
      // Warm-up shares the cell's time budget, so no --warmup can stall a sweep.
      const uint64_t warm_deadline = now_ns() + static_cast<uint64_t>(opt.cell_seconds * 1e9);
      for (uint64_t i = 0; i < opt.warmup && !stop->load() && now_ns() < warm_deadline; i++) launcher->launch();

      size_t nret = 0, nchild = 0;
      std::vector<uint64_t> untraced;
      // --overhead: before every block of traced launches, as many untraced ones.
      const uint64_t block = std::clamp<uint64_t>(opt.iterations / 20, 5, 50);
      // --threads: more launching threads take launch numbers from the same counter;
      // each keeps its own samples, merged below.  They are created before the cell
      // begins (creating a thread is a launch too) and wait for it.
      std::atomic<uint64_t> next{0};
      std::atomic<bool> capped{false}, go{false};
      std::atomic<size_t> ready{0};
      uint64_t deadline = UINT64_MAX;
      std::vector<ThreadResult> extra(opt.threads > 1 ? opt.threads - 1 : 0);
      std::vector<std::thread> workers;
      for (ThreadResult& r : extra) {
        workers.emplace_back([&, &r = r] {
          auto own = make_launcher(spec, opt.child_program);
          ready++;
          while (!go.load()) sched_yield();
          for (uint64_t i; (i = next++) < opt.iterations && !stop->load() && !capped.load();) {
            r.add(own->launch());
            if (now_ns() >= deadline) capped = true;
          }
        });
      }
      // Each thread's launcher (and its malloc arena, a mapping of its own) exists
      // before the cell begins: the mappings every fork copies are set from here on.
      while (ready.load() < workers.size()) sched_yield();
      hooks.begin(index);
      const uint64_t start = now_ns();
      deadline = start + static_cast<uint64_t>(opt.cell_seconds * 1e9);
      // A few launches spread over the cell are recorded span by span for timelines:
      // this thread's only (the probes sample the thread that asks), spread over
      // its share of the launches, each numbered by its place in the cell.
      const uint64_t stride = std::max<uint64_t>(1, opt.iterations / opt.threads / FS_MAX_SAMPLES);
      uint64_t own = 0;
      go = true;
      for (uint64_t i; (i = next++) < opt.iterations;) {
        if (stop->load() || capped.load()) break;
        if (opt.overhead && i % block == 0) {
          const std::vector<uint64_t> u = untraced_block(*launcher, block, hooks.trace, stop);
          untraced.insert(untraced.end(), u.begin(), u.end());
        }
        const bool sampled = own % stride == 0 && own / stride < FS_MAX_SAMPLES;
        own++;
        hooks.sample(sampled ? static_cast<uint32_t>(i + 1) : 0);
        LaunchSample s = launcher->launch();
        if (s.ok) {
          ret[nret] = s.call_to_return;
          reaped[nret] = s.call_to_reaped;
          nret++;
          if (s.call_to_child) child[nchild++] = s.call_to_child;
        } else {
          if (cell.failed == 0)
            cell.failed_errno = strerrorname_np(s.err) ? strerrorname_np(s.err) : std::to_string(s.err);
          cell.failed++;
        }
        const uint64_t now = now_ns();
        progress.update(index, cell, std::min(next.load(), opt.iterations), static_cast<double>(now - start) / 1e9);
        if (now >= deadline) capped = true;
      }
      for (std::thread& w : workers) w.join();
      for (const ThreadResult& r : extra) {
        for (size_t k = 0; k < r.ret.size(); k++) {
          ret[nret] = r.ret[k];
          reaped[nret] = r.reaped[k];
          nret++;
        }
        for (uint64_t c : r.child) child[nchild++] = c;
        if (cell.failed == 0 && r.failed) cell.failed_errno = r.failed_errno;
        cell.failed += r.failed;
      }
      cell.time_capped = capped.load() && nret + cell.failed < opt.iterations;
      hooks.sample(0);
      hooks.end();
      // Interrupted before its first launch: the cell has nothing to report.
      if (stop->load() && nret + cell.failed == 0) break;
      cell.seconds = static_cast<double>(now_ns() - start) / 1e9;
      cell.launches = nret;
      cell.user.call_to_return = summarize({ret.begin(), ret.begin() + nret});
      cell.user.call_to_reaped = summarize({reaped.begin(), reaped.begin() + nret});
      cell.user.call_to_child = summarize({child.begin(), child.begin() + nchild});
      cell.backing = read_backing(heap);
      if (opt.overhead && !untraced.empty() && nret > 0) {
        Overhead o;
        o.untraced = summarize(untraced);
        const RatioEstimate r = median_ratio({ret.begin(), ret.begin() + nret}, untraced);
        o.ratio = r.ratio;
        o.ratio_low = r.low;
        o.ratio_high = r.high;
        cell.overhead = o;
      }
      hooks.collect(cell, index);
      progress.finished(index, cell);
      cells.push_back(std::move(cell));
      if (hooks.done) hooks.done(cells);
    }
    g_heap_sink = g_heap_sink + heap.checksum();
  }
  return cells;
}

}  // namespace forkscope
