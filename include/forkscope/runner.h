#pragma once
// The runner: prepares a touched heap, issues launches of one kind, times each
// from user space, and drives a sweep of (heap size x VMA count x mode) cells while telling
// the BPF side which cell the launches belong to.
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "forkscope/results.h"

namespace forkscope {

// How the heap is backed (--thp): small pages (the default), 2 MiB transparent
// huge pages mapped by a PMD (--thp), or the same large folios mapped by 512 PTEs
// each (--thp pte: the PMD mapping split, the folio kept).
enum class ThpLayout { kNone, kPmd, kPte };
ThpLayout parse_thp_layout(const std::string& value);  // "" or "pmd", "pte", "none": throws usage_error
std::string thp_layout_name(ThpLayout layout);         // "", "pmd", "pte"
// --vmas "0,1000,4000": whole numbers, each once, in the order given; throws usage_error.
std::vector<uint64_t> parse_vma_counts(const std::string& list);

// The name the heap's mapping carries in /proc/PID/maps where the kernel allows
// ([anon:forkscope heap]).
extern const char* const kHeapVmaName;

// The runner's memory for a cell: a heap of `bytes`, touched page by page, and
// `vmas` extra one-page anonymous mappings kept apart (every other page of a
// region unmapped), so fork meets that many more VMAs; touched (each with its
// anon_vma and a page to copy) or, with touch_vmas false, mapped and never faulted.
class Heap {
 public:
  Heap(uint64_t bytes, ThpLayout thp, uint64_t vmas = 0, bool touch_vmas = true);
  ~Heap();
  Heap(const Heap&) = delete;
  Heap& operator=(const Heap&) = delete;
  uint64_t bytes() const { return bytes_; }
  uint64_t checksum() const;  // reads every touched page: the compiler cannot drop the heap
  // Heap bytes in large folios however they are mapped (/proc/self/pagemap and
  // /proc/kpageflags, root only); 0 when they cannot be read, and for the default
  // layout (MADV_NOHUGEPAGE: not read, it would cost a read per page).
  uint64_t large_folio_bytes() const;

 private:
  unsigned char* map_ = nullptr;  // what was mapped: the heap, aligned to 2 MiB inside it for THP
  uint64_t map_bytes_ = 0;
  unsigned char* base_ = nullptr;
  uint64_t bytes_ = 0;
  ThpLayout thp_ = ThpLayout::kNone;
  bool touch_vmas_ = true;
  unsigned char* vma_base_ = nullptr;  // 2 * vmas pages, the odd ones unmapped
  uint64_t vmas_ = 0;
};

Backing read_backing(const Heap& heap);
// How much more memory the runner can use: the least of MemAvailable and, for
// its cgroup and each ancestor, memory.max and memory.high minus memory.current
// (cgroup v2) or memory.limit_in_bytes minus memory.usage_in_bytes (v1).
struct MemoryRoom {
  uint64_t bytes = 0;
  bool limited = false;  // false: nothing known (bytes is 0)
  std::string source;    // "MemAvailable", or the limiting file, e.g. /sys/fs/cgroup/job/memory.max
};
MemoryRoom memory_room();
// The cgroup part alone, from these /proc/self/mountinfo and /proc/self/cgroup files.
MemoryRoom cgroup_memory_room(const std::string& mountinfo, const std::string& cgroup_file);

// One kind of launch.  mode is fork, vfork, clone, clone-vm, pthread, posix_spawn,
// or a custom clone flag set built from names (VM,FS,FILES,SIGHAND,THREAD,...).
struct LaunchSpec {
  std::string mode;
  uint64_t clone_flags = 0;  // for clone modes; 0 otherwise
  std::string flags_label;   // "VM|FS" style, for the report
};

const std::vector<std::string>& known_modes();
LaunchSpec parse_mode(const std::string& mode);          // throws usage_error
LaunchSpec parse_clone_flags(const std::string& names);  // "VM,FS,FILES": throws usage_error
// "VM|FS|0x400000" for clone flags; "none" for none.
std::string clone_flags_label(uint64_t flags);
// What a launch with these flags (signal, tid and tls bits off) is: fork, vfork,
// thread, clone-vm or clone:<FLAGS>.
std::string launch_kind(uint64_t flags);

struct LaunchSample {
  bool ok = false;
  int err = 0;  // errno when !ok
  uint64_t call_to_return = 0;
  uint64_t call_to_child = 0;  // 0 when the child did not stamp
  uint64_t call_to_reaped = 0;
};

class Launcher {
 public:
  virtual ~Launcher() = default;
  virtual LaunchSample launch() = 0;
};
// child_program: path of forkscope-child (used by posix_spawn).
std::unique_ptr<Launcher> make_launcher(const LaunchSpec& spec, const std::string& child_program);

// Hooks the sweep calls so the kernel side can follow the cells.
struct CellHooks {
  std::function<void(uint32_t cell)> begin;  // before the first counted launch
  std::function<void()> end;                 // after the last one
  std::function<void(Cell& cell, uint32_t index)> collect;
  std::function<void(uint32_t seq)> sample;  // before each counted launch: its number, or 0 when not sampled
  std::function<void(bool traced)> trace;    // --overhead: detach every program, or attach them again
  std::function<void(const std::vector<Cell>& cells)> done;  // after each cell, with the cells so far (optional)
};

struct SweepOptions {
  std::vector<LaunchSpec> modes;
  std::vector<uint64_t> heaps;
  uint64_t iterations = 10000;
  double cell_seconds = 4.0;
  uint64_t warmup = 20;
  ThpLayout thp = ThpLayout::kNone;
  std::vector<uint64_t> vma_counts{0};  // one-page mappings added to the runner (--vmas): cells per count
  bool touch_vmas = true;               // --vma-touch touched (or none)
  int cpu = -1;
  bool quiet = false;
  unsigned threads = 1;   // launching threads per cell, each with its own launches
  bool overhead = false;  // interleave blocks of untraced launches (not counted) with the traced ones
  std::string child_program;
};

// n launches in a row: the call-to-return times of those that succeeded.  Stops
// early when *stop becomes true.
std::vector<uint64_t> launch_block(Launcher& launcher, uint64_t n, const std::atomic<bool>* stop = nullptr);

// --overhead and the start-up calibration: n launches with every program detached
// (trace(false) before, trace(true) after); the call-to-return times of those that
// succeeded.  Stops early when *stop becomes true.
std::vector<uint64_t> untraced_block(Launcher& launcher, uint64_t n, const std::function<void(bool)>& trace,
                                     const std::atomic<bool>* stop = nullptr);

// Cells the sweep runs: modes x heap sizes x VMA counts.
size_t sweep_cells_count(const SweepOptions& opt);

// Runs every cell; stops early (returning the cells done) when *stop becomes true.
std::vector<Cell> run_sweep(const SweepOptions& opt, const CellHooks& hooks, const std::atomic<bool>* stop);

uint64_t now_ns();  // CLOCK_MONOTONIC, the clock bpf_ktime_get_ns reads

}  // namespace forkscope
