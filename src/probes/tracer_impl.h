#pragma once
// What the tracer core (tracer.cpp) and the probe-cost measurement
// (probe_cost.cpp) share: the loaded skeleton and its hand-attached links.
#include <linux/types.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "forkscope/probes.h"
#include "forkscope.skel.h"

namespace forkscope {

struct LinkDeleter {
  void operator()(bpf_link* link) const { bpf_link__destroy(link); }
};
// A link attached by hand; destroying it detaches the program.  Move-only.
using Link = std::unique_ptr<bpf_link, LinkDeleter>;

// copy_page_range's own programs (fs_fentry_cpr...): a slot's, which also read the
// source VMA for the exact per-mapping attribution (bpf/mappings.bpf.h).
inline constexpr int kCprSlot = FS_MAX_FN_SLOTS;

// A function slot's program of one kind: "fs_fentry_", "fs_fexit_", "fs_kprobe_", "fs_kretprobe_".
bpf_program* slot_program(forkscope_bpf* skel, const char* kind, int slot);

std::string errno_text(int err);

struct Tracer::Impl {
  forkscope_bpf* skel = nullptr;
  std::vector<Link> links;  // kprobe slots and libc_fork's uprobes, attached by hand
  ring_buffer* ring = nullptr;
  int ncpus = 0;
  // Records drained from the ring buffer, until the cell they belong to is collected.
  std::vector<fs_launch> launches;
  std::vector<fs_child_span> child_spans;
  std::vector<std::pair<int, int>> kprobe_slots;  // slot, phase
  int cal_slot = -1;                              // the probe-cost calibration's slot, -1: none

  void attach_kprobes(const RunPlan& p);
  // libc_fork's uprobe and uretprobe on fork() in libc (every process mapping it);
  // why they could not be attached, or "".
  std::string attach_libc_fork(const std::string& libc);
  ~Impl();
};

}  // namespace forkscope
