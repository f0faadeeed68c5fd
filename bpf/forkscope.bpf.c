// SPDX-License-Identifier: GPL-2.0
/* forkscope, tracepoint backend: attributes each launch's kernel time to the
 * phases of the catalog from landmark tracepoints (see machine.h for the rules)
 * and aggregates per (cell, phase) in per-CPU maps, so no launch is lost at any
 * launch rate.  Every program filters on the runner first thing. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "forkscope/shared/catalog.h"
#define FS_GLOBAL_POP /* see machine.h */
#include "forkscope/shared/machine.h"

char LICENSE[] SEC("license") = "GPL";

#define FS_CLONE_VFORK 0x00004000ULL

const volatile struct fs_site sites[FS_MAX_SITES] = {};
const volatile __u32 nsites = 0;
/* What this run measures and how (machine.h), and the phase of each function slot.
 * Set before load.  Not rodata: the machine reads it through plain pointers, and
 * clang folds reads of a zero-initialised const object through those to zero. */
struct fs_config cfg = {};
__u32 slot_phase[FS_MAX_FN_SLOTS] = {};
#define CFG (&cfg)

/* Who is followed (enum fs_follow), set before load. */
__u32 follow = FS_FOLLOW_TGID;
__u32 self_tgid = 0;   /* forkscope itself, never followed */
__u32 max_groups = 0;  /* trace: cells 0..max_groups-1 for groups, max_groups for the rest */

/* Set by user space at run time through the mmapped .bss. */
__u32 target_tgid = 0;
__u32 cur_cell = FS_NO_CELL;
__u32 sample_seq = 0; /* != 0: record the next launch span by span as this number */
__u32 sample_tid = 0; /* ... if this thread makes it (--threads: one thread samples) */
__u32 next_group = 0;
/* trace: launches recorded span by span per group, up to trace_sample_limit. */
__u32 trace_samples[FS_MAX_CELLS] = {};
__u32 trace_sample_limit = 0;
/* execve records in flight: while there are none, events of tasks other than the
 * runner are dropped before any map lookup. */
__u32 execs_in_flight = 0;

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
	__u32 pad2;
};


/* Sampled launches and their children's spans, drained after each cell. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
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

/* trace: (command, clone flags) -> cell. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FS_MAX_CELLS);
	__type(key, struct fs_group_key);
	__type(value, __u32);
} groups SEC(".maps");

/* trace: launches and execs per launching process. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct fs_launcher);
} parents SEC(".maps");

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

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct fs_child);
} children SEC(".maps");

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

static __always_inline int is_target(__u32 tgid)
{
	__u32 f = follow;
	if (f == FS_FOLLOW_TGID)
		return tgid == target_tgid;
	if (f == FS_FOLLOW_TREE)
		return bpf_map_lookup_elem(&tracked, &tgid) != NULL;
	if (tgid == self_tgid)
		return 0;
	if (f == FS_FOLLOW_CGROUP)
		return bpf_current_task_under_cgroup(&cgroups, 0) == 1;
	return 1;
}

static __always_inline struct fs_launch *launch_of_current(int function_probe)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (follow == FS_FOLLOW_TGID && (__u32)(id >> 32) != target_tgid && !execs_in_flight)
		return NULL;
	__u32 tid = (__u32)id;
	struct fs_launch *l = bpf_map_lookup_elem(&launches, &tid);
	if (l)
		fs_count_event(l, function_probe);
	return l;
}

static __always_inline struct fs_launch *my_launch(void)
{
	return launch_of_current(0);
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

/* A child-side span of a sampled launch goes to the ring buffer as it ends. */
static __always_inline void emit_child_span(struct fs_child *c, __u32 pid, __u32 phase, __u64 start, __u64 dur)
{
	if (!c->seq)
		return;
	struct fs_child_span r = {
		.rec_type = FS_REC_CHILD_SPAN, .seq = c->seq, .cell = c->cell, .phase = phase,
		.pid = pid, .start = start, .dur = dur,
	};
	if (bpf_ringbuf_output(&samples, &r, sizeof(r), 0)) {
		struct fs_cellstat *cs = cellstat(c->cell);
		if (cs)
			cs->samples_lost += 1;
	}
}

/* The aggregation as a global function: the verifier checks it once per program
 * instead of on every path that reaches it. */
/* A finished launch's (or exec's) phases into its cell's aggregates. */
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

