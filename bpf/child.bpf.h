/* A launched child's life after its launch record: the spans of sampled launches it
 * sends, its execve, its exit and teardown, its death and its reaping by the parent.
 * Include maps.bpf.h, syscalls.bpf.h and follow.bpf.h first. */
#ifndef FORKSCOPE_CHILD_BPF_H
#define FORKSCOPE_CHILD_BPF_H

/* An exec record closes few spans (its catalog rows and --phase slots under them):
 * the first ones go to a sampled launch's timeline. */
#define FS_EXEC_MAX_SPANS 8
FS_STATIC_ASSERT(FS_EXEC_MAX_SPANS <= FS_MAX_SPANS, "exec spans fit a launch record");

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

/* An execve or execveat starts in a launched child (or, in trace, a followed task). */
static __always_inline void exec_begin(__u32 tid, __u32 tgid, __u64 now)
{
	struct fs_child *c = child_of(tid);
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
	l->gen = cell_gen_of(cell);
	if (c)
		l->seq = c->seq; /* a sampled launch's child: its exec spans join the timeline */
	l->events[FS_PH_EXEC_BPRM] = 1; /* this program */
	l->tid = tid;
	if (count_exec_programs) {
		l->exec.cell = cell;
		__builtin_memset(l->exec.path, 0, sizeof(l->exec.path)); /* the key hashes every byte */
	}
	if (bpf_map_update_elem(&launches, &tid, l, BPF_NOEXIST) == 0) {
		__sync_fetch_and_add(&execs_in_flight, 1);
	} else if (bpf_map_update_elem(&launches, &tid, l, BPF_ANY)) { /* a stale record replaced, or none */
		struct fs_cellstat *cs = cellstat(cell);
		if (cs)
			cs->lost += 1;
	}
}

/* trace: an exec counted by the program exec'd (sched_process_exec recorded it). */
static __always_inline void count_exec_program(struct fs_launch *l, struct fs_cellstat *cs)
{
	if (!count_exec_programs)
		return;
	__u64 *n = l->exec.path[0] ? bpf_map_lookup_elem(&exec_programs, &l->exec) : NULL;
	if (n) {
		__sync_fetch_and_add(n, 1);
		return;
	}
	__u64 one = 1;
	if (l->exec.path[0] && bpf_map_update_elem(&exec_programs, &l->exec, &one, BPF_NOEXIST) == 0)
		return;
	n = l->exec.path[0] ? bpf_map_lookup_elem(&exec_programs, &l->exec) : NULL; /* another CPU's */
	if (n)
		__sync_fetch_and_add(n, 1);
	else if (cs)
		cs->exec_other += 1;
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
		count_exec_program(l, cs);
		struct fs_child *c = child_of(tid);
		if (c) {
			if (!c->exec_ret_ts)
				__sync_fetch_and_add(&first_insn_pending, 1);
			c->exec_ret_ts = now;
			__u32 n = l->nspans;
			for (__u32 i = 0; i < FS_EXEC_MAX_SPANS; i++) {
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
		if (follow != FS_FOLLOW_TGID) {
			/* A launching process that exec'd: its command from now on. */
			__u32 tgid = (__u32)(bpf_get_current_pid_tgid() >> 32);
			struct fs_launcher *self = bpf_map_lookup_elem(&parents, &tgid);
			if (self)
				bpf_get_current_comm(self->exec_comm, sizeof(self->exec_comm));
		}
	} else if (cs) {
		cs->exec_failed += 1;
	}
	if (bpf_map_delete_elem(&launches, &tid) == 0)
		fs_count_down(&execs_in_flight);
}

#define FS_PID_NS_LEVELS 32 /* the kernel's MAX_PID_NS_LEVEL */

/* A task's pid namespace (the one its getpid and wait4 answer in), and its level:
 * 0 for the initial one, where pids are the global ones the maps are keyed by. */
static __always_inline __u32 active_ns(struct task_struct *task, __u64 *ns)
{
	struct pid *p = BPF_CORE_READ(task, thread_pid);
	__u32 level = BPF_CORE_READ(p, level);
	if (level > FS_PID_NS_LEVELS)
		return 0;
	if (level) {
		struct upid up = {};
		bpf_core_read(&up, sizeof(up), &p->numbers[level]);
		*ns = (__u64)up.ns;
	}
	return level;
}

/* A launched child is exiting, whatever the cause: an exit or exit_group call (which
 * started its teardown already), a fatal signal, or another thread's exit_group or
 * execve.  A parent in a pid namespace will reap it by its pid there: keep that. */
static __always_inline void child_exiting(struct task_struct *task, __u64 now)
{
	__u32 pid = BPF_CORE_READ(task, pid);
	struct fs_child *c = child_of(pid);
	if (!c)
		return;
	if (!c->exit_ts)
		c->exit_ts = now;
	if (c->flags & FS_CF_THREAD)
		return;
	__u64 ns = 0;
	__u32 level = active_ns(BPF_CORE_READ(task, real_parent), &ns);
	struct pid *p = BPF_CORE_READ(task, thread_pid);
	if (!level || level > BPF_CORE_READ(p, level))
		return;
	struct upid up = {};
	bpf_core_read(&up, sizeof(up), &p->numbers[level]);
	if ((__u64)up.ns != ns || up.nr <= 0)
		return;
	struct fs_ns_pid k = { .ns = ns, .nr = (__u32)up.nr };
	if (bpf_map_update_elem(&ns_pids, &k, &pid, BPF_ANY) == 0) {
		c->ns = ns;
		c->ns_pid = (__u32)up.nr;
	} else {
		struct fs_cellstat *cs = cellstat(c->cell);
		if (cs)
			cs->lost += 1; /* its reaping cannot be matched */
	}
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
		/* waitid returns 0: the pid is in the siginfo it wrote. */
		__s32 si_pid = waitid_pid(infop);
		if (si_pid <= 0)
			return;
		pid = (__u32)si_pid;
	}
	__u64 ns = 0;
	__u32 in_ns = children_live && active_ns(bpf_get_current_task_btf(), &ns);
	struct fs_ns_pid k = { .ns = ns, .nr = pid };
	if (in_ns) {
		/* A pid in the waiter's namespace: its global one.  The entry goes now: the
		 * namespace may give that pid to its next task at once. */
		__u32 *global = bpf_map_lookup_elem(&ns_pids, &k);
		if (!global)
			return;
		pid = *global;
		bpf_map_delete_elem(&ns_pids, &k);
	}
	struct fs_child *c = child_of(pid);
	if (!c || !c->exit_ts)
		return; /* a stopped child (WUNTRACED), not a reaped one */
	if (in_ns)
		c->ns_pid = 0;
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
		child_forget(pid);
	else
		__sync_fetch_and_or(&c->flags, FS_CF_REAPED); /* its teardown is still to be counted */
}

/* An exiting child's mmap_lock events bound its exit_mm. */
static __always_inline void child_mm_event(__u64 now)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct fs_child *c = child_of(tid);
	if (!c || !c->exit_ts || c->dead_ts)
		return;
	if (!c->mm_first)
		c->mm_first = now;
	c->mm_last = now;
}

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
	if (!c->ran) {
		c->ran = 1;
		fs_count_down(&first_run_pending);
	}
	if (c->flags & (FS_CF_THREAD | FS_CF_REAPED))
		child_forget(pid);
}

#endif
