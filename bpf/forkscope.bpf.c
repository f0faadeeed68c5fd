// SPDX-License-Identifier: GPL-2.0
/* forkscope's BPF programs.  Tracepoints (the landmarks of machine.h) attribute each
 * launch's kernel time to the phases of the catalog; fentry/fexit or kprobe slots
 * measure the phases user space points them at.  Everything aggregates per (cell,
 * phase) in per-CPU maps, so no launch is lost at any launch rate; sampled launches
 * also go span by span to a ring buffer.  Every program first drops events of tasks
 * not followed (follow.bpf.h): the runner in run, the traced tasks in trace.
 *
 * This file holds the programs; their helpers live by concern in the headers below.
 * It stays long (about 550 lines) because each SEC program is a few lines of
 * dispatch into those helpers, and one object makes the one skeleton. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "forkscope/shared/catalog.h"
#define FS_GLOBAL_POP /* see machine.h */
#include "forkscope/shared/machine.h"
#include "forkscope/shared/hist.h"
#include "maps.bpf.h"
#include "syscalls.bpf.h"
#include "compat.bpf.h"
#include "follow.bpf.h"
#include "child.bpf.h"
#include "landmarks.bpf.h"
#include "mappings.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* The syscalls that run a program: launch (clone, clone3, fork, vfork), exec, exit
 * and wait.  Four sets of front-ends, one chosen per run (RunPlan::syscall_hooks;
 * Tracer::open turns the others' autoload off), all calling the two functions
 * below: fentry/fexit or kprobe/kretprobe on the syscall functions themselves
 * (__x64_sys_clone ...: no other syscall runs anything, not even the kernel's
 * syscall-tracing entry); their classic per-syscall tracepoints
 * (syscalls:sys_enter_clone ...: no other syscall runs a program, but every
 * syscall of every task takes the syscall-tracing slow path); the raw sys_enter
 * and sys_exit, which run for every syscall of every task, as the last resort.
 * a1, a3, a4: the syscall's first, third and fourth arguments (clone flags or
 * clone_args, waitid's infop and options). */
static __always_inline int sys_enter_common(long id, __u64 a1, __u64 a3, __u64 a4)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid, tgid = (__u32)(pid_tgid >> 32);

	if (is_exit_syscall(id)) {
		/* A child on its way out: exit or exit_group starts its teardown. */
		struct fs_child *c = child_of(tid);
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
		if (id == FS_NR_WAITID) {
			if (!waitid_reaps(a4))
				return 0;
			w.infop = a3;
		}
		bpf_map_update_elem(&waits, &tid, &w, BPF_ANY);
		return 0;
	}
	if (!is_launch_syscall(id))
		return 0;
	bpf_map_delete_elem(&last_cell, &tid);
	__u64 flags = launch_flags(id, a1);
	__u32 cell = follow == FS_FOLLOW_TGID ? cur_cell : trace_cell(flags & ~FS_CLONE_IGNORED);
	if (cell >= FS_MAX_CELLS) {
		if (bpf_map_delete_elem(&launches, &tid) == 0)
			fs_count_down(&launches_in_flight);
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
	l->gen = cell_gen_of(cell);
	l->events[FS_PH_SYSCALL] = 1; /* this program */
	l->tid = tid;
	if (bpf_map_update_elem(&launches, &tid, l, BPF_NOEXIST) == 0) {
		__sync_fetch_and_add(&launches_in_flight, 1);
	} else if (bpf_map_update_elem(&launches, &tid, l, BPF_ANY)) { /* a stale record replaced, or none */
		struct fs_cellstat *cs = cellstat(cell);
		if (cs)
			cs->lost += 1;
	}
	return 0;
}

static __always_inline int sys_exit_common(long id, long ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid, tgid = (__u32)(pid_tgid >> 32);
	if (is_wait_syscall(id)) {
		if (follow != FS_FOLLOW_TGID || tgid == target_tgid)
			wait_end(tid, ret, bpf_ktime_get_ns());
		return 0;
	}
	/* A launch's or an exec's return (a new child's return from clone has no
	 * record: its first run is sched_switch's). */
	struct fs_launch *l = my_launch();
	if (!l)
		return 0;
	if (l->flags & FS_LF_CALIB)
		return 0;
	if (fs_stale(l->cell, l->gen)) {
		__u32 *in_flight = l->flags & FS_LF_EXEC ? &execs_in_flight : &launches_in_flight;
		if (l->vmas)
			bpf_map_delete_elem(&vma_scratch, &tid);
		if (bpf_map_delete_elem(&launches, &tid) == 0)
			fs_count_down(in_flight);
		return 0;
	}
	__u64 now = bpf_ktime_get_ns();
	if (l->flags & FS_LF_EXEC) {
		exec_end(l, tid, ret, now);
		return 0;
	}
	__u32 cell = l->cell;
	struct fs_cellstat *cs = cellstat(cell);

	fs_landmark(l, FS_LM_SYS_EXIT, now, CFG);
	if (ret > 0) {
		if (libc_fork_on) {
			/* Inside libc's fork(): its return closes the user-space part. */
			struct fs_libc_fork *u = bpf_map_lookup_elem(&libc_forks, &tid);
			if (u) {
				u->enter_ns = l->start_ns;
				u->exit_ns = now;
				u->cell = cell;
			}
		}
		aggregate(l);
		mappings_finish(l);
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
			struct fs_huge_key hk = { .tgid = tgid, .cell = cell };
			struct task_struct *task = bpf_get_current_task_btf();
			__u64 started = BPF_CORE_READ(task, group_leader, start_time);
			struct fs_huge_launcher *h = bpf_map_lookup_elem(&huge_launchers, &hk);
			if (h && h->start_ns == started) {
				__sync_fetch_and_add(&h->launches, 1);
			} else { /* first launch, or a reused pid: counted afresh */
				struct fs_huge_launcher nh = { .launches = 1, .start_ns = started };
				bpf_map_update_elem(&huge_launchers, &hk, &nh, BPF_ANY);
			}
		}
	} else if (ret != -FS_ERESTARTNOINTR && cell < FS_MAX_CELLS) {
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
		if (cs) {
			cs->failed += 1;
			__u32 slot = fs_errno_slot(ret);
			FS_BARRIER(slot);
			if (slot < FS_NERRNOS)
				cs->failed_errno[slot] += 1;
		}
	}
	if (l->vmas)
		bpf_map_delete_elem(&vma_scratch, &tid);
	if (bpf_map_delete_elem(&launches, &tid) == 0)
		fs_count_down(&launches_in_flight);
	return 0;
}