static __always_inline int is_launch_syscall(long id)
{
	return id == 56 /* clone */ || id == 57 /* fork */ || id == 58 /* vfork */ ||
	       id == 435 /* clone3 */;
}

static __always_inline int is_exit_syscall(long id) { return id == 60 || id == 231; }
static __always_inline int is_exec_syscall(long id) { return id == 59 || id == 322; }
static __always_inline int is_wait_syscall(long id) { return id == 61 || id == 247; }

/* trace: the cell of a (command, clone flags) group, allocated on first sight. */
static __always_inline __u32 group_cell(struct fs_group_key *k)
{
	__u32 *v = bpf_map_lookup_elem(&groups, k);
	if (v)
		return *v;
	__u32 limit = max_groups;
	__u32 c = __sync_fetch_and_add(&next_group, 1);
	if (c >= limit)
		return limit; /* "other" */
	if (bpf_map_update_elem(&groups, k, &c, BPF_NOEXIST)) {
		v = bpf_map_lookup_elem(&groups, k); /* another CPU added it first */
		return v ? *v : limit;
	}
	return c;
}

/* The clone flags a launch syscall asks for, from its arguments. */
static __always_inline __u64 launch_flags(long id, struct pt_regs *regs)
{
	if (id == 57)
		return 0;
	if (id == 58)
		return 0x00000100ull | FS_CLONE_VFORK; /* CLONE_VM | CLONE_VFORK */
	__u64 arg = BPF_CORE_READ(regs, di);
	if (id == 56)
		return arg;
	__u64 flags = 0; /* clone3: struct clone_args begins with the flags */
	bpf_probe_read_user(&flags, sizeof(flags), (void *)arg);
	return flags;
}

static __always_inline __u32 trace_cell(__u64 flags)
{
	struct fs_group_key k = {};
	bpf_get_current_comm(k.comm, sizeof(k.comm));
	k.flags = flags;
	return group_cell(&k);
}

/* An execve or execveat starts in a launched child (or, in trace, a followed task). */
static __always_inline void exec_begin(__u32 tid, __u32 tgid, __u64 now)
{
	struct fs_child *c = bpf_map_lookup_elem(&children, &tid);
	__u32 cell;
	if (c)
		cell = c->cell;
	else if (follow != FS_FOLLOW_TGID && is_target(tgid))
		cell = trace_cell(FS_GROUP_EXEC_ONLY);
	else
		return;
	if (cell >= FS_MAX_CELLS)
		return;
	__u32 zero = 0;
	struct fs_launch *l = bpf_map_lookup_elem(&scratch, &zero);
	if (!l)
		return;
	struct task_struct *task = bpf_get_current_task_btf();
	fs_exec_begin(l, cell, now, (__u64)task->mm, CFG);
	if (c)
		l->seq = c->seq; /* a sampled launch's child: its exec spans join the timeline */
	l->events[FS_PH_EXEC_BPRM] = 1; /* this program */
	l->tid = tid;
	if (bpf_map_update_elem(&launches, &tid, l, BPF_ANY) == 0) {
		__sync_fetch_and_add(&execs_in_flight, 1);
	} else {
		struct fs_cellstat *cs = cellstat(cell);
		if (cs)
			cs->lost += 1;
	}
}

