/* The per-task phase stack and the landmark rules of the tracepoint backend.
 *
 * Compiled into the BPF programs and into the unit tests, so the inference the
 * kernel side performs is the one the tests feed with recorded event sequences.
 * Plain C that the BPF verifier accepts: bounded loops, checked indices, no libc.
 * Include catalog.h and the base types (vmlinux.h or <linux/types.h>) first. */
#ifndef FORKSCOPE_SHARED_MACHINE_H
#define FORKSCOPE_SHARED_MACHINE_H

#ifdef __cplusplus
#define FS_INLINE static inline
#else
#define FS_INLINE static __always_inline
#endif

/* Landmarks: what the BPF programs recognise in the tracepoint stream. */
enum fs_landmark {
	FS_LM_TASK_STRUCT = 1, /* kmem_cache_alloc task_struct, call site in copy_process */
	FS_LM_CREDS,           /* allocation from prepare_creds */
	FS_LM_FILES,           /* allocation from dup_fd */
	FS_LM_FS,              /* allocation from copy_fs_struct */
	FS_LM_SIGHAND,         /* sighand_cache allocation in copy_process */
	FS_LM_SIGNAL,          /* signal_cache allocation in copy_process */
	FS_LM_MM_STRUCT,       /* mm_struct allocation in copy_process (dup_mm) */
	FS_LM_MMAP_LOCK,       /* parent's mmap_lock taken for write while dup_mm runs */
	FS_LM_MMAP_UNLOCK,     /* parent's mmap_lock released */
	FS_LM_VMA_DUP,         /* allocation from vm_area_dup: next VMA */
	FS_LM_ANON_VMA,        /* allocation from anon_vma_clone / anon_vma_fork */
	FS_LM_PT_WORK,         /* rss_stat on the child's mm: page tables were copied */
	FS_LM_PID,             /* allocation from alloc_pid */
	FS_LM_NEWTASK,         /* task_newtask: copy_process is done */
	FS_LM_FORK_DONE,       /* sched_process_fork */
	FS_LM_WAKEUP_NEW,      /* sched_wakeup_new of the child */
	FS_LM_SYS_EXIT,        /* sys_exit in the launching thread */
	FS_LM_COUNT
};

#define FS_LF_VFORK 1u

/* Indices are masked as well as checked: the verifier keeps the mask's bound
 * where the compiler may drop a comparison's.  FS_STACK_DEPTH is a power of 2. */
#define FS_STACK_MASK (FS_STACK_DEPTH - 1)
#ifdef __cplusplus
#define FS_STACK_IDX(x) ((x) & FS_STACK_MASK)
#else
/* The empty asm hides the value's known range from clang, so it keeps the mask. */
#define FS_STACK_IDX(x) ({ __u32 __i = (x); asm volatile("" : "+r"(__i)); __i & FS_STACK_MASK; })
#endif

struct fs_frame {
	__u64 start;
	__u64 child_ns;
	__u32 phase;
	__u32 pad;
};

/* One launch in flight, per launching thread. */
struct fs_launch {
	struct fs_frame stack[FS_STACK_DEPTH];
	__u32 depth;
	__u32 cell;
	__u32 flags;
	__u32 pt_pages;
	__u64 cpr_candidate;
	__u64 total_ns[FS_NPHASES];
	__u64 self_ns[FS_NPHASES];
	__u32 calls[FS_NPHASES];
};

FS_INLINE int fs_phase_parent(int ph)
{
	switch (ph) {
#define FS_X_PARENT(id, name, parent, src, how) \
	case FS_PH_##id:                        \
		return FS_PH_##parent;
		FS_PHASES(FS_X_PARENT)
#undef FS_X_PARENT
	}
	return FS_PH_NONE;
}

/* Nearest ancestor that the active backend measures (bit set in mask). */
FS_INLINE int fs_effective_parent(int ph, __u32 mask)
{
	int p = fs_phase_parent(ph);
	for (int i = 0; i < FS_STACK_DEPTH && p != FS_PH_NONE; i++) {
		if (mask & (1u << p))
			return p;
		p = fs_phase_parent(p);
	}
	return p;
}

FS_INLINE int fs_top(const struct fs_launch *l)
{
	__u32 d = l->depth;
	if (d == 0 || d > FS_STACK_DEPTH)
		return FS_PH_NONE;
	return (int)l->stack[FS_STACK_IDX(d - 1)].phase;
}

