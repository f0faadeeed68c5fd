/* The phase catalog: one table, shared by the BPF programs and by user space.
 *
 * X(ID, name, PARENT, tracepoint_source, functions, how the tracepoint backend measures it)
 *
 * functions: kernel functions that are the phase, in order of preference, for the
 * fentry/fexit and kprobe backends ("" when no function is the phase).  USER0..3
 * are slots for --phase FUNC[:PARENT]: name and parent are set at run time.
 *
 * tracepoint_source is TP (bounded by tracepoints that mark the phase itself),
 * DERIVED (bounded by landmarks of neighbouring work, e.g. an inlined function's
 * first allocation) or NONE (tracepoints cannot see it).  Landmark segments run
 * from their landmark to the next landmark seen, so they are upper bounds that
 * include any unmarked work up to that point; the text says what that is.
 * Plain C, no includes: each side includes its base types first. */
#ifndef FORKSCOPE_SHARED_CATALOG_H
#define FORKSCOPE_SHARED_CATALOG_H

#define FS_PHASES(X)                                                                              \
	X(SYSCALL, syscall, NONE, TP, "",                                                         \
	  "sys_enter .. sys_exit of clone/clone3/fork/vfork in the launching thread")            \
	X(KERNEL_CLONE, kernel_clone, SYSCALL, NONE, "kernel_clone _do_fork",                     \
	  "no tracepoint at its entry or exit: its time is the syscall's self time")              \
	X(COPY_PROCESS, copy_process, KERNEL_CLONE, DERIVED, "copy_process",                      \
	  "task_struct allocation (first work of copy_process) .. task_newtask")                  \
	X(DUP_TASK_STRUCT, dup_task_struct, COPY_PROCESS, DERIVED, "dup_task_struct",             \
	  "task_struct allocation .. next landmark (inlined into copy_process)")                  \
	X(COPY_CREDS, copy_creds, COPY_PROCESS, DERIVED, "copy_creds",                            \
	  "prepare_creds allocation .. next landmark; also covers sched_fork, "                   \
	  "perf_event_init_task, audit_alloc, security_task_alloc, copy_semundo")                 \
	X(SCHED_FORK, sched_fork, COPY_PROCESS, NONE, "sched_fork",                               \
	  "no allocation marks it: inside copy_creds' landmark segment")                          \
	X(COPY_FILES, copy_files, COPY_PROCESS, DERIVED, "copy_files dup_fd",                     \
	  "dup_fd allocation .. next landmark (absent with CLONE_FILES)")                         \
	X(COPY_FS, copy_fs, COPY_PROCESS, DERIVED, "copy_fs copy_fs_struct",                      \
	  "copy_fs_struct allocation .. next landmark (absent with CLONE_FS)")                    \
	X(COPY_SIGHAND, copy_sighand, COPY_PROCESS, DERIVED, "copy_sighand",                      \
	  "sighand_cache allocation .. next landmark (inlined; absent with CLONE_SIGHAND)")       \
	X(COPY_SIGNAL, copy_signal, COPY_PROCESS, DERIVED, "copy_signal",                         \
	  "signal_cache allocation .. next landmark (inlined; absent with CLONE_THREAD)")         \
	X(DUP_MM, dup_mm, COPY_PROCESS, DERIVED, "dup_mm copy_mm",                                \
	  "mm_struct allocation .. next landmark (dup_mm is inlined; absent with CLONE_VM); "     \
	  "also covers copy_namespaces, copy_io, copy_thread")                                    \
	X(DUP_MMAP, dup_mmap, DUP_MM, TP, "dup_mmap",                                             \
	  "mmap_lock_acquire_returned .. mmap_lock_released on the parent's mm (write)")          \
	X(VMA_SETUP, vma_setup, DUP_MMAP, DERIVED, "",                                            \
	  "per VMA: vm_area_dup allocation .. its last anon_vma allocation (anon_vma_clone, "    \
	  "anon_vma_fork), or .. the next VMA when it has no anon_vma")                          \
	X(COPY_PAGE_RANGE, copy_page_range, DUP_MMAP, DERIVED, "copy_page_range",                 \
	  "per VMA with an anon_vma (its set-up allocated anon_vma structures: the VMAs whose "  \
	  "page tables fork copies, but for PFN-mapped and uffd-wp ones): end of its set-up .. " \
	  "next VMA or end of dup_mmap; also covers the VMA's rmap/maple-tree insert")           \
	X(COPY_NAMESPACES, copy_namespaces, COPY_PROCESS, NONE, "copy_namespaces",                \
	  "no allocation marks it without new namespaces: inside dup_mm's segment")               \
	X(COPY_THREAD, copy_thread, COPY_PROCESS, NONE, "copy_thread",                            \
	  "no allocation marks it: inside the segment before alloc_pid")                          \
	X(ALLOC_PID, alloc_pid, COPY_PROCESS, DERIVED, "alloc_pid",                               \
	  "pid allocation .. task_newtask; also covers cgroup_can_fork, sched_cgroup_fork, "     \
	  "tasklist insertion")                                                                   \
	X(WAKE_UP_NEW_TASK, wake_up_new_task, KERNEL_CLONE, TP, "wake_up_new_task",               \
	  "sched_process_fork .. sched_wakeup_new")                                               \
	X(VFORK_WAIT, vfork_wait, KERNEL_CLONE, DERIVED, "",                                      \
	  "CLONE_VFORK only: sched_wakeup_new .. sys_exit (the parent waits for exec or exit)")  \
	X(CHILD_FIRST_RUN, child_first_run, NONE, TP, "",                                         \
	  "sched_wakeup_new of the child .. sched_switch into the child")                         \
	X(POST_LAUNCH_COW, post_launch_cow, NONE, TP, "",                                         \
	  "write page faults (page_fault_user) in the parent until its next launch and in the "  \
	  "child: counted, not timed (no fault-exit tracepoint)")                                 \
	X(TEARDOWN, teardown, NONE, TP, "",                                                       \
	  "child's sys_enter exit/exit_group (killed, or ended by another thread: "               \
	  "sched_process_exit) .. its last switch-out (dead): exit_mm, files, signals, "          \
	  "exit_notify")                                                                          \
	X(EXIT_MM, exit_mm, TEARDOWN, DERIVED, "",                                                \
	  "the exiting child's first mmap_lock .. its last mmap_lock release: exit_mm, and "     \
	  "exit_mmap when it held the last reference to its mm")                                  \
	X(REAP, reap, NONE, TP, "",                                                               \
	  "later of the child's death (its last switch-out, or its last exit event when the "    \
	  "parent reaps it first) and the parent's wait4/waitid call .. that call returning "     \
	  "the child (release_task); absent for threads, which reap themselves")                  \
	X(EXEC, execve, NONE, TP, "",                                                             \
	  "sys_enter .. sys_exit of execve/execveat in a launched child or a traced task")        \
	X(EXEC_BPRM, bprm_setup, EXEC, DERIVED, "",                                               \
	  "sys_enter .. the old mm's mmap_lock in exec_mmap: opening the file, the new mm and "  \
	  "its stack, copying argv/envp, credentials, reading the ELF header")                    \
	X(EXEC_MMAP, begin_new_exec, EXEC, DERIVED, "begin_new_exec",                             \
	  "the old mm's mmap_lock taken as the task's own (exec_mmap; kernels that take it) or "  \
	  "the old mm's exit, whichever comes first .. first mmap_lock of the new mm: switching " \
	  "mm, dropping the old one, close-on-exec files, signal handlers, setup_new_exec")       \
	X(EXEC_OLD_MM, old_mm_exit, EXEC_MMAP, DERIVED, "",                                       \
	  "the old mm's mmap_lock taken after the switch .. next landmark: exit_mmap of the old " \
	  "mm when exec held its last reference (a fork child's copy); absent after vfork")       \
	X(EXEC_LOAD, exec_load, EXEC, DERIVED, "",                                                \
	  "first mmap_lock of the new mm as the task's own .. sched_process_exec: ELF segments, " \
	  "stack, brk, start_thread")                                                             \
	X(EXEC_FIRST_INSN, exec_first_insn, NONE, TP, "",                                         \
	  "execve's sys_exit .. the new image's first user page fault (its first instruction "    \
	  "faults: the entry point is not mapped yet)")                                           \
	X(LIBC_FORK, libc_fork, NONE, NONE, "",                                                   \
	  "trace at --depth full, uprobes: the C library's fork() in the launching thread, "     \
	  "entry .. return in the parent; its self time is the syscall")                          \
	X(FORK_PREPARE, fork_prepare, LIBC_FORK, NONE, "",                                        \
	  "libc fork() entry .. the syscall's sys_enter: pthread_atfork prepare handlers, the "  \
	  "allocator's and stdio's locks taken")                                                  \
	X(FORK_PARENT, fork_parent, LIBC_FORK, NONE, "",                                          \
	  "the syscall's sys_exit .. libc fork() returning in the parent: pthread_atfork parent " \
	  "handlers, the locks released")                                                         \
	X(USER0, user0, NONE, NONE, "", "--phase FUNC: a kernel function of the user's choice") \
	X(USER1, user1, NONE, NONE, "", "--phase FUNC: a kernel function of the user's choice") \
	X(USER2, user2, NONE, NONE, "", "--phase FUNC: a kernel function of the user's choice") \
	X(USER3, user3, NONE, NONE, "", "--phase FUNC: a kernel function of the user's choice")