SEC("tp_btf/sys_enter")
int BPF_PROG(fs_sys_enter, struct pt_regs *regs, long id)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid, tgid = (__u32)(pid_tgid >> 32);

	if (is_exit_syscall(id)) {
		/* A child on its way out: exit or exit_group starts its teardown. */
		struct fs_child *c = bpf_map_lookup_elem(&children, &tid);
		if (c && !c->exit_ts)
			c->exit_ts = bpf_ktime_get_ns();
		return 0;
	}
	if (is_exec_syscall(id)) {
		exec_begin(tid, tgid, bpf_ktime_get_ns());
		return 0;
	}
	if (!is_target(tgid))
		return 0;
	if (is_wait_syscall(id)) {
		struct fs_wait w = { .since = bpf_ktime_get_ns() };
		if (id == 247) {
			/* waitid(idtype, id, infop, options, rusage): WNOWAIT reaps nothing. */
			if (BPF_CORE_READ(regs, r10) & 0x01000000)
				return 0;
			w.infop = BPF_CORE_READ(regs, dx);
		}
		bpf_map_update_elem(&waits, &tid, &w, BPF_ANY);
		return 0;
	}
	if (!is_launch_syscall(id))
		return 0;
	bpf_map_delete_elem(&last_cell, &tid);
	__u64 flags = launch_flags(id, regs);
	__u32 cell = follow == FS_FOLLOW_TGID ? cur_cell : trace_cell(flags & ~FS_CLONE_IGNORED);
	if (cell >= FS_MAX_CELLS) {
		bpf_map_delete_elem(&launches, &tid);
		return 0;
	}
	__u32 zero = 0;
	struct fs_launch *l = bpf_map_lookup_elem(&scratch, &zero);
	if (!l)
		return 0;
	__u32 seq = tid == sample_tid ? sample_seq : 0;
	if (follow != FS_FOLLOW_TGID) {
		__u32 idx = cell;
		FS_BARRIER(idx);
		seq = 0;
		if (idx < FS_MAX_CELLS) {
			__u32 k = __sync_fetch_and_add(&trace_samples[idx], 1);
			if (k < trace_sample_limit)
				seq = k + 1;
		}
	}
	fs_launch_begin(l, cell, seq, bpf_ktime_get_ns());
	l->events[FS_PH_SYSCALL] = 1; /* this program */
	l->tid = tid;
	if (bpf_map_update_elem(&launches, &tid, l, BPF_ANY)) {
		struct fs_cellstat *cs = cellstat(cell);
		if (cs)
			cs->lost += 1;
	}
	return 0;
}

/* RSS in pages: a percpu_counter array since 6.2, atomics before. */
struct mm_rss_stat___old {
	atomic_long_t count[4];
} __attribute__((preserve_access_index));
struct mm_struct___old {
	struct mm_rss_stat___old rss_stat;
} __attribute__((preserve_access_index));

static __always_inline __u64 mm_rss_pages(struct mm_struct *mm)
{
	__s64 r = 0;
	if (bpf_core_type_exists(struct mm_rss_stat___old)) {
		struct mm_struct___old *old = (void *)mm;
		r += BPF_CORE_READ(old, rss_stat.count[0].counter); /* file */
		r += BPF_CORE_READ(old, rss_stat.count[1].counter); /* anon */
		r += BPF_CORE_READ(old, rss_stat.count[3].counter); /* shmem */
	} else {
		r += BPF_CORE_READ(mm, rss_stat[0].count);
		r += BPF_CORE_READ(mm, rss_stat[1].count);
		r += BPF_CORE_READ(mm, rss_stat[3].count);
	}
	return r > 0 ? (__u64)r : 0;
}

static __always_inline void exec_end(struct fs_launch *l, __u32 tid, long ret, __u64 now)
{
	__u32 cell = l->cell;
	struct fs_cellstat *cs = cellstat(cell);
	fs_landmark(l, FS_LM_SYS_EXIT, now, CFG);
	if (ret == 0) {
		aggregate(l);
		if (cs)
			cs->execs += 1;
		struct fs_child *c = bpf_map_lookup_elem(&children, &tid);
		if (c) {
			c->exec_ret_ts = now;
			__u32 n = l->nspans;
			for (__u32 i = 0; i < 8; i++) {
				if (i >= n)
					break;
				struct fs_span *sp = &l->spans[FS_SPAN_IDX(i)];
				emit_child_span(c, tid, sp->phase, sp->start, sp->dur);
			}
		}
		if (c && follow != FS_FOLLOW_TGID) {
			/* Credited to the process that launched the exec'ing child. */
			__u32 launcher = c->launcher;
			struct fs_launcher *p = bpf_map_lookup_elem(&parents, &launcher);
			if (p)
				p->execs += 1;
		}
	} else if (cs) {
		cs->exec_failed += 1;
	}
	bpf_map_delete_elem(&launches, &tid);
	if (execs_in_flight) /* reset when the programs are attached again */
		__sync_fetch_and_add(&execs_in_flight, -1);
}

