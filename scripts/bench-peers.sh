#!/usr/bin/env bash
# Peers side by side (issue 5, point 4): forkscope and the usual tracing tools on
# the same fork workload, each judged by its overhead, its start-up time and the
# breakdown it can give.  A benchmark that prints figures, not a test.
#
#   scripts/bench-peers.sh [--quick] [--rounds N] [--host-only | --guest-only] [--out DIR]
#
# Workload: tests/bench/forkloop.c (compiled here with cc -O2 into a temp dir):
# touches a heap page by page (MADV_NOHUGEPAGE, kept alive), then forks K times,
# each fork timed with CLOCK_MONOTONIC; its median is the figure.  A small (2 MiB)
# and a large heap (256 MiB on the host, 64 MiB in the guest, ~10x slower).
#
# Host (this kernel: tracepoints only): forkscope's landmark tracepoints through
# bpftrace (count; per-thread timestamps), `perf record -e` and `perf trace -e`
# the same tracepoints, and `forkscope run --modes fork --overhead`.  The
# function-probe tools are tried here too and get "n/a: <reason>" when refused.
# QEMU guest (Debian's stock kernel, one boot through scripts/qemu-lab.sh, side
# script tests/bench/peers-guest.sh): `perf ftrace -G copy_process`, bpftrace
# kfunc/kretfunc on copy_process/dup_mmap/copy_page_range, bcc's funclatency on
# copy_process, and `forkscope run --backend fentry --overhead`.
#
# Per tool: ratio = median traced fork / median untraced fork, untraced and
# traced runs alternating (ABBA) over --rounds rounds, with the smallest and
# largest per-round ratio in parentheses (forkscope rows: its own interleaving
# and its 95% bootstrap interval, on its own runner); start-up = launch of the
# tool until its probes are attached (see tests/bench/peers-lib.sh); breakdown =
# one line on what the tool can tell about a fork.
#
# Needs root.  Installs missing Debian packages (bpftrace, linux-perf,
# bpfcc-tools, jq, and the guest kernel's linux-headers for bcc) and says so.
# Takes about 8-10 minutes (--quick: about 5); the machines are shared and noisy,
# so read the per-round ranges before trusting a ratio.  Logs and raw figures
# stay in --out (default: a new /tmp/forkscope-bench-peers.*).  Exit 0 when the
# table was printed (n/a cells included), 2 bad usage, 3 not root / no forkscope.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=tests/bench/peers-lib.sh
source "$ROOT/tests/bench/peers-lib.sh"