#ifdef __cplusplus
#define FS_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define FS_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

#define FS_PH_NONE (-1)
#define FS_BIT(ph) (1ull << (ph)) /* phase masks are 64-bit */

enum fs_phase {
#define FS_X_ENUM(id, name, parent, src, fns, how) FS_PH_##id,
	FS_PHASES(FS_X_ENUM)
#undef FS_X_ENUM
	FS_NPHASES
};
FS_STATIC_ASSERT(FS_NPHASES <= 64, "phase masks (FS_BIT) are 64-bit");

/* Phases the tracepoint backend measures by itself: the rows whose
 * tracepoint_source is not NONE. */
#define FS_TP_BIT_TP 1ull
#define FS_TP_BIT_DERIVED 1ull
#define FS_TP_BIT_NONE 0ull
#define FS_X_TP_BIT(id, name, parent, src, fns, how) | (FS_TP_BIT_##src << FS_PH_##id)
#define FS_TP_MASK (0ull FS_PHASES(FS_X_TP_BIT))

enum fs_source {
	FS_SRC_NONE = 0,
	FS_SRC_TP = 1,
	FS_SRC_DERIVED = 2,
	FS_SRC_FENTRY = 3,
	FS_SRC_KPROBE = 4,
	FS_SRC_UPROBE = 5 /* user-space probes on the C library (libc_fork) */
};

/* Limits shared by both sides. */
#define FS_MAX_CELLS 64
#define FS_STACK_DEPTH 8 /* a power of two: indices are masked (machine.h) */
#define FS_HIST_SLOTS 320
#define FS_MAX_SITES 16
#define FS_MAX_FN_SLOTS 24
#define FS_MAX_SPANS 128 /* per sampled launch; a power of two: indices are masked */
#define FS_MAX_SAMPLES 16 /* sampled launches per cell */
#define FS_USER_PHASES 4
#define FS_NO_CELL 0xffffffffu

#endif
