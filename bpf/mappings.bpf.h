/* Per-mapping attribution of dup_mmap, two methods.
 *
 * Order (tracepoints only): the phase machine numbers the
 * VMAs a launch copies (fs_launch.vmas) and times each one's vma_setup and
 * copy_page_range; here each finished VMA's ns go to a per-launch scratch entry, and
 * at the launch's end the whole launch goes to (cell, VMAs it copied, k-th VMA,
 * launching process).  Keyed by the count too, so user space attributes a launch
 * only when the count matches its process's /proc/PID/smaps snapshot (dup_mmap walks
 * the VMAs in address order, skipping VM_DONTCOPY ones) and counts the others as
 * unattributed.  run: one process, the runner (tgid 0 in the key), snapshotted at each
 * cell's start.  trace (follow_mappings): each launching process's last count goes to
 * map_launchers, which user space polls to snapshot a process when it is first seen
 * and again when the count changes.
 *
 * Exact (run, copy_page_range probed by fentry or kprobe: mapping_exact set before
 * load): copy_page_range(dst_vma, src_vma) names the parent's VMA it copies, so each
 * VMA's vma_setup (the phase machine's: vm_area_dup's allocation .. copy_page_range's
 * entry) and copy_page_range (entry .. exit) go, at its exit, to (cell, launching
 * process, the source VMA's vm_start); user space resolves the start address in its
 * snapshot.  No per-launch scratch and no count gate: the order method's work is
 * not done at all (the verifier drops it, mapping_exact being rodata).  A VMA whose
 * copy_page_range was not seen (dup_mmap skips it for VM_WIPEONFORK) goes to start
 * 0, which no snapshot holds: counted unattributed, not dropped.  trace keeps the
 * order method (Tracer::open leaves mapping_exact 0 when following).
 * Include after maps.bpf.h. */
#ifndef FORKSCOPE_MAPPINGS_BPF_H
#define FORKSCOPE_MAPPINGS_BPF_H

/* Launching thread -> its launch's per-VMA ns; sized with launches (Tracer::open). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct fs_vma_scratch);
} vma_scratch SEC(".maps");

/* A zeroed value to create scratch entries from (too big for the BPF stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fs_vma_scratch);
} vma_zero SEC(".maps");

/* (cell, VMAs copied, k-th VMA, process) -> totals; shared by the CPUs, added to
 * atomically.  Not preallocated: a run uses a slot per VMA of its forking cells, far
 * below the bound; a trace one per VMA of each launching process and layout.  Full:
 * the launch counts in map_lost, never partly. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 131072);
	__type(key, struct fs_map_key);
	__type(value, struct fs_map_agg);
} map_agg SEC(".maps");

/* Exact method: (cell, tgid, source VMA start) -> totals.  Not preallocated; the
 * runner's forks use one entry per VMA of their cells. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 131072);
	__type(key, struct fs_map_exact_key);
	__type(value, struct fs_map_agg);
} map_exact SEC(".maps");

/* Set between open and load (Tracer::open) when copy_page_range is function-probed. */
const volatile __u32 mapping_exact = 0;

/* One VMA's ns into the exact totals of its source VMA. */
static __always_inline void exact_add(struct fs_launch *l, __u64 start, __u64 setup, __u64 cpr)
{
	/* Only the runner is attributed (follow == FS_FOLLOW_TGID): its tgid, no helper call. */
	struct fs_map_exact_key key = { .cell = l->cell, .tgid = target_tgid, .start = start };
	struct fs_map_agg *a = bpf_map_lookup_elem(&map_exact, &key);
	if (!a) {
		struct fs_map_agg zero = {};
		bpf_map_update_elem(&map_exact, &key, &zero, BPF_NOEXIST);
		a = bpf_map_lookup_elem(&map_exact, &key);
		if (!a) {
			struct fs_cellstat *cs = cellstat(l->cell);
			if (cs)
				cs->map_lost += 1;
			return;
		}
	}
	__sync_fetch_and_add(&a->calls, 1);
	__sync_fetch_and_add(&a->setup_ns, setup);
	__sync_fetch_and_add(&a->cpr_ns, cpr);
}

