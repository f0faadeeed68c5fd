/* Test workload: the main thread ends with pthread_exit while another thread
 * forks, so the process lives on in that thread. Usage: pthread_exit_fork N [wait]:
 * the thread forks N times (each child reaped), 20 ms apart; with "wait" it first
 * waits for SIGUSR1 (sent once the leader is a zombie and a tracer is attached). */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int forks;
static int wait_for_go;

static void *forker(void *arg)
{
	(void)arg;
	if (wait_for_go) {
		sigset_t go;
		int sig;
		sigemptyset(&go);
		sigaddset(&go, SIGUSR1);
		if (sigwait(&go, &sig) != 0)
			exit(1);
	} else {
		usleep(200000); /* the leader is gone by now */
	}
	for (int i = 0; i < forks; i++) {
		usleep(20000);
		pid_t p = fork();
		if (p == 0)
			_exit(0);
		if (p < 0 || waitpid(p, NULL, 0) != p)
			exit(1);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	forks = argc > 1 ? atoi(argv[1]) : 10;
	wait_for_go = argc > 2 && strcmp(argv[2], "wait") == 0;
	sigset_t block;
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &block, NULL); /* inherited by the thread */
	pthread_t t;
	if (pthread_create(&t, NULL, forker, NULL) != 0)
		return 1;
	pthread_exit(NULL);
}
