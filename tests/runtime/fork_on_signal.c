/* Test workload for `forkscope trace -p`: forks one child per SIGUSR1 it
 * receives, reaps it (with waitpid, or waitid when argv[1] is "waitid"), then
 * writes one byte to stdout; exits on SIGTERM. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t pending, done;

static void on_usr1(int sig) { (void)sig; pending = 1; }
static void on_term(int sig) { (void)sig; done = 1; }

int main(int argc, char **argv)
{
	const int use_waitid = argc > 1 && strcmp(argv[1], "waitid") == 0;
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &old);
	signal(SIGUSR1, on_usr1);
	signal(SIGTERM, on_term);
	while (!done) {
		sigsuspend(&old);
		if (pending) {
			pending = 0;
			pid_t pid = fork();
			if (pid == 0)
				_exit(0);
			if (pid > 0 && use_waitid) {
				siginfo_t info;
				waitid(P_PID, (id_t)pid, &info, WEXITED);
			} else if (pid > 0) {
				waitpid(pid, NULL, 0);
			}
			if (write(1, "x", 1) != 1)
				return 1;
		}
	}
	return 0;
}
