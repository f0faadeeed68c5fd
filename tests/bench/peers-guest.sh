#!/usr/bin/env bash
# bench-peers, guest side: runs inside scripts/qemu-lab.sh's guest (Debian's
# stock kernel: fentry, kprobes, ftrace) and measures the function-probe peers
# on the fork workload, the same way the host side measures the tracepoint ones
# (tests/bench/peers-lib.sh).  Started by scripts/bench-peers.sh:
#
#   peers-guest.sh FORKLOOP FORKSCOPE ROUNDS SMALL_MIB SMALL_FORKS LARGE_MIB LARGE_FORKS FS_ITERATIONS FS_CELL_SECONDS
#
# Writes /out/rows.tsv (table rows) and /out/logs/ (every tool's output).
# Guest code runs ~10x slower than the host (TCG emulation): compare ratios,
# never absolute times, and expect slow tool start-up (bcc compiles C with clang).
set -uo pipefail
[[ ${QEMU_LAB:-} == 1 ]] || { echo "peers-guest.sh: run me through scripts/qemu-lab.sh (scripts/bench-peers.sh does)" >&2; exit 2; }
(($# == 9)) || { echo "usage: peers-guest.sh FORKLOOP FORKSCOPE ROUNDS SMALL_MIB SMALL_FORKS LARGE_MIB LARGE_FORKS FS_ITERATIONS FS_CELL_SECONDS" >&2; exit 2; }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/bench/peers-lib.sh
source "$HERE/peers-lib.sh"

FORKLOOP=$1 FORKSCOPE=$2 ROUNDS=$3 SMALL_MIB=$4 SMALL_FORKS=$5 LARGE_MIB=$6 LARGE_FORKS=$7 FS_ITER=$8 FS_SEC=$9
ENV_NAME="guest $(uname -r)"
ROWS=/out/rows.tsv
LOGS=/out/logs
WORK=$(mktemp -d /tmp/bench-guest.XXXXXX)   # the guest's RAM, not the 9p share
READY_TIMEOUT=240
# The guest is ours alone: wait for the BPF programs of a stopped tool to go, then 3 s more.
SETTLE_BPF=1 SETTLE=3
rm -rf "$LOGS"; mkdir -p "$LOGS"; : >"$ROWS"
ulimit -l unlimited 2>/dev/null || true
echo "guest: kernel $(uname -r), $(nproc) CPUs, THP $(cat /sys/kernel/mm/transparent_hugepage/enabled), $(awk '/MemAvailable/ {print $2 / 1024 " MiB available"}' /proc/meminfo)"

bench_wrapper "perf ftrace -G copy_process" 'copy_process\(\) \{' "$LOGS/perf-ftrace.sample" \
  "function_graph under copy_process: every callee's duration, nested (text to post-process)" -- pftrace

if [[ -d /lib/modules/$(uname -r)/build ]]; then
  bench_daemon "bcc funclatency copy_process" '^Tracing' 'avg = |usecs' \
    "copy_process latency histogram only (kprobe/kretprobe, system-wide)" -- /usr/sbin/funclatency-bpfcc -u copy_process
else
  na_row "bcc funclatency copy_process" "no kernel headers for $(uname -r) (/lib/modules/$(uname -r)/build): bcc compiles against them" \
    "copy_process latency histogram only (kprobe/kretprobe, system-wide)"
fi

bench_daemon "bpftrace kfunc/kretfunc" '^ready' 'copy_page_range' \
  "inclusive time + calls of copy_process, dup_mmap, copy_page_range; no self time" -- bpftrace -B none "$HERE/kfunc.bt"

bench_forkscope "forkscope --backend fentry" "${SMALL_MIB}M,${LARGE_MIB}M" \
  "phase tree: fentry bounds where probeable, landmarks for inlined phases" -- \
  "$FORKSCOPE" run --backend fentry --modes fork --iterations "$FS_ITER" --cell-seconds "$FS_SEC"

untraced_row
rm -rf "$WORK"
echo "guest: done"
