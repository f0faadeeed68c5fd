/* BPF-only state: the configuration and run-time globals user space sets through
 * the skeleton, the maps, and the helpers that add to the per-CPU aggregates.
 * Include vmlinux.h, the libbpf headers, catalog.h, machine.h and hist.h first. */
#ifndef FORKSCOPE_MAPS_BPF_H
#define FORKSCOPE_MAPS_BPF_H

/* The kernel wants a ring buffer's size a power of two (and a page multiple). */
#define FS_SAMPLES_RING_BYTES (1u << 20)
FS_STATIC_ASSERT((FS_SAMPLES_RING_BYTES & (FS_SAMPLES_RING_BYTES - 1)) == 0,
		 "ring buffer size must be a power of two");

/* Allocation call sites (landmarks.bpf.h): rodata, set between open and load. */
const volatile struct fs_site sites[FS_MAX_SITES] = {};
const volatile __u32 nsites = 0;
/* What this run measures and how (machine.h), and the phase of each function slot:
 * written into the .bss image between open and load (Tracer::open; calibration
 * rewrites slot_phase[cal slot] the same way).  Not rodata: the machine reads cfg
 * through plain pointers, and clang folds reads of a zero-initialised const object
 * through those to zero. */
struct fs_config cfg = {};
__u32 slot_phase[FS_MAX_FN_SLOTS] = {};
#define CFG (&cfg)

/* Who is followed (enum fs_follow).  trace writes these through the mmapped .bss
 * after load (Tracer::follow); until then only the runner (target_tgid) is. */
__u32 follow = FS_FOLLOW_TGID;
__u32 self_tgid = 0;   /* forkscope itself, never followed */
__u32 other_cell = 0;  /* trace: the cell of the launches no group cell was free for */
/* trace: per-mapping attribution (mappings.bpf.h) on; run always has it. */
__u32 follow_mappings = 0;
/* trace: what groups launches besides their clone flags (enum fs_group_by). */
__u32 group_by = FS_GROUP_BY_COMM;
/* trace: execs counted by program (exec_programs); serve does not read them. */
__u32 count_exec_programs = 0;
/* trace at --depth full: uprobes on the C library's fork() time its user-space part. */
__u32 libc_fork_on = 0;

/* Set by user space at run time through the mmapped .bss. */
__u32 target_tgid = 0;
__u32 cur_cell = FS_NO_CELL;
__u32 sample_seq = 0; /* != 0: record the next launch span by span as this number */
__u32 sample_tid = 0; /* ... if this thread makes it (--threads: one thread samples) */
/* trace: each cell's generation.  serve recycles an idle group's cell
 * (Tracer::unlink_cell, then recycle_cell): it bumps the generation at each step,
 * so records that began under the old group (a launch in flight, a child still
 * alive) count nowhere instead of in the cell's next group (stale_records counts
 * them). */
__u32 cell_gen[FS_MAX_CELLS] = {};
__u64 stale_records = 0;
/* trace: launches recorded span by span per group, up to trace_sample_limit. */
__u32 trace_samples[FS_MAX_CELLS] = {};
__u32 trace_sample_limit = 0;
/* Gates of the high-rate programs (sched_switch, kmem_cache_alloc, mmap_lock,
 * page faults...): while nothing is in flight they return before any map lookup, so
 * the machine's other tasks pay one load of a global.  Each counts what its map
 * holds: launch records (launches_in_flight) and execve records (execs_in_flight)
 * in launches, and children in children (children_live); incremented where a new
 * key goes in, decremented where one comes out (children is a plain hash: nothing
 * leaves it unseen).  User space recounts them when it attaches the programs again
 * (Tracer::set_attached). */
__u32 launches_in_flight = 0;
__u32 execs_in_flight = 0;
__u32 children_live = 0;
/* Children whose execve returned and whose first instruction has not faulted yet:
 * page_fault_user, which runs for every fault on the machine, looks no further
 * while there are none (and copy-on-write faults are not counted). */
__u32 first_insn_pending = 0;
/* Children not yet switched in for the first time: sched_switch, which runs for
 * every switch on the machine, looks the task switched in up only while there are
 * some (a dying task it checks by its state first). */
__u32 first_run_pending = 0;

static __always_inline void fs_count_down(__u32 *counter)
{
	if (*counter)
		__sync_fetch_and_add(counter, -1);
}

static __always_inline int fs_records_in_flight(void)
{
	return (launches_in_flight | execs_in_flight) != 0;
}

