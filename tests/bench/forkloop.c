// forkloop: the fork workload of scripts/bench-peers.sh (and tests/bench/peers-guest.sh).
//
//   forkloop HEAP_MIB FORKS [WARMUP [VMAS]]
//   forkloop --now        prints CLOCK_MONOTONIC in ns (scripts time tool start-up with it)
//
// Maps HEAP_MIB MiB of anonymous memory, asks for no transparent huge pages
// (madvise MADV_NOHUGEPAGE: a huge-page heap has few page tables to copy),
// touches it page by page and keeps it observably alive (an asm escape after the
// writes, a volatile read of every page after the forks), so no compiler can drop
// it.  VMAS > 0 adds that many separate one-page anonymous mappings (every other
// page of a region unmapped, so they cannot merge), each touched.  Then WARMUP
// (default 5) uncounted forks and FORKS counted ones: each timed with
// CLOCK_MONOTONIC from the call to fork() to its return in the parent; the child
// _exits at once and is reaped before the next fork.
//
// Output (one "key value" per line, for scripts; to stdout, or to the file
// named by $FORKLOOP_OUT so that a tool wrapping us can keep stdout):
//   start_mono_ns N       CLOCK_MONOTONIC at entry (a tool that launches us has its probes on by then)
//   median_ns N           median of the counted forks
//   min_ns N / p90_ns N
//   forks N / heap_mib N
//   vm_pte_kib N          VmPTE of this process after the heap was touched
//   anon_huge_kib N       AnonHugePages (smaps_rollup): should be 0
//   vmas N                lines of /proc/self/maps
//   checksum N            the volatile read of the heap (proves it is alive)
// Exit status 0, or 1 with a one-line reason on stderr.
// Build: cc -O2 -o forkloop tests/bench/forkloop.c
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t ns(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void* a, const void* b) {
  uint64_t x = *(const uint64_t*)a, y = *(const uint64_t*)b;
  return x < y ? -1 : x > y;
}

// "Key:   123 kB" from a /proc file, in kB; -1 when absent.
static long proc_kib(const char* path, const char* key) {
  FILE* f = fopen(path, "r");
  if (!f) return -1;
  char line[256];
  long v = -1;
  size_t n = strlen(key);
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, key, n) == 0 && line[n] == ':') {
      v = strtol(line + n + 1, NULL, 10);
      break;
    }
  }
  fclose(f);
  return v;
}

static uint64_t fork_once(void) {
  uint64_t t0 = ns(CLOCK_MONOTONIC);
  pid_t pid = fork();
  uint64_t t1 = ns(CLOCK_MONOTONIC);
  if (pid < 0) {
    fprintf(stderr, "forkloop: fork: %s\n", strerror(errno));
    exit(1);
  }
  if (pid == 0) _exit(0);
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return t1 - t0;
}

static long count_lines(const char* path) {
  FILE* f = fopen(path, "r");
  if (!f) return -1;
  long n = 0;
  int c;
  while ((c = getc(f)) != EOF) n += c == '\n';
  fclose(f);
  return n;
}

int main(int argc, char** argv) {
  const uint64_t start = ns(CLOCK_MONOTONIC);
  if (argc == 2 && strcmp(argv[1], "--now") == 0) {
    printf("%llu\n", (unsigned long long)start);
    return 0;
  }
  const char* out = getenv("FORKLOOP_OUT");
  if (out && *out && !freopen(out, "w", stdout)) {
    fprintf(stderr, "forkloop: cannot write %s: %s\n", out, strerror(errno));
    return 1;
  }
  printf("start_mono_ns %llu\n", (unsigned long long)start);
  fflush(stdout);
  if (argc < 3 || argc > 5) {
    fprintf(stderr, "usage: forkloop HEAP_MIB FORKS [WARMUP [VMAS]] | forkloop --now\n");
    return 1;
  }
  const unsigned long mib = strtoul(argv[1], NULL, 10);
  const unsigned long forks = strtoul(argv[2], NULL, 10);
  const unsigned long warmup = argc > 3 ? strtoul(argv[3], NULL, 10) : 5;
  const unsigned long vmas = argc > 4 ? strtoul(argv[4], NULL, 10) : 0;
  if (forks == 0) {
    fprintf(stderr, "forkloop: FORKS must be at least 1\n");
    return 1;
  }
  const size_t bytes = (size_t)mib << 20;
  const long page = sysconf(_SC_PAGESIZE);
  volatile unsigned char* heap = NULL;
  if (bytes) {
    void* p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      fprintf(stderr, "forkloop: mmap %lu MiB: %s\n", mib, strerror(errno));
      return 1;
    }
    madvise(p, bytes, MADV_NOHUGEPAGE);
    for (size_t off = 0; off < bytes; off += (size_t)page) ((unsigned char*)p)[off] = (unsigned char)(off / (size_t)page);
    // The compiler must assume the heap is read here: the stores stay.
    __asm__ volatile("" : : "r"(p) : "memory");
    heap = p;
  }
  if (vmas) {
    // 2*VMAS pages, every odd one unmapped: VMAS one-page mappings that cannot merge.
    unsigned char* r = mmap(NULL, 2 * vmas * (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r == MAP_FAILED) {
      fprintf(stderr, "forkloop: mmap for %lu VMAs: %s\n", vmas, strerror(errno));
      return 1;
    }
    for (unsigned long i = 0; i < vmas; i++) {
      r[2 * i * (size_t)page] = 1;
      if (munmap(r + (2 * i + 1) * (size_t)page, (size_t)page) != 0) {
        fprintf(stderr, "forkloop: %lu VMAs: %s (vm.max_map_count?)\n", vmas, strerror(errno));
        return 1;
      }
    }
    __asm__ volatile("" : : "r"(r) : "memory");
  }

  uint64_t* t = malloc(forks * sizeof *t);
  if (!t) {
    fprintf(stderr, "forkloop: out of memory\n");
    return 1;
  }
  for (unsigned long i = 0; i < warmup; i++) fork_once();
  for (unsigned long i = 0; i < forks; i++) t[i] = fork_once();

  // Volatile reads: the heap was alive through every fork.
  uint64_t sum = 0;
  for (size_t off = 0; off < bytes; off += (size_t)page) sum += heap[off];

  const long pte = proc_kib("/proc/self/status", "VmPTE");
  const long huge = proc_kib("/proc/self/smaps_rollup", "AnonHugePages");
  const long maps = count_lines("/proc/self/maps");
  qsort(t, forks, sizeof *t, cmp_u64);
  printf("median_ns %llu\nmin_ns %llu\np90_ns %llu\nforks %lu\nheap_mib %lu\nvm_pte_kib %ld\nanon_huge_kib %ld\nvmas %ld\n"
         "checksum %llu\n",
         (unsigned long long)t[forks / 2], (unsigned long long)t[0], (unsigned long long)t[forks * 9 / 10], forks, mib, pte,
         huge, maps, (unsigned long long)sum);
  free(t);
  return 0;
}
