/* Test workload for libc_fork: a pthread_atfork prepare handler that spins for at
 * least SPIN_US microseconds, then N forks through the C library, each child
 * reaped.  Usage: atfork_fork N SPIN_US. */
#include <pthread.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long spin_ns;

static long now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000L + t.tv_nsec;
}

static void prepare(void)
{
	const long start = now_ns();
	while (now_ns() - start < spin_ns) {
	}
}

int main(int argc, char **argv)
{
	const int n = argc > 1 ? atoi(argv[1]) : 10;
	spin_ns = (argc > 2 ? atol(argv[2]) : 1000) * 1000L;
	if (pthread_atfork(prepare, NULL, NULL) != 0)
		return 1;
	for (int i = 0; i < n; i++) {
		pid_t p = fork();
		if (p == 0)
			_exit(0);
		if (p < 0 || waitpid(p, NULL, 0) != p)
			return 1;
	}
	return 0;
}
