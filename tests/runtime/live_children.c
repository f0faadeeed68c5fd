/* live_children NAME N release|kill|threads: takes NAME as its command name, forks N
 * children that are all alive at once (each blocked reading a pipe), then ends them:
 * release closes the pipe (each child calls exit), kill sends each SIGKILL (none calls
 * exit).  Reaps them all.  threads: N threads instead, blocked the same way, ended by
 * the main thread's exit_group (none calls exit).  Exit 0 only when every launch
 * succeeded and every child ended as asked. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static int fds[2];

static void *blocked(void *arg)
{
	char b;
	(void)arg;
	while (read(fds[0], &b, 1) < 0) {
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 4)
		return 2;
	prctl(PR_SET_NAME, argv[1]);
	long n = atol(argv[2]);
	int kill_them = strcmp(argv[3], "kill") == 0;
	pid_t *pids = calloc(n > 0 ? n : 1, sizeof(*pids));
	if (n <= 0 || !pids || pipe(fds) != 0)
		return 2;
	int failed = 0;
	long forked = 0;
	if (strcmp(argv[3], "threads") == 0) {
		for (long i = 0; i < n; i++) {
			pthread_t t;
			if (pthread_create(&t, NULL, blocked, NULL) != 0)
				return 1;
		}
		exit(0); /* exit_group: the kernel ends the blocked threads */
	}
	for (; forked < n; forked++) {
		pid_t p = fork();
		if (p < 0) {
			failed = 1;
			break;
		}
		if (p == 0) {
			char b;
			close(fds[1]);
			while (read(fds[0], &b, 1) < 0) {
			}
			_exit(0);
		}
		pids[forked] = p;
	}
	if (kill_them)
		for (long i = 0; i < forked; i++)
			failed |= kill(pids[i], SIGKILL) != 0;
	close(fds[1]);
	for (long i = 0; i < forked; i++) {
		int status;
		if (waitpid(pids[i], &status, 0) != pids[i])
			failed = 1;
		else if (kill_them)
			failed |= !WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL;
		else
			failed |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
	}
	return failed;
}
