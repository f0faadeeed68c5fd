/* The records both sides share: what the BPF programs keep per launch, what they
 * aggregate per (cell, phase) in maps, what they send through the ring buffer, and
 * the keys and values of the trace-mode maps.  User space reads them with the same
 * layout, so a field is added here once.
 * Plain C, no includes: each side includes its base types (vmlinux.h or
 * <linux/types.h>) and catalog.h first. */
#ifndef FORKSCOPE_SHARED_RECORDS_H
#define FORKSCOPE_SHARED_RECORDS_H

/* A phase open on a launch's stack. */
struct fs_frame {
	__u64 start;
	__u64 child_ns;
	__u32 phase;
	__u32 pad;
};

/* A closed span of a sampled launch. */
struct fs_span {
	__u64 start;
	__u64 dur;
	__u32 phase;
	__u32 pad;
};

/* Ring-buffer records start with their type (the launch record is fs_launch itself). */
enum fs_rec_type { FS_REC_LAUNCH = 1, FS_REC_CHILD_SPAN = 2 };

/* trace: execs by program, per group: the filename execve was given (the
 * script for #!, not its interpreter), cut at FS_EXEC_PATH - 1 bytes.  A key
 * with an empty path is the cell's overflow: execs of programs past the map's
 * FS_EXEC_PROGRAMS entries. */
#define FS_EXEC_PATH 128
#define FS_EXEC_PROGRAMS 1024
struct fs_exec_key {
	__u32 cell;
	__u32 pad;
	char path[FS_EXEC_PATH];
};
/* One launch in flight, per launching thread; flags are machine.h's FS_LF_*. */
struct fs_launch {
	__u32 rec_type; /* FS_REC_LAUNCH */
	__u32 seq;      /* != 0: sampled, span by span, as launch number seq of its cell */
	__u64 start_ns; /* sys_enter */
	__u32 tid;
	__s32 child;    /* the syscall's return */
	__u32 nspans;
	__u32 spans_dropped;
	struct fs_span spans[FS_MAX_SPANS];
	struct fs_frame stack[FS_STACK_DEPTH];
	__u32 depth;
	__u32 cell;
	__u32 gen;  /* the cell's generation when the record began (cell_gen, serve's eviction) */
	__u32 flags;
	__u32 pt_pages;
	__u64 cpr_candidate;
	__u32 cand_events;    /* our runs counted in vma_setup since cpr_candidate, */
	__u32 cand_fn_events; /* which move to copy_page_range with the VMA's tail */
	__u64 old_mm; /* exec: the mm the task had at sys_enter */
	__u64 vma_site; /* the call site in vm_area_dup that allocates a VMA (fs_alloc_landmark) */
	/* Per-mapping attribution (fs_vma_account): VMAs dup_mmap has begun to copy, the
	 * current one's vma_setup and copy_page_range ns, and the one before it, finished,
	 * until mappings.bpf.h moves it out (vma_state FS_VMA_DONE). */
	__u32 vmas;
	__u32 vma_state;
	__u64 vma_ns[2];
	__u64 vma_done_ns[2];
	__u64 vma_src; /* exact method: vm_start of the VMA copy_page_range is copying */
	struct fs_exec_key exec; /* trace, exec records: the group and program (sched_process_exec) */
	__u64 total_ns[FS_NPHASES];
	__u64 self_ns[FS_NPHASES];
	__u32 calls[FS_NPHASES];
	__u32 events[FS_NPHASES];    /* tracepoint programs that ran while the phase was innermost */
	__u32 fn_events[FS_NPHASES]; /* function-probe programs likewise */
};

/* What one run measures, fixed before the BPF programs load (the machine's rules
 * read it; see fs_config_tracepoint in machine.h). */
struct fs_config {
	__s32 parent[FS_NPHASES]; /* the catalog's, plus the parents of --phase slots */
	__u64 measured;           /* phases measured at all, by any source (FS_BIT) */
	__u64 landmarks;          /* phases opened and closed by tracepoint landmarks */
};

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
	__u64 events;    /* our tracepoint programs that ran while the phase was innermost */
	__u64 fn_events; /* our function-probe programs likewise: with events, the observer cost */
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

/* A span that happens in the child of a sampled launch. */
struct fs_child_span {
	__u32 rec_type; /* FS_REC_CHILD_SPAN */
	__u32 seq;
	__u32 cell;
	__u32 phase;
	__u32 pid;
	__u32 pad;
	__u64 start;
	__u64 dur;
};

