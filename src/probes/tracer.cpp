// The tracer core: loads the BPF skeleton as the plan says, attaches it, and
// reads what it aggregated.
//
// Long (about 650 lines) on purpose: it is the one file that touches the
// skeleton's maps and globals, so every read of the kernel side (cells, groups,
// samples, mappings, health) sits beside the layout it depends on; the plan
// (plan.cpp) and the probe-cost calibration (probe_cost.cpp) are split out.
#include <linux/types.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <fstream>

#include "forkscope/error.h"
#include "forkscope/untrusted.h"
#include "probes/tracer_impl.h"

namespace forkscope {

namespace {

bool g_verbose = false;

int libbpf_print(enum libbpf_print_level, const char* fmt, va_list args) {
  if (!g_verbose) return 0;
  return std::vfprintf(stderr, fmt, args);
}

// trace: the live children the children map holds (the kernel's default pid_max).
constexpr __u32 kTraceChildren = 32768;
constexpr const char* kSlotKinds[] = {"fs_fentry_", "fs_fexit_", "fs_kprobe_", "fs_kretprobe_"};

// A function slot's four programs: the fentry pair loads when fentry (aimed at
// function), the kprobe pair when kprobe (attached by hand, by name); autoattach
// false leaves the loaded pair for the caller to attach.
void configure_slot(forkscope_bpf* skel, int slot, bool fentry, bool kprobe, const std::string& function,
                    bool autoattach = true) {
  for (const char* kind : kSlotKinds) {
    bpf_program* prog = slot_program(skel, kind, slot);
    const bool is_fentry = kind[3] == 'f';
    const bool use = is_fentry ? fentry : kprobe;
    bpf_program__set_autoload(prog, use);
    if (!autoattach) bpf_program__set_autoattach(prog, false);
    if (use && is_fentry) bpf_program__set_attach_target(prog, 0, function.c_str());
  }
}

}  // namespace

std::string errno_text(int err) { return std::strerror(err < 0 ? -err : err); }

bpf_program* slot_program(forkscope_bpf* skel, const char* kind, int slot) {
  return bpf_object__find_program_by_name(skel->obj,
                                          (kind + (slot == kCprSlot ? "cpr" : std::to_string(slot))).c_str());
}

void set_libbpf_verbose(bool verbose) {
  g_verbose = verbose;
  libbpf_set_print(libbpf_print);
}

// kprobe slots are attached by name at run time (the skeleton cannot).
void Tracer::Impl::attach_kprobes(const RunPlan& p) {
  for (auto [s, id] : kprobe_slots) {
    for (bool ret : {false, true}) {
      Link link(bpf_program__attach_kprobe(slot_program(skel, ret ? "fs_kretprobe_" : "fs_kprobe_", s), ret,
                                           p.function[id].c_str()));
      if (!link) {
        throw Error(kExitPrivilege, "attaching a kprobe to " + p.function[id] + " failed (" + errno_text(errno) +
                                        "); try --backend tracepoint");
      }
      links.push_back(std::move(link));
    }
  }
}

std::string Tracer::Impl::attach_libc_fork(const std::string& libc) {
  for (bool ret : {false, true}) {
    LIBBPF_OPTS(bpf_uprobe_opts, opts, .retprobe = ret, .func_name = "fork");
    Link link(bpf_program__attach_uprobe_opts(ret ? skel->progs.fs_libc_fork_return : skel->progs.fs_libc_fork_entry,
                                              -1, libc.c_str(), 0, &opts));
    if (!link) return std::string(ret ? "uretprobe" : "uprobe") + " on fork in " + libc + ": " + errno_text(errno);
    links.push_back(std::move(link));
  }
  return "";
}

Tracer::Impl::~Impl() {
  if (ring) ring_buffer__free(ring);
  links.clear();
  if (skel) forkscope_bpf__destroy(skel);  // detaches every other link, closes every map
}

std::unique_ptr<Tracer> Tracer::open(RunPlan plan, bool verbose, uint32_t cells, bool following) {
  if (cells == 0 || cells > FS_MAX_CELLS) throw Error(kExitFailure, "internal: cell count out of range");
  set_libbpf_verbose(verbose);
  std::unique_ptr<Tracer> t(new Tracer());
  t->plan_ = std::move(plan);
  t->impl_ = std::make_unique<Impl>();
  t->impl_->ncpus = libbpf_num_possible_cpus();
  if (t->impl_->ncpus <= 0) throw Error(kExitFailure, "cannot count possible CPUs");

  std::string tracefs_why;
  ensure_tracefs(&tracefs_why);  // tp_btf does not need it; doctor reports it

  forkscope_bpf* skel = forkscope_bpf__open();
  if (!skel) throw Error(kExitFailure, "cannot open the BPF object: " + errno_text(errno));
  t->impl_->skel = skel;

  const RunPlan& p = t->plan_;
  for (size_t i = 0; i < p.sites.size() && i < FS_MAX_SITES; i++) {
    skel->rodata->sites[i].start = p.sites[i].start;
    skel->rodata->sites[i].end = p.sites[i].end;
    skel->rodata->sites[i].lm = p.sites[i].lm;
  }
  skel->rodata->nsites = static_cast<__u32>(std::min<size_t>(p.sites.size(), FS_MAX_SITES));
  skel->bss->cfg = p.cfg;
  // libc_fork: uprobes on libc's fork(), attached by hand after the load.
  const bool libc_fork = p.source[FS_PH_LIBC_FORK] == FS_SRC_UPROBE;
  for (bpf_program* prog : {skel->progs.fs_libc_fork_entry, skel->progs.fs_libc_fork_return}) {
    bpf_program__set_autoload(prog, libc_fork);
    bpf_program__set_autoattach(prog, false);
  }
  bpf_map__set_max_entries(skel->maps.libc_forks, libc_fork ? 4096 : 1);
  skel->bss->libc_fork_on = libc_fork ? 1 : 0;

  // Function slots: the phases function probes measure, in catalog order.
  std::vector<std::pair<int, int>> kprobe_slots;  // slot, phase
  int slot = 0;
  for (int id = 0; id < FS_NPHASES; id++) {
    const bool fentry = p.source[id] == FS_SRC_FENTRY, kprobe = p.source[id] == FS_SRC_KPROBE;
    if (!p.measured(id) || !(fentry || kprobe)) continue;
    if (id == FS_PH_COPY_PAGE_RANGE && !following) {
      // Its own programs, which read the VMA it copies: per-mapping attribution is exact
      // (run; trace matches its processes' snapshots by order).
      configure_slot(skel, kCprSlot, fentry, kprobe, p.function[id]);
      if (kprobe) kprobe_slots.push_back({kCprSlot, id});
      skel->rodata->mapping_exact = 1;
      continue;
    }
    if (slot >= FS_MAX_FN_SLOTS) throw Error(kExitFailure, "too many function probes for the BPF slots");
    skel->bss->slot_phase[slot] = static_cast<__u32>(id);
    configure_slot(skel, slot, fentry, kprobe, p.function[id]);
    if (kprobe) kprobe_slots.push_back({slot, id});
    slot++;
  }
  // One more slot for the probe-cost calibration (probe_costs()), per kind in use:
  // loaded now, attached only while it measures, under a launch record of the
  // calibrating thread's own.
  if (!p.calibration_function.empty() && slot < FS_MAX_FN_SLOTS) {
    t->impl_->cal_slot = slot;
    // Under the calibration's own launch record (probe_costs) the slot opens and
    // closes a phase directly under the root, as a phase's probes do in a launch.
    skel->bss->slot_phase[slot] = FS_PH_KERNEL_CLONE;
    const auto uses = [&](int source) { return std::count(p.source.begin(), p.source.end(), source) > 0; };
    configure_slot(skel, slot, uses(FS_SRC_FENTRY), uses(FS_SRC_KPROBE), p.calibration_function, /*autoattach=*/false);
    slot++;
  }
  for (; slot < FS_MAX_FN_SLOTS; slot++) configure_slot(skel, slot, false, false, "");
  if (!skel->rodata->mapping_exact) configure_slot(skel, kCprSlot, false, false, "");

  // Per-CPU maps cost cells x phases x CPUs values: only what the run uses.
  bpf_map__set_max_entries(skel->maps.agg, cells * FS_NPHASES);
  bpf_map__set_max_entries(skel->maps.agg_failed, cells * FS_NPHASES);
  bpf_map__set_max_entries(skel->maps.cellstats, cells);
  if (!following) {
    // The runner: at most 64 launching threads, each with one child in flight.
    bpf_map__set_max_entries(skel->maps.tracked, 1);
    bpf_map__set_max_entries(skel->maps.launches, 160);
    // The order method's per-launch scratch; the exact method needs none.
    bpf_map__set_max_entries(skel->maps.vma_scratch, skel->rodata->mapping_exact ? 1 : 160);
    bpf_map__set_max_entries(skel->maps.huge_launchers, 1);  // trace's (launchers' huge pages)
  } else {
    // trace: a scratch entry (8 KiB) per launch copying VMAs at once; past that, the
    // launch's per-mapping times are counted lost (mappings.bpf.h).
    bpf_map__set_max_entries(skel->maps.vma_scratch, 256);
    bpf_map__set_max_entries(skel->maps.map_exact, 1);  // the exact method is run's (mappings.bpf.h)
    // Every live child of the traced tasks (160 bytes each, preallocated: 5.2 MB),
    // and the exited, unreaped ones of parents in pid namespaces (88 bytes each);
    // past that, a child is counted lost (child_remember, child_exiting).
    bpf_map__set_max_entries(skel->maps.children, kTraceChildren);
    bpf_map__set_max_entries(skel->maps.ns_pids, kTraceChildren / 4);
  }
  // --depth: the allocation and lock programs run for every task's allocations and
  // locks, so a shallower depth does not load them at all.
  bpf_program__set_autoload(skel->progs.fs_kmem_cache_alloc, p.allocation_programs());
  bpf_program__set_autoload(skel->progs.fs_mmap_lock_acquired, p.mmap_lock_programs());
  bpf_program__set_autoload(skel->progs.fs_mmap_lock_released, p.mmap_lock_programs());
  bpf_program__set_autoload(skel->progs.fs_mm_page_alloc, p.detail && p.allocation_programs());
  bpf_program__set_autoload(skel->progs.fs_page_fault_user, p.detail || p.exec);
  // One set of syscall hooks: the syscall functions (fentry/fexit or
  // kprobe/kretprobe, per syscall), the per-syscall tracepoints, or the raw pair.
  const bool raw = p.syscall_hooks == SyscallHooks::kRaw;
  bpf_program__set_autoload(skel->progs.fs_sys_enter, raw);
  bpf_program__set_autoload(skel->progs.fs_sys_exit, raw);
  const auto set_autoload = [&](const std::string& name, bool load) {
    if (bpf_program* prog = bpf_object__find_program_by_name(skel->obj, name.c_str()))
      bpf_program__set_autoload(prog, load);
    else throw Error(kExitFailure, "internal: no BPF program " + name);
  };
  for (size_t i = 0; i < hooked_syscalls().size(); i++) {
    const HookedSyscall& s = hooked_syscalls()[i];
    const int source = p.syscall_hooks == SyscallHooks::kFunctions && i < p.syscall_source.size()
                           ? p.syscall_source[i]
                           : static_cast<int>(FS_SRC_NONE);
    for (const char* side : {"enter_", "exit_"}) {
      if (!s.returns && side[1] == 'x') continue;  // exit and exit_group: no return hook
      set_autoload(std::string("fs_") + side + s.name, p.syscall_hooks == SyscallHooks::kPerSyscall);
      set_autoload(std::string("fs_fn_") + side + s.name, source == FS_SRC_FENTRY);
      set_autoload(std::string("fs_kp_") + side + s.name, source == FS_SRC_KPROBE);
    }
  }

  int err = forkscope_bpf__load(skel);
  const bool loaded = err == 0;
  if (loaded) err = forkscope_bpf__attach(skel);
  if (err && !raw) {
    // Tried for real: a kernel whose syscall functions or per-syscall tracepoints
    // do not take our programs gets the next hooks instead.
    RunPlan next = t->plan_;
    std::string why;
    next.syscall_hooks = p.syscall_hooks == SyscallHooks::kFunctions ? choose_syscall_hooks(&why) : SyscallHooks::kRaw;
    next.syscall_hooks_why += std::string(next.syscall_hooks_why.empty() ? "" : "; ") +
                              (p.syscall_hooks == SyscallHooks::kFunctions ? "the syscall functions"
                                                                           : "the per-syscall tracepoints") +
                              " refused forkscope's programs (" + errno_text(err) + ")" +
                              (why.empty() ? "" : "; " + why);
    t.reset();
    return open(std::move(next), verbose, cells, following);
  }
  if (!loaded) {
    int code = (err == -EPERM || err == -EACCES) ? kExitPrivilege : kExitFailure;
    throw Error(code, "the kernel refused forkscope's BPF programs (" + errno_text(err) +
                          "); run with --verbose for the verifier log");
  }
  if (err) {
    throw Error(kExitPrivilege, "attaching BPF programs failed (" + errno_text(err) +
                                    "); this kernel needs BTF-enabled tracepoints (tp_btf)");
  }
  t->impl_->kprobe_slots = std::move(kprobe_slots);
  t->impl_->attach_kprobes(p);
  if (libc_fork) {
    // Tried for real: where the kernel or the library refuses, the phases say why.
    if (const std::string why = t->impl_->attach_libc_fork(p.libc_path); !why.empty()) {
      libc_fork_unmeasured(t->plan_, why);
      skel->bss->libc_fork_on = 0;
    }
  }
  t->impl_->ring = ring_buffer__new(bpf_map__fd(skel->maps.samples), on_record, t->impl_.get(), nullptr);
  if (!t->impl_->ring) throw Error(kExitFailure, "cannot open the samples ring buffer: " + errno_text(errno));
  return t;
}

int Tracer::on_record(void* ctx, void* data, size_t size) {
  auto* impl = static_cast<Impl*>(ctx);
  __u32 type;
  if (size < sizeof type) return 0;
  std::memcpy(&type, data, sizeof type);
  if (type == FS_REC_LAUNCH && size >= sizeof(fs_launch)) {
    impl->launches.emplace_back();
    std::memcpy(&impl->launches.back(), data, sizeof(fs_launch));
  } else if (type == FS_REC_CHILD_SPAN && size >= sizeof(fs_child_span)) {
    impl->child_spans.emplace_back();
    std::memcpy(&impl->child_spans.back(), data, sizeof(fs_child_span));
  }
  return 0;
}

namespace {

// The entries of a hash map keyed by a struct with a cell field, for one cell, go.
template <typename K>
void delete_cell_keys(bpf_map* map, uint32_t cell) {
  const int fd = bpf_map__fd(map);
  std::vector<K> keys;
  K k{};
  for (const void* prev = nullptr; bpf_map_get_next_key(fd, prev, &k) == 0; prev = &keys.back()) keys.push_back(k);
  for (const K& key : keys)
    if (key.cell == cell) bpf_map_delete_elem(fd, &key);
}

}  // namespace

void Tracer::reset_cell(uint32_t cell) {
  std::vector<fs_agg> agg(impl_->ncpus);
  std::vector<fs_cellstat> stat(impl_->ncpus);
  for (int ph = 0; ph < FS_NPHASES; ph++) {
    __u32 key = cell * FS_NPHASES + ph;
    bpf_map_update_elem(bpf_map__fd(impl_->skel->maps.agg), &key, agg.data(), BPF_ANY);
  }
  std::vector<fs_agg_failed> failed(impl_->ncpus);
  for (int ph = 0; ph < FS_NPHASES; ph++) {
    __u32 key = cell * FS_NPHASES + ph;
    bpf_map_update_elem(bpf_map__fd(impl_->skel->maps.agg_failed), &key, failed.data(), BPF_ANY);
  }
  __u32 key = cell;
  bpf_map_update_elem(bpf_map__fd(impl_->skel->maps.cellstats), &key, stat.data(), BPF_ANY);
  delete_cell_keys<fs_map_key>(impl_->skel->maps.map_agg, cell);
  delete_cell_keys<fs_map_exact_key>(impl_->skel->maps.map_exact, cell);
}

void Tracer::set_attached(bool attached) {
  if (attached == attached_) return;
  if (attached) {
    // A launch or exec in flight when the programs went was never closed: its
    // record goes, and the gates count what the maps hold again (maps.bpf.h).
    auto* bss = impl_->skel->bss;
    const int launches_fd = bpf_map__fd(impl_->skel->maps.launches);
    for (__u32 tid = 0; bpf_map_get_next_key(launches_fd, nullptr, &tid) == 0;)
      if (bpf_map_delete_elem(launches_fd, &tid)) break;
    __atomic_store_n(&bss->launches_in_flight, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&bss->execs_in_flight, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&bss->first_insn_pending, 0, __ATOMIC_SEQ_CST);
    __u32 children = 0;
    const int children_fd = bpf_map__fd(impl_->skel->maps.children);
    __u32 key = 0, next = 0;
    for (const void* prev = nullptr; bpf_map_get_next_key(children_fd, prev, &next) == 0; key = next, prev = &key)
      children++;
    __atomic_store_n(&bss->children_live, children, __ATOMIC_SEQ_CST);
    __atomic_store_n(&bss->first_run_pending, children, __ATOMIC_SEQ_CST);  // at most that many
    if (int err = forkscope_bpf__attach(impl_->skel))
      throw Error(kExitFailure, "re-attaching BPF programs failed (" + errno_text(err) + ")");
    impl_->attach_kprobes(plan_);
    if (plan_.source[FS_PH_LIBC_FORK] == FS_SRC_UPROBE) impl_->attach_libc_fork(plan_.libc_path);
  } else {
    impl_->links.clear();
    forkscope_bpf__detach(impl_->skel);
  }
  attached_ = attached;
}

void Tracer::set_allocation_landmarks(bool attached) {
  bpf_link*& link = impl_->skel->links.fs_kmem_cache_alloc;
  if (!plan_.allocation_programs() || !attached_ || (link != nullptr) == attached) return;
  if (attached) {
    link = bpf_program__attach(impl_->skel->progs.fs_kmem_cache_alloc);
    if (!link) throw Error(kExitFailure, "re-attaching the allocation landmarks failed (" + errno_text(errno) + ")");
  } else {
    bpf_link__destroy(link);
    link = nullptr;
  }
}

std::vector<std::string> Tracer::attached_programs() const {
  std::vector<std::string> out;
  if (!attached_) return out;
  bpf_program* prog;
  bpf_object__for_each_program(prog, impl_->skel->obj) {
    if (bpf_program__fd(prog) < 0) continue;
    const std::string name = bpf_program__name(prog);
    // Function slots are attached by the skeleton (fentry) or by hand (kprobe); the
    // calibration's slot only while it measures.
    if (name.starts_with("fs_fentry_") || name.starts_with("fs_fexit_") || name.starts_with("fs_kprobe_") ||
        name.starts_with("fs_kretprobe_")) {
      const int slot = name.ends_with("_cpr") ? kCprSlot : std::stoi(name.substr(name.rfind('_') + 1));
      if (slot == impl_->cal_slot) continue;
    } else if (name == "fs_kmem_cache_alloc" && !impl_->skel->links.fs_kmem_cache_alloc) {
      continue;
    }
    out.push_back(name);
  }
  return out;
}

// Only the calling thread's next launch is sampled: with --threads, the other
// launching threads' launches would take the same number.
void Tracer::sample_next(uint32_t seq) {
  if (seq != 0) __atomic_store_n(&impl_->skel->bss->sample_tid, static_cast<uint32_t>(gettid()), __ATOMIC_SEQ_CST);
  __atomic_store_n(&impl_->skel->bss->sample_seq, seq, __ATOMIC_SEQ_CST);
}

void Tracer::consume_samples() { ring_buffer__consume(impl_->ring); }

std::vector<Sample> Tracer::drain_samples(uint32_t cell) {
  ring_buffer__consume(impl_->ring);
  std::vector<Sample> out;
  for (const fs_launch& l : impl_->launches) {
    if (l.cell != cell) continue;
    Sample s;
    s.seq = l.seq;
    s.parent_tid = static_cast<int>(l.tid);
    s.child_pid = l.child;
    s.start_ns = l.start_ns;
    for (__u32 i = 0; i < std::min<__u32>(l.nspans, FS_MAX_SPANS); i++) {
      const fs_span& sp = l.spans[i];
      if (sp.phase >= FS_NPHASES) continue;
      s.spans.push_back({plan_.name[sp.phase], phase_path(plan_, sp.phase), static_cast<int64_t>(sp.start - l.start_ns),
                         sp.dur, "parent"});
    }
    for (const fs_child_span& c : impl_->child_spans) {
      if (c.cell != cell || c.seq != l.seq || c.phase >= FS_NPHASES) continue;
      s.spans.push_back({plan_.name[c.phase], phase_path(plan_, c.phase),
                         static_cast<int64_t>(c.start) - static_cast<int64_t>(l.start_ns), c.dur, "child"});
    }
    // Timeline order: by start, an enclosing span before the spans it contains.
    std::sort(s.spans.begin(), s.spans.end(), [](const SampleSpan& a, const SampleSpan& b) {
      return a.start_ns != b.start_ns ? a.start_ns < b.start_ns : a.dur_ns > b.dur_ns;
    });
    out.push_back(std::move(s));
  }
  std::erase_if(impl_->launches, [&](const fs_launch& l) { return l.cell == cell; });
  std::erase_if(impl_->child_spans, [&](const fs_child_span& c) { return c.cell == cell; });
  std::sort(out.begin(), out.end(), [](const Sample& a, const Sample& b) { return a.seq < b.seq; });
  return out;
}

Tracer::~Tracer() = default;

void Tracer::set_target(pid_t tgid) {
  __atomic_store_n(&impl_->skel->bss->target_tgid, static_cast<__u32>(tgid), __ATOMIC_SEQ_CST);
}

void Tracer::follow(const Follow& f) {
  auto* bss = impl_->skel->bss;
  bss->self_tgid = static_cast<__u32>(getpid());
  bss->other_cell = kTraceGroups;
  bss->trace_sample_limit = f.samples_per_group;
  bss->follow_mappings = f.mappings ? 1 : 0;
  bss->group_by = f.group_by;
  bss->count_exec_programs = f.exec_programs ? 1 : 0;
  const int free_fd = bpf_map__fd(impl_->skel->maps.free_cells);
  for (__u32 cell = 0; cell < std::min(f.groups, kTraceGroups); cell++)
    if (bpf_map_update_elem(free_fd, nullptr, &cell, BPF_ANY))
      throw Error(kExitFailure, "cannot set up the group cells: " + errno_text(errno));
  if (f.cgroup_fd >= 0) {
    __u32 key = 0;
    if (bpf_map_update_elem(bpf_map__fd(impl_->skel->maps.cgroups), &key, &f.cgroup_fd, BPF_ANY))
      throw Error(kExitFailure, "cannot follow the cgroup: " + errno_text(errno));
  }
  if (f.root > 0) {
    __u32 pid = static_cast<__u32>(f.root);
    if (bpf_map_update_elem(bpf_map__fd(impl_->skel->maps.tracked), &pid, &pid, BPF_ANY))
      throw Error(kExitFailure, "cannot follow pid " + std::to_string(f.root) + ": " + errno_text(errno));
  }
  const __u32 mode = f.all ? FS_FOLLOW_ALL : f.cgroup_fd >= 0 ? FS_FOLLOW_CGROUP : FS_FOLLOW_TREE;
  __atomic_store_n(&bss->follow, mode, __ATOMIC_SEQ_CST);
}

void Tracer::add_followed(pid_t tgid) {
  __u32 pid = static_cast<__u32>(tgid);
  bpf_map_update_elem(bpf_map__fd(impl_->skel->maps.tracked), &pid, &pid, BPF_ANY);
}

namespace {

// Every entry of a (non-per-CPU) hash map, passed to visit(key, value).
template <typename K, typename V, typename Visit>
void for_each_entry(bpf_map* map, Visit visit) {
  const int fd = bpf_map__fd(map);
  K key{}, next{};
  const void* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    V value{};
    if (bpf_map_lookup_elem(fd, &next, &value) == 0) visit(next, value);
    key = next;
    prev = &key;
  }
}

// A task names itself (prctl PR_SET_NAME): made safe here, where it enters.
std::string comm_of(const char (&comm)[16]) { return safe_text(std::string_view(comm, strnlen(comm, sizeof comm))); }

}  // namespace

