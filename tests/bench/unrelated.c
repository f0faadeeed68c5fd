// unrelated: the unrelated workloads of scripts/bench-system.sh (and
// tests/bench/system-guest.sh): work that launches nothing, to measure what a
// tracer costs every other process on the machine.
//
//   unrelated [--batches N] [--scale F] WORKLOAD...     WORKLOAD: one of the names below, or all
//
// Each workload runs N timed batches (default 9) of a fixed number of operations
// (scaled by F, default 1: the guest, ~10x slower under TCG, uses 0.1) after one
// untimed warm-up batch, and prints one line "NAME CPU_NS WALL_NS" to stdout: the
// median batch's nanoseconds per operation in CPU time and in wall time.  CPU
// time (CLOCK_THREAD_CPUTIME_ID; for pingpong plus the child's process CPU
// clock) is the figure to compare on a shared machine: a tracer's programs run
// in the traced task's context and count in it, while waiting for a CPU that
// other work holds does not.  Wall time (CLOCK_MONOTONIC) includes that wait.
//   getppid    syscall(SYS_getppid): a null system call
//   openclose  open("/dev/null", O_RDONLY) + close: a path walk and a struct file
//   socket     socket(AF_UNIX, SOCK_DGRAM) + close: slab allocations from named
//              kmem caches (kmem_cache_alloc, the tracepoint forkscope attaches),
//              six per pair on 6.18 (counted with bpftrace): the UNIX cache
//              (struct unix_sock; slab merging files it under signal_cache there),
//              sock_inode_cache and lsm_inode_cache (the socket's inode), dentry,
//              filp and lsm_file_cache; freed again by the close
//   fault      anonymous page faults: mmap 4 MiB (MADV_NOHUGEPAGE), write one byte
//              per 4 KiB page, munmap; per fault (the mmap/munmap amortised in)
//   pingpong   one byte back and forth through two pipes between this process and
//              a child, both pinned to the CPU we started on, so each round trip
//              is two context switches; per round trip
// Exit status 0, or 1 with a one-line reason on stderr.
// Build: cc -O2 -o unrelated tests/bench/unrelated.c
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { MAX_BATCHES = 101, FAULT_PAGES = 1024 };

static uint64_t clock_ns(clockid_t clock) {
  struct timespec ts;
  if (clock_gettime(clock, &ts) != 0) return 0;
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char* what) {
  fprintf(stderr, "unrelated: %s: %s\n", what, strerror(errno));
  exit(1);
}

static int cmp_double(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

// One batch of OPS operations; returns how many operations it timed (the fault
// workload counts faults, not regions).
typedef long (*batch_fn)(long ops);

static long do_getppid(long ops) {
  for (long i = 0; i < ops; i++) syscall(SYS_getppid);
  return ops;
}

static long do_openclose(long ops) {
  for (long i = 0; i < ops; i++) {
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("open /dev/null");
    close(fd);
  }
  return ops;
}

static long do_socket(long ops) {
  for (long i = 0; i < ops; i++) {
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket(AF_UNIX)");
    close(fd);
  }
  return ops;
}

// OPS regions of FAULT_PAGES pages each.
static long do_fault(long ops) {
  long page = sysconf(_SC_PAGESIZE);
  size_t len = (size_t)FAULT_PAGES * (size_t)page;
  for (long i = 0; i < ops; i++) {
    volatile char* p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) die("mmap");
    // Huge pages would turn 512 faults into one.
    madvise((void*)p, len, MADV_NOHUGEPAGE);
    for (size_t off = 0; off < len; off += (size_t)page) p[off] = 1;
    munmap((void*)p, len);
  }
  return ops * FAULT_PAGES;
}

static int ping[2], pong[2];

static long do_pingpong(long ops) {
  char c = 0;
  for (long i = 0; i < ops; i++) {
    if (write(ping[1], &c, 1) != 1 || read(pong[0], &c, 1) != 1) die("pipe round trip");
  }
  return ops;
}

