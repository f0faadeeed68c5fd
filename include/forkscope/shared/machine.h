/* The per-task phase stack and the landmark rules of the tracepoint backend.
 *
 * Compiled into the BPF programs, the unit tests and the fuzzer, so the inference
 * the kernel side performs is the one the tests feed with recorded event sequences.
 * Plain C that the BPF verifier accepts: bounded loops, checked indices, no libc.
 * Include catalog.h and the base types (vmlinux.h or <linux/types.h>) first; the
 * records the machine works on (records.h) come with it.
 *
 * One file of about 500 lines: the phase stack and the landmark rules are one
 * state machine whose transitions read each other's state, and the fuzzer and the
 * unit tests include it whole. */
#ifndef FORKSCOPE_SHARED_MACHINE_H
#define FORKSCOPE_SHARED_MACHINE_H

#include "records.h"

#ifndef FS_INLINE
#ifdef __cplusplus
#define FS_INLINE static inline
#else
#define FS_INLINE static __always_inline
#endif
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
	FS_LM_PID,             /* allocation from alloc_pid */
	FS_LM_NEWTASK,         /* task_newtask: copy_process is done */
	FS_LM_FORK_DONE,       /* sched_process_fork */
	FS_LM_WAKEUP_NEW,      /* sched_wakeup_new of the child */
	FS_LM_SYS_EXIT,        /* sys_exit in the launching (or exec'ing) thread */
	FS_LM_EXEC_OLD_LOCK,   /* exec: the old mm's mmap_lock taken while it is still ours (exec_mmap, 6.4+) */
	FS_LM_EXEC_OLD_EXIT,   /* exec: the old mm's mmap_lock taken after the switch (its exit_mmap) */
	FS_LM_EXEC_NEW_LOCK,   /* exec: the new mm's mmap_lock taken as our own (ELF load) */
	FS_LM_EXEC_DONE,       /* sched_process_exec: the binary is loaded */
	FS_LM_COUNT
};

#define FS_LF_VFORK 1u
#define FS_LF_EXEC 2u          /* the record is an execve, rooted at FS_PH_EXEC */
#define FS_LF_EXEC_OLD 4u      /* exec_mmap's landmark seen */
#define FS_LF_EXEC_OLD_EXIT 8u /* the old mm's exit seen */
#define FS_LF_EXEC_NEW 16u     /* the new mm's first lock seen */
#define FS_LF_VMA_ANON 32u     /* the VMA being set up allocated anon_vma structures */
#define FS_LF_CALIB 64u        /* the probe-cost calibration's record: no syscall ends it */

/* fs_launch.vma_state */
#define FS_VMA_DONE 1u /* vma_done_ns holds VMA vmas-2, finished */
#define FS_VMA_LOST 2u /* a finished VMA found no room: the launch is not attributed */
#define FS_VMA_EXACT 4u /* exact method: the current VMA's copy_page_range returned and was added */

/* Indices are masked as well as checked: the verifier keeps the mask's bound
 * where the compiler may drop a comparison's, so the sizes masked are powers of 2. */
FS_STATIC_ASSERT((FS_STACK_DEPTH & (FS_STACK_DEPTH - 1)) == 0, "FS_STACK_DEPTH must be a power of two");
FS_STATIC_ASSERT((FS_MAX_SPANS & (FS_MAX_SPANS - 1)) == 0, "FS_MAX_SPANS must be a power of two");
#define FS_STACK_MASK (FS_STACK_DEPTH - 1)
#ifdef __cplusplus
#define FS_STACK_IDX(x) ((x) & FS_STACK_MASK)
#define FS_SPAN_IDX(x) ((x) & (FS_MAX_SPANS - 1))
#define FS_BARRIER(x) ((void)0)
#else
/* The empty asm hides the value's known range from clang, so it keeps the mask. */
#define FS_STACK_IDX(x) ({ __u32 __i = (x); asm volatile("" : "+r"(__i)); __i & FS_STACK_MASK; })
#define FS_SPAN_IDX(x) ({ __u32 __i = (x); asm volatile("" : "+r"(__i)); __i & (FS_MAX_SPANS - 1); })
#define FS_BARRIER(x) asm volatile("" : "+r"(x))
#endif

