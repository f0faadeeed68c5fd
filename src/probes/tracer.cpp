#include <linux/types.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <map>

#include "forkscope/error.h"
#include "forkscope/probes.h"
#include "forkscope.skel.h"

namespace forkscope {

namespace {

bool g_verbose = false;

int libbpf_print(enum libbpf_print_level, const char* fmt, va_list args) {
  if (!g_verbose) return 0;
  return std::vfprintf(stderr, fmt, args);
}

// Kernel functions whose allocations are landmarks, and the phases that need them.
struct SiteSpec {
  const char* function;
  __u32 landmark;  // 0: copy_process, classified by the slab cache
  std::vector<int> phases;
};

const std::vector<SiteSpec>& site_specs() {
  static const std::vector<SiteSpec> specs = {
      {"copy_process", 0,
       {FS_PH_COPY_PROCESS, FS_PH_DUP_TASK_STRUCT, FS_PH_COPY_SIGHAND, FS_PH_COPY_SIGNAL, FS_PH_DUP_MM}},
      {"prepare_creds", FS_LM_CREDS, {FS_PH_COPY_CREDS}},
      {"dup_fd", FS_LM_FILES, {FS_PH_COPY_FILES}},
      {"copy_fs_struct", FS_LM_FS, {FS_PH_COPY_FS}},
      {"vm_area_dup", FS_LM_VMA_DUP, {FS_PH_VMA_SETUP, FS_PH_COPY_PAGE_RANGE}},
      {"anon_vma_clone", FS_LM_ANON_VMA, {}},
      {"anon_vma_fork", FS_LM_ANON_VMA, {FS_PH_COPY_PAGE_RANGE}},  // which VMAs copy page tables
      {"alloc_pid", FS_LM_PID, {FS_PH_ALLOC_PID}},
  };
  return specs;
}

std::string errno_text(int err) { return std::strerror(err < 0 ? -err : err); }

int phase_by_name(const std::string& name) {
  for (const CatalogEntry& e : catalog())
    if (!is_user_slot(e.id) && name == e.name) return e.id;
  return FS_PH_NONE;
}

void measure_by_function(RunPlan& plan, int id, int source, const std::string& function) {
  plan.cfg.measured |= FS_BIT(id);
  plan.cfg.landmarks &= ~FS_BIT(id);
  plan.source[id] = source;
  plan.function[id] = function;
  plan.reason[id].clear();
}

}  // namespace

void set_libbpf_verbose(bool verbose) {
  g_verbose = verbose;
  libbpf_set_print(libbpf_print);
}

BackendChoice parse_backend(const std::string& name) {
  if (name == "auto") return BackendChoice::kAuto;
  if (name == "fentry") return BackendChoice::kFentry;
  if (name == "kprobe") return BackendChoice::kKprobe;
  if (name == "tracepoint") return BackendChoice::kTracepoint;
  throw usage_error("unknown --backend '" + name + "'; choose auto, fentry, kprobe or tracepoint");
}

UserPhase parse_user_phase(const std::string& spec) {
  UserPhase u;
  auto colon = spec.find(':');
  u.function = spec.substr(0, colon);
  u.parent = colon == std::string::npos ? "copy_process" : spec.substr(colon + 1);
  auto valid = [](const std::string& s) {
    return !s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.") ==
                             std::string::npos;
  };
  if (!valid(u.function))
    throw usage_error("--phase '" + spec + "': expected FUNC[:PARENT], a kernel function name, e.g. anon_vma_fork:dup_mmap");
  if (phase_by_name(u.parent) == FS_PH_NONE)
    throw usage_error("--phase '" + spec + "': unknown parent phase '" + u.parent + "'; use a phase `forkscope doctor` lists");
  return u;
}

RunPlan plan_run(BackendChoice choice, const std::vector<UserPhase>& user_phases) {
  RunPlan plan = tracepoint_plan();
  if (user_phases.size() > FS_USER_PHASES)
    throw usage_error("at most " + std::to_string(FS_USER_PHASES) + " --phase options per run");
  if (choice == BackendChoice::kTracepoint) {
    if (!user_phases.empty())
      throw usage_error("--phase needs function probes; it cannot work with --backend tracepoint");
    return plan;
  }

  FunctionProber prober;
  // One real attempt on copy_process tells whether the kind works at all here.
  std::string fentry_why = choice == BackendChoice::kKprobe ? "not chosen (--backend kprobe)" : prober.try_fentry("copy_process");
  std::string kprobe_why = choice == BackendChoice::kFentry ? "not chosen (--backend fentry)" : prober.try_kprobe("copy_process");
  const bool fentry = fentry_why.empty(), kprobe = kprobe_why.empty();
  if (choice == BackendChoice::kFentry && !fentry)
    throw privilege_error("--backend fentry cannot work on this kernel: " + fentry_why + "; try --backend auto");
  if (choice == BackendChoice::kKprobe && !kprobe)
    throw privilege_error("--backend kprobe cannot work on this kernel: " + kprobe_why + "; try --backend auto");

  auto probe = [&](int id, const std::vector<std::string>& functions) {
    std::string why;
    for (const std::string& fn : functions) {
      std::string f = fentry ? prober.try_fentry(fn) : fentry_why;
      if (f.empty()) return measure_by_function(plan, id, FS_SRC_FENTRY, fn), std::string();
      std::string k = kprobe ? prober.try_kprobe(fn) : kprobe_why;
      if (k.empty()) return measure_by_function(plan, id, FS_SRC_KPROBE, fn), std::string();
      why += (why.empty() ? "" : "; ") + fn + ": " + f + (kprobe ? "; kprobe: " + k : "");
    }
    return why;
  };
  for (const CatalogEntry& e : catalog()) {
    if (is_user_slot(e.id) || e.functions.empty()) continue;
    std::string why = probe(e.id, e.functions);
    if (!plan.measured(e.id)) {
      plan.reason[e.id] = why + (fentry || kprobe ? "" : "; no function probes on this kernel");
    } else if ((fentry || kprobe) && !why.empty()) {
      // Function probes work here, but not on this phase's function (dup_mmap is
      // inlined on 6.12): its landmarks measure it, and phases_available says why.
      plan.reason[e.id] = why;
    }
  }
  for (size_t i = 0; i < user_phases.size(); i++) {
    const int id = FS_PH_USER0 + static_cast<int>(i);
    plan.name[id] = user_phases[i].function;
    plan.cfg.parent[id] = phase_by_name(user_phases[i].parent);
    std::string why = probe(id, {user_phases[i].function});
    if (!plan.measured(id))
      throw privilege_error("--phase " + user_phases[i].function + ": cannot probe it here (" + why + ")");
  }
  // The probe-cost calibration's target: sched_getscheduler's kernel entry point
  // (named by architecture), which every kind in use must attach to.  A cheap
  // syscall with an argument: the wrappers of argument-less ones (getppid) are no
  // ftrace location on Debian's 6.1, so fentry cannot attach there and a kprobe
  // would trap instead of taking the ftrace path it takes on the phase functions.
  const bool uses_fentry = std::count(plan.source.begin(), plan.source.end(), FS_SRC_FENTRY) > 0;
  const bool uses_kprobe = std::count(plan.source.begin(), plan.source.end(), FS_SRC_KPROBE) > 0;
  if (uses_fentry || uses_kprobe) {
    for (const char* fn : {"__x64_sys_sched_getscheduler", "__arm64_sys_sched_getscheduler",
                           "__s390x_sys_sched_getscheduler", "__riscv_sys_sched_getscheduler", "sys_sched_getscheduler"}) {
      if ((!uses_fentry || prober.try_fentry(fn).empty()) && (!uses_kprobe || prober.try_kprobe(fn).empty())) {
        plan.calibration_function = fn;
        break;
      }
    }
  }
  return plan;
}

std::string backend_name(const RunPlan& plan) {
  bool kprobe = false;
  for (int s : plan.source) {
    if (s == FS_SRC_FENTRY) return "fentry";
    kprobe |= s == FS_SRC_KPROBE;
  }
  return kprobe ? "kprobe" : "tracepoint";
}

struct Tracer::Impl {
  forkscope_bpf* skel = nullptr;
  std::vector<bpf_link*> links;  // kprobe slots, attached by hand
  ring_buffer* ring = nullptr;
  int ncpus = 0;
  // Records drained from the ring buffer, until the cell they belong to is collected.
  std::vector<fs_launch> launches;
  std::vector<fs_child_span> child_spans;
  std::vector<std::pair<int, int>> kprobe_slots;  // slot, phase
  int cal_slot = -1;  // the probe-cost calibration's slot, -1: none