std::vector<TraceGroup> Tracer::read_groups() const {
  std::vector<TraceGroup> out;
  const int names_fd = bpf_map__fd(impl_->skel->maps.group_names);
  for_each_entry<fs_group_key, __u32>(impl_->skel->maps.groups, [&](const fs_group_key& k, __u32 cell) {
    TraceGroup g;
    g.cell = cell;
    g.flags = k.flags;
    g.id[0] = k.id[0];
    g.id[1] = k.id[1];
    g.comm = comm_of(k.comm);
    fs_group_name name{};
    if (bpf_map_lookup_elem(names_fd, &cell, &name) == 0) {
      if (g.comm.empty()) g.comm = comm_of(name.comm);
      // A file's name is the kernel's, from whoever named it: made safe here too.
      g.exe = safe_text(std::string_view(name.exe, strnlen(name.exe, sizeof name.exe)));
    }
    out.push_back(std::move(g));
  });
  // The overflow cell gathers groups past the limit.
  TraceGroup other;
  other.cell = kTraceGroups;
  other.comm = "(other)";
  other.other = true;
  out.push_back(std::move(other));
  std::sort(out.begin(), out.end(), [](const TraceGroup& a, const TraceGroup& b) { return a.cell < b.cell; });
  return out;
}

void Tracer::unlink_cell(uint32_t cell) {
  if (cell >= kTraceGroups) return;
  std::vector<fs_group_key> keys;
  for_each_entry<fs_group_key, __u32>(impl_->skel->maps.groups, [&](const fs_group_key& k, __u32 c) {
    if (c == cell) keys.push_back(k);
  });
  for (const fs_group_key& k : keys) bpf_map_delete_elem(bpf_map__fd(impl_->skel->maps.groups), &k);
  __atomic_add_fetch(&impl_->skel->bss->cell_gen[cell], 1, __ATOMIC_SEQ_CST);
}