#define FS_OUTER_SPANS 16 /* span slots kept for the three outermost levels (fs_pop) */
FS_STATIC_ASSERT(FS_OUTER_SPANS < FS_MAX_SPANS, "inner spans need slots too");

/* Catalog parent of a phase (user slots have none until configured). */
FS_INLINE int fs_catalog_parent(int ph)
{
	switch (ph) {
#define FS_X_PARENT(id, name, parent, src, fns, how) \
	case FS_PH_##id:                             \
		return FS_PH_##parent;
		FS_PHASES(FS_X_PARENT)
#undef FS_X_PARENT
	}
	return FS_PH_NONE;
}

/* The tracepoint-only configuration; other backends start from it. */
FS_INLINE void fs_config_tracepoint(struct fs_config *c)
{
	for (int i = 0; i < FS_NPHASES; i++)
		c->parent[i] = fs_catalog_parent(i);
	c->measured = FS_TP_MASK;
	c->landmarks = FS_TP_MASK;
}

FS_INLINE int fs_parent(const struct fs_config *c, int ph)
{
	__u32 i = (__u32)ph;
	FS_BARRIER(i); /* the check below must bound the very register used to index */
	if (i >= FS_NPHASES)
		return FS_PH_NONE;
	return c->parent[i];
}

/* Nearest ancestor that this run measures. */
FS_INLINE int fs_effective_parent(const struct fs_config *c, int ph)
{
	int p = fs_parent(c, ph);
	for (int i = 0; i < FS_STACK_DEPTH && p != FS_PH_NONE; i++) {
		if (c->measured & FS_BIT(p & 63))
			return p;
		p = fs_parent(c, p);
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

/* Where a VMA's set-up may end (its last set-up landmark so far): our runs counted
 * after it would move with the VMA's tail to copy_page_range (fs_vma_end). */
FS_INLINE void fs_vma_candidate(struct fs_launch *l, __u64 ts)
{
	l->cpr_candidate = ts;
	l->cand_events = 0;
	l->cand_fn_events = 0;
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
	if (ph == FS_PH_VMA_SETUP)
		l->vma_ns[0] += dur;
	else if (ph == FS_PH_COPY_PAGE_RANGE)
		l->vma_ns[1] += dur;
	if (ph < FS_NPHASES) {
		l->total_ns[ph] += dur;
		l->self_ns[ph] += self;
		l->calls[ph] += 1;
	}
	if (l->seq) {
		__u32 n = l->nspans;
		/* Outer spans close last: the last slots are kept for them, so a launch
		 * with more VMAs than slots still has its syscall and copy_process. */
		if (n < FS_MAX_SPANS - FS_OUTER_SPANS || (d <= 3 && n < FS_MAX_SPANS)) {
			struct fs_span *sp = &l->spans[FS_SPAN_IDX(n)];
			sp->start = f->start;
			sp->dur = dur;
			sp->phase = ph;
			l->nspans = n + 1;
		} else {
			l->spans_dropped += 1;
		}
	}
	l->depth = d - 1;
	if (d >= 2) {
		struct fs_frame *parent = &l->stack[FS_STACK_IDX(d - 2)];
		parent->child_ns += dur;
		/* A phase nested in a VMA's set-up (a user phase) ended: the VMA's
		 * copy_page_range cannot have begun before this point. */
		if (parent->phase == FS_PH_VMA_SETUP)
			fs_vma_candidate(l, ts);
	}
}

#ifdef FS_GLOBAL_POP
/* BPF: fs_pop as a global function.  The verifier checks a global function once
 * per program and each call to it by its signature, instead of walking fs_pop on
 * every path of every caller's unrolled loops: loading takes a fraction of the time. */
__noinline int fs_pop_global(struct fs_launch *l, __u64 ts)
{
	if (l)
		fs_pop(l, ts);
	return 0;
}
#define FS_POP(l, ts) fs_pop_global(l, ts)
#else
#define FS_POP(l, ts) fs_pop(l, ts)
#endif

/* Open ph at ts.  Siblings (and their children) still open are closed first:
 * a landmark ends the segment of the one before it.  Ignored when the phase's
 * parent is not open, so a stray event cannot invent a phase. */
FS_INLINE int fs_open(struct fs_launch *l, int ph, __u64 ts, const struct fs_config *c)
{
	int parent = fs_effective_parent(c, ph);
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
		FS_POP(l, ts);
	}
	__u32 d = l->depth;
	if (d >= FS_STACK_DEPTH)
		return 0;
	if (ph == FS_PH_VMA_SETUP) {
		/* The next VMA: the one before it (its spans all closed above) is done. */
		if (l->vmas) {
			l->vma_done_ns[0] = l->vma_ns[0];
			l->vma_done_ns[1] = l->vma_ns[1];
			l->vma_state |= FS_VMA_DONE;
		}
		l->vma_ns[0] = 0;
		l->vma_ns[1] = 0;
		l->vmas += 1;
	}
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
		FS_POP(l, ts);
	}
}