/* A followed thread's wait4/waitid returned a child: its reaping. */
static __always_inline void wait_end(__u32 tid, long ret, __u64 now)
{
	struct fs_wait *w = bpf_map_lookup_elem(&waits, &tid);
	if (!w)
		return;
	__u64 since = w->since, infop = w->infop;
	bpf_map_delete_elem(&waits, &tid);
	if (ret < 0 || (ret == 0 && !infop))
		return;
	__u32 pid = (__u32)ret;
	if (infop) {
		/* waitid returns 0: the pid is siginfo's si_pid (after signo, errno, code
		 * and padding to the union); 0 when WNOHANG found nothing. */
		__s32 si_pid = 0;
		bpf_probe_read_user(&si_pid, sizeof(si_pid), (void *)(infop + 16));
		if (si_pid <= 0)
			return;
		pid = (__u32)si_pid;
	}
	struct fs_child *c = bpf_map_lookup_elem(&children, &pid);
	if (!c || !c->exit_ts)
		return; /* a stopped child (WUNTRACED), not a reaped one */
	/* The parent, woken by exit_notify on another CPU, may reap the child before
	 * its last switch-out: then the child's last event seen stands for its death. */
	__u64 died = c->dead_ts ? c->dead_ts : c->mm_last ? c->mm_last : c->exit_ts;
	if (died) {
		__u64 start = died > since ? died : since;
		__u64 d = now > start ? now - start : 0;
		agg_add(c->cell, FS_PH_REAP, 1, 1, d, d, 2, 0);
		emit_child_span(c, pid, FS_PH_REAP, start, d);
	}
	if (c->dead_ts)
		bpf_map_delete_elem(&children, &pid);
	else
		__sync_fetch_and_or(&c->flags, FS_CF_REAPED); /* its teardown is still to be counted */
}

SEC("tp_btf/sys_exit")
int BPF_PROG(fs_sys_exit, struct pt_regs *regs, long ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid, tgid = (__u32)(pid_tgid >> 32);
	struct fs_launch *l = my_launch();
	if (!l) {
		if (follow != FS_FOLLOW_TGID || tgid == target_tgid)
			wait_end(tid, ret, bpf_ktime_get_ns());
		return 0;
	}
	if (l->flags & FS_LF_CALIB)
		return 0;
	__u64 now = bpf_ktime_get_ns();
	if (l->flags & FS_LF_EXEC) {
		exec_end(l, tid, ret, now);
		return 0;
	}
	__u32 cell = l->cell;
	struct fs_cellstat *cs = cellstat(cell);

	fs_landmark(l, FS_LM_SYS_EXIT, now, CFG);
	if (ret > 0) {
		aggregate(l);
		if (cs) {
			cs->launches += 1;
			cs->pt_pages += l->pt_pages;
			struct task_struct *task = bpf_get_current_task_btf();
			struct mm_struct *mm = task->mm;
			if (mm) {
				cs->mm_vmas += BPF_CORE_READ(mm, map_count);
				cs->mm_total_vm += BPF_CORE_READ(mm, total_vm);
				cs->mm_pgtables += BPF_CORE_READ(mm, pgtables_bytes.counter);
				cs->mm_rss += mm_rss_pages(mm);
			}
		}
		if (l->seq) {
			l->child = (__s32)ret;
			if (bpf_ringbuf_output(&samples, l, sizeof(*l), 0) && cs)
				cs->samples_lost += 1;
		}
		bpf_map_update_elem(&last_cell, &tid, &cell, BPF_ANY);
		if (follow != FS_FOLLOW_TGID) {
			struct fs_launcher *p = bpf_map_lookup_elem(&parents, &tgid);
			if (p) {
				p->launches += 1;
			} else {
				struct fs_launcher np = { .launches = 1 };
				bpf_get_current_comm(np.comm, sizeof(np.comm));
				bpf_map_update_elem(&parents, &tgid, &np, BPF_ANY);
			}
		}
	} else if (ret != -513 /* ERESTARTNOINTR: restarted, not failed */ && cell < FS_MAX_CELLS) {
		for (int i = 0; i < FS_NPHASES; i++) {
			if (!l->calls[i])
				continue;
			__u32 key = cell * FS_NPHASES + i;
			struct fs_agg_failed *f = bpf_map_lookup_elem(&agg_failed, &key);
			if (f) {
				f->count += 1;
				f->calls += l->calls[i];
				f->total_ns += l->total_ns[i];
				f->self_ns += l->self_ns[i];
			}
		}
		if (cs)
			cs->failed += 1;
	}
	bpf_map_delete_elem(&launches, &tid);
	return 0;
}