  // kprobe slots are attached by name at run time (the skeleton cannot).
  void attach_kprobes(const RunPlan& p) {
    for (auto [s, id] : kprobe_slots) {
      for (bool ret : {false, true}) {
        const std::string name = (ret ? "fs_kretprobe_" : "fs_kprobe_") + std::to_string(s);
        bpf_link* link = bpf_program__attach_kprobe(bpf_object__find_program_by_name(skel->obj, name.c_str()), ret,
                                                    p.function[id].c_str());
        if (!link) {
          throw Error(kExitPrivilege, "attaching a kprobe to " + p.function[id] + " failed (" + errno_text(errno) +
                                          "); try --backend tracepoint");
        }
        links.push_back(link);
      }
    }
  }

  ~Impl() {
    if (ring) ring_buffer__free(ring);
    for (bpf_link* l : links) bpf_link__destroy(l);
    if (skel) forkscope_bpf__destroy(skel);  // detaches every other link, closes every map
  }
};

std::unique_ptr<Tracer> Tracer::open(const RunPlan& plan, bool verbose, uint32_t cells, bool following) {
  if (cells == 0 || cells > FS_MAX_CELLS) throw Error(kExitFailure, "internal: cell count out of range");
  set_libbpf_verbose(verbose);
  std::unique_ptr<Tracer> t(new Tracer());
  t->plan_ = plan;
  t->impl_ = std::make_unique<Impl>();
  t->impl_->ncpus = libbpf_num_possible_cpus();
  if (t->impl_->ncpus <= 0) throw Error(kExitFailure, "cannot count possible CPUs");

  std::string tracefs_why;
  ensure_tracefs(&tracefs_why);  // tp_btf does not need it; doctor reports it

  Kallsyms ks = Kallsyms::load();
  if (!ks.readable()) {
    throw privilege_error(
        "/proc/kallsyms hides kernel addresses, so allocation call sites cannot be "
        "resolved; run as root with kernel.kptr_restrict <= 1");
  }

  forkscope_bpf* skel = forkscope_bpf__open();
  if (!skel) throw Error(kExitFailure, "cannot open the BPF object: " + errno_text(errno));
  t->impl_->skel = skel;

  RunPlan& p = t->plan_;
  __u32 n = 0;
  for (const auto& spec : site_specs()) {
    auto r = ks.find(spec.function);
    if (!r) {
      for (int ph : spec.phases) {
        if (!(p.cfg.landmarks & FS_BIT(ph))) continue;
        p.cfg.measured &= ~FS_BIT(ph);
        p.cfg.landmarks &= ~FS_BIT(ph);
        p.reason[ph] = std::string("landmark function ") + spec.function + " not in /proc/kallsyms (inlined?)";
      }
      continue;
    }
    if (n >= FS_MAX_SITES) break;
    skel->rodata->sites[n].start = r->start;
    skel->rodata->sites[n].end = r->end;
    skel->rodata->sites[n].lm = spec.landmark;
    n++;
  }
  skel->rodata->nsites = n;
  skel->bss->cfg = p.cfg;

  // Function slots: the phases function probes measure, in catalog order.
  std::vector<std::pair<int, int>> kprobe_slots;  // slot, phase
  int slot = 0;
  for (int id = 0; id < FS_NPHASES; id++) {
    const bool fentry = p.source[id] == FS_SRC_FENTRY, kprobe = p.source[id] == FS_SRC_KPROBE;
    if (!p.measured(id) || !(fentry || kprobe)) continue;
    if (slot >= FS_MAX_FN_SLOTS) throw Error(kExitFailure, "too many function probes for the BPF slots");
    skel->bss->slot_phase[slot] = static_cast<__u32>(id);
    const std::string s = std::to_string(slot);
    for (const char* kind : {"fs_fentry_", "fs_fexit_", "fs_kprobe_", "fs_kretprobe_"}) {
      bpf_program* prog = bpf_object__find_program_by_name(skel->obj, (kind + s).c_str());
      const bool is_fentry = kind[3] == 'f';
      const bool use = is_fentry ? fentry : kprobe;
      bpf_program__set_autoload(prog, use);
      if (use && is_fentry) bpf_program__set_attach_target(prog, 0, p.function[id].c_str());
    }
    if (kprobe) kprobe_slots.push_back({slot, id});
    slot++;
  }
  // One more slot for the probe-cost calibration (probe_costs()), per kind in use:
  // loaded now, attached only while it measures, under a launch record of the
  // calibrating thread's own.
  if (!p.calibration_function.empty() && slot < FS_MAX_FN_SLOTS) {
    const std::string s = std::to_string(slot);
    t->impl_->cal_slot = slot;
    // Under the calibration's own launch record (probe_costs) the slot opens and
    // closes a phase directly under the root, as a phase's probes do in a launch.
    skel->bss->slot_phase[slot] = FS_PH_KERNEL_CLONE;
    for (const char* kind : {"fs_fentry_", "fs_fexit_", "fs_kprobe_", "fs_kretprobe_"}) {
      bpf_program* prog = bpf_object__find_program_by_name(skel->obj, (kind + s).c_str());
      const bool is_fentry = kind[3] == 'f';
      const bool use = std::count(p.source.begin(), p.source.end(), is_fentry ? FS_SRC_FENTRY : FS_SRC_KPROBE) > 0;
      bpf_program__set_autoload(prog, use);
      bpf_program__set_autoattach(prog, false);
      if (use && is_fentry) bpf_program__set_attach_target(prog, 0, p.calibration_function.c_str());
    }
    slot++;
  }
  for (; slot < FS_MAX_FN_SLOTS; slot++) {
    const std::string s = std::to_string(slot);
    for (const char* kind : {"fs_fentry_", "fs_fexit_", "fs_kprobe_", "fs_kretprobe_"})
      bpf_program__set_autoload(bpf_object__find_program_by_name(skel->obj, (kind + s).c_str()), false);
  }

  // Per-CPU maps cost cells x phases x CPUs values: only what the run uses.
  bpf_map__set_max_entries(skel->maps.agg, cells * FS_NPHASES);
  bpf_map__set_max_entries(skel->maps.agg_failed, cells * FS_NPHASES);
  bpf_map__set_max_entries(skel->maps.cellstats, cells);
  if (!following) {
    // The runner: at most 64 launching threads, each with one child in flight.
    bpf_map__set_max_entries(skel->maps.tracked, 1);
    bpf_map__set_max_entries(skel->maps.launches, 160);
  }
  bpf_program__set_autoload(skel->progs.fs_mm_page_alloc, p.detail);
  bpf_program__set_autoload(skel->progs.fs_page_fault_user, p.detail || p.exec);

  if (int err = forkscope_bpf__load(skel)) {
    int code = (err == -EPERM || err == -EACCES) ? kExitPrivilege : kExitFailure;
    throw Error(code, "the kernel refused forkscope's BPF programs (" + errno_text(err) +
                          "); run with --verbose for the verifier log");
  }
  if (int err = forkscope_bpf__attach(skel)) {
    throw Error(kExitPrivilege, "attaching BPF programs failed (" + errno_text(err) +
                                    "); this kernel needs BTF-enabled tracepoints (tp_btf)");
  }
  t->impl_->kprobe_slots = std::move(kprobe_slots);
  t->impl_->attach_kprobes(p);
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

void Tracer::reset_cell(uint32_t cell) {
  std::vector<fs_agg> agg(impl_->ncpus);
  std::vector<fs_cellstat> stat(impl_->ncpus);
  for (int ph = 0; ph < FS_NPHASES; ph++) {
    __u32 key = cell * FS_NPHASES + ph;
    bpf_map_update_elem(bpf_map__fd(impl_->skel->maps.agg), &key, agg.data(), BPF_ANY);
  }
  __u32 key = cell;
  bpf_map_update_elem(bpf_map__fd(impl_->skel->maps.cellstats), &key, stat.data(), BPF_ANY);
}

void Tracer::set_attached(bool attached) {
  if (attached == attached_) return;
  if (attached) {
    // An exec in flight when the programs went may never have been closed.
    __atomic_store_n(&impl_->skel->bss->execs_in_flight, 0, __ATOMIC_SEQ_CST);
    if (int err = forkscope_bpf__attach(impl_->skel))
      throw Error(kExitFailure, "re-attaching BPF programs failed (" + errno_text(err) + ")");
    impl_->attach_kprobes(plan_);
  } else {
    for (bpf_link* l : impl_->links) bpf_link__destroy(l);
    impl_->links.clear();
    forkscope_bpf__detach(impl_->skel);
  }
  attached_ = attached;
}

void Tracer::set_allocation_landmarks(bool attached) {
  bpf_link*& link = impl_->skel->links.fs_kmem_cache_alloc;
  if (!attached_ || (link != nullptr) == attached) return;
  if (attached) {
    link = bpf_program__attach(impl_->skel->progs.fs_kmem_cache_alloc);
    if (!link) throw Error(kExitFailure, "re-attaching the allocation landmarks failed (" + errno_text(errno) + ")");
  } else {
    bpf_link__destroy(link);
    link = nullptr;
  }
}

void Tracer::sample_next(uint32_t seq) { __atomic_store_n(&impl_->skel->bss->sample_seq, seq, __ATOMIC_SEQ_CST); }

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
      s.spans.push_back({plan_.name[sp.phase], phase_path(plan_, sp.phase),
                         static_cast<int64_t>(sp.start - l.start_ns), sp.dur, "parent"});
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
  bss->max_groups = kTraceGroups;
  bss->trace_sample_limit = f.samples_per_group;
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

std::string comm_of(const char (&comm)[16]) { return std::string(comm, strnlen(comm, sizeof comm)); }

}  // namespace

std::vector<TraceGroup> Tracer::read_groups() const {
  std::vector<TraceGroup> out;
  for_each_entry<fs_group_key, __u32>(impl_->skel->maps.groups, [&](const fs_group_key& k, __u32 cell) {
    out.push_back({cell, comm_of(k.comm), k.flags, false});
  });
  // The overflow cell gathers groups past the limit.
  out.push_back({kTraceGroups, "(other)", 0, true});
  std::sort(out.begin(), out.end(), [](const TraceGroup& a, const TraceGroup& b) { return a.cell < b.cell; });
  return out;
}

std::vector<TraceParent> Tracer::read_parents() const {
  std::vector<TraceParent> out;
  for_each_entry<__u32, fs_launcher>(impl_->skel->maps.parents, [&](__u32 pid, const fs_launcher& v) {
    out.push_back({static_cast<int>(pid), comm_of(v.comm), v.launches, v.execs});
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

void Tracer::wait_children_gone(uint32_t cell, int timeout_ms) const {
  for (int waited = 0; waited <= timeout_ms; waited++) {
    uint64_t born = 0, exited = 0;
    const bool found = sum_percpu<fs_cellstat>(impl_->skel->maps.cellstats, cell, impl_->ncpus, [&](const fs_cellstat& v) {
      born += v.children_born;
      exited += v.children_exited;
    });
    if (!found || exited >= born) return;
    usleep(1000);
  }
}

uint64_t Tracer::map_bytes() const {
  uint64_t total = 0;
  struct bpf_map* m;
  bpf_object__for_each_map(m, impl_->skel->obj) {
    uint64_t value = bpf_map__value_size(m);
    uint64_t entries = bpf_map__max_entries(m);
    bool percpu = bpf_map__type(m) == BPF_MAP_TYPE_PERCPU_ARRAY;
    total += entries * (bpf_map__key_size(m) + value) * (percpu ? impl_->ncpus : 1);
  }
  return total;
}

std::map<std::string, double> Tracer::probe_costs() {
  std::map<std::string, double> costs;
  if (impl_->cal_slot < 0) return costs;
  forkscope_bpf* skel = impl_->skel;
  const std::string& fn = plan_.calibration_function;
  const std::string slot = std::to_string(impl_->cal_slot);
  auto prog = [&](const char* kind) { return bpf_object__find_program_by_name(skel->obj, (kind + slot).c_str()); };
  std::vector<std::string> kinds = {""};  // "": nothing attached to fn
  if (bpf_program__autoload(prog("fs_fentry_"))) kinds.push_back("fentry");
  if (bpf_program__autoload(prog("fs_kprobe_"))) kinds.push_back("kprobe");

  std::vector<bpf_link*> links;
  auto detach = [&] {
    for (bpf_link* l : links)
      if (l) bpf_link__destroy(l);
    links.clear();
  };
  auto attach = [&](const std::string& kind) {
    if (kind == "fentry") {
      links = {bpf_program__attach_trace(prog("fs_fentry_")), bpf_program__attach_trace(prog("fs_fexit_"))};
    } else if (kind == "kprobe") {
      links = {bpf_program__attach_kprobe(prog("fs_kprobe_"), false, fn.c_str()),
               bpf_program__attach_kprobe(prog("fs_kretprobe_"), true, fn.c_str())};
    }
    return std::count(links.begin(), links.end(), nullptr) == 0;
  };
  auto mono = [] {
    timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return static_cast<double>(t.tv_sec) * 1e9 + static_cast<double>(t.tv_nsec);
  };
  // A block: kBatches batches of kBatch sched_getscheduler(0) calls, each batch
  // timed as a whole (clock reads can cost more than the call: a VM's HPET), and
  // the median batch's time per call, robust to interrupts landing in a block.
  constexpr int kRounds = 5, kBatches = 31, kBatch = 16;
  std::vector<double> per_call(kBatches);
  auto block = [&] {
    for (double& v : per_call) {
      const double a = mono();
      for (int i = 0; i < kBatch; i++) syscall(SYS_sched_getscheduler, 0);
      v = (mono() - a) / kBatch;
    }
    std::nth_element(per_call.begin(), per_call.begin() + kBatches / 2, per_call.end());
    return per_call[kBatches / 2];
  };

  // The slot programs pass their tgid filter only in the traced process: this one.
  // One CPU for all blocks: CPUs (a VM's vCPUs above all) need not run alike.
  const __u32 old_target = __atomic_load_n(&skel->bss->target_tgid, __ATOMIC_SEQ_CST);
  set_target(getpid());
  cpu_set_t old_cpus, one_cpu;
  const int cpu = sched_getcpu();
  const bool pinned = cpu >= 0 && sched_getaffinity(0, sizeof old_cpus, &old_cpus) == 0;
  if (pinned) {
    CPU_ZERO(&one_cpu);
    CPU_SET(cpu, &one_cpu);
    sched_setaffinity(0, sizeof one_cpu, &one_cpu);
  }
  // A launch record of this thread's own, which no syscall ends (FS_LF_CALIB): the
  // slot's programs then do what a phase's do inside a launch (find the record,
  // open and close a phase), not just miss the lookup.
  const __u32 tid = static_cast<__u32>(gettid());
  fs_launch record{};
  fs_launch_begin(&record, FS_NO_CELL, 0, 0);
  record.flags = FS_LF_CALIB;
  record.tid = tid;
  const int launches_fd = bpf_map__fd(skel->maps.launches);
  const bool recorded = bpf_map_update_elem(launches_fd, &tid, &record, BPF_ANY) == 0;
  block();  // warm-up
  // Rounds: an untraced block, then one block per kind; one more untraced block
  // closes the last round.  A kind's cost in a round is its block minus the mean
  // of the untraced blocks around it, so slow drift of the machine cancels, and
  // no kind is attached right after its own detach.
  std::vector<double> untraced{block()};
  std::map<std::string, std::vector<double>> deltas;
  std::map<std::string, std::vector<double>> traced;
  std::map<std::string, bool> failed;
  for (int r = 0; r < kRounds; r++) {
    for (size_t i = 1; i < kinds.size(); i++) {
      const std::string& kind = kinds[i];
      if (failed[kind]) continue;
      if (attach(kind)) traced[kind].push_back(block());
      else failed[kind] = true;
      detach();
    }
    untraced.push_back(block());
    for (auto& [kind, t] : traced) {
      if (t.size() == static_cast<size_t>(r) + 1) deltas[kind].push_back(t.back() - (untraced[r] + untraced[r + 1]) / 2);
    }
  }
  if (recorded) bpf_map_delete_elem(launches_fd, &tid);
  if (pinned) sched_setaffinity(0, sizeof old_cpus, &old_cpus);
  set_target(static_cast<pid_t>(old_target));
  for (auto& [kind, d] : deltas) {
    if (failed[kind] || d.empty()) continue;
    std::nth_element(d.begin(), d.begin() + d.size() / 2, d.end());
    costs[kind] = d[d.size() / 2];
  }
  return costs;
}

}  // namespace forkscope