FS_INLINE void fs_launch_begin(struct fs_launch *l, __u32 cell, __u32 seq, __u64 ts)
{
	l->rec_type = FS_REC_LAUNCH;
	l->seq = seq;
	l->start_ns = ts;
	l->child = 0;
	l->nspans = 0;
	l->spans_dropped = 0;
	l->depth = 0;
	l->cell = cell;
	l->gen = 0;
	l->flags = 0;
	l->pt_pages = 0;
	fs_vma_candidate(l, 0);
	l->old_mm = 0;
	l->vma_site = 0;
	l->vmas = 0;
	l->vma_state = 0;
	l->vma_ns[0] = l->vma_ns[1] = 0;
	for (int i = 0; i < FS_NPHASES; i++) {
		FS_BARRIER(i); /* no memset idiom: BPF has no memset for arrays this long */
		l->total_ns[i] = 0;
		l->self_ns[i] = 0;
		l->calls[i] = 0;
		l->events[i] = 0;
		l->fn_events[i] = 0;
	}
	/* The syscall is the root of every launch, whatever else is measured. */
	l->stack[0].start = ts;
	l->stack[0].child_ns = 0;
	l->stack[0].phase = FS_PH_SYSCALL;
	l->depth = 1;
}

/* One of our programs ran for this launch: its cost lands in the innermost phase. */
FS_INLINE void fs_count_event(struct fs_launch *l, int function_probe)
{
	int top = fs_top(l);
	__u32 i = (__u32)top;
	FS_BARRIER(i);
	if (i >= FS_NPHASES)
		return;
	if (function_probe)
		l->fn_events[i] += 1;
	else
		l->events[i] += 1;
	if (top == FS_PH_VMA_SETUP && (l->flags & FS_LF_VMA_ANON)) {
		if (function_probe)
			l->cand_fn_events += 1;
		else
			l->cand_events += 1;
	}
}

/* Open ph at a landmark when landmarks drive it in this run. */
FS_INLINE int fs_lm_open(struct fs_launch *l, int ph, __u64 ts, const struct fs_config *c)
{
	if (!(c->landmarks & FS_BIT(ph)))
		return 0;
	return fs_open(l, ph, ts, c);
}

FS_INLINE void fs_lm_close(struct fs_launch *l, int ph, __u64 ts, const struct fs_config *c)
{
	if (c->landmarks & FS_BIT(ph))
		fs_close(l, ph, ts);
}

/* A VMA's set-up ends at the next VMA or at dup_mmap's end.  If it allocated anon_vma
 * structures, the parent's VMA has an anon_vma, which is when copy_page_range copies
 * page tables (vma_needs_copy): its copy_page_range began at the last set-up landmark.
 * Deciding here costs no event; a VMA without one keeps its tail in vma_setup. */
FS_INLINE void fs_vma_end(struct fs_launch *l, const struct fs_config *c)
{
	if (!(l->flags & FS_LF_VMA_ANON))
		return;
	l->flags &= ~FS_LF_VMA_ANON;
	__u32 ev = l->cand_events, fn = l->cand_fn_events;
	l->cand_events = 0;
	l->cand_fn_events = 0;
	if (fs_top(l) == FS_PH_VMA_SETUP && (c->landmarks & FS_BIT(FS_PH_COPY_PAGE_RANGE))) {
		__u64 at = l->cpr_candidate;
		FS_POP(l, at);
		fs_open(l, FS_PH_COPY_PAGE_RANGE, at, c);
		/* Our runs after the set-up's end belong to the tail. */
		ev = ev < l->events[FS_PH_VMA_SETUP] ? ev : l->events[FS_PH_VMA_SETUP];
		fn = fn < l->fn_events[FS_PH_VMA_SETUP] ? fn : l->fn_events[FS_PH_VMA_SETUP];
		l->events[FS_PH_VMA_SETUP] -= ev;
		l->fn_events[FS_PH_VMA_SETUP] -= fn;
		l->events[FS_PH_COPY_PAGE_RANGE] += ev;
		l->fn_events[FS_PH_COPY_PAGE_RANGE] += fn;
	}
}

