/* fork_count NAME N [PARALLEL]: takes NAME as its command name, then makes exactly
 * N forks (PARALLEL workers sharing them, each a fork of its own first: those
 * launches count under this program's name too, see the test), each child exiting
 * at once and reaped.  Exit 0 only when every fork succeeded. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static int forks(long n)
{
	for (long i = 0; i < n; i++) {
		pid_t p = fork();
		if (p < 0)
			return 1;
		if (p == 0)
			_exit(0);
		int status;
		if (waitpid(p, &status, 0) != p || !WIFEXITED(status))
			return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	prctl(PR_SET_NAME, argv[1]);
	long n = atol(argv[2]);
	long workers = argc > 3 ? atol(argv[3]) : 0;
	if (workers <= 0)
		return forks(n);
	for (long w = 0; w < workers; w++) {
		pid_t p = fork();
		if (p < 0)
			return 1;
		if (p == 0)
			_exit(forks(n / workers + (w < n % workers)));
	}
	int failed = 0, status;
	while (wait(&status) > 0)
		failed |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
	return failed;
}