void Tracer::recycle_cell(uint32_t cell) {
  if (cell >= kTraceGroups) return;
  // A program that found the old key before unlink_cell and read the generation
  // after its bump stamped the bumped one: this second bump makes that record stale too.
  __atomic_add_fetch(&impl_->skel->bss->cell_gen[cell], 1, __ATOMIC_SEQ_CST);
  reset_cell(cell);
  __atomic_store_n(&impl_->skel->bss->trace_samples[cell], 0, __ATOMIC_SEQ_CST);
  bpf_map_update_elem(bpf_map__fd(impl_->skel->maps.free_cells), nullptr, &cell, BPF_ANY);
}

uint64_t Tracer::stale_records() const { return __atomic_load_n(&impl_->skel->bss->stale_records, __ATOMIC_SEQ_CST); }

std::vector<TraceParent> Tracer::read_parents() const {
  std::vector<TraceParent> out;
  for_each_entry<__u32, fs_launcher>(impl_->skel->maps.parents, [&](__u32 pid, const fs_launcher& v) {
    TraceParent p{static_cast<int>(pid), comm_of(v.comm), v.launches, v.execs, comm_of(v.exec_comm)};
    if (p.exec_comm == p.comm) p.exec_comm.clear();
    out.push_back(std::move(p));
  });
  std::sort(out.begin(), out.end(), [](const TraceParent& a, const TraceParent& b) {
    return a.launches != b.launches ? a.launches > b.launches : a.pid < b.pid;
  });
  return out;
}