/* The errors a launch syscall returns (kernel/fork.c: kernel_clone, copy_process,
 * clone3's argument checks, alloc_pid, the namespace and cgroup steps), one counter
 * each per cell; any other error counts in the last slot, FS_ERRNO_OTHER.  The
 * numbers are the generic Linux ones (asm-generic/errno*.h); the C++ side checks
 * them against <errno.h>.  X(name, number) */
#define FS_LAUNCH_ERRNOS(X)                                                                  \
	X(EPERM, 1) X(EINTR, 4) X(E2BIG, 7) X(EBADF, 9) X(EAGAIN, 11) X(ENOMEM, 12)              \
	X(EFAULT, 14) X(EBUSY, 16) X(EEXIST, 17) X(EINVAL, 22) X(ENOSPC, 28) X(EUSERS, 87)       \
	X(EOPNOTSUPP, 95)
#define FS_ERRNO_SLOT_ENUM(name, number) FS_ERRNO_SLOT_##name,
enum fs_errno_slot { FS_LAUNCH_ERRNOS(FS_ERRNO_SLOT_ENUM) FS_ERRNO_OTHER, FS_NERRNOS };
#undef FS_ERRNO_SLOT_ENUM

/* Per-cell counters, in a per-CPU array. */
struct fs_cellstat {
	__u64 launches;      /* syscalls that returned a child id */
	__u64 failed;        /* syscalls that returned an error */
	__u64 pt_pages;      /* pages allocated while dup_mm ran (page tables, pgd) */
	__u64 faults_parent; /* write faults of the launcher after its launches */
	__u64 faults_child;  /* write faults of the children */
	__u64 lost;          /* launches (or their children) not tracked: per-task state map full */
	__u64 samples_lost;  /* sampled-launch records the ring buffer had no room for */
	__u64 first_run_missed; /* children that exited with no switch into them seen */
	__u64 children_born;    /* children recorded at task_newtask ... */
	__u64 children_exited;  /* ... and seen dying: equal once every child is gone */
	__u64 execs;            /* execve/execveat that succeeded in launched children */
	__u64 exec_failed;
	/* The launcher's mm when its launch returned, summed over launches. */
	__u64 mm_vmas;
	__u64 mm_total_vm;   /* pages */
	__u64 mm_rss;        /* pages */
	__u64 mm_pgtables;   /* bytes */
	__u64 map_lost;      /* per-mapping times with no room (mappings.bpf.h): order launches, exact VMA copies */
	__u64 failed_errno[FS_NERRNOS]; /* failed, by the error returned (FS_LAUNCH_ERRNOS) */
	__u64 exec_other; /* trace: execs not counted by program (exec_programs full) */
};

/* Per-mapping attribution: the k-th VMA a launch's dup_mmap copied, per (cell, number
 * of VMAs that launch copied, launching process), so user space matches only launches
 * whose count is their process's snapshot's.  Indices past FS_MAP_SLOTS share the last
 * slot, "(other mappings)". */
#define FS_MAP_SLOTS 1024
#define FS_MAP_OTHER FS_MAP_SLOTS
struct fs_map_key {
	__u32 cell;
	__u32 nvmas; /* VMAs the launch copied */
	__u32 idx;   /* k-th copied VMA, or FS_MAP_OTHER */
	__u32 tgid;  /* trace: the launching process; run: 0 (the runner) */
};
struct fs_map_agg {
	__u64 calls;    /* VMAs copied (launches, but for the other slot) */
	__u64 setup_ns; /* vma_setup, inclusive */
	__u64 cpr_ns;   /* copy_page_range */
};
/* Per-mapping attribution, exact method (copy_page_range probed by fentry or kprobe):
 * per (cell, launching process, start address of the source VMA), the fs_map_agg
 * totals; start 0 holds the VMAs whose copy_page_range was not seen (VM_WIPEONFORK).
 * A map of its own: the order method's key means nothing here and this one nothing there. */
struct fs_map_exact_key {
	__u32 cell;
	__u32 tgid; /* the launching process */
	__u64 start; /* vm_start of the parent's VMA */
};
/* trace: per launching process, the VMAs its last launch copied, so user space
 * snapshots its mappings when it is first seen and again when that count changes. */