FS_INLINE int fs_find(const struct fs_launch *l, int ph)
{
	for (int i = 0; i < FS_STACK_DEPTH; i++) {
		if ((__u32)i >= l->depth)
			break;
		if ((int)l->stack[i].phase == ph)
			return i;
	}
	return -1;
}

/* Close the innermost phase at ts: its time goes to its total, the part not
 * spent in children to its self time, and all of it to the parent's children. */
FS_INLINE void fs_pop(struct fs_launch *l, __u64 ts)
{
	__u32 d = l->depth;
	if (d == 0 || d > FS_STACK_DEPTH)
		return;
	struct fs_frame *f = &l->stack[FS_STACK_IDX(d - 1)];
	__u32 ph = f->phase;
	__u64 dur = ts > f->start ? ts - f->start : 0;
	__u64 self = dur > f->child_ns ? dur - f->child_ns : 0;
	if (ph < FS_NPHASES) {
		l->total_ns[ph] += dur;
		l->self_ns[ph] += self;
		l->calls[ph] += 1;
	}
	l->depth = d - 1;
	if (d >= 2)
		l->stack[FS_STACK_IDX(d - 2)].child_ns += dur;
}

/* Open ph at ts.  Siblings (and their children) still open are closed first:
 * a landmark ends the segment of the one before it.  Ignored when the phase's
 * parent is not open, so a stray event cannot invent a phase. */
FS_INLINE int fs_open(struct fs_launch *l, int ph, __u64 ts, __u32 mask)
{
	int parent = fs_effective_parent(ph, mask);
	int keep = 0;
	if (parent != FS_PH_NONE) {
		int idx = fs_find(l, parent);
		if (idx < 0)
			return 0;
		keep = idx + 1;
	}
	for (int i = 0; i < FS_STACK_DEPTH; i++) {
		if (l->depth <= (__u32)keep)
			break;
		fs_pop(l, ts);
	}
	__u32 d = l->depth;
	if (d >= FS_STACK_DEPTH)
		return 0;
	struct fs_frame *f = &l->stack[FS_STACK_IDX(d)];
	f->start = ts;
	f->child_ns = 0;
	f->phase = (__u32)ph;
	l->depth = d + 1;
	return 1;
}

/* Close ph and everything opened inside it. */
FS_INLINE void fs_close(struct fs_launch *l, int ph, __u64 ts)
{
	int idx = fs_find(l, ph);
	if (idx < 0)
		return;
	for (int i = 0; i < FS_STACK_DEPTH; i++) {
		if (l->depth <= (__u32)idx)
			break;
		fs_pop(l, ts);
	}
}

FS_INLINE void fs_launch_begin(struct fs_launch *l, __u32 cell, __u64 ts)
{
	l->depth = 0;
	l->cell = cell;
	l->flags = 0;
	l->pt_pages = 0;
	l->cpr_candidate = 0;
	for (int i = 0; i < FS_NPHASES; i++) {
		l->total_ns[i] = 0;
		l->self_ns[i] = 0;
		l->calls[i] = 0;
	}
	fs_open(l, FS_PH_SYSCALL, ts, 1u << FS_PH_SYSCALL);
}

/* Phases the tracepoint backend opens. */
#define FS_TP_MASK ((1u << FS_NPHASES) - 1u - (1u << FS_PH_KERNEL_CLONE))