void Tracer::set_cell(uint32_t cell) { __atomic_store_n(&impl_->skel->data->cur_cell, cell, __ATOMIC_SEQ_CST); }

namespace {

// Every CPU's value of one key of a per-CPU array, passed to add(); false when
// the key is not there.
template <typename V, typename Add>
bool sum_percpu(bpf_map* map, __u32 key, int ncpus, Add add) {
  std::vector<V> percpu(ncpus);
  if (bpf_map_lookup_elem(bpf_map__fd(map), &key, percpu.data()) != 0) return false;
  for (const V& v : percpu) add(v);
  return true;
}

}  // namespace

std::map<uint32_t, Tracer::ExecPrograms> Tracer::read_exec_programs(uint32_t cells) const {
  std::map<uint32_t, ExecPrograms> out;
  for_each_entry<fs_exec_key, __u64>(impl_->skel->maps.exec_programs, [&](const fs_exec_key& k, __u64 n) {
    if (k.cell >= cells || n == 0) return;
    // A path from whoever ran execve: made safe where it enters.
    out[k.cell].programs.push_back({safe_text(std::string_view(k.path, strnlen(k.path, sizeof k.path))), n});
  });
  for (uint32_t cell = 0; cell < cells; cell++) {
    uint64_t other = 0;
    sum_percpu<fs_cellstat>(impl_->skel->maps.cellstats, cell, impl_->ncpus,
                            [&](const fs_cellstat& v) { other += v.exec_other; });
    if (other) out[cell].other = other;
  }
  for (auto& [cell, e] : out)
    std::sort(e.programs.begin(), e.programs.end(), [](const ExecProgram& a, const ExecProgram& b) {
      return a.execs != b.execs ? a.execs > b.execs : a.program < b.program;
    });
  return out;
}

