/* CO-RE flavours for kernel structures whose layout changed across the kernels
 * forkscope supports: each helper reads what the running kernel has.
 * Include vmlinux.h and the libbpf headers first. */
#ifndef FORKSCOPE_COMPAT_BPF_H
#define FORKSCOPE_COMPAT_BPF_H

/* The rss_stat counters summed (enum in include/linux/mm_types_task.h; MM_SWAPENTS,
 * index 2, is not resident). */
#define FS_MM_FILEPAGES 0
#define FS_MM_ANONPAGES 1
#define FS_MM_SHMEMPAGES 3

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
		r += BPF_CORE_READ(old, rss_stat.count[FS_MM_FILEPAGES].counter);
		r += BPF_CORE_READ(old, rss_stat.count[FS_MM_ANONPAGES].counter);
		r += BPF_CORE_READ(old, rss_stat.count[FS_MM_SHMEMPAGES].counter);
	} else {
		r += BPF_CORE_READ(mm, rss_stat[FS_MM_FILEPAGES].count);
		r += BPF_CORE_READ(mm, rss_stat[FS_MM_ANONPAGES].count);
		r += BPF_CORE_READ(mm, rss_stat[FS_MM_SHMEMPAGES].count);
	}
	return r > 0 ? (__u64)r : 0;
}

/* task_struct's state: __state since 5.14, state before. */
struct task_struct___pre514 {
	volatile long state;
} __attribute__((preserve_access_index));

#define FS_TASK_DEAD 0x80 /* include/linux/sched.h TASK_DEAD */

static __always_inline int task_is_dead(struct task_struct *t)
{
	if (bpf_core_field_exists(t->__state))
		return (t->__state & FS_TASK_DEAD) != 0;
	struct task_struct___pre514 *old = (void *)t;
	return (old->state & FS_TASK_DEAD) != 0;
}

#endif
