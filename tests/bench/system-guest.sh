#!/usr/bin/env bash
# bench-system, guest side: runs inside scripts/qemu-lab.sh's guest (Debian's
# stock kernel: fentry and kprobes) and measures the unrelated workloads the
# same way the host side does (tests/bench/system-lib.sh), forkscope's
# conditions once with --backend fentry and once with --backend kprobe.
# Started by scripts/bench-system.sh --guest:
#
#   system-guest.sh UNRELATED FORKSCOPE COMPILE_DIR ROUNDS BATCHES SCALE CONDITIONS
#
# Writes /out/raw.tsv, /out/notes.tsv and /out/logs/.  Guest code runs ~10x
# slower than the host (TCG): compare ratios, never absolute times.
set -uo pipefail
[[ ${QEMU_LAB:-} == 1 ]] || { echo "system-guest.sh: run me through scripts/qemu-lab.sh (scripts/bench-system.sh --guest does)" >&2; exit 2; }
(($# == 7)) || { echo "usage: system-guest.sh UNRELATED FORKSCOPE COMPILE_DIR ROUNDS BATCHES SCALE CONDITIONS" >&2; exit 2; }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/bench/peers-lib.sh
source "$HERE/peers-lib.sh"
# shellcheck source=tests/bench/system-lib.sh
source "$HERE/system-lib.sh"

UNRELATED=$1 FORKSCOPE=$2 COMPILE_DIR=$3 ROUNDS=$4 BATCHES=$5 SCALE=$6
ENV_NAME="guest $(uname -r)"
RAW=/out/raw.tsv NOTES=/out/notes.tsv LOGS=/out/logs
WORK=$(mktemp -d /tmp/bench-system-guest.XXXXXX)   # the guest's RAM, not the 9p share
CLONE_BT="$HERE/clone-syscalls.bt"
READY_TIMEOUT=240
# The guest is ours alone: wait for a stopped tracer's programs to go, then 2 s more.
SETTLE_BPF=1 SETTLE=2
rm -rf "$LOGS"; mkdir -p "$LOGS"; : >"$RAW"; : >"$NOTES"
trap system_cleanup EXIT
ulimit -l unlimited 2>/dev/null || true
echo "guest: kernel $(uname -r), $(nproc) CPUs"

conds=()
IFS=, read -ra base <<<"$7"
for c in "${base[@]}"; do
  if [[ $c == bpftrace ]]; then conds+=(bpftrace); else conds+=("$c@fentry" "$c@kprobe"); fi
done
BPF_BASE=$(bpf_prog_count)
system_rounds "${conds[@]}" || { echo "system-guest: a workload failed; see /out/logs" >&2; exit 1; }
rm -rf "$WORK"
echo "guest: done"