std::vector<PhaseAgg> Tracer::read_phases(uint32_t cell) const {
  std::vector<PhaseAgg> out(FS_NPHASES);
  for (int ph = 0; ph < FS_NPHASES; ph++) {
    PhaseAgg& a = out[ph];
    a.hist.assign(FS_HIST_SLOTS, 0);
    sum_percpu<fs_agg>(impl_->skel->maps.agg, cell * FS_NPHASES + ph, impl_->ncpus, [&](const fs_agg& v) {
      a.count += v.count;
      a.calls += v.calls;
      a.total_ns += v.total_ns;
      a.self_ns += v.self_ns;
      a.events += v.events;
      a.fn_events += v.fn_events;
      for (int s = 0; s < FS_HIST_SLOTS; s++) a.hist[s] += v.hist[s];
    });
  }
  return out;
}

std::vector<PhaseAgg> Tracer::read_failed_phases(uint32_t cell) const {
  std::vector<PhaseAgg> out(FS_NPHASES);
  for (int ph = 0; ph < FS_NPHASES; ph++) {
    PhaseAgg& a = out[ph];
    sum_percpu<fs_agg_failed>(impl_->skel->maps.agg_failed, cell * FS_NPHASES + ph, impl_->ncpus,
                              [&](const fs_agg_failed& v) {
                                a.count += v.count;
                                a.calls += v.calls;
                                a.total_ns += v.total_ns;
                                a.self_ns += v.self_ns;
                              });
  }
  return out;
}

