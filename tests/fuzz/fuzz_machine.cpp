// libFuzzer target: the phase machine of include/forkscope/shared/machine.h, the
// code the BPF programs run on every event, fed with arbitrary event streams
// under arbitrary run configurations.  The kernel side cannot be debugged after
// the fact, so every step is checked against the invariants the report relies on.
//
// Input: a configuration (which phases function probes measure, up to four
// --phase slots and their parents, the vfork flag, whether launches are sampled
// span by span), then events of two bytes
// each: an operation (landmark, function entry or exit, new launch) and a time
// step.  Past the end of the input the stream stops.
#include <linux/types.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "forkscope/shared/catalog.h"
#include "forkscope/shared/machine.h"

namespace {

// Phases a function probe may open: the catalog names functions for them.
constexpr bool kCatalogFunction[FS_NPHASES] = {
#define FS_X_HAS_FN(id, name, parent, src, fns, how) sizeof(fns) > 1,
    FS_PHASES(FS_X_HAS_FN)
#undef FS_X_HAS_FN
};

class Bytes {
 public:
  Bytes(const uint8_t* data, size_t size) : p_(data), end_(data + size) {}
  bool empty() const { return p_ == end_; }
  uint8_t u8() { return p_ < end_ ? *p_++ : 0; }
  uint32_t u32() {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= uint32_t{u8()} << (8 * i);
    return v;
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

[[noreturn]] void violated(const char* what, int phase, unsigned long long a, unsigned long long b) {
  std::fprintf(stderr, "phase machine invariant broken: %s (phase %d: %llu vs %llu)\n", what, phase, a, b);
  std::abort();
}

// The configuration plan_run (src/probes) can produce: tracepoint landmarks,
// some phases taken over by function probes, --phase slots under catalog phases.
fs_config decode_config(Bytes& in) {
  fs_config c{};
  fs_config_tracepoint(&c);
  const uint32_t probed = in.u32();
  for (int ph = 0; ph < FS_PH_USER0; ph++) {
    if (!kCatalogFunction[ph] || !((probed >> ph) & 1)) continue;
    c.measured |= FS_BIT(ph);
    c.landmarks &= ~FS_BIT(ph);
  }
  const int slots = in.u8() % (FS_USER_PHASES + 1);
  for (int i = 0; i < slots; i++) {
    // Under a kernel phase: libc_fork and its parts (user space, just before the
    // slots) are refused as parents by parse_user_phase.
    static_assert(FS_PH_FORK_PARENT + 1 == FS_PH_USER0, "the libc_fork phases sit just before the slots");
    c.parent[FS_PH_USER0 + i] = in.u8() % FS_PH_LIBC_FORK;
    c.measured |= FS_BIT(FS_PH_USER0 + i);
  }
  return c;
}

bool function_probed(const fs_config& c, int ph) {
  const bool has_function = kCatalogFunction[ph] || ph >= FS_PH_USER0;
  return has_function && (c.measured & FS_BIT(ph)) && !(c.landmarks & FS_BIT(ph));
}

class Checker {
 public:
  explicit Checker(const fs_config& c) : c_(c) {}

  void begin(fs_launch& l, uint32_t seq, uint64_t now) {
    fs_launch_begin(&l, 0, seq, now);
    remember(l);
    closed_ = false;
  }

  // After every event: a well-formed stack, bounded self times, nothing shrinks.
  void step(const fs_launch& l, uint64_t now) {
    if (l.depth > FS_STACK_DEPTH) violated("depth above FS_STACK_DEPTH", -1, l.depth, FS_STACK_DEPTH);
    if (closed_ && l.depth != 0) violated("a closed launch reopened", fs_top(&l), l.depth, 0);
    for (uint32_t i = 0; i < l.depth; i++) {
      const fs_frame& f = l.stack[i];
      const int ph = static_cast<int>(f.phase);
      if (ph < 0 || ph >= FS_NPHASES) violated("frame holds no phase", ph, i, 0);
      const int want = i == 0 ? FS_PH_NONE : static_cast<int>(l.stack[i - 1].phase);
      if (i == 0 && ph != FS_PH_SYSCALL) violated("stack root is not the syscall", ph, i, 0);
      if (i > 0 && fs_effective_parent(&c_, ph) != want)
        violated("frame not under its parent", ph, static_cast<unsigned long long>(fs_effective_parent(&c_, ph)),
                 static_cast<unsigned long long>(want));
      if (i > 0 && f.start < l.stack[i - 1].start)
        violated("frame starts before its parent", ph, f.start, l.stack[i - 1].start);
      if (f.start > now) violated("frame starts in the future", ph, f.start, now);
      if (f.child_ns > now - f.start) violated("children longer than the frame", ph, f.child_ns, now - f.start);
    }
    for (int ph = 0; ph < FS_NPHASES; ph++) {
      if (l.self_ns[ph] > l.total_ns[ph]) violated("self above total", ph, l.self_ns[ph], l.total_ns[ph]);
      if (l.total_ns[ph] < prev_.total_ns[ph]) violated("total went down", ph, l.total_ns[ph], prev_.total_ns[ph]);
      if (l.self_ns[ph] < prev_.self_ns[ph]) violated("self went down", ph, l.self_ns[ph], prev_.self_ns[ph]);
      if (l.calls[ph] < prev_.calls[ph]) violated("calls went down", ph, l.calls[ph], prev_.calls[ph]);
    }
    if (l.seq) spans(l, now);
    remember(l);
  }

  // Once sys_exit closed the launch: every phase's self time and its children's
  // totals add up to its total, so the report's tree never loses or invents time.
  void closed(const fs_launch& l) {
    if (l.depth != 0) violated("sys_exit left frames open", fs_top(&l), l.depth, 0);
    closed_ = true;
    for (int ph = 0; ph < FS_NPHASES; ph++) {
      uint64_t children = 0;
      for (int c = 0; c < FS_NPHASES; c++) {
        if (c != ph && fs_effective_parent(&c_, c) == ph) children += l.total_ns[c];
      }
      if (l.self_ns[ph] + children != l.total_ns[ph])
        violated("self + children != total", ph, l.self_ns[ph] + children, l.total_ns[ph]);
    }
  }

 private:
  // A sampled launch records every closed span, or counts it as dropped.
  static void spans(const fs_launch& l, uint64_t now) {
    if (l.nspans > FS_MAX_SPANS) violated("more spans than FS_MAX_SPANS", -1, l.nspans, FS_MAX_SPANS);
    uint64_t calls = 0;
    for (int ph = 0; ph < FS_NPHASES; ph++) calls += l.calls[ph];
    if (l.nspans + l.spans_dropped != calls)
      violated("spans recorded + dropped != calls", -1, l.nspans + l.spans_dropped, calls);
    for (uint32_t i = 0; i < l.nspans; i++) {
      const fs_span& sp = l.spans[i];
      if (sp.phase >= FS_NPHASES) violated("span holds no phase", static_cast<int>(sp.phase), i, 0);
      if (sp.start + sp.dur > now)
        violated("span ends in the future", static_cast<int>(sp.phase), sp.start + sp.dur, now);
    }
  }

  void remember(const fs_launch& l) {
    std::memcpy(prev_.total_ns, l.total_ns, sizeof prev_.total_ns);
    std::memcpy(prev_.self_ns, l.self_ns, sizeof prev_.self_ns);
    std::memcpy(prev_.calls, l.calls, sizeof prev_.calls);
  }

  const fs_config& c_;
  struct {
    uint64_t total_ns[FS_NPHASES];
    uint64_t self_ns[FS_NPHASES];
    uint32_t calls[FS_NPHASES];
  } prev_{};
  bool closed_ = false;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Bytes in(data, size);
  const fs_config c = decode_config(in);
  const uint8_t launch = in.u8();
  const uint32_t flags = launch & FS_LF_VFORK;
  const uint32_t seq = (launch >> 1) & 1;
  Checker check(c);
  // Static: fs_launch holds the spans of a sampled launch, too big for a stack frame.
  static fs_launch l;
  uint64_t now = 1000;
  check.begin(l, seq, now);
  l.flags = flags;
  while (!in.empty()) {
    const uint8_t op = in.u8();
    const uint8_t step = in.u8();
    // 0..31 units of 1 ns .. 2^35 ns: both tight bursts and long stalls.
    now += uint64_t{step & 31u} << (5 * (step >> 5));
    const int arg = op & 63;
    switch (op >> 6) {
      case 0:
      case 1:  // a landmark, including values no program emits
        fs_landmark(&l, arg % (FS_LM_COUNT + 2), now, &c);
        if (arg % (FS_LM_COUNT + 2) == FS_LM_SYS_EXIT) check.closed(l);
        break;
      case 2:
        if (arg == 63) {  // the thread's next launch
          check.begin(l, seq, now);
          l.flags = flags;
          continue;
        }
        if (function_probed(c, arg % FS_NPHASES)) fs_function_entry(&l, arg % FS_NPHASES, now, &c);
        break;
      default:
        if (function_probed(c, arg % FS_NPHASES)) fs_function_exit(&l, arg % FS_NPHASES, now, &c);
        break;
    }
    check.step(l, now);
  }
  return 0;
}
