#include <linux/types.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <map>

#include "forkscope/error.h"
#include "forkscope/probes.h"
#include "forkscope.skel.h"

namespace forkscope {

namespace {

bool g_verbose = false;

int libbpf_print(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (level == LIBBPF_DEBUG && !g_verbose) return 0;
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
       {FS_PH_COPY_PROCESS, FS_PH_DUP_TASK_STRUCT, FS_PH_COPY_SIGHAND, FS_PH_COPY_SIGNAL,
        FS_PH_DUP_MM}},
      {"prepare_creds", FS_LM_CREDS, {FS_PH_COPY_CREDS}},
      {"dup_fd", FS_LM_FILES, {FS_PH_COPY_FILES}},
      {"copy_fs_struct", FS_LM_FS, {FS_PH_COPY_FS}},
      {"vm_area_dup", FS_LM_VMA_DUP, {FS_PH_VMA_SETUP, FS_PH_COPY_PAGE_RANGE}},
      {"anon_vma_clone", FS_LM_ANON_VMA, {}},
      {"anon_vma_fork", FS_LM_ANON_VMA, {}},
      {"alloc_pid", FS_LM_PID, {FS_PH_ALLOC_PID}},
  };
  return specs;
}

std::string errno_text(int err) { return std::strerror(err < 0 ? -err : err); }

}  // namespace

void set_libbpf_verbose(bool verbose) {
  g_verbose = verbose;
  libbpf_set_print(libbpf_print);
}

struct TracepointBackend::Impl {
  forkscope_bpf* skel = nullptr;
  int ncpus = 0;
  ~Impl() {
    if (skel) forkscope_bpf__destroy(skel);  // detaches every link, closes every map
  }
};

std::unique_ptr<TracepointBackend> TracepointBackend::open(bool verbose) {
  set_libbpf_verbose(verbose);
  std::unique_ptr<TracepointBackend> b(new TracepointBackend());
  b->impl_ = std::make_unique<Impl>();
  b->impl_->ncpus = libbpf_num_possible_cpus();
  if (b->impl_->ncpus <= 0) throw Error(kExitFailure, "cannot count possible CPUs");

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
  b->impl_->skel = skel;

  std::map<int, std::string> missing;  // phase -> function not found
  __u32 n = 0;
  for (const auto& spec : site_specs()) {
    auto r = ks.find(spec.function);
    if (!r) {
      for (int ph : spec.phases) missing[ph] = spec.function;
      continue;
    }
    if (n >= FS_MAX_SITES) break;
    skel->rodata->sites[n].start = r->start;
    skel->rodata->sites[n].end = r->end;
    skel->rodata->sites[n].lm = spec.landmark;
    n++;
  }
  skel->rodata->nsites = n;

  if (int err = forkscope_bpf__load(skel)) {
    int code = (err == -EPERM || err == -EACCES) ? kExitPrivilege : kExitFailure;
    throw Error(code, "the kernel refused forkscope's tracepoint programs (" + errno_text(err) +
                          "); run with --verbose for the verifier log");
  }
  if (int err = forkscope_bpf__attach(skel)) {
    throw Error(kExitPrivilege, "attaching tracepoint programs failed (" + errno_text(err) +
                                    "); this kernel needs BTF-enabled tracepoints (tp_btf)");
  }

  std::string fentry_why = try_fentry("kernel_clone");
  std::string kprobe_why;
  kprobes_available(&kprobe_why);
  for (const auto& e : catalog()) {
    PhaseAvailability a;
    a.name = e.name;
    a.how = e.how;
    if (e.tp_source == FS_SRC_NONE) {
      a.reason = std::string("no tracepoint marks it; function probes needed: fentry: ") +
                 (fentry_why.empty() ? "works (backend not yet implemented)" : fentry_why) +
                 "; kprobe: " + (kprobe_why.empty() ? "available" : kprobe_why);
    } else if (auto it = missing.find(e.id); it != missing.end()) {
      a.reason = "landmark function " + it->second + " not in /proc/kallsyms (inlined?)";
    } else {
      a.source = source_name(e.tp_source);
    }
    b->availability_.push_back(std::move(a));
  }
  return b;
}

TracepointBackend::~TracepointBackend() = default;

void TracepointBackend::set_target(pid_t tgid) {
  __atomic_store_n(&impl_->skel->bss->target_tgid, static_cast<__u32>(tgid), __ATOMIC_SEQ_CST);
}

void TracepointBackend::set_cell(uint32_t cell) {
  __atomic_store_n(&impl_->skel->data->cur_cell, cell, __ATOMIC_SEQ_CST);
}

std::vector<PhaseAgg> TracepointBackend::read_phases(uint32_t cell) const {
  std::vector<PhaseAgg> out(FS_NPHASES);
  std::vector<fs_agg> percpu(impl_->ncpus);
  int fd = bpf_map__fd(impl_->skel->maps.agg);
  for (int ph = 0; ph < FS_NPHASES; ph++) {
    __u32 key = cell * FS_NPHASES + ph;
    if (bpf_map_lookup_elem(fd, &key, percpu.data()) != 0) continue;
    PhaseAgg& a = out[ph];
    a.hist.assign(FS_HIST_SLOTS, 0);
    for (const fs_agg& v : percpu) {
      a.count += v.count;
      a.calls += v.calls;
      a.total_ns += v.total_ns;
      a.self_ns += v.self_ns;
      for (int s = 0; s < FS_HIST_SLOTS; s++) a.hist[s] += v.hist[s];
    }
  }
  return out;
}

std::vector<PhaseAgg> TracepointBackend::read_failed_phases(uint32_t cell) const {
  std::vector<PhaseAgg> out(FS_NPHASES);
  std::vector<fs_agg_failed> percpu(impl_->ncpus);
  int fd = bpf_map__fd(impl_->skel->maps.agg_failed);
  for (int ph = 0; ph < FS_NPHASES; ph++) {
    __u32 key = cell * FS_NPHASES + ph;
    if (bpf_map_lookup_elem(fd, &key, percpu.data()) != 0) continue;
    for (const fs_agg_failed& v : percpu) {
      out[ph].count += v.count;
      out[ph].calls += v.calls;
      out[ph].total_ns += v.total_ns;
      out[ph].self_ns += v.self_ns;
    }
  }
  return out;
}

KernelCounts TracepointBackend::read_counts(uint32_t cell) const {
  KernelCounts k;
  std::vector<fs_cellstat> percpu(impl_->ncpus);
  __u32 key = cell;
  if (bpf_map_lookup_elem(bpf_map__fd(impl_->skel->maps.cellstats), &key, percpu.data()) != 0)
    return k;
  for (const fs_cellstat& v : percpu) {
    k.launches += v.launches;
    k.failed += v.failed;
    k.pt_pages += v.pt_pages;
    k.faults_parent += v.faults_parent;
    k.faults_child += v.faults_child;
    k.lost += v.lost;
  }
  return k;
}

uint64_t TracepointBackend::map_bytes() const {
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

}  // namespace forkscope