KernelCounts Tracer::read_counts(uint32_t cell) const {
  KernelCounts k;
  sum_percpu<fs_cellstat>(impl_->skel->maps.cellstats, cell, impl_->ncpus, [&](const fs_cellstat& v) {
    k.launches += v.launches;
    k.failed += v.failed;
    k.pt_pages += v.pt_pages;
    k.faults_parent += v.faults_parent;
    k.faults_child += v.faults_child;
    k.lost += v.lost;
    k.samples_lost += v.samples_lost;
    k.first_run_missed += v.first_run_missed;
    k.execs += v.execs;
    k.exec_failed += v.exec_failed;
    k.mm_vmas += v.mm_vmas;
    k.mm_vm_bytes += v.mm_total_vm;
    k.mm_rss_bytes += v.mm_rss;
    k.mm_pgtables_bytes += v.mm_pgtables;
  });
  // Sums over launches in the kernel; means here (pages to bytes).
  const uint64_t n = std::max<uint64_t>(1, k.launches), page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  k.mm_vmas /= n;
  k.mm_vm_bytes = k.mm_vm_bytes / n * page;
  k.mm_rss_bytes = k.mm_rss_bytes / n * page;
  k.mm_pgtables_bytes /= n;
  return k;
}

namespace {

// The kernel's errno numbers are Linux's generic ones: this build's must agree.
#define FS_ERRNO_CHECK(name, number) static_assert(name == number, #name " differs from the kernel side's");
FS_LAUNCH_ERRNOS(FS_ERRNO_CHECK)
#undef FS_ERRNO_CHECK

const char* errno_slot_name(int slot) {
#define FS_ERRNO_NAME(name, number) #name,
  static const char* const names[FS_NERRNOS] = {FS_LAUNCH_ERRNOS(FS_ERRNO_NAME) "other"};
#undef FS_ERRNO_NAME
  return names[slot];
}

}  // namespace