/* A launched child, from task_newtask to its reaping (child.bpf.h). */
#define FS_CF_THREAD 1u /* reaps itself: forgotten when it dies */
#define FS_CF_REAPED 2u /* its parent's wait returned it before its last switch-out */

struct fs_child {
	__u32 cell;
	__u32 ran;
	__u64 wake_ts;
	__u64 exit_ts;     /* exit/exit_group entered */
	__u32 seq;         /* of a sampled launch, else 0 */
	__u32 flags;       /* FS_CF_* */
	__u64 mm_first;    /* first and last mmap_lock events after exit_ts: exit_mm */
	__u64 mm_last;
	__u64 dead_ts;     /* switched out for the last time */
	__u64 exec_ret_ts; /* execve returned: the first instruction is next */
	__u32 launcher;    /* tgid that launched it */
	__u32 gen;         /* its cell's generation at its launch (cell_gen) */
	__u64 ns;          /* its parent's pid namespace, when not the initial one ... */
	__u32 ns_pid;      /* ... and its pid there (ns_pids): set as it exits */
	__u32 pad;
};

/* A child's pid in its parent's pid namespace: wait4 and waitid return that one. */
struct fs_ns_pid {
	__u64 ns; /* struct pid_namespace * */
	__u32 nr;
	__u32 pad;
};


/* Sampled launches and their children's spans, drained after each cell. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, FS_SAMPLES_RING_BYTES);
} samples SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024); /* trace; the runner sizes it down */
	__type(key, __u32);
	__type(value, struct fs_launch);
} launches SEC(".maps");

/* trace -p / -- CMD: the thread groups followed (the root and its descendants). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u32);
} tracked SEC(".maps");

/* trace --cgroup: the cgroup (v2) followed, with its descendants. */
struct {
	__uint(type, BPF_MAP_TYPE_CGROUP_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} cgroups SEC(".maps");

/* trace: (command, executable, process or cgroup; clone flags) -> cell. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FS_MAX_CELLS);
	__type(key, struct fs_group_key);
	__type(value, __u32);
} groups SEC(".maps");

/* trace: per cell, what its group was when the cell was taken. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FS_MAX_CELLS);
	__type(key, __u32);
	__type(value, struct fs_group_name);
} group_names SEC(".maps");

/* trace: execs per (group cell, program exec'd); those of programs past the map's
 * size count in their cell's fs_cellstat.exec_other. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FS_EXEC_PROGRAMS);
	__type(key, struct fs_exec_key);
	__type(value, __u64);
} exec_programs SEC(".maps");

/* trace: the group cells no group holds (follow.bpf.h's group_cell pops one for a
 * new group; user space pushes them all at Tracer::follow, and an evicted group's
 * cell back, zeroed). */
struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, FS_MAX_CELLS);
	__uint(key_size, 0);
	__uint(value_size, sizeof(__u32));
} free_cells SEC(".maps");

/* trace: launches and execs per launching process. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct fs_launcher);
} parents SEC(".maps");

/* trace: launches per (launching process, cell) (fs_huge_key), polled by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct fs_huge_key);
	__type(value, struct fs_huge_launcher);
} huge_launchers SEC(".maps");

/* A followed thread in wait4/waitid: when it entered, and waitid's siginfo. */
struct fs_wait {
	__u64 since;
	__u64 infop; /* waitid: where the kernel writes the reaped child's pid; 0 for wait4 */
};
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct fs_wait);
} waits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fs_launch);
} scratch SEC(".maps");

/* Launched children, by global pid.  A plain hash, not an LRU: a child with no room
 * is counted lost (child_remember) instead of evicting another one silently.  trace
 * sizes it and ns_pids for more children (Tracer::open, kTraceChildren). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct fs_child);
} children SEC(".maps");

/* Exited children of a parent inside a pid namespace: their pid there -> global pid
 * (fs_sched_process_exit puts them in, their reaping or child_forget takes them out). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct fs_ns_pid);
	__type(value, __u32);
} ns_pids SEC(".maps");

/* Launching thread -> cell of its last launch, for post-launch faults. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} last_cell SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u64);
	__type(value, __u32);
} cache_lm SEC(".maps");

/* Threads inside libc's fork() (libc_fork_on); sized by user space (1 when off).
 * LRU: a thread killed inside fork() leaves an entry nothing else removes. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct fs_libc_fork);
} libc_forks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FS_MAX_CELLS * FS_NPHASES);
	__type(key, __u32);
	__type(value, struct fs_agg);
} agg SEC(".maps");

/* Phases of launches that failed (the syscall returned an error), kept apart. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FS_MAX_CELLS * FS_NPHASES);
	__type(key, __u32);
	__type(value, struct fs_agg_failed);
} agg_failed SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FS_MAX_CELLS);
	__type(key, __u32);
	__type(value, struct fs_cellstat);
} cellstats SEC(".maps");

/* A child record goes in (counted when its key is new: 0), replaces one (1), or finds
 * no room: then it is counted lost on its cell (-1). */
