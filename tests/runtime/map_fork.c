/* map_fork NAME ANON_MIB FILE_MIB FILE FORKS [STEP...]: takes NAME as its command
 * name, maps ANON_MIB MiB of private anonymous memory and FILE_MIB MiB of FILE
 * (created at that size) privately, writes every page of both, then makes exactly
 * FORKS forks (each child exiting at once, reaped).  Then each STEP in order:
 *   wait:PATH  waits (up to 120 s) until PATH exists: the layout holds until then;
 *   map        maps N MiB more of anonymous memory at the N-th map step (a new VMA,
 *              written; sizes differ, so each is a mapping of its own) and makes
 *              FORKS forks again.
 * Each anonymous region lies between PROT_NONE guard pages, so none merges with a
 * neighbour ([anon] ---p 4K VMAs around it).
 * Exit 0 only when every fork succeeded; 3 when a wait timed out. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
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

static void touch(char *p, size_t bytes)
{
	for (size_t at = 0; at < bytes; at += 4096)
		p[at] = 1;
}

#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#define PR_SET_VMA_ANON_NAME 0
#endif

/* Between two PROT_NONE guard pages, so it never merges with a neighbour (named too,
 * where the kernel names anonymous VMAs). */
static char *map_anon(size_t bytes, const char *name)
{
	char *g = mmap(NULL, bytes + 2 * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (g == MAP_FAILED || mprotect(g + 4096, bytes, PROT_READ | PROT_WRITE) != 0)
		return NULL;
	char *p = g + 4096;
	prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, (unsigned long)p, bytes, (unsigned long)name);
	touch(p, bytes);
	return p;
}

int main(int argc, char **argv)
{
	if (argc < 6)
		return 2;
	prctl(PR_SET_NAME, argv[1]);
	const size_t mib = 1 << 20;
	const size_t anon = (size_t)atol(argv[2]) * mib, file = (size_t)atol(argv[3]) * mib;
	const long n = atol(argv[5]);
	if (!map_anon(anon, "map_fork"))
		return 1;
	int fd = open(argv[4], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)file) != 0)
		return 1;
	char *f = mmap(NULL, file, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (f == MAP_FAILED)
		return 1;
	close(fd);
	touch(f, file);
	if (forks(n))
		return 1;
	int maps = 0;
	for (int i = 6; i < argc; i++) {
		if (strncmp(argv[i], "wait:", 5) == 0) {
			struct stat st;
			int waited = 0;
			while (stat(argv[i] + 5, &st) != 0) {
				if (++waited > 12000)
					return 3;
				usleep(10000);
			}
		} else if (strcmp(argv[i], "map") == 0) {
			char name[32];
			snprintf(name, sizeof name, "map_fork %d", ++maps);
			if (!map_anon((size_t)maps * mib, name) || forks(n))
				return 1;
		} else {
			return 2;
		}
	}
	return 0;
}