std::map<std::string, uint64_t> Tracer::read_failed_errnos(uint32_t cell) const {
  std::array<uint64_t, FS_NERRNOS> by_slot{};
  sum_percpu<fs_cellstat>(impl_->skel->maps.cellstats, cell, impl_->ncpus, [&](const fs_cellstat& v) {
    for (int s = 0; s < FS_NERRNOS; s++) by_slot[s] += v.failed_errno[s];
  });
  std::map<std::string, uint64_t> out;
  for (int s = 0; s < FS_NERRNOS; s++)
    if (by_slot[s]) out[errno_slot_name(s)] = by_slot[s];
  return out;
}

KernelMappings Tracer::read_mappings(uint32_t cell) const {
  KernelMappings out;
  sum_percpu<fs_cellstat>(impl_->skel->maps.cellstats, cell, impl_->ncpus,
                          [&](const fs_cellstat& v) { out.lost += v.map_lost; });
  out.exact = impl_->skel->rodata->mapping_exact != 0;
  if (out.exact) {
    for_each_entry<fs_map_exact_key, fs_map_agg>(impl_->skel->maps.map_exact,
                                                 [&](const fs_map_exact_key& k, const fs_map_agg& v) {
                                                   if (k.cell == cell)
                                                     out.vmas.push_back({k.start, v.calls, v.setup_ns, v.cpr_ns});
                                                 });
    return out;
  }
  for_each_entry<fs_map_key, fs_map_agg>(impl_->skel->maps.map_agg, [&](const fs_map_key& k, const fs_map_agg& v) {
    if (k.cell == cell) out.slots.push_back({k.nvmas, k.idx, v.calls, v.setup_ns, v.cpr_ns, k.tgid});
  });
  return out;
}

