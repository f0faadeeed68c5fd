#!/usr/bin/env bash
# Kernel matrix: the same forkscope sweep on several Debian kernels (each booted
# under QEMU by scripts/qemu-lab.sh) and optionally on this host, merged into one
# results file with a report and per-kernel diffs.
#
#   scripts/kernel-matrix.sh --kernel K [--kernel K]... [--host] [--icount]
#                            [--forkscope BIN] [--timeout S] --out DIR -- RUN-ARGS...
#
# --kernel K   a kernel for qemu-lab.sh --kernel (6.1, 6.12, 6.12-rt, a package
#              name); repeat it, in the order wanted: the first is the baseline
# --host       also run on this host (its own kernel and backend)
# --icount     the guests count instructions (qemu-lab.sh --icount): timings
#              that do not follow the host's load, one vCPU
# --forkscope  the binary to run (default: build/forkscope of this checkout);
#              the guests run it from the host's / over 9p
# --timeout S  per guest (default 1800)
#
# Each kernel runs `forkscope run RUN-ARGS --overhead --no-color --out ...`;
# RUN-ARGS must not hold --out.  DIR receives, per kernel K (and "host"):
# K/run/results.json (and the rest of run's output) and K/console.log (the
# guest's console); then results.json (`forkscope merge`: every cell labelled
# with its host, "hostname kernel"), report.html (`forkscope report --format
# html`) and diff-K.txt for every K after the first (`forkscope diff FIRST K`,
# with its noise test), plus wall-times.txt.
#
# Exit status: 0 when every kernel ran and the merge, report and diffs were
# written; 1 when some kernel's run failed (the others are still merged);
# 2 bad usage; 3 what qemu-lab.sh exits 3 for (no QEMU, no kernel).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KERNELS=()
HOST=0
ICOUNT=()
FORKSCOPE="$ROOT/build/forkscope"
TIMEOUT=1800
OUT=""

say() { echo "kernel-matrix: $*" >&2; }
die() { local code=$1; shift; say "$*"; exit "$code"; }
usage() {
  echo "usage: scripts/kernel-matrix.sh --kernel K [--kernel K]... [--host] [--icount] [--forkscope BIN]" >&2
  echo "                                [--timeout S] --out DIR -- RUN-ARGS..." >&2
  echo "  the same forkscope run on several kernels, merged; see the top of this script" >&2
  exit 2
}