/* Apply one landmark of the launching thread. */
FS_INLINE void fs_landmark(struct fs_launch *l, int lm, __u64 ts)
{
	const __u32 mask = FS_TP_MASK;
	switch (lm) {
	case FS_LM_TASK_STRUCT:
		if (fs_find(l, FS_PH_COPY_PROCESS) < 0)
			fs_open(l, FS_PH_COPY_PROCESS, ts, mask);
		fs_open(l, FS_PH_DUP_TASK_STRUCT, ts, mask);
		break;
	case FS_LM_CREDS:
		fs_open(l, FS_PH_COPY_CREDS, ts, mask);
		break;
	case FS_LM_FILES:
		fs_open(l, FS_PH_COPY_FILES, ts, mask);
		break;
	case FS_LM_FS:
		fs_open(l, FS_PH_COPY_FS, ts, mask);
		break;
	case FS_LM_SIGHAND:
		fs_open(l, FS_PH_COPY_SIGHAND, ts, mask);
		break;
	case FS_LM_SIGNAL:
		fs_open(l, FS_PH_COPY_SIGNAL, ts, mask);
		break;
	case FS_LM_MM_STRUCT:
		fs_open(l, FS_PH_DUP_MM, ts, mask);
		break;
	case FS_LM_MMAP_LOCK:
		if (fs_top(l) == FS_PH_DUP_MM)
			fs_open(l, FS_PH_DUP_MMAP, ts, mask);
		break;
	case FS_LM_MMAP_UNLOCK:
		fs_close(l, FS_PH_DUP_MMAP, ts);
		break;
	case FS_LM_VMA_DUP:
		if (fs_open(l, FS_PH_VMA_SETUP, ts, mask))
			l->cpr_candidate = ts;
		break;
	case FS_LM_ANON_VMA:
		if (fs_top(l) == FS_PH_VMA_SETUP)
			l->cpr_candidate = ts;
		break;
	case FS_LM_PT_WORK:
		/* The VMA copies page tables: its copy_page_range began where its
		 * set-up ended, at the last set-up landmark. */
		if (fs_top(l) == FS_PH_VMA_SETUP) {
			__u64 at = l->cpr_candidate ? l->cpr_candidate : ts;
			fs_pop(l, at);
			fs_open(l, FS_PH_COPY_PAGE_RANGE, at, mask);
		}
		break;
	case FS_LM_PID:
		fs_open(l, FS_PH_ALLOC_PID, ts, mask);
		break;
	case FS_LM_NEWTASK:
		fs_close(l, FS_PH_COPY_PROCESS, ts);
		break;
	case FS_LM_FORK_DONE:
		fs_open(l, FS_PH_WAKE_UP_NEW_TASK, ts, mask);
		break;
	case FS_LM_WAKEUP_NEW:
		fs_close(l, FS_PH_WAKE_UP_NEW_TASK, ts);
		if (l->flags & FS_LF_VFORK)
			fs_open(l, FS_PH_VFORK_WAIT, ts, mask);
		break;
	case FS_LM_SYS_EXIT:
		fs_close(l, FS_PH_SYSCALL, ts);
		break;
	}
}

/* Histogram: log-linear, 8 slots per power of two (values < 8 ns exact). */
FS_INLINE __u32 fs_log2(__u64 v)
{
	__u32 r = 0, s;
	s = (v > 0xffffffffULL) << 5; v >>= s; r |= s;
	s = (v > 0xffff) << 4; v >>= s; r |= s;
	s = (v > 0xff) << 3; v >>= s; r |= s;
	s = (v > 0xf) << 2; v >>= s; r |= s;
	s = (v > 0x3) << 1; v >>= s; r |= s;
	r |= (__u32)(v >> 1);
	return r;
}

FS_INLINE __u32 fs_hist_slot(__u64 ns)
{
	if (ns < 8)
		return (__u32)ns;
	__u32 msb = fs_log2(ns);
	__u32 slot = (msb - 2) * 8 + (__u32)((ns >> (msb - 3)) & 7);
	return slot < FS_HIST_SLOTS ? slot : FS_HIST_SLOTS - 1;
}

/* Call sites: [start, end) of a kernel function whose allocations mark a landmark.
 * lm == 0 means copy_process itself, classified by the cache allocated from. */
struct fs_site {
	__u64 start;
	__u64 end;
	__u32 lm;
	__u32 pad;
};

/* Aggregates, one per (cell, phase), in a per-CPU array. */
struct fs_agg {
	__u64 count;    /* launches in which the phase was seen */
	__u64 calls;    /* spans (e.g. VMAs whose page tables were copied) */
	__u64 total_ns; /* inclusive */
	__u64 self_ns;  /* inclusive minus time in measured children */
	__u32 hist[FS_HIST_SLOTS]; /* per-launch inclusive ns */
};

/* The same without histogram, for launches whose syscall failed. */
struct fs_agg_failed {
	__u64 count;
	__u64 calls;
	__u64 total_ns;
	__u64 self_ns;
};

/* Per-cell counters, in a per-CPU array. */
struct fs_cellstat {
	__u64 launches;      /* syscalls that returned a child id */
	__u64 failed;        /* syscalls that returned an error */
	__u64 pt_pages;      /* pages allocated while dup_mm ran (page tables, pgd) */
	__u64 faults_parent; /* write faults of the launcher after its launches */
	__u64 faults_child;  /* write faults of the children */
	__u64 lost;          /* launches not tracked: per-task state map full */
};

#endif
