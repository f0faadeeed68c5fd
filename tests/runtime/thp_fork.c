/* thp_fork NAME huge|nohuge MIB FORKS DIR: takes NAME as its command name, maps MIB
 * MiB of private anonymous memory aligned to 2 MiB, madvise()s it MADV_HUGEPAGE
 * (huge) or MADV_NOHUGEPAGE (nohuge), writes every page, writes its own AnonHugePages
 * (smaps_rollup, KiB) to DIR/anon_huge_kib, then makes exactly FORKS forks (each
 * child exiting at once, reaped), and waits (up to 120 s) until DIR/go exists, so
 * its layout holds until a tracer has read it.
 * Exit 0 when every fork succeeded; 1 when one failed or the region could not be
 * set up; 3 when the wait timed out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define HUGE_SIZE (2ul << 20)

static long anon_huge_kib(void)
{
	FILE *f = fopen("/proc/self/smaps_rollup", "r");
	char line[256];
	long kib = -1;
	while (f && fgets(line, sizeof line, f))
		if (strncmp(line, "AnonHugePages:", 14) == 0)
			kib = strtol(line + 14, NULL, 10);
	if (f)
		fclose(f);
	return kib;
}

int main(int argc, char **argv)
{
	if (argc != 6)
		return 2;
	prctl(PR_SET_NAME, argv[1]);
	const int huge = strcmp(argv[2], "huge") == 0;
	const size_t bytes = strtoul(argv[3], NULL, 10) << 20;
	const long forks = strtol(argv[4], NULL, 10);
	char path[4096];

	char *map = mmap(NULL, bytes + HUGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED)
		return 1;
	char *p = (char *)(((unsigned long)map + HUGE_SIZE - 1) & ~(HUGE_SIZE - 1));
	if (madvise(p, bytes, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) != 0)
		return 1;
	for (size_t at = 0; at < bytes; at += 4096)
		p[at] = 1;

	snprintf(path, sizeof path, "%s/anon_huge_kib", argv[5]);
	FILE *out = fopen(path, "w");
	if (!out)
		return 1;
	fprintf(out, "%ld\n", anon_huge_kib());
	fclose(out);

	for (long i = 0; i < forks; i++) {
		pid_t c = fork();
		if (c < 0)
			return 1;
		if (c == 0)
			_exit(0);
		int status;
		if (waitpid(c, &status, 0) != c || !WIFEXITED(status))
			return 1;
	}

	snprintf(path, sizeof path, "%s/go", argv[5]);
	for (int i = 0; i < 120 * 100; i++) {
		if (access(path, F_OK) == 0)
			return 0;
		struct timespec t = { 0, 10 * 1000 * 1000 };
		nanosleep(&t, NULL);
	}
	return 3;
}