static __always_inline __u32 classify_copy_process_cache(struct fs_launch *l, struct kmem_cache *s)
{
	__u64 key = (__u64)s;
	__u32 *known = bpf_map_lookup_elem(&cache_lm, &key);
	if (known)
		return *known;

	char name[16] = {};
	const char *p = BPF_CORE_READ(s, name);
	bpf_probe_read_kernel_str(name, sizeof(name), p);
	__u32 lm = 0;
	if (name[0] == 't' && name[1] == 'a' && name[2] == 's' && name[3] == 'k')
		lm = FS_LM_TASK_STRUCT; /* task_struct */
	else if (name[0] == 's' && name[1] == 'i' && name[2] == 'g' && name[3] == 'h')
		lm = FS_LM_SIGHAND; /* sighand_cache */
	else if (name[0] == 's' && name[1] == 'i' && name[2] == 'g' && name[3] == 'n')
		lm = FS_LM_SIGNAL; /* signal_cache */
	else if (name[0] == 'm' && name[1] == 'm' && name[2] == '_' && name[3] == 's')
		lm = FS_LM_MM_STRUCT; /* mm_struct */
	if (lm) {
		bpf_map_update_elem(&cache_lm, &key, &lm, BPF_ANY);
		return lm;
	}
	/* Merged slab caches report another cache's name.  task_struct, sighand and
	 * mm_struct caches cannot merge (usercopy / RCU); signal_cache can. */
	return fs_find(l, FS_PH_COPY_PROCESS) < 0 ? FS_LM_TASK_STRUCT : FS_LM_SIGNAL;
}

SEC("tp_btf/kmem_cache_alloc")
int BPF_PROG(fs_kmem_cache_alloc, unsigned long call_site, const void *ptr, struct kmem_cache *s)
{
	struct fs_launch *l = my_launch();
	if (!l)
		return 0;
	/* Find the site first and apply its landmark once: the state machine inlined
	 * into every unrolled iteration made this program slow to load. */
	__u32 n = nsites, lm = FS_LM_COUNT;
	for (__u32 i = 0; i < FS_MAX_SITES; i++) {
		if (i >= n)
			break;
		if (call_site >= sites[i].start && call_site < sites[i].end) {
			lm = sites[i].lm;
			break;
		}
	}
	if (lm == FS_LM_COUNT)
		return 0;
	if (lm == 0)
		lm = classify_copy_process_cache(l, s);
	fs_landmark(l, lm, bpf_ktime_get_ns(), CFG);
	return 0;
}

/* An exiting child's mmap_lock events bound its exit_mm. */
static __always_inline void child_mm_event(__u64 now)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct fs_child *c = bpf_map_lookup_elem(&children, &tid);
	if (!c || !c->exit_ts || c->dead_ts)
		return;
	if (!c->mm_first)
		c->mm_first = now;
	c->mm_last = now;
}

SEC("tp_btf/mmap_lock_acquire_returned")
int BPF_PROG(fs_mmap_lock_acquired, struct mm_struct *mm, bool write, bool success)
{
	__u64 now = bpf_ktime_get_ns();
	struct fs_launch *l = my_launch();
	if (!l) {
		child_mm_event(now);
		return 0;
	}
	if (!success)
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	int lm = 0;
	if (l->flags & FS_LF_EXEC)
		lm = fs_exec_lock_landmark(l, (__u64)mm, (__u64)task->mm);
	else if (write && mm == task->mm)
		lm = FS_LM_MMAP_LOCK;
	if (lm)
		fs_landmark(l, lm, now, CFG);
	return 0;
}

SEC("tp_btf/mmap_lock_released")
int BPF_PROG(fs_mmap_lock_released, struct mm_struct *mm, bool write)
{
	__u64 now = bpf_ktime_get_ns();
	struct fs_launch *l = my_launch();
	if (!l) {
		child_mm_event(now);
		return 0;
	}
	if (!write || (l->flags & FS_LF_EXEC))
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	if (mm == task->mm)
		fs_landmark(l, FS_LM_MMAP_UNLOCK, now, CFG);
	return 0;
}

SEC("tp_btf/mm_page_alloc")
int BPF_PROG(fs_mm_page_alloc, struct page *page, unsigned int order)
{
	struct fs_launch *l = my_launch();
	if (!l)
		return 0;
	if (fs_find(l, FS_PH_DUP_MM) >= 0)
		l->pt_pages += 1u << (order & 15);
	return 0;
}

