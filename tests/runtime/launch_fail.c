/* launch_fail NAME EINVAL_N EAGAIN_N: takes NAME as its command name, then makes
 * exactly EINVAL_N clone calls that fail with EINVAL (CLONE_SIGHAND without
 * CLONE_VM) and, as user nobody with RLIMIT_NPROC 0, exactly EAGAIN_N forks that
 * fail with EAGAIN (copy_process's process limit).  Run as root.  Exit 0 only when
 * every call failed with the error expected. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 4)
		return 2;
	prctl(PR_SET_NAME, argv[1]);
	long einval = atol(argv[2]), eagain = atol(argv[3]);
	for (long i = 0; i < einval; i++) {
		long r = syscall(SYS_clone, (unsigned long)CLONE_SIGHAND, 0, 0, 0, 0);
		if (r == 0)
			_exit(0);
		if (r > 0 || errno != EINVAL)
			return 1;
	}
	struct rlimit none = { 0, 0 };
	if (setrlimit(RLIMIT_NPROC, &none) || setgid(65534) || setuid(65534))
		return 3;
	for (long i = 0; i < eagain; i++) {
		pid_t p = fork();
		if (p == 0)
			_exit(0);
		if (p > 0) {
			waitpid(p, NULL, 0);
			return 1;
		}
		if (errno != EAGAIN)
			return 1;
	}
	return 0;
}