struct fs_map_launcher {
	__u32 nvmas;
	__u32 pad;
	__u64 launches; /* that copied VMAs */
	__u64 start_ns; /* the process's start (task start_time): a reused pid differs */
};
/* One launch's per-VMA ns while dup_mmap runs: [slot][0] vma_setup, [slot][1]
 * copy_page_range; 32 bits (saturating) keep it small: one VMA's copy takes ms. */
struct fs_vma_scratch {
	__u32 ns[FS_MAP_SLOTS + 1][2];
};

/* trace: launches per (launching process, cell), so user space reads each process's
 * huge-page backing (smaps_rollup AnonHugePages) after its launches and values
 * them per cell (forkscope/huge_pages.h). */
/* trace: a thread inside the C library's fork() (libc_fork, uprobes): its entry,
 * then its launch's sys_enter and sys_exit, and its cell, until fork() returns. */
struct fs_libc_fork {
	__u64 entry_ns;
	__u64 enter_ns; /* 0 until the launch returns successfully */
	__u64 exit_ns;
	__u32 cell;
	__u32 pad;
};
struct fs_huge_key {
	__u32 tgid;
	__u32 cell;
};
struct fs_huge_launcher {
	__u64 launches; /* successful launches */
	__u64 start_ns; /* the process's start (task start_time): a reused pid differs */
};
/* trace: launches are grouped by clone flags and by what --group-by names
 * (enum fs_group_by): the launching task's command, its executable file, its
 * process or its cgroup (v2). */
enum fs_group_by { FS_GROUP_BY_COMM = 0, FS_GROUP_BY_EXE = 1, FS_GROUP_BY_PID = 2, FS_GROUP_BY_CGROUP = 3 };
struct fs_group_key {
	char comm[16]; /* comm: the launching task's command; empty otherwise */
	__u64 flags;   /* clone flags with the signal and tid/tls bits masked off; FS_GROUP_EXEC_ONLY */
	/* exe: the executable's device (kernel encoding) and inode; pid: tgid and the
	 * process's start time (a reused pid is another group); cgroup: its v2 id, 0;
	 * comm: 0, 0. */
	__u64 id[2];
};
/* trace: what a group was when its cell was taken (follow.bpf.h's group_cell), per
 * cell: the command, and with --group-by exe the executable's path in its mount
 * namespace (components past FS_EXE_DEPTH or the buffer are left out; a component
 * is cut at FS_EXE_NAME - 1 bytes). */
#define FS_EXE_PATH 256
#define FS_EXE_DEPTH 16
#define FS_EXE_NAME 64
struct fs_group_name {
	char comm[16];
	char exe[FS_EXE_PATH];
};
/* trace: a process that launched. */
struct fs_launcher {
	char comm[16];      /* at its first launch */
	char exec_comm[16]; /* after its last exec since then; empty when it did not exec */
	__u64 launches;
	__u64 execs;
};
#define FS_GROUP_EXEC_ONLY (1ull << 63) /* execs by tasks that were not launched under tracing */
/* Clone flags (uapi linux/sched.h), named here: neither vmlinux.h nor the
 * C++ side's headers are guaranteed to define them. */
#define FS_CLONE_CSIGNAL 0x000000ffull /* exit signal */
#define FS_CLONE_VM 0x00000100ull
#define FS_CLONE_PIDFD 0x00001000ull
#define FS_CLONE_VFORK 0x00004000ull
#define FS_CLONE_THREAD 0x00010000ull
#define FS_CLONE_SETTLS 0x00080000ull
#define FS_CLONE_PARENT_SETTID 0x00100000ull
#define FS_CLONE_CHILD_CLEARTID 0x00200000ull
#define FS_CLONE_DETACHED 0x00400000ull
#define FS_CLONE_CHILD_SETTID 0x01000000ull
/* Flags that do not change what a launch is. */
#define FS_CLONE_IGNORED                                                                       \
	(FS_CLONE_CSIGNAL | FS_CLONE_PARENT_SETTID | FS_CLONE_CHILD_CLEARTID |                   \
	 FS_CLONE_CHILD_SETTID | FS_CLONE_SETTLS | FS_CLONE_PIDFD | FS_CLONE_DETACHED)

/* Who the BPF side follows. */
enum fs_follow { FS_FOLLOW_TGID = 0, FS_FOLLOW_TREE = 1, FS_FOLLOW_CGROUP = 2, FS_FOLLOW_ALL = 3 };

#endif