SEC("tp_btf/task_newtask")
int BPF_PROG(fs_task_newtask, struct task_struct *task, __u64 clone_flags)
{
	struct fs_launch *l = my_launch();
	if (!l || (l->flags & FS_LF_EXEC))
		return 0;
	if (clone_flags & FS_CLONE_VFORK)
		l->flags |= FS_LF_VFORK;
	fs_landmark(l, FS_LM_NEWTASK, bpf_ktime_get_ns(), CFG);
	__u32 pid = task->pid;
	struct fs_child c = { .cell = l->cell, .seq = l->seq,
			      .launcher = (__u32)(bpf_get_current_pid_tgid() >> 32) };
	if (clone_flags & 0x00010000ull /* CLONE_THREAD */)
		c.flags = FS_CF_THREAD;
	else if (follow == FS_FOLLOW_TREE)
		bpf_map_update_elem(&tracked, &pid, &pid, BPF_ANY); /* a new process: followed too */
	if (bpf_map_update_elem(&children, &pid, &c, BPF_ANY) == 0) {
		struct fs_cellstat *cs = cellstat(l->cell);
		if (cs)
			cs->children_born += 1;
	}
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(fs_sched_process_fork, struct task_struct *parent, struct task_struct *child)
{
	struct fs_launch *l = my_launch();
	if (l)
		fs_landmark(l, FS_LM_FORK_DONE, bpf_ktime_get_ns(), CFG);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(fs_sched_process_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 pid = p->pid, old = (__u32)old_pid;
	if (old != pid) {
		/* A non-leader thread exec'd: de_thread gave it the leader's pid.  Its
		 * records move with it (landmarks between de_thread and here were missed:
		 * bprm_setup runs on to here). */
		struct fs_launch *moved = bpf_map_lookup_elem(&launches, &old);
		if (moved) {
			bpf_map_update_elem(&launches, &pid, moved, BPF_ANY);
			bpf_map_delete_elem(&launches, &old);
		}
		struct fs_child *child = bpf_map_lookup_elem(&children, &old);
		if (child) {
			bpf_map_update_elem(&children, &pid, child, BPF_ANY);
			bpf_map_delete_elem(&children, &old);
		}
	}
	struct fs_launch *l = my_launch();
	if (l)
		fs_landmark(l, FS_LM_EXEC_DONE, bpf_ktime_get_ns(), CFG);
	return 0;
}

/* The task is gone for good: whatever we still hold about it goes too (children
 * reaped by someone we do not follow, or reaping themselves). */
SEC("tp_btf/sched_process_free")
int BPF_PROG(fs_sched_process_free, struct task_struct *p)
{
	__u32 pid = p->pid;
	bpf_map_delete_elem(&children, &pid);
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(fs_sched_wakeup_new, struct task_struct *p)
{
	struct fs_launch *l = my_launch();
	if (!l)
		return 0;
	__u64 now = bpf_ktime_get_ns();
	fs_landmark(l, FS_LM_WAKEUP_NEW, now, CFG);
	__u32 pid = p->pid;
	struct fs_child *c = bpf_map_lookup_elem(&children, &pid);
	if (c && !c->ran)
		c->wake_ts = now;
	return 0;
}

#define FS_TASK_DEAD 0x80

/* A child's last switch-out ends its teardown (exit syscall .. dead). */
static __always_inline void child_dead(struct fs_child *c, __u32 pid, __u64 now)
{
	c->dead_ts = now;
	if (c->exit_ts) {
		__u64 d = now - c->exit_ts;
		__u64 m = c->mm_first ? c->mm_last - c->mm_first : 0;
		agg_add(c->cell, FS_PH_TEARDOWN, 1, 1, d, d - m, 2, 0);
		emit_child_span(c, pid, FS_PH_TEARDOWN, c->exit_ts, d);
		if (c->mm_first) {
			agg_add(c->cell, FS_PH_EXIT_MM, 1, 1, m, m, 0, 0);
			emit_child_span(c, pid, FS_PH_EXIT_MM, c->mm_first, m);
		}
	}
	struct fs_cellstat *cs = cellstat(c->cell);
	if (cs) {
		cs->children_exited += 1;
		/* Rare (< 0.1%): a child that dies with no switch into it seen. */
		if (!c->ran)
			cs->first_run_missed += 1;
	}
	if (c->flags & (FS_CF_THREAD | FS_CF_REAPED))
		bpf_map_delete_elem(&children, &pid);
}

SEC("tp_btf/sched_switch")
int BPF_PROG(fs_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u64 now = bpf_ktime_get_ns();
	if (prev->__state & FS_TASK_DEAD) {
		__u32 prev_pid = prev->pid;
		struct fs_child *d = bpf_map_lookup_elem(&children, &prev_pid);
		if (d && !d->dead_ts)
			child_dead(d, prev_pid, now);
		if (follow == FS_FOLLOW_TREE && prev->pid == prev->tgid)
			bpf_map_delete_elem(&tracked, &prev_pid);
	}
	__u32 pid = next->pid;
	struct fs_child *c = bpf_map_lookup_elem(&children, &pid);
	if (!c || c->ran)
		return 0;
	c->ran = 1;
	/* Another CPU may switch the child in before sched_wakeup_new's handler ran
	 * on the parent's: then it waited for nothing. */
	if (!c->wake_ts)
		c->wake_ts = now;
	__u64 d = now - c->wake_ts;
	agg_add(c->cell, FS_PH_CHILD_FIRST_RUN, 1, 1, d, d, 1, 0);
	emit_child_span(c, pid, FS_PH_CHILD_FIRST_RUN, c->wake_ts, d);
	return 0;
}

SEC("tp_btf/page_fault_user")
int BPF_PROG(fs_page_fault_user, unsigned long address, struct pt_regs *regs,
	     unsigned long error_code)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	struct fs_child *c = bpf_map_lookup_elem(&children, &tid);
	const int cow = (cfg.measured & FS_BIT(FS_PH_POST_LAUNCH_COW)) && (error_code & 2);
	if (c) {
		if (c->exec_ret_ts) {
			/* The new image's first instruction faulted. */
			__u64 now = bpf_ktime_get_ns();
			__u64 d = now - c->exec_ret_ts;
			agg_add(c->cell, FS_PH_EXEC_FIRST_INSN, 1, 1, d, d, 1, 0);
			emit_child_span(c, tid, FS_PH_EXEC_FIRST_INSN, c->exec_ret_ts, d);
			c->exec_ret_ts = 0;
		}
		if (cow) {
			struct fs_cellstat *cs = cellstat(c->cell);
			if (cs)
				cs->faults_child += 1;
		}
		return 0;
	}
	/* The launcher between cells (preparing the next heap) is not launching. */
	if (!cow || (__u32)(pid_tgid >> 32) != target_tgid || cur_cell == FS_NO_CELL)
		return 0;
	__u32 *cell = bpf_map_lookup_elem(&last_cell, &tid);
	if (cell) {
		struct fs_cellstat *cs = cellstat(*cell);
		if (cs)
			cs->faults_parent += 1;
	}
	return 0;
}

/* Function probes: FS_MAX_FN_SLOTS generic slots, each an entry and an exit program
 * for fentry/fexit and for kprobe/kretprobe.  User space points the slots it uses
 * at kernel functions (fentry targets before load, kprobes at attach) and turns
 * the others' autoload off.  The programs read no arguments, so one body fits
 * every function. */
static __always_inline int fn_enter(__u32 slot)
{
	struct fs_launch *l = launch_of_current(1);
	if (l && slot < FS_MAX_FN_SLOTS)
		fs_function_entry(l, slot_phase[slot], bpf_ktime_get_ns(), CFG);
	return 0;
}

static __always_inline int fn_exit(__u32 slot)
{
	struct fs_launch *l = launch_of_current(1);
	if (l && slot < FS_MAX_FN_SLOTS)
		fs_function_exit(l, slot_phase[slot], bpf_ktime_get_ns(), CFG);
	return 0;
}

#define FN_SLOT(i)                                                                   \
	SEC("fentry") int fs_fentry_##i(void *ctx) { return fn_enter(i); }           \
	SEC("fexit") int fs_fexit_##i(void *ctx) { return fn_exit(i); }              \
	SEC("kprobe") int fs_kprobe_##i(void *ctx) { return fn_enter(i); }           \
	SEC("kretprobe") int fs_kretprobe_##i(void *ctx) { return fn_exit(i); }

FN_SLOT(0) FN_SLOT(1) FN_SLOT(2) FN_SLOT(3) FN_SLOT(4) FN_SLOT(5) FN_SLOT(6) FN_SLOT(7)
FN_SLOT(8) FN_SLOT(9) FN_SLOT(10) FN_SLOT(11) FN_SLOT(12) FN_SLOT(13) FN_SLOT(14) FN_SLOT(15)
FN_SLOT(16) FN_SLOT(17) FN_SLOT(18) FN_SLOT(19) FN_SLOT(20) FN_SLOT(21) FN_SLOT(22) FN_SLOT(23)