static __always_inline int child_remember(__u32 pid, struct fs_child *c)
{
	if (bpf_map_update_elem(&children, &pid, c, BPF_NOEXIST) == 0) {
		__sync_fetch_and_add(&children_live, 1);
		return 0;
	}
	if (bpf_map_lookup_elem(&children, &pid) && bpf_map_update_elem(&children, &pid, c, BPF_ANY) == 0)
		return 1;
	__u32 cell = c->cell;
	if (cell < FS_MAX_CELLS) {
		struct fs_cellstat *cs = bpf_map_lookup_elem(&cellstats, &cell);
		if (cs)
			cs->lost += 1;
	}
	return -1;
}

static __always_inline void child_forget(__u32 pid)
{
	struct fs_child *c = bpf_map_lookup_elem(&children, &pid);
	if (!c)
		return;
	if (c->ns_pid) {
		struct fs_ns_pid k = { .ns = c->ns, .nr = c->ns_pid };
		bpf_map_delete_elem(&ns_pids, &k);
	}
	if (bpf_map_delete_elem(&children, &pid) == 0)
		fs_count_down(&children_live);
}

static __always_inline __u32 cell_gen_of(__u32 cell)
{
	__u32 idx = cell;
	FS_BARRIER(idx);
	return idx < FS_MAX_CELLS ? cell_gen[idx] : 0;
}

/* A record's cell was recycled since it began: it counts nowhere. */
static __always_inline int fs_stale(__u32 cell, __u32 gen)
{
	if (gen == cell_gen_of(cell))
		return 0;
	__sync_fetch_and_add(&stale_records, 1);
	return 1;
}

static __always_inline struct fs_child *child_of(__u32 pid)
{
	if (!children_live)
		return NULL;
	struct fs_child *c = bpf_map_lookup_elem(&children, &pid);
	if (c && fs_stale(c->cell, c->gen)) {
		/* Forgotten with what it still held up: the gates that keep sched_switch
		 * and page_fault_user cheap (task_newtask and exec_end raise them). */
		__u32 ran = c->ran;
		__u64 exec_ret = c->exec_ret_ts;
		if (c->ns_pid) {
			struct fs_ns_pid k = { .ns = c->ns, .nr = c->ns_pid };
			bpf_map_delete_elem(&ns_pids, &k);
		}
		if (bpf_map_delete_elem(&children, &pid) == 0) {
			fs_count_down(&children_live);
			if (!ran)
				fs_count_down(&first_run_pending);
			if (exec_ret)
				fs_count_down(&first_insn_pending);
		}
		return NULL;
	}
	return c;
}

static __always_inline struct fs_cellstat *cellstat(__u32 cell)
{
	if (cell >= FS_MAX_CELLS)
		return NULL;
	return bpf_map_lookup_elem(&cellstats, &cell);
}

static __always_inline void agg_add(__u32 cell, __u32 ph, __u64 count, __u64 calls, __u64 total,
				    __u64 self, __u64 events, __u64 fn_events)
{
	if (cell >= FS_MAX_CELLS || ph >= FS_NPHASES)
		return;
	__u32 key = cell * FS_NPHASES + ph;
	struct fs_agg *a = bpf_map_lookup_elem(&agg, &key);
	if (!a)
		return;
	a->events += events;
	a->fn_events += fn_events;
	a->count += count;
	a->calls += calls;
	a->total_ns += total;
	a->self_ns += self;
	__u32 slot = fs_hist_slot(total);
	FS_BARRIER(slot); /* older verifiers (6.1) need the bound on the indexing register */
	if (slot < FS_HIST_SLOTS)
		a->hist[slot] += 1;
}

/* A finished launch's (or exec's) phases into its cell's aggregates.  A global
 * function: the verifier checks it once per program instead of on every path that
 * reaches it. */
__noinline int aggregate(struct fs_launch *l)
{
	if (!l)
		return 0;
	__u32 cell = l->cell;
	for (int i = 0; i < FS_NPHASES; i++) {
		if (l->calls[i])
			agg_add(cell, i, 1, l->calls[i], l->total_ns[i], l->self_ns[i], l->events[i], l->fn_events[i]);
	}
	return 0;
}

#endif
