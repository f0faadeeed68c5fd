/* forkscope-child: the program posix_spawn launches.  It stamps the moment it
 * runs into the runner's shared page (fd given as argv[1], the launching
 * thread's slot in it as argv[2]) and exits.  Static
 * and tiny, so exec costs little next to what is measured. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (argc < 2)
		return 0;
	int fd = atoi(argv[1]);
	unsigned slot = argc > 2 ? (unsigned)atoi(argv[2]) % 512 : 0;
	volatile uint64_t *stamp = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (stamp == MAP_FAILED)
		return 1;
	stamp[slot] = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	return 0;
}