/* copy_page_range's entry, after the phase machine's: the VMA it copies. */
static __always_inline void mappings_cpr_entry(struct fs_launch *l, __u64 src_start)
{
	if (mapping_exact && follow == FS_FOLLOW_TGID)
		l->vma_src = src_start;
}

/* copy_page_range's exit, after the phase machine closed it: the VMA is done
 * (its set-up closed at the entry).  Only a copy the machine timed is added. */
static __always_inline void mappings_cpr_exit(struct fs_launch *l, int timed)
{
	if (!mapping_exact || follow != FS_FOLLOW_TGID || !timed || !l->vmas)
		return;
	exact_add(l, l->vma_src, l->vma_ns[0], l->vma_ns[1]);
	l->vma_state |= FS_VMA_EXACT;
}

/* trace: launching process -> the VMAs its last launch copied (fs_map_launcher). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct fs_map_launcher);
} map_launchers SEC(".maps");

static __always_inline int mappings_on(void)
{
	return follow == FS_FOLLOW_TGID || follow_mappings;
}

static __always_inline __u32 ns32(__u64 ns)
{
	return ns > 0xffffffffull ? 0xffffffffu : (__u32)ns;
}

static __always_inline void vma_store(struct fs_vma_scratch *s, __u32 k, __u64 setup64, __u64 cpr64)
{
	__u32 setup = ns32(setup64), cpr = ns32(cpr64);
	/* Every slot below min(vmas, FS_MAP_OTHER) is written once per launch, and
	 * the other slot first at k == FS_MAP_OTHER: no clearing between launches. */
	if (k < FS_MAP_OTHER) {
		__u32 i = k;
		FS_BARRIER(i);
		if (i < FS_MAP_OTHER) {
			s->ns[i][0] = setup;
			s->ns[i][1] = cpr;
		}
	} else if (k == FS_MAP_OTHER) {
		s->ns[FS_MAP_OTHER][0] = setup;
		s->ns[FS_MAP_OTHER][1] = cpr;
	} else {
		s->ns[FS_MAP_OTHER][0] = ns32((__u64)s->ns[FS_MAP_OTHER][0] + setup);
		s->ns[FS_MAP_OTHER][1] = ns32((__u64)s->ns[FS_MAP_OTHER][1] + cpr);
	}
}

/* After a landmark that can start a VMA: the VMA before it goes to the scratch entry. */
static __always_inline void mappings_flush(struct fs_launch *l)
{
	if (!(l->vma_state & FS_VMA_DONE) || !mappings_on())
		return;
	if (mapping_exact) {
		/* The VMA before this one: added at its copy_page_range's exit, or never. */
		if (!(l->vma_state & FS_VMA_EXACT))
			exact_add(l, 0, l->vma_done_ns[0], l->vma_done_ns[1]);
		l->vma_state &= ~(FS_VMA_DONE | FS_VMA_EXACT);
		return;
	}
	l->vma_state &= ~FS_VMA_DONE;
	__u32 tid = l->tid, k = l->vmas - 2;
	struct fs_vma_scratch *s = bpf_map_lookup_elem(&vma_scratch, &tid);
	if (!s && k == 0) {
		__u32 zero = 0;
		struct fs_vma_scratch *z = bpf_map_lookup_elem(&vma_zero, &zero);
		if (z && !bpf_map_update_elem(&vma_scratch, &tid, z, BPF_ANY))
			s = bpf_map_lookup_elem(&vma_scratch, &tid);
	}
	if (!s) {
		l->vma_state |= FS_VMA_LOST;
		return;
	}
	vma_store(s, k, l->vma_done_ns[0], l->vma_done_ns[1]);
}

struct map_walk {
	struct fs_vma_scratch *s;
	__u32 cell;
	__u32 nvmas;
	__u32 tgid;
	__u32 nslots;
	__u32 lost;
};

/* Creates the launch's keys from the last slot down, so slot 0 exists only once every
 * other one does: a launch that finds slot 0 finds them all. */