// The echoing child, pinned with us to one CPU; it dies with us (PDEATHSIG) or
// when the pipe closes.
static pid_t start_echo(void) {
  cpu_set_t one;
  CPU_ZERO(&one);
  int cpu = sched_getcpu();
  CPU_SET(cpu < 0 ? 0 : cpu, &one);
  if (sched_setaffinity(0, sizeof one, &one) != 0) die("sched_setaffinity");
  if (pipe(ping) != 0 || pipe(pong) != 0) die("pipe");
  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    close(ping[1]);
    close(pong[0]);
    char c;
    while (read(ping[0], &c, 1) == 1)
      if (write(pong[1], &c, 1) != 1) break;
    _exit(0);
  }
  close(ping[0]);
  close(pong[1]);
  return pid;
}

static void stop_echo(pid_t pid) {
  close(ping[1]);
  close(pong[0]);
  waitpid(pid, NULL, 0);
  cpu_set_t all;
  CPU_ZERO(&all);
  for (int i = 0; i < CPU_SETSIZE; i++) CPU_SET(i, &all);
  sched_setaffinity(0, sizeof all, &all);
}

struct workload {
  const char* name;
  batch_fn fn;
  long ops;  // per batch at scale 1 (about 25-50 ms untraced on a 2-vCPU VM)
};

static const struct workload workloads[] = {
    {"getppid", do_getppid, 200000},
    {"openclose", do_openclose, 20000},
    {"socket", do_socket, 10000},
    {"fault", do_fault, 16},
    {"pingpong", do_pingpong, 5000},
};
enum { N_WORKLOADS = sizeof workloads / sizeof workloads[0] };

static double median(double* v, int n) {
  qsort(v, (size_t)n, sizeof v[0], cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void run(const struct workload* w, int batches, double scale) {
  long ops = (long)(w->ops * scale);
  if (ops < 1) ops = 1;
  pid_t echo = w->fn == do_pingpong ? start_echo() : 0;
  clockid_t echo_clock = 0;
  if (echo && clock_getcpuclockid(echo, &echo_clock) != 0) die("clock_getcpuclockid");
  double cpu[MAX_BATCHES], wall[MAX_BATCHES];
  w->fn(ops);  // warm-up: caches, page tables, the child scheduled once
  for (int b = 0; b < batches; b++) {
    uint64_t c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID), e0 = echo ? clock_ns(echo_clock) : 0, t0 = clock_ns(CLOCK_MONOTONIC);
    long done = w->fn(ops);
    uint64_t t1 = clock_ns(CLOCK_MONOTONIC), c1 = clock_ns(CLOCK_THREAD_CPUTIME_ID), e1 = echo ? clock_ns(echo_clock) : 0;
    cpu[b] = (double)(c1 - c0 + e1 - e0) / (double)done;
    wall[b] = (double)(t1 - t0) / (double)done;
  }
  if (echo) stop_echo(echo);
  printf("%s %.1f %.1f\n", w->name, median(cpu, batches), median(wall, batches));
}

static void usage(void) {
  fprintf(stderr, "usage: unrelated [--batches N] [--scale F] all|getppid|openclose|socket|fault|pingpong...\n");
  exit(2);
}

int main(int argc, char** argv) {
  int batches = 9;
  double scale = 1;
  int i = 1;
  for (; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
    if (i + 1 >= argc) usage();
    char* end;
    if (strcmp(argv[i], "--batches") == 0) {
      batches = (int)strtol(argv[i + 1], &end, 10);
      if (*end || batches < 1 || batches > MAX_BATCHES) usage();
    } else if (strcmp(argv[i], "--scale") == 0) {
      scale = strtod(argv[i + 1], &end);
      if (*end || !(scale > 0) || scale > 1000) usage();
    } else {
      usage();
    }
  }
  if (i == argc) usage();
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (; i < argc; i++) {
    int all = strcmp(argv[i], "all") == 0, found = 0;
    for (int w = 0; w < N_WORKLOADS; w++) {
      if (!all && strcmp(argv[i], workloads[w].name) != 0) continue;
      found = 1;
      run(&workloads[w], batches, scale);
    }
    if (!found) usage();
  }
  return 0;
}
