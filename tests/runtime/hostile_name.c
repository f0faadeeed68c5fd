/* Test workload for hostile names: names itself with a terminal escape (a
 * window-title change), a newline and invalid UTF-8 (prctl PR_SET_NAME keeps 15
 * bytes), then forks argv[1] children one after another, reaping each. */
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	const int n = argc > 1 ? atoi(argv[1]) : 0;
	if (prctl(PR_SET_NAME, "\x1b]0;pw\x07\n\xff\xfe", 0, 0, 0) != 0)
		return 2;
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid < 0)
			return 1;
		if (pid == 0)
			_exit(0);
		waitpid(pid, NULL, 0);
	}
	return 0;
}
