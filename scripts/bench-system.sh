#!/usr/bin/env bash
# The cost of forkscope to the rest of the machine (issue 16, point 1): work
# that launches nothing, untraced and while forkscope (or the bpftrace floor)
# is attached.  A benchmark that prints figures, not a test.
#
#   scripts/bench-system.sh [--quick] [--rounds N] [--conditions LIST] [--workloads LIST]
#                           [--guest [--guest-only] [--kernel K] [--icount]] [--out DIR]
#
# Workloads (tests/bench/unrelated.c, compiled with cc -O2 into a temp dir; the
# median of several timed batches, per operation): a null system call
# (syscall(SYS_getppid)), open+close of /dev/null, socket(AF_UNIX)+close (slab
# allocations: six kmem_cache_alloc per pair, from the UNIX, sock and LSM inode,
# dentry, filp and LSM file caches),
# anonymous page faults (4 MiB mmap, touched, munmap; per fault), a pipe
# ping-pong between two processes pinned to one CPU (per round trip: two
# context switches); and a real one: 36 generated C files compiled with
# xargs -P2 cc -O2 -c (user+sys CPU seconds of the compilers, and wall seconds).
# --workloads getppid,openclose,socket,fault,pingpong,compile: only those.
# The table compares CPU time (the thread's CPU clock; the compile's user+sys):
# a tracer's programs run in the traced task's context and count there, while
# the wait for a CPU held by other work (this machine is shared) does not.  The
# last column is the same ratio in wall time.
#
# Conditions (--conditions, comma-separated; default all but serve; a forkscope one
# may end in +DEPTH, e.g. trace-a+syscall for --depth syscall), each with its
# own untraced sets, ABBA over --rounds rounds (tests/bench/system-lib.sh):
#   run       forkscope run --modes fork --heap 2M --iterations 1000000
#             --cell-seconds 600 in the background: the first cell of the
#             default sweep, forking the whole time the set runs (its runner
#             keeps one CPU busy: this shows in wall time, not in CPU time)
#   trace-a   forkscope trace -a in the background
#   trace-p   forkscope trace -p of an idle process (sleep 1000)
#   serve     forkscope serve -a on 127.0.0.1:$SERVE_PORT (default 39464),
#             scraped once after the set (its /metrics must show launches);
#             on request only, on the host only (the guest lacks prometheus-cpp)
#   bpftrace  the reference floor: bpftrace counting clone/clone3 on the
#             per-syscall tracepoints (tests/bench/clone-syscalls.bt)
# Each tracer is started before its traced set, which begins once the tracer
# says it is attached ("backend attached" / bpftrace's BEGIN), and is stopped
# with SIGINT after it; its process and every BPF program it held must be gone
# (a note under the table otherwise).  Traced sets whose tracer misbehaved are
# dropped.
#
# --guest: the same inside scripts/qemu-lab.sh's guest (Debian's kernel under
# TCG, ~10x slower: workloads scaled to a tenth; compare ratios only), with
# forkscope's conditions once for --backend fentry and once for --backend
# kprobe (tests/bench/system-guest.sh).  --kernel K and --icount go to
# scripts/qemu-lab.sh (its Debian kernel series, 6.1 or 6.12; --icount: a guest
# clock that counts instructions, immune to the host's load: prefer it, the
# figures are then instruction counts, and the guest has one vCPU).
# --guest-only skips the host part.
#
# Ratio = median traced figure / median untraced figure of that condition's
# sets; (a-b) = the smallest and largest per-round ratio.
#
# Needs root, build/forkscope (or $FORKSCOPE_BUILD, or FORKSCOPE=binary),
# bpftool, jq; installs bpftrace from Debian when missing.  About 3-4 minutes
# for 3 rounds on the host, 6-8 on a busy machine (--quick: about 2-3);
# --guest adds 20-30 (--quick) to 60 minutes (at most 2 rounds there).  Logs
# and raw figures (raw.tsv: env, condition, round, u/t, workload, CPU, wall) in
# --out (default: a new /tmp/forkscope-bench-system.*).  Exit 0 when the table
# was printed, 2 bad usage, 3 not root / no forkscope binary, 1 other failure.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=tests/bench/peers-lib.sh
source "$ROOT/tests/bench/peers-lib.sh"
# shellcheck source=tests/bench/system-lib.sh
source "$ROOT/tests/bench/system-lib.sh"