std::map<uint32_t, KernelMappings> Tracer::read_all_mappings() const {
  std::map<uint32_t, KernelMappings> out;
  const int fd = bpf_map__fd(impl_->skel->maps.map_agg);
  fs_map_key key{}, next{};
  for (const void* prev = nullptr; bpf_map_get_next_key(fd, prev, &next) == 0; prev = &key) {
    key = next;
    fs_map_agg v{};
    if (bpf_map_lookup_elem(fd, &key, &v) != 0) continue;
    out[key.cell].slots.push_back({key.nvmas, key.idx, v.calls, v.setup_ns, v.cpr_ns, key.tgid});
  }
  for (uint32_t cell = 0; cell <= kTraceGroups; cell++) {
    uint64_t lost = 0;
    sum_percpu<fs_cellstat>(impl_->skel->maps.cellstats, cell, impl_->ncpus,
                            [&](const fs_cellstat& v) { lost += v.map_lost; });
    if (lost) out[cell].lost = lost;
  }
  return out;
}

std::vector<LauncherLayout> Tracer::read_map_launchers() const {
  // Polled every 100 ms: the whole map in one batch syscall where the kernel has them.
  bpf_map* map = impl_->skel->maps.map_launchers;
  const __u32 max = bpf_map__max_entries(map);
  std::vector<__u32> keys(max);
  std::vector<fs_map_launcher> values(max);
  __u32 batch = 0, count = max;
  const int err = bpf_map_lookup_batch(bpf_map__fd(map), nullptr, &batch, keys.data(), values.data(), &count, nullptr);
  std::vector<LauncherLayout> out;
  if (err == 0 || errno == ENOENT) {  // ENOENT: the last batch (here the only one)
    for (__u32 i = 0; i < count; i++) out.push_back({keys[i], values[i].nvmas, values[i].launches, values[i].start_ns});
    return out;
  }
  for_each_entry<__u32, fs_map_launcher>(map, [&](__u32 tgid, const fs_map_launcher& v) {
    out.push_back({tgid, v.nvmas, v.launches, v.start_ns});
  });
  return out;
}

std::vector<CellLauncher> Tracer::read_huge_launchers() const {
  std::vector<CellLauncher> out;
  for_each_entry<fs_huge_key, fs_huge_launcher>(impl_->skel->maps.huge_launchers,
                                                [&](const fs_huge_key& k, const fs_huge_launcher& v) {
                                                  out.push_back({k.tgid, k.cell, v.launches, v.start_ns});
                                                });
  return out;
}

void Tracer::read_cell(uint32_t index, Cell& cell) {
  cell.kernel = read_counts(index);
  std::vector<PhaseAgg> aggs = read_phases(index);
  if (plan_.detail) {
    PhaseAgg& cow = aggs[FS_PH_POST_LAUNCH_COW];
    cow.count = cell.kernel.launches;
    cow.calls = cell.kernel.faults_parent + cell.kernel.faults_child;
  }
  cell.phases = build_phases(aggs, plan_);
  cell.failed_phases = build_phases(read_failed_phases(index), plan_);
  cell.samples = drain_samples(index);
}

void Tracer::wait_children_gone(uint32_t cell, int timeout_ms) const {
  for (int waited = 0; waited <= timeout_ms; waited++) {
    uint64_t born = 0, exited = 0;
    const bool found = sum_percpu<fs_cellstat>(impl_->skel->maps.cellstats, cell, impl_->ncpus,
                                               [&](const fs_cellstat& v) {
                                                 born += v.children_born;
                                                 exited += v.children_exited;
                                               });
    if (!found || exited >= born) return;
    usleep(1000);
  }
}

// The kernel's own account of each map's memory (fdinfo "memlock:", which since
// Linux 6.4 is what the map really uses: a hash created without preallocation
// counts only the entries it holds); the size from the map's shape where the
// kernel does not say.
uint64_t Tracer::map_bytes() const {
  uint64_t total = 0;
  struct bpf_map* m;
  bpf_object__for_each_map(m, impl_->skel->obj) {
    std::ifstream info("/proc/self/fdinfo/" + std::to_string(bpf_map__fd(m)));
    std::string key;
    uint64_t memlock = 0;
    while (info >> key)
      if (key == "memlock:" && info >> memlock) break;
    if (memlock) {
      total += memlock;
      continue;
    }
    uint64_t value = bpf_map__value_size(m);
    uint64_t entries = bpf_map__max_entries(m);
    bool percpu = bpf_map__type(m) == BPF_MAP_TYPE_PERCPU_ARRAY;
    total += entries * (bpf_map__key_size(m) + value) * (percpu ? impl_->ncpus : 1);
  }
  return total;
}

}  // namespace forkscope