static long map_make_slot(__u64 i, void *ctx)
{
	struct map_walk *w = ctx;
	__u32 slot = w->nslots - 1 - (__u32)i;
	if (slot > FS_MAP_OTHER)
		return 1;
	struct fs_map_key key = { .cell = w->cell, .nvmas = w->nvmas, .idx = slot, .tgid = w->tgid };
	if (bpf_map_lookup_elem(&map_agg, &key))
		return 0;
	struct fs_map_agg zero = {};
	if (bpf_map_update_elem(&map_agg, &key, &zero, BPF_NOEXIST) && !bpf_map_lookup_elem(&map_agg, &key)) {
		w->lost = 1;
		return 1;
	}
	return 0;
}

static long map_add_slot(__u64 i, void *ctx)
{
	struct map_walk *w = ctx;
	__u32 slot = (__u32)i;
	if (slot > FS_MAP_OTHER)
		return 1;
	struct fs_map_key key = { .cell = w->cell, .nvmas = w->nvmas, .idx = slot, .tgid = w->tgid };
	struct fs_map_agg *a = bpf_map_lookup_elem(&map_agg, &key);
	if (!a) {
		w->lost = 1;
		return 1;
	}
	__u64 calls = slot < FS_MAP_OTHER ? 1 : w->nvmas - FS_MAP_OTHER;
	__sync_fetch_and_add(&a->calls, calls);
	__sync_fetch_and_add(&a->setup_ns, w->s->ns[slot][0]);
	__sync_fetch_and_add(&a->cpr_ns, w->s->ns[slot][1]);
	return 0;
}

/* trace: the launching process's count of VMAs copied, for user space's snapshots. */
static __always_inline void map_launcher_seen(__u32 tgid, __u32 nvmas)
{
	struct fs_map_launcher *ml = bpf_map_lookup_elem(&map_launchers, &tgid);
	if (ml) {
		if (ml->nvmas != nvmas)
			ml->nvmas = nvmas;
		__sync_fetch_and_add(&ml->launches, 1);
		return;
	}
	struct task_struct *task = bpf_get_current_task_btf();
	struct fs_map_launcher nl = { .nvmas = nvmas, .launches = 1,
				      .start_ns = BPF_CORE_READ(task, group_leader, start_time) };
	bpf_map_update_elem(&map_launchers, &tgid, &nl, BPF_ANY);
}

/* A launch that returned a child: its VMAs into the cell's per-mapping totals.  A
 * global function, checked once (see aggregate). */
__noinline int mappings_finish(struct fs_launch *l)
{
	if (!l || !l->vmas || !mappings_on())
		return 0;
	if (mapping_exact) {
		if (!(l->vma_state & FS_VMA_EXACT))
			exact_add(l, 0, l->vma_ns[0], l->vma_ns[1]);
		return 0;
	}
	__u32 tid = l->tid, n = l->vmas;
	struct fs_vma_scratch *s = bpf_map_lookup_elem(&vma_scratch, &tid);
	if (!s && n == 1) {
		__u32 zero = 0;
		struct fs_vma_scratch *z = bpf_map_lookup_elem(&vma_zero, &zero);
		if (z && !bpf_map_update_elem(&vma_scratch, &tid, z, BPF_ANY))
			s = bpf_map_lookup_elem(&vma_scratch, &tid);
	}
	struct map_walk w = { .s = s, .cell = l->cell, .nvmas = n };
	w.nslots = n < FS_MAP_OTHER ? n : FS_MAP_OTHER + 1;
	if (follow != FS_FOLLOW_TGID) {
		w.tgid = (__u32)(bpf_get_current_pid_tgid() >> 32);
		map_launcher_seen(w.tgid, n);
	}
	if (s && !(l->vma_state & FS_VMA_LOST)) {
		vma_store(s, n - 1, l->vma_ns[0], l->vma_ns[1]);
		struct fs_map_key first = { .cell = w.cell, .nvmas = n, .idx = 0, .tgid = w.tgid };
		if (!bpf_map_lookup_elem(&map_agg, &first))
			bpf_loop(w.nslots, map_make_slot, &w, 0);
		if (!w.lost)
			bpf_loop(w.nslots, map_add_slot, &w, 0);
	} else {
		w.lost = 1;
	}
	if (w.lost) {
		struct fs_cellstat *cs = cellstat(l->cell);
		if (cs)
			cs->map_lost += 1;
	}
	return 0;
}

#endif