QUICK=0 ROUNDS="" CONDS="" GUEST=0 OUT="" HOST=1 LAB_OPTS=() WORKLOADS=all
usage() {
  echo "usage: scripts/bench-system.sh [--quick] [--rounds N] [--conditions run,trace-a,trace-p,serve,bpftrace] [--workloads LIST]" >&2
  echo "                               [--guest [--guest-only] [--kernel 6.1|6.12] [--icount]] [--out DIR]" >&2
  exit 2
}
while (($#)); do
  case "$1" in
    --quick) QUICK=1; shift ;;
    --rounds) [[ $# -ge 2 && $2 =~ ^[1-9][0-9]*$ ]] || usage; ROUNDS=$2; shift 2 ;;
    --conditions) [[ $# -ge 2 && -n $2 ]] || usage; CONDS=$2; shift 2 ;;
    --guest) GUEST=1; shift ;;
    --guest-only) GUEST=1 HOST=0; shift ;;
    --kernel) [[ $# -ge 2 && -n $2 ]] || usage; LAB_OPTS+=(--kernel "$2"); shift 2 ;;
    --icount) LAB_OPTS+=(--icount); shift ;;
    --workloads) [[ $# -ge 2 && $2 =~ ^(all|getppid|openclose|socket|fault|pingpong|compile)(,(getppid|openclose|socket|fault|pingpong|compile))*$ ]] || usage
                 WORKLOADS=$2; shift 2 ;;
    --out) [[ $# -ge 2 && -n $2 ]] || usage; OUT=$2; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ {print; next} NR > 1 {exit}' "$0"; exit 0 ;;
    *) usage ;;
  esac
done
conds=()
IFS=, read -ra conds <<<"${CONDS:-${SYSTEM_DEFAULT// /,}}"
for c in "${conds[@]}"; do
  [[ " $SYSTEM_CONDITIONS " == *" ${c%+*} "* ]] || { echo "bench-system: unknown condition '$c' (known: ${SYSTEM_CONDITIONS// /, })" >&2; exit 2; }
done
[[ $(id -u) -eq 0 ]] || { echo "bench-system: needs root (BPF); run it with sudo" >&2; exit 3; }
FORKSCOPE=${FORKSCOPE:-${FORKSCOPE_BUILD:-$ROOT/build}/forkscope}
[[ -x $FORKSCOPE ]] || { echo "bench-system: no $FORKSCOPE; build it first: cmake --build $ROOT/build -j2" >&2; exit 3; }
for t in bpftool jq python3 cc; do
  command -v "$t" >/dev/null || { echo "bench-system: needs $t" >&2; exit 3; }
done

T_START=$(date +%s)
# The guest compiles fewer files: cc under TCG takes ~1.5 s a file.
if ((QUICK)); then BATCHES=5 SCALE=0.5 NFILES=24 G_SCALE=0.05 G_NFILES=4; else BATCHES=9 SCALE=1 NFILES=36 G_SCALE=0.1 G_NFILES=8; fi
[[ -n $ROUNDS ]] || { if ((QUICK)); then ROUNDS=2; else ROUNDS=3; fi; }
# The guest: 7 conditions under TCG, about 2-4 minutes each per round.
G_ROUNDS=$((QUICK ? 1 : (ROUNDS < 2 ? ROUNDS : 2)))
READY_TIMEOUT=60
SETTLE=1

if [[ " ${conds[*]} " == *" bpftrace "* ]] && ! command -v bpftrace >/dev/null; then
  say "installing bpftrace (Debian package)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends bpftrace >/dev/null 2>&1 \
    || { apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null 2>&1 || true
         apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends bpftrace >/dev/null 2>&1 \
           || say "could not install bpftrace: the bpftrace condition gets a note"; }
fi

WORK=$(mktemp -d /tmp/forkscope-bench-system-work.XXXXXX)
cleanup() { system_cleanup; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
[[ -n $OUT ]] || OUT=$(mktemp -d /tmp/forkscope-bench-system.XXXXXX)
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
LOGS="$OUT/host"; rm -rf "$LOGS"; mkdir -p "$LOGS"
RAW="$OUT/raw.tsv" NOTES="$OUT/notes.tsv"; : >"$RAW"; : >"$NOTES"
UNRELATED="$WORK/unrelated"
cc -O2 -o "$UNRELATED" "$ROOT/tests/bench/unrelated.c"
COMPILE_DIR="$WORK/compile"
gen_sources "$COMPILE_DIR" "$NFILES"
CLONE_BT="$ROOT/tests/bench/clone-syscalls.bt"
ulimit -l unlimited 2>/dev/null || true
[[ -d /sys/kernel/tracing/events ]] || mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

ENV_NAME="host $(uname -r)"
if ! command -v bpftrace >/dev/null && [[ " ${conds[*]} " == *" bpftrace "* ]]; then
  note bpftrace "bpftrace not installed"
  mapfile -t conds < <(printf '%s\n' "${conds[@]}" | grep -vx bpftrace)
fi
if ((HOST)); then
  system_rounds "${conds[@]}" || { echo "bench-system: a workload failed on the host; logs in $LOGS" >&2; exit 1; }
  system_cleanup
fi
LOAD_HOST_END=$(cut -d' ' -f1-3 /proc/loadavg)

if ((GUEST)); then
  say "booting the QEMU guest (Debian's kernel, TCG): forkscope with --backend fentry and kprobe"
  rm -rf "$OUT/guest"; mkdir -p "$OUT/guest"
  gen_sources "$WORK/compile-guest" "$G_NFILES"
  grc=0
  "$ROOT/scripts/qemu-lab.sh" "${LAB_OPTS[@]}" --env WORKLOADS="$WORKLOADS" --timeout $((QUICK ? 1800 : 3600)) --out "$OUT/guest" -- \
    bash "$ROOT/tests/bench/system-guest.sh" "$UNRELATED" "$FORKSCOPE" "$WORK/compile-guest" "$G_ROUNDS" "$BATCHES" "$G_SCALE" \
    "$(IFS=,; echo "${conds[*]}")" >"$OUT/guest/host-side.log" 2>&1 || grc=$?
  [[ -s $OUT/guest/raw.tsv ]] && cat "$OUT/guest/raw.tsv" >>"$RAW"
  [[ -s $OUT/guest/notes.tsv ]] && cat "$OUT/guest/notes.tsv" >>"$NOTES"
  if ((grc != 0)); then
    ENV_NAME="guest"
    note "-" "scripts/qemu-lab.sh exited $grc: $(grep -a 'qemu-lab:\|system-guest' "$OUT/guest/host-side.log" | tail -n 1 | oneline 160) (the sets it finished are in the table)"
  fi
fi

{
  echo "forkscope bench-system, $(date -u '+%Y-%m-%d %H:%M UTC'), took $((($(date +%s) - T_START) / 60)) min"
  echo "machine: $(nproc) vCPU, kernel $(uname -r), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo); load average at start ${LOAD_START}, after the host part ${LOAD_HOST_END} (a shared machine runs other work: read the ranges)"
  echo "sets: unrelated.c x ${BATCHES} batches (scale ${SCALE}; guest ${G_SCALE}), compile of ${NFILES} files with -P2 (guest: ${G_NFILES}); ${ROUNDS} round(s) per condition on the host, untraced/traced ABBA$( ((GUEST)) && echo "; guest ${G_ROUNDS} round(s)")"
  echo
  python3 - "$RAW" "$NOTES" <<'PY'
import statistics, sys
from collections import defaultdict

raw = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
notes = [l.rstrip("\n").split("\t") for l in open(sys.argv[2]) if l.strip()]
LABEL = {
    "getppid": ("syscall(SYS_getppid)", "per call"),
    "openclose": ("open+close /dev/null", "per pair"),
    "socket": ("socket(AF_UNIX)+close (slab)", "per pair"),
    "fault": ("anonymous page fault", "per fault"),
    "pingpong": ("pipe ping-pong (2 switches)", "per round trip"),
    "compile": ("compile, cc -c -P2", "user+sys"),
}
COND = {"run": "forkscope run", "trace-a": "forkscope trace -a", "trace-p": "forkscope trace -p (idle)", "serve": "forkscope serve -a",
        "bpftrace": "bpftrace clone syscalls (floor)"}

def cond_label(c):
    base, _, bk = c.partition("@")
    base, _, depth = base.partition("+")
    return COND.get(base, base) + (f" --depth {depth}" if depth else "") + (f" --backend {bk}" if bk else "")

def fmt(v, w):
    if w == "compile": return f"{v:.2f} s"
    return f"{v:.0f} ns" if v < 1000 else f"{v / 1000:.2f} us"

# (env, cond, workload) -> round -> side -> (cpu, wall, foreign)
d = defaultdict(lambda: defaultdict(dict))
order = []
foreign = defaultdict(lambda: [0, 0])  # env -> [sets with foreign tracing programs, sets]
seen = set()
for env, cond, rnd, side, w, cpu, wall, *rest in raw:
    key = (env, cond, w)
    if key not in d: order.append(key)
    d[key][rnd][side] = (float(cpu), float(wall), int(rest[0]) if rest else 0)
    if (env, cond, rnd, side) not in seen and rest:
        seen.add((env, cond, rnd, side))
        foreign[env][1] += 1
        foreign[env][0] += int(rest[0]) > 0

# Rounds whose untraced and traced sets both ran with no one else's tracing
# programs loaded; all rounds (and a "+" on the row) when there are none.
def paired(rounds):
    both = [r for r in rounds.values() if "t" in r and "u" in r]
    clean = [r for r in both if r["t"][2] == 0 and r["u"][2] == 0]
    return (clean, "") if clean else (both, "+")

def ratio_cell(rounds, i):
    pairs = [(r["t"][i], r["u"][i]) for r in paired(rounds)[0]]
    if not pairs: return "n/a"
    t = statistics.median(p[0] for p in pairs); u = statistics.median(p[1] for p in pairs)
    rs = sorted(a / b for a, b in pairs)
    return f"x{t / u:.2f} ({rs[0]:.2f}-{rs[-1]:.2f})"

rows = [("where", "workload", "condition", "untraced (CPU)", "traced (CPU)", "ratio CPU (range)", "ratio wall (range)")]
envs = []
for env, cond, w in sorted(order, key=lambda k: (k[0], list(LABEL).index(k[2]) if k[2] in LABEL else 99, order.index(k))):
    rounds = d[(env, cond, w)]
    use, flag = paired(rounds)
    if not use: continue
    us = [r["u"][0] for r in use]
    ts = [r["t"][0] for r in use]
    lab, per = LABEL.get(w, (w, ""))
    rows.append((env, f"{lab}, {per}", cond_label(cond) + flag, fmt(statistics.median(us), w), fmt(statistics.median(ts), w),
                 ratio_cell(rounds, 0), ratio_cell(rounds, 1)))
width = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
prev = None
for r in rows:
    if prev is not None and r[:2] != prev[:2] and r[0] != "where": print()
    print("  ".join(v.ljust(width[i]) for i, v in enumerate(r)).rstrip())
    prev = r
for env, (n, sets) in foreign.items():
    if n:
        print(f"\nnote: {env}: {n} of {sets} sets ran while someone else had BPF tracing programs loaded (another forkscope?; "
              "raw.tsv's last column): such an untraced set was traced too. Rows use only the rounds where neither set did; "
              "+ = no such round, every round used")
if notes:
    print()
    for env, cond, text in notes:
        print(f"note: {env}, {cond_label(cond)}: {text}" if cond != "-" else f"note: {env}: {text}")
PY
  echo
  echo "untraced/traced = medians over the rounds of the per-set figures (each the median of its batches); CPU = the thread's CPU clock"
  echo "(ping-pong: both processes'), compile = the compilers' user+sys; ratio = traced/untraced medians, (a-b) = smallest and largest"
  echo "per-round ratio; wall ratio = the same in CLOCK_MONOTONIC time, which also counts waiting for a CPU (run's runner keeps one busy)."
  echo "logs and raw figures: $OUT"
} | tee "$OUT/table.txt"