/* Apply one landmark of the launching thread.  Phases that function probes
 * measure in this run ignore their landmarks. */
FS_INLINE void fs_landmark(struct fs_launch *l, int lm, __u64 ts, const struct fs_config *c)
{
	switch (lm) {
	case FS_LM_TASK_STRUCT:
		if (fs_find(l, FS_PH_COPY_PROCESS) < 0)
			fs_lm_open(l, FS_PH_COPY_PROCESS, ts, c);
		fs_lm_open(l, FS_PH_DUP_TASK_STRUCT, ts, c);
		break;
	case FS_LM_CREDS:
		fs_lm_open(l, FS_PH_COPY_CREDS, ts, c);
		break;
	case FS_LM_FILES:
		fs_lm_open(l, FS_PH_COPY_FILES, ts, c);
		break;
	case FS_LM_FS:
		fs_lm_open(l, FS_PH_COPY_FS, ts, c);
		break;
	case FS_LM_SIGHAND:
		fs_lm_open(l, FS_PH_COPY_SIGHAND, ts, c);
		break;
	case FS_LM_SIGNAL:
		fs_lm_open(l, FS_PH_COPY_SIGNAL, ts, c);
		break;
	case FS_LM_MM_STRUCT:
		fs_lm_open(l, FS_PH_DUP_MM, ts, c);
		break;
	case FS_LM_MMAP_LOCK:
		if (fs_top(l) == FS_PH_DUP_MM)
			fs_lm_open(l, FS_PH_DUP_MMAP, ts, c);
		break;
	case FS_LM_MMAP_UNLOCK:
		fs_vma_end(l, c);
		fs_lm_close(l, FS_PH_DUP_MMAP, ts, c);
		break;
	case FS_LM_VMA_DUP:
		fs_vma_end(l, c);
		if (fs_lm_open(l, FS_PH_VMA_SETUP, ts, c))
			fs_vma_candidate(l, ts);
		break;
	case FS_LM_ANON_VMA:
		/* Inside a user phase nested in the set-up (e.g. --phase anon_vma_fork:vma_setup)
		 * the VMA still has an anon_vma; the set-up ends when that phase does (fs_pop). */
		if (fs_find(l, FS_PH_VMA_SETUP) >= 0)
			l->flags |= FS_LF_VMA_ANON;
		if (fs_top(l) == FS_PH_VMA_SETUP)
			fs_vma_candidate(l, ts);
		break;
	case FS_LM_PID:
		fs_lm_open(l, FS_PH_ALLOC_PID, ts, c);
		break;
	case FS_LM_NEWTASK:
		fs_lm_close(l, FS_PH_COPY_PROCESS, ts, c);
		break;
	case FS_LM_FORK_DONE:
		fs_lm_open(l, FS_PH_WAKE_UP_NEW_TASK, ts, c);
		break;
	case FS_LM_WAKEUP_NEW:
		/* With wake_up_new_task probed as a function, vfork_wait opens at its exit. */
		if (c->landmarks & FS_BIT(FS_PH_WAKE_UP_NEW_TASK)) {
			fs_close(l, FS_PH_WAKE_UP_NEW_TASK, ts);
			if (l->flags & FS_LF_VFORK)
				fs_lm_open(l, FS_PH_VFORK_WAIT, ts, c);
		}
		break;
	case FS_LM_SYS_EXIT:
		fs_close(l, (l->flags & FS_LF_EXEC) ? FS_PH_EXEC : FS_PH_SYSCALL, ts);
		break;
	case FS_LM_EXEC_OLD_LOCK:
		if (!(l->flags & FS_LF_EXEC_OLD)) {
			l->flags |= FS_LF_EXEC_OLD;
			fs_lm_open(l, FS_PH_EXEC_MMAP, ts, c);
		}
		break;
	case FS_LM_EXEC_OLD_EXIT:
		if (!(l->flags & FS_LF_EXEC_OLD_EXIT) && !(l->flags & FS_LF_EXEC_NEW)) {
			/* Kernels whose exec_mmap does not lock the old mm (6.1): the switch
			 * is behind us, so begin_new_exec began at the latest here. */
			if (!(l->flags & FS_LF_EXEC_OLD)) {
				l->flags |= FS_LF_EXEC_OLD;
				fs_lm_open(l, FS_PH_EXEC_MMAP, ts, c);
			}
			l->flags |= FS_LF_EXEC_OLD_EXIT;
			fs_lm_open(l, FS_PH_EXEC_OLD_MM, ts, c);
		}
		break;
	case FS_LM_EXEC_NEW_LOCK:
		if (!(l->flags & FS_LF_EXEC_NEW)) {
			l->flags |= FS_LF_EXEC_NEW;
			fs_lm_open(l, FS_PH_EXEC_LOAD, ts, c);
		}
		break;
	case FS_LM_EXEC_DONE:
		fs_lm_close(l, FS_PH_EXEC_LOAD, ts, c);
		break;
	}
}

