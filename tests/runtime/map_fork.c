/* map_fork NAME ANON_MIB FILE_MIB FILE FORKS [STEP...]: takes NAME as its command
 * name, maps ANON_MIB MiB of private anonymous memory and FILE_MIB MiB of FILE
 * (created at that size) privately (either left out when 0), writes every page of
 * both, then makes exactly FORKS forks (each child exiting at once, reaped), and says
 * on stdout how long each batch of forks took.  Then each STEP in order:
 *   wait:PATH  waits (up to 120 s) until PATH exists: the layout holds until then;
 *   map        maps N MiB more of anonymous memory at the N-th map step (a new VMA,
 *              written; sizes differ, so each is a mapping of its own) and makes
 *              FORKS forks again;
 *   vmas:N     maps N one-page anonymous VMAs (2N with the PROT_NONE pages between
 *              them) and makes FORKS forks again.
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
#include <time.h>
#include <unistd.h>

static int batch;

/* n forks; "batch B: N forks in T ns" on stdout (scripts/bench-trace-mappings.sh). */
static int forks(long n)
{
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
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
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("batch %d: %ld forks in %lld ns\n", batch++, n,
	       (long long)(t1.tv_sec - t0.tv_sec) * 1000000000ll + (t1.tv_nsec - t0.tv_nsec));
	fflush(stdout);
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
	/* stdout's buffer set now: one malloc'd at the first batch's line would add a
	 * [heap] VMA after the forks, and the layout read would not be what they copied. */
	static char outbuf[4096];
	setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
	const size_t mib = 1 << 20;
	const size_t anon = (size_t)atol(argv[2]) * mib, file = (size_t)atol(argv[3]) * mib;
	const long n = atol(argv[5]);
	if (anon && !map_anon(anon, "map_fork"))
		return 1;
	if (file) {
		int fd = open(argv[4], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0 || ftruncate(fd, (off_t)file) != 0)
			return 1;
		char *f = mmap(NULL, file, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
		if (f == MAP_FAILED)
			return 1;
		close(fd);
		touch(f, file);
	}
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
		} else if (strncmp(argv[i], "vmas:", 5) == 0) {
			/* N one-page VMAs, each written, apart: every other page of 2N. */
			long v = atol(argv[i] + 5);
			char *g = mmap(NULL, (size_t)v * 2 * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (g == MAP_FAILED)
				return 1;
			for (long k = 0; k < v; k++) {
				if (mprotect(g + k * 2 * 4096, 4096, PROT_READ | PROT_WRITE) != 0)
					return 1;
				g[k * 2 * 4096] = 1;
			}
			if (forks(n))
				return 1;
		} else {
			return 2;
		}
	}
	return 0;
}