while (($#)); do
  case "$1" in
    --kernel) [[ $# -ge 2 && -n $2 ]] || die 2 "--kernel needs a kernel (6.1, 6.12, linux-image-...)"; KERNELS+=("$2"); shift 2 ;;
    --host) HOST=1; shift ;;
    --icount) ICOUNT=(--icount); shift ;;
    --forkscope) [[ $# -ge 2 && -n $2 ]] || die 2 "--forkscope needs a binary"; FORKSCOPE=$2; shift 2 ;;
    --timeout) [[ $# -ge 2 && $2 =~ ^[0-9]+$ && $2 -gt 0 ]] || die 2 "--timeout needs a number of seconds"; TIMEOUT=$2; shift 2 ;;
    --out) [[ $# -ge 2 && -n $2 ]] || die 2 "--out needs a directory"; OUT=$2; shift 2 ;;
    -h|--help) usage ;;
    --) shift; break ;;
    *) say "unknown option '$1' (forkscope run's arguments go after --)"; usage ;;
  esac
done
RUN_ARGS=("$@")
((${#KERNELS[@]})) || { say "no --kernel given"; usage; }
[[ -n $OUT ]] || { say "no --out given"; usage; }
for a in "${RUN_ARGS[@]}"; do
  [[ $a == --out || $a == --out=* || $a == -o ]] && die 2 "RUN-ARGS must not hold --out: each kernel's run goes to DIR/KERNEL/run"
done
# --overhead: every cell then has its untraced launch time beside the traced phases.
OVERHEAD=(--overhead)
for a in "${RUN_ARGS[@]}"; do [[ $a == --overhead ]] && OVERHEAD=(); done
[[ -x $FORKSCOPE ]] || die 2 "no forkscope binary at $FORKSCOPE (build it, or give --forkscope)"
FORKSCOPE=$(cd "$(dirname "$FORKSCOPE")" && pwd)/$(basename "$FORKSCOPE")
mkdir -p "$OUT" || die 2 "cannot create --out $OUT"
OUT=$(cd "$OUT" && pwd)

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

t0=$(now)
: >"$OUT/wall-times.txt"
LABELS=()
failed=()
for k in "${KERNELS[@]}"; do
  # A directory name from the kernel spec (package names hold '+').
  label=${k//[^A-Za-z0-9._-]/_}
  [[ " ${LABELS[*]} " == *" $label "* ]] && die 2 "--kernel $k given twice"
  rm -rf "${OUT:?}/$label/run"
  say "kernel $k: forkscope run ${RUN_ARGS[*]} ${OVERHEAD[*]}"
  t=$(now)
  rc=0
  "$ROOT/scripts/qemu-lab.sh" --kernel "$k" "${ICOUNT[@]}" --timeout "$TIMEOUT" --out "$OUT/$label" -- \
    "$FORKSCOPE" run "${RUN_ARGS[@]}" "${OVERHEAD[@]}" --no-color --out /out/run || rc=$?
  printf '%s %s s (exit %d)\n' "$label" "$(secs "$t" "$(now)")" "$rc" >>"$OUT/wall-times.txt"
  ((rc == 3)) && die 3 "kernel $k: the lab cannot run (qemu-lab.sh exited 3)"
  if ((rc == 0)) && [[ -f $OUT/$label/run/results.json ]]; then
    LABELS+=("$label")
  else
    failed+=("$k (exit $rc)")
    say "kernel $k: the run failed (exit $rc); console: $OUT/$label/console.log"
  fi
done
if ((HOST)); then
  say "host $(uname -r): forkscope run ${RUN_ARGS[*]} ${OVERHEAD[*]}"
  rm -rf "${OUT:?}/host/run"
  mkdir -p "$OUT/host"
  t=$(now)
  rc=0
  "$FORKSCOPE" run "${RUN_ARGS[@]}" "${OVERHEAD[@]}" --no-color --out "$OUT/host/run" || rc=$?
  printf 'host %s s (exit %d)\n' "$(secs "$t" "$(now)")" "$rc" >>"$OUT/wall-times.txt"
  if ((rc == 0)) && [[ -f $OUT/host/run/results.json ]]; then LABELS+=(host); else failed+=("host (exit $rc)"); fi
fi

((${#LABELS[@]})) || die 1 "no kernel's run succeeded: ${failed[*]}"
files=()
for label in "${LABELS[@]}"; do files+=("$OUT/$label/run/results.json"); done
if ((${#files[@]} >= 2)); then
  "$FORKSCOPE" merge "${files[@]}" -o "$OUT/results.json"
else
  cp "${files[0]}" "$OUT/results.json"
fi
"$FORKSCOPE" report "$OUT/results.json" --format html -o "$OUT/report.html"
for label in "${LABELS[@]:1}"; do
  "$FORKSCOPE" diff "${files[0]}" "$OUT/$label/run/results.json" --no-color >"$OUT/diff-$label.txt"
done
printf 'all %s s\n' "$(secs "$t0" "$(now)")" >>"$OUT/wall-times.txt"
say "wrote $OUT/results.json, $OUT/report.html$( ((${#LABELS[@]} > 1)) && printf ', diff-*.txt against %s' "${LABELS[0]}"); wall times:"
sed 's/^/  /' "$OUT/wall-times.txt" >&2
if ((${#failed[@]})); then
  say "failed: ${failed[*]}"
  exit 1
fi