/* A landmark from a slab allocation at call site `site` (kmem_cache_alloc).
 * vm_area_dup allocates the VMA first; kernels whose per-VMA lock is a slab
 * object of its own (CONFIG_PER_VMA_LOCK since 6.4; Debian's 6.12) then
 * allocate the lock from a second call site in vm_area_dup (vma_lock_alloc,
 * inlined), which made two vm_area_dup landmarks per VMA (vma_setup counted
 * twice).  The first call site a launch sees in vm_area_dup is the VMA's own
 * (every call begins with it): only that one starts a VMA. */
FS_INLINE void fs_alloc_landmark(struct fs_launch *l, int lm, __u64 site, __u64 ts, const struct fs_config *c)
{
	if (lm == FS_LM_VMA_DUP) {
		if (!l->vma_site)
			l->vma_site = site;
		else if (l->vma_site != site)
			return;
	}
	fs_landmark(l, lm, ts, c);
}

/* An execve starts: a record like a launch's, rooted at FS_PH_EXEC, whose first
 * segment is the bprm set-up.  old_mm tells the mm landmarks apart. */
FS_INLINE void fs_exec_begin(struct fs_launch *l, __u32 cell, __u64 ts, __u64 old_mm, const struct fs_config *c)
{
	fs_launch_begin(l, cell, 0, ts);
	l->stack[0].phase = FS_PH_EXEC;
	l->flags = FS_LF_EXEC;
	l->old_mm = old_mm;
	fs_lm_open(l, FS_PH_EXEC_BPRM, ts, c);
}

/* Which exec landmark an mmap_lock acquisition is: mm is the locked mm, cur the
 * task's own at that moment; 0 when it is neither (the new mm being built). */
FS_INLINE int fs_exec_lock_landmark(const struct fs_launch *l, __u64 mm, __u64 cur)
{
	if (mm == l->old_mm)
		return cur == mm ? FS_LM_EXEC_OLD_LOCK : FS_LM_EXEC_OLD_EXIT;
	if (mm == cur)
		return FS_LM_EXEC_NEW_LOCK;
	return 0;
}

/* A function probe: the phase starts at the function's entry, ends at its exit. */
FS_INLINE void fs_function_entry(struct fs_launch *l, int ph, __u64 ts, const struct fs_config *c)
{
	/* A function not nested in the VMA's set-up ends it (e.g. a user phase under
	 * dup_mmap or under copy_page_range): the VMA's tail opens first. */
	if ((l->flags & FS_LF_VMA_ANON) && fs_effective_parent(c, ph) != FS_PH_VMA_SETUP)
		fs_vma_end(l, c);
	fs_open(l, ph, ts, c);
}

FS_INLINE void fs_function_exit(struct fs_launch *l, int ph, __u64 ts, const struct fs_config *c)
{
	if (ph == FS_PH_DUP_MMAP)
		fs_vma_end(l, c);
	fs_close(l, ph, ts);
	if (ph == FS_PH_WAKE_UP_NEW_TASK && (l->flags & FS_LF_VFORK))
		fs_lm_open(l, FS_PH_VFORK_WAIT, ts, c);
}

#endif
