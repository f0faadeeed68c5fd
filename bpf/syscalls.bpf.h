/* The user ABI the programs decode: syscall numbers, the arguments they read, and
 * the constants of those arguments and results.  forkscope builds for x86_64 only
 * (CMakeLists.txt says so and passes -D__TARGET_ARCH_x86); the numbers below are
 * x86_64's, and the arguments are read with libbpf's PT_REGS_PARM*_CORE_SYSCALL.
 * Include vmlinux.h and the libbpf headers first. */
#ifndef FORKSCOPE_SYSCALLS_BPF_H
#define FORKSCOPE_SYSCALLS_BPF_H

#ifndef __TARGET_ARCH_x86
#error "forkscope's BPF programs decode the x86_64 syscall ABI: build with -D__TARGET_ARCH_x86"
#endif

/* arch/x86/entry/syscalls/syscall_64.tbl */
#define FS_NR_CLONE 56
#define FS_NR_FORK 57
#define FS_NR_VFORK 58
#define FS_NR_EXECVE 59
#define FS_NR_EXIT 60
#define FS_NR_WAIT4 61
#define FS_NR_EXIT_GROUP 231
#define FS_NR_WAITID 247
#define FS_NR_EXECVEAT 322
#define FS_NR_CLONE3 435

/* waitid(idtype, id, infop, options, rusage) */
#define FS_WNOWAIT 0x01000000 /* options: leave the child waitable, reap nothing */
/* siginfo_t's si_pid: after si_signo, si_errno, si_code and the padding that
 * aligns the union (the 64-bit layout). */
#define FS_SIGINFO_PID_OFFSET 16
FS_STATIC_ASSERT(__builtin_offsetof(struct kernel_siginfo, _sifields._kill._pid) == FS_SIGINFO_PID_OFFSET,
		 "siginfo's si_pid offset");

/* A launch syscall that returns this was interrupted and restarts: not a failure. */
#define FS_ERESTARTNOINTR 513

/* A failed launch's FS_LAUNCH_ERRNOS slot (records.h). */
static __always_inline __u32 fs_errno_slot(long ret)
{
	switch (-ret) {
#define FS_ERRNO_CASE(name, number)                                                                \
	case number:                                                                               \
		return FS_ERRNO_SLOT_##name;
	FS_LAUNCH_ERRNOS(FS_ERRNO_CASE)
#undef FS_ERRNO_CASE
	default:
		return FS_ERRNO_OTHER;
	}
}

/* page_fault_user's error_code (arch/x86/include/asm/trap_pf.h) */
#define FS_X86_PF_WRITE 0x2

static __always_inline int is_launch_syscall(long id)
{
	return id == FS_NR_CLONE || id == FS_NR_FORK || id == FS_NR_VFORK || id == FS_NR_CLONE3;
}

static __always_inline int is_exit_syscall(long id) { return id == FS_NR_EXIT || id == FS_NR_EXIT_GROUP; }
static __always_inline int is_exec_syscall(long id) { return id == FS_NR_EXECVE || id == FS_NR_EXECVEAT; }
static __always_inline int is_wait_syscall(long id) { return id == FS_NR_WAIT4 || id == FS_NR_WAITID; }

static __always_inline int is_hooked_syscall(long id)
{
	return is_launch_syscall(id) || is_exit_syscall(id) || is_exec_syscall(id) || is_wait_syscall(id);
}

/* The clone flags a launch syscall asks for, from its first argument. */
static __always_inline __u64 launch_flags(long id, __u64 arg1)
{
	if (id == FS_NR_FORK)
		return 0;
	if (id == FS_NR_VFORK)
		return FS_CLONE_VM | FS_CLONE_VFORK;
	if (id == FS_NR_CLONE)
		return arg1;
	__u64 flags = 0; /* clone3: struct clone_args begins with the flags */
	bpf_probe_read_user(&flags, sizeof(flags), (void *)arg1);
	return flags;
}

/* waitid's options (its fourth argument): does the call reap at all (WNOWAIT does not)? */
static __always_inline int waitid_reaps(__u64 options)
{
	return !(options & FS_WNOWAIT);
}

/* The pid waitid reaped, from the siginfo it wrote; <= 0 when WNOHANG found none. */
static __always_inline __s32 waitid_pid(__u64 infop)
{
	__s32 si_pid = 0;
	bpf_probe_read_user(&si_pid, sizeof(si_pid), (void *)(infop + FS_SIGINFO_PID_OFFSET));
	return si_pid;
}

#endif