QUICK=0 ROUNDS_OPT="" DO_HOST=1 DO_GUEST=1 OUT=""
usage() { echo "usage: scripts/bench-peers.sh [--quick] [--rounds N] [--host-only | --guest-only] [--out DIR]" >&2; exit 2; }
while (($#)); do
  case "$1" in
    --quick) QUICK=1; shift ;;
    --rounds) [[ $# -ge 2 && $2 =~ ^[1-9][0-9]*$ ]] || usage; ROUNDS_OPT=$2; shift 2 ;;
    --host-only) DO_GUEST=0; shift ;;
    --guest-only) DO_HOST=0; shift ;;
    --out) [[ $# -ge 2 ]] || usage; OUT=$2; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ {print; next} NR > 1 {exit}' "$0"; exit 0 ;;
    *) usage ;;
  esac
done
[[ $(id -u) -eq 0 ]] || { echo "bench-peers: needs root (BPF, perf, tracefs); run it with sudo" >&2; exit 3; }
FORKSCOPE=${FORKSCOPE:-$ROOT/build/forkscope}
[[ -x $FORKSCOPE ]] || { echo "bench-peers: no $FORKSCOPE; build it first: cmake --build $ROOT/build -j2" >&2; exit 3; }

T_START=$(date +%s)
# Host: rounds, forks per run; forkscope: iterations, cell seconds.  Guest likewise.
if ((QUICK)); then
  ROUNDS=2 SMALL_FORKS=200 LARGE_FORKS=20 FS_ITER=500 FS_SEC=4
  G_ROUNDS=1 G_SMALL_FORKS=30 G_LARGE_FORKS=6 G_FS_ITER=60 G_FS_SEC=8 G_TIMEOUT=420
else
  ROUNDS=4 SMALL_FORKS=400 LARGE_FORKS=40 FS_ITER=2000 FS_SEC=8
  G_ROUNDS=2 G_SMALL_FORKS=50 G_LARGE_FORKS=10 G_FS_ITER=100 G_FS_SEC=10 G_TIMEOUT=600
fi
[[ -n $ROUNDS_OPT ]] && ROUNDS=$ROUNDS_OPT G_ROUNDS=$ROUNDS_OPT
SMALL_MIB=2 LARGE_MIB=256 G_SMALL_MIB=2 G_LARGE_MIB=64
READY_TIMEOUT=60
SETTLE=1   # seconds after a tool stopped (see settle in tests/bench/peers-lib.sh)

# ---------------------------------------------------------------------------
# Packages: what the peers need, from Debian, installed when missing.
# ---------------------------------------------------------------------------
guest_kernel=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {sub("linux-image-", "", $2); print $2; exit}')
want=(bpftrace linux-perf bpfcc-tools jq)
((DO_GUEST)) && [[ -n $guest_kernel ]] && want+=("linux-headers-$guest_kernel")
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing missing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
    || { apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null 2>&1 || true
         apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
           || say "could not install all of ${missing[*]}: the tools missing get n/a rows"; }
fi

# ---------------------------------------------------------------------------
# Scratch, output, the workload.
# ---------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/forkscope-bench-peers-work.XXXXXX)
cleanup() { trace_end "${BENCH_TRACE_INST:-}"; rm -rf "$WORK"; }
trap cleanup EXIT
[[ -n $OUT ]] || OUT=$(mktemp -d /tmp/forkscope-bench-peers.XXXXXX)
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
LOGS="$OUT/host"; rm -rf "$LOGS"; mkdir -p "$LOGS"
ROWS="$OUT/rows.tsv"; : >"$ROWS"; rm -f "$OUT/notes.txt"
FORKLOOP="$WORK/forkloop"
cc -O2 -o "$FORKLOOP" "$ROOT/tests/bench/forkloop.c"
ulimit -l unlimited 2>/dev/null || true
[[ -d /sys/kernel/tracing/events ]] || mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
tps=$(IFS=,; echo "${LANDMARKS[*]}")

# ---------------------------------------------------------------------------
# Host.
# ---------------------------------------------------------------------------
ENV_NAME="host $(uname -r)"
if ((DO_HOST)); then
  if command -v bpftrace >/dev/null; then
    bench_daemon "bpftrace tracepoints: count" '^ready' 'task_newtask\]: [0-9]' \
      "event counts per landmark (allocations, locks, switches...); no times" -- \
      bpftrace -B none "$ROOT/tests/bench/landmarks-count.bt"
    bench_daemon "bpftrace tracepoints: per-thread ts" '^ready' '@fork_us' \
      "fork latency hist + time to each landmark (allocs by call site); flat" -- \
      bpftrace -B none "$ROOT/tests/bench/landmarks-ts.bt"
  else
    na_row "bpftrace tracepoints" "bpftrace not installed" ""
  fi
  if command -v perf >/dev/null; then
    bench_wrapper "perf record -e <landmarks>" 'Captured and wrote .*\([1-9][0-9]* samples\)' "$LOGS/perf_record_-e_landmarks.log" \
      "every event with time and fields (perf script): raw timeline to post-process" -- \
      perf record -o "$WORK/perf.data" -e "$tps" --
    bench_wrapper "perf trace -e <landmarks>" 'task:task_newtask' "$WORK/perf-trace.txt" \
      "the same events printed live, strace-like; no aggregation" -- \
      perf trace -o "$WORK/perf-trace.txt" -e "$tps" --
    [[ -f $WORK/perf-trace.txt ]] && head -n 200 "$WORK/perf-trace.txt" >"$LOGS/perf-trace.sample"
    rm -f "$WORK/perf.data" "$WORK/perf.data.old" "$WORK/perf-trace.txt"
  else
    na_row "perf record / perf trace" "perf not installed (linux-perf)" ""
  fi
  bench_forkscope "forkscope (tracepoint)" "${SMALL_MIB}M,${LARGE_MIB}M" \
    "nested phase tree (self times add up), user spans, samples, overhead" -- \
    "$FORKSCOPE" run --backend tracepoint --modes fork --iterations "$FS_ITER" --cell-seconds "$FS_SEC"

  # The function-probe peers: tried here for real; measured if they work, else n/a.
  say "$ENV_NAME: trying the function-probe peers"
  try() {  # NAME BREAKDOWN HINT -- CMD...: true when CMD succeeds; else an n/a row (reason; hint)
    local name=$1 breakdown=$2 hint=$3; shift 4
    local log; log="$LOGS/try-$(slug "$name").log"
    if timeout 90 "$@" >"$log" 2>&1; then return 0; fi
    na_row "$name" "$(reason_from "$log")${hint:+ ($hint)}" "$breakdown"
    return 1
  }
  # Readings that explain a refusal.
  tr_dir=/sys/kernel/tracing
  h_ftrace="tracers here: $(cat "$tr_dir/available_tracers" 2>/dev/null || echo none)"
  grep -qw function_graph "$tr_dir/available_tracers" 2>/dev/null || h_ftrace+=", no function_graph"
  h_kprobe=""
  [[ -e $tr_dir/kprobe_events ]] || h_kprobe="and no kprobes here: no kprobe_events, CONFIG_KPROBES unset"
  h_kfunc="bpftrace $(bpftrace --version 2>/dev/null | awk '{print $2}') probes ftrace for kfunc"
  b_ftrace="function_graph under copy_process: every callee's duration, nested (text to post-process)"
  b_func="copy_process latency histogram only (kprobe/kretprobe, system-wide)"
  b_kfunc="inclusive time + calls of copy_process, dup_mmap, copy_page_range; no self time"
  b_fentry="phase tree: fentry bounds where probeable, landmarks for inlined phases"
  if try "perf ftrace -G copy_process" "$b_ftrace" "$h_ftrace" -- perf ftrace -G copy_process -- true; then
    bench_wrapper "perf ftrace -G copy_process" 'copy_process\(\) \{' "$LOGS/perf-ftrace.sample" "$b_ftrace" -- pftrace
  fi
  if try "bcc funclatency copy_process" "$b_func" "$h_kprobe" -- /usr/sbin/funclatency-bpfcc -d 1 copy_process; then
    bench_daemon "bcc funclatency copy_process" '^Tracing' 'avg = |usecs' "$b_func" -- /usr/sbin/funclatency-bpfcc -u copy_process
  fi
  if try "bpftrace kfunc/kretfunc" "$b_kfunc" "$h_kfunc" -- bpftrace -e 'kfunc:copy_process { } BEGIN { exit(); }'; then
    bench_daemon "bpftrace kfunc/kretfunc" '^ready' 'copy_page_range' "$b_kfunc" -- bpftrace -B none "$ROOT/tests/bench/kfunc.bt"
  fi
  if try "forkscope --backend fentry" "$b_fentry" "" -- "$FORKSCOPE" run --backend fentry --modes vfork --heap 0 --iterations 1 -q --out "$WORK/try-fentry"; then
    bench_forkscope "forkscope --backend fentry" "${SMALL_MIB}M,${LARGE_MIB}M" "$b_fentry" -- \
      "$FORKSCOPE" run --backend fentry --modes fork --iterations "$FS_ITER" --cell-seconds "$FS_SEC"
  fi
  untraced_row
fi
LOAD_HOST_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------
# Guest: one boot, every function-probe peer inside it.
# ---------------------------------------------------------------------------
if ((DO_GUEST)); then
  say "booting the QEMU guest (Debian's kernel, TCG) for the function-probe peers"
  rm -rf "$OUT/guest"; mkdir -p "$OUT/guest"
  grc=0
  "$ROOT/scripts/qemu-lab.sh" --timeout "$G_TIMEOUT" --out "$OUT/guest" -- \
    bash "$ROOT/tests/bench/peers-guest.sh" "$FORKLOOP" "$FORKSCOPE" "$G_ROUNDS" \
    "$G_SMALL_MIB" "$G_SMALL_FORKS" "$G_LARGE_MIB" "$G_LARGE_FORKS" "$G_FS_ITER" "$G_FS_SEC" \
    >"$OUT/guest/host-side.log" 2>&1 || grc=$?
  [[ -s $OUT/guest/rows.tsv ]] && cat "$OUT/guest/rows.tsv" >>"$ROWS"
  if ((grc != 0)); then
    ENV_NAME="guest"
    na_row "QEMU guest" "scripts/qemu-lab.sh exited $grc: $(grep -a 'qemu-lab:' "$OUT/guest/host-side.log" | tail -n 1 | oneline 120)" \
      "(rows the guest finished are above)"
  fi
fi

# ---------------------------------------------------------------------------
# The table.
# ---------------------------------------------------------------------------
{
  echo "forkscope bench-peers, $(date -u '+%Y-%m-%d %H:%M UTC'), took $((($(date +%s) - T_START) / 60)) min"
  echo "machine: $(nproc) vCPU Firecracker guest, kernel $(uname -r), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), THP $(sed 's/.*\[\(.*\)\].*/\1/' /sys/kernel/mm/transparent_hugepage/enabled); load average at start ${LOAD_START}, after the host part ${LOAD_HOST_END} (shared machine, other builds running: noisy)"
  if ((DO_HOST)); then echo "host workload: forkloop ${SMALL_MIB} MiB x ${SMALL_FORKS} forks and ${LARGE_MIB} MiB x ${LARGE_FORKS} forks per run, ${ROUNDS} rounds untraced/traced (ABBA)"; fi
  if ((DO_GUEST)); then echo "guest workload: forkloop ${G_SMALL_MIB} MiB x ${G_SMALL_FORKS} and ${G_LARGE_MIB} MiB x ${G_LARGE_FORKS}, ${G_ROUNDS} round(s); QEMU TCG, 2 vCPU, Debian ${guest_kernel:-?}: ratios only, times ~10x the host's"; fi
  echo
  # n/a rows: their reason becomes a numbered note under the table.
  awk -F'\t' -v OFS='\t' -v notes="$OUT/notes.txt" '
    BEGIN {print "where", "tool", "ratio small heap (range)", "ratio large heap (range)", "start-up", "breakdown it can give"; n = 0}
    {
      if ($7 != "") {n++; $3 = "n/a [" n "]"; $4 = "-"; $5 = "-"; print "[" n "] " $1 ", " $2 ": " $7 > notes}
      print $1, $2, $3, $4, $5, $6
    }' "$ROWS" | column -t -s $'\t'
  echo
  if [[ -s $OUT/notes.txt ]]; then cat "$OUT/notes.txt"; echo; fi
  echo "ratio = median traced fork / median untraced fork (1.00 = no overhead); (a-b) = smallest and largest per-round ratio."
  echo "* forkscope rows: forkscope's own --overhead (untraced and traced blocks interleaved in one run, its own fork runner);"
  echo "  (a-b) = its 95% bootstrap interval; start-up = launch until its first traced launch (tracefs, sched_process_fork)."
  echo "start-up: launch of the tool until its probes are attached (its ready line after attaching, or the traced workload's first instruction)."
  echo "logs and raw figures: $OUT"
} | tee "$OUT/table.txt"