/* The per-syscall tracepoints.  Their context (perf_call_bpf_enter/exit) is the
 * regs pointer, the syscall number and the arguments or the return value: the
 * layout of trace_event_raw_sys_enter/exit.  The number is each program's own. */
#define FS_SYS_ENTER(name, nr)                                                        \
	SEC("tp/syscalls/sys_enter_" #name)                                           \
	int fs_enter_##name(struct trace_event_raw_sys_enter *ctx)                    \
	{                                                                             \
		return sys_enter_common(nr, ctx->args[0], ctx->args[2], ctx->args[3]); \
	}
#define FS_SYS_EXIT(name, nr)                                                         \
	SEC("tp/syscalls/sys_exit_" #name)                                            \
	int fs_exit_##name(struct trace_event_raw_sys_exit *ctx)                      \
	{                                                                             \
		return sys_exit_common(nr, ctx->ret);                                 \
	}
FS_SYS_ENTER(clone, FS_NR_CLONE) FS_SYS_ENTER(clone3, FS_NR_CLONE3)
FS_SYS_ENTER(fork, FS_NR_FORK) FS_SYS_ENTER(vfork, FS_NR_VFORK)
FS_SYS_ENTER(execve, FS_NR_EXECVE) FS_SYS_ENTER(execveat, FS_NR_EXECVEAT)
FS_SYS_ENTER(exit, FS_NR_EXIT) FS_SYS_ENTER(exit_group, FS_NR_EXIT_GROUP)
FS_SYS_ENTER(wait4, FS_NR_WAIT4) FS_SYS_ENTER(waitid, FS_NR_WAITID)
/* exit and exit_group do not return. */
FS_SYS_EXIT(clone, FS_NR_CLONE) FS_SYS_EXIT(clone3, FS_NR_CLONE3)
FS_SYS_EXIT(fork, FS_NR_FORK) FS_SYS_EXIT(vfork, FS_NR_VFORK)
FS_SYS_EXIT(execve, FS_NR_EXECVE) FS_SYS_EXIT(execveat, FS_NR_EXECVEAT)
FS_SYS_EXIT(wait4, FS_NR_WAIT4) FS_SYS_EXIT(waitid, FS_NR_WAITID)

/* The syscall's entry from its user registers (the syscall functions' one argument). */
static __always_inline int sys_enter_regs(long id, struct pt_regs *regs)
{
	return sys_enter_common(id, PT_REGS_PARM1_CORE_SYSCALL(regs), PT_REGS_PARM3_CORE_SYSCALL(regs),
				PT_REGS_PARM4_CORE_SYSCALL(regs));
}

/* The syscall functions (the plan tries each name, fentry then kprobe, per
 * function).  Their one argument is the user's registers.  fexit and kretprobe
 * see the return value; a new child does not return through the function (it
 * starts in ret_from_fork), and a successful execve returns 0 through it in the
 * new image, as sys_exit_execve does. */
#define FS_SYS_FN_ENTER(name, nr)                                                     \
	SEC("fentry/__x64_sys_" #name)                                                \
	int BPF_PROG(fs_fn_enter_##name, struct pt_regs *regs)                        \
	{                                                                             \
		return sys_enter_regs(nr, regs);                                      \
	}                                                                             \
	SEC("kprobe/__x64_sys_" #name)                                                \
	int BPF_KPROBE(fs_kp_enter_##name, struct pt_regs *regs)                      \
	{                                                                             \
		return sys_enter_regs(nr, regs);                                      \
	}
#define FS_SYS_FN_EXIT(name, nr)                                                      \
	SEC("fexit/__x64_sys_" #name)                                                 \
	int BPF_PROG(fs_fn_exit_##name, struct pt_regs *regs, long ret)               \
	{                                                                             \
		return sys_exit_common(nr, ret);                                      \
	}                                                                             \
	SEC("kretprobe/__x64_sys_" #name)                                             \
	int BPF_KRETPROBE(fs_kp_exit_##name, long ret)                                \
	{                                                                             \
		return sys_exit_common(nr, ret);                                      \
	}
FS_SYS_FN_ENTER(clone, FS_NR_CLONE) FS_SYS_FN_ENTER(clone3, FS_NR_CLONE3)
FS_SYS_FN_ENTER(fork, FS_NR_FORK) FS_SYS_FN_ENTER(vfork, FS_NR_VFORK)
FS_SYS_FN_ENTER(execve, FS_NR_EXECVE) FS_SYS_FN_ENTER(execveat, FS_NR_EXECVEAT)
FS_SYS_FN_ENTER(exit, FS_NR_EXIT) FS_SYS_FN_ENTER(exit_group, FS_NR_EXIT_GROUP)
FS_SYS_FN_ENTER(wait4, FS_NR_WAIT4) FS_SYS_FN_ENTER(waitid, FS_NR_WAITID)
/* exit and exit_group do not return. */
FS_SYS_FN_EXIT(clone, FS_NR_CLONE) FS_SYS_FN_EXIT(clone3, FS_NR_CLONE3)
FS_SYS_FN_EXIT(fork, FS_NR_FORK) FS_SYS_FN_EXIT(vfork, FS_NR_VFORK)
FS_SYS_FN_EXIT(execve, FS_NR_EXECVE) FS_SYS_FN_EXIT(execveat, FS_NR_EXECVEAT)
FS_SYS_FN_EXIT(wait4, FS_NR_WAIT4) FS_SYS_FN_EXIT(waitid, FS_NR_WAITID)

/* The last resort: a program for every syscall, which returns at once for the others. */
SEC("tp_btf/sys_enter")
int BPF_PROG(fs_sys_enter, struct pt_regs *regs, long id)
{
	if (!is_hooked_syscall(id))
		return 0;
	return sys_enter_regs(id, regs);
}

SEC("tp_btf/sys_exit")
int BPF_PROG(fs_sys_exit, struct pt_regs *regs, long ret)
{
	long id = BPF_CORE_READ(regs, orig_ax);
	if (!is_hooked_syscall(id))
		return 0;
	return sys_exit_common(id, ret);
}

SEC("tp_btf/kmem_cache_alloc")
int BPF_PROG(fs_kmem_cache_alloc, unsigned long call_site, const void *ptr, struct kmem_cache *s)
{
	struct fs_launch *l = my_launch();
	if (!l)
		return 0;
	__u32 lm = site_landmark(call_site);
	if (lm == FS_LM_COUNT)
		return 0;
	if (lm == 0)
		lm = classify_copy_process_cache(l, s);
	fs_alloc_landmark(l, lm, call_site, bpf_ktime_get_ns(), CFG);
	mappings_flush(l);
	return 0;
}

SEC("tp_btf/mmap_lock_acquire_returned")
int BPF_PROG(fs_mmap_lock_acquired, struct mm_struct *mm, bool write, bool success)
{
	if (!fs_records_in_flight() && !children_live)
		return 0;
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
	if (!fs_records_in_flight() && !children_live)
		return 0;
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
	struct fs_child c = { .cell = l->cell, .gen = l->gen, .seq = l->seq,
			      .launcher = (__u32)(bpf_get_current_pid_tgid() >> 32) };
	if (clone_flags & FS_CLONE_THREAD)
		c.flags = FS_CF_THREAD;
	else if (follow == FS_FOLLOW_TREE)
		bpf_map_update_elem(&tracked, &pid, &pid, BPF_ANY); /* a new process: followed too */
	if (child_remember(pid, &c) == 0) {
		__sync_fetch_and_add(&first_run_pending, 1);
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
	if (old != pid && (fs_records_in_flight() || children_live)) {
		/* A non-leader thread exec'd: de_thread gave it the leader's pid.  Its
		 * records move with it (landmarks between de_thread and here were missed:
		 * bprm_setup runs on to here); the leader's, if any, are gone with it. */
		struct fs_launch *moved = bpf_map_lookup_elem(&launches, &old);
		if (moved) {
			bpf_map_update_elem(&launches, &pid, moved, BPF_ANY);
			bpf_map_delete_elem(&launches, &old);
		}
		struct fs_child *child = child_of(old);
		if (child) {
			child_remember(pid, child);
			child_forget(old);
		}
	}
	struct fs_launch *l = my_launch();
	if (l) {
		fs_landmark(l, FS_LM_EXEC_DONE, bpf_ktime_get_ns(), CFG);
		if ((l->flags & FS_LF_EXEC) && count_exec_programs)
			bpf_probe_read_kernel_str(l->exec.path, sizeof(l->exec.path), BPF_CORE_READ(bprm, filename));
	}
	return 0;
}

/* The task is gone for good: whatever we still hold about it goes too (children
 * reaped by someone we do not follow, or reaping themselves; a thread group left
 * behind by trace -p; a record whose syscall never returned, an exec failing past
 * its point of no return). */
SEC("tp_btf/sched_process_free")
int BPF_PROG(fs_sched_process_free, struct task_struct *p)
{
	__u32 pid = p->pid;
	if (children_live)
		child_forget(pid);
	if (follow == FS_FOLLOW_TREE && pid == (__u32)p->tgid)
		bpf_map_delete_elem(&tracked, &pid);
	if (fs_records_in_flight()) {
		struct fs_launch *l = bpf_map_lookup_elem(&launches, &pid);
		if (l) {
			__u32 flags = l->flags;
			if (bpf_map_delete_elem(&launches, &pid) == 0 && !(flags & FS_LF_CALIB))
				fs_count_down((flags & FS_LF_EXEC) ? &execs_in_flight : &launches_in_flight);
		}
	}
	return 0;
}

/* Every task's exit passes here, whether it called exit or was killed. */
/* libc_fork: the C library's fork() entered by a followed thread (trace, uprobes
 * on the shared libc; user space attaches them, for every process mapping it). */
SEC("uprobe")
int BPF_KPROBE(fs_libc_fork_entry)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (!is_target((__u32)(id >> 32)))
		return 0;
	__u32 tid = (__u32)id;
	struct fs_libc_fork u = { .entry_ns = bpf_ktime_get_ns() };
	bpf_map_update_elem(&libc_forks, &tid, &u, BPF_ANY);
	return 0;
}

/* fork() returning: in the parent of a successful launch, its user-space part
 * before the syscall (prepare handlers, locks) and after (parent handlers) into
 * the launch's cell.  The child (0) has no entry of its own; a failure has no
 * sys_exit of a launch. */
SEC("uretprobe")
int BPF_KRETPROBE(fs_libc_fork_return, long ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct fs_libc_fork *u = bpf_map_lookup_elem(&libc_forks, &tid);
	if (!u)
		return 0;
	__u64 now = bpf_ktime_get_ns();
	__u64 entry = u->entry_ns, enter = u->enter_ns, exit = u->exit_ns;
	__u32 cell = u->cell;
	bpf_map_delete_elem(&libc_forks, &tid);
	if (ret <= 0 || !enter || enter < entry || exit < enter || now < exit)
		return 0;
	__u64 before = enter - entry, after = now - exit, total = now - entry;
	agg_add(cell, FS_PH_LIBC_FORK, 1, 1, total, total - before - after, 2, 0);
	agg_add(cell, FS_PH_FORK_PREPARE, 1, 1, before, before, 0, 0);
	agg_add(cell, FS_PH_FORK_PARENT, 1, 1, after, after, 0, 0);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(fs_sched_process_exit, struct task_struct *p)
{
	if (children_live)
		child_exiting(p, bpf_ktime_get_ns());
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
	struct fs_child *c = child_of(pid);
	if (c && !c->ran)
		c->wake_ts = now;
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(fs_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	if (!children_live)
		return 0;
	__u64 now = bpf_ktime_get_ns();
	if (task_is_dead(prev)) {
		__u32 prev_pid = prev->pid;
		struct fs_child *d = child_of(prev_pid); /* a stale one counts nowhere */
		if (d && !d->dead_ts)
			child_dead(d, prev_pid, now);
	}
	if (!first_run_pending)
		return 0;
	__u32 pid = next->pid;
	struct fs_child *c = child_of(pid);
	if (!c || c->ran)
		return 0;
	c->ran = 1;
	fs_count_down(&first_run_pending);
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
	const int cow = (cfg.measured & FS_BIT(FS_PH_POST_LAUNCH_COW)) && (error_code & FS_X86_PF_WRITE);
	if (!first_insn_pending && !cow)
		return 0;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	struct fs_child *c = child_of(tid);
	if (c) {
		if (c->exec_ret_ts) {
			/* The new image's first instruction faulted. */
			__u64 now = bpf_ktime_get_ns();
			__u64 d = now - c->exec_ret_ts;
			agg_add(c->cell, FS_PH_EXEC_FIRST_INSN, 1, 1, d, d, 1, 0);
			emit_child_span(c, tid, FS_PH_EXEC_FIRST_INSN, c->exec_ret_ts, d);
			c->exec_ret_ts = 0;
			fs_count_down(&first_insn_pending);
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

/* copy_page_range(dst_vma, src_vma) when function probes measure it: the programs
 * of a slot (the same phase entry and exit), which also read the source VMA for the
 * exact per-mapping attribution (mappings.bpf.h).  User space loads one pair in
 * place of a generic slot (Tracer::open, kCprSlot). */
static __always_inline struct fs_launch *cpr_enter(void)
{
	struct fs_launch *l = launch_of_current(1);
	if (l)
		fs_function_entry(l, FS_PH_COPY_PAGE_RANGE, bpf_ktime_get_ns(), CFG);
	return l;
}

static __always_inline int cpr_exit(void)
{
	struct fs_launch *l = launch_of_current(1);
	if (!l)
		return 0;
	int timed = fs_find(l, FS_PH_COPY_PAGE_RANGE) >= 0;
	fs_function_exit(l, FS_PH_COPY_PAGE_RANGE, bpf_ktime_get_ns(), CFG);
	mappings_cpr_exit(l, timed);
	return 0;
}

SEC("fentry")
int BPF_PROG(fs_fentry_cpr, struct vm_area_struct *dst, struct vm_area_struct *src)
{
	struct fs_launch *l = cpr_enter();
	if (l)
		mappings_cpr_entry(l, src->vm_start); /* a trusted argument: a plain load */
	return 0;
}

SEC("fexit")
int BPF_PROG(fs_fexit_cpr)
{
	return cpr_exit();
}

SEC("kprobe")
int BPF_KPROBE(fs_kprobe_cpr, struct vm_area_struct *dst, struct vm_area_struct *src)
{
	struct fs_launch *l = cpr_enter();
	if (l)
		mappings_cpr_entry(l, BPF_CORE_READ(src, vm_start));
	return 0;
}

SEC("kretprobe")
int fs_kretprobe_cpr(void *ctx)
{
	return cpr_exit();
}

#define FN_SLOT(i)                                                                   \
	SEC("fentry") int fs_fentry_##i(void *ctx) { return fn_enter(i); }           \
	SEC("fexit") int fs_fexit_##i(void *ctx) { return fn_exit(i); }              \
	SEC("kprobe") int fs_kprobe_##i(void *ctx) { return fn_enter(i); }           \
	SEC("kretprobe") int fs_kretprobe_##i(void *ctx) { return fn_exit(i); }

FN_SLOT(0) FN_SLOT(1) FN_SLOT(2) FN_SLOT(3) FN_SLOT(4) FN_SLOT(5) FN_SLOT(6) FN_SLOT(7)
FN_SLOT(8) FN_SLOT(9) FN_SLOT(10) FN_SLOT(11) FN_SLOT(12) FN_SLOT(13) FN_SLOT(14) FN_SLOT(15)
FN_SLOT(16) FN_SLOT(17) FN_SLOT(18) FN_SLOT(19) FN_SLOT(20) FN_SLOT(21) FN_SLOT(22) FN_SLOT(23)
