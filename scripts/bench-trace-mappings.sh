#!/usr/bin/env bash
# What per-mapping attribution costs `forkscope trace`: the same traced workload
# (tests/runtime/map_fork.c, which times its own batches of forks) under
# `forkscope trace` with the feature on and with --no-mappings, the two interleaved
# round by round (the order alternating), on three layouts:
#   small: the bare program (about 30 VMAs), 200 forks;
#   heap:  64 MiB of written anonymous memory, 100 forks;
#   vmas:  1000 one-page VMAs more (2000 with the guard pages), 50 forks.
# Prints per layout the median fork time of each variant and the ratio on/off:
# the median of the per-round ratios, with the smallest and largest in brackets.
# Usage (root): scripts/bench-trace-mappings.sh [--rounds N]   (default 7)
# FORKSCOPE and MAP_FORK name the binaries (default build/forkscope, build/tests/map_fork).
# Exit 2: bad usage; 3: not root or not built.
set -euo pipefail

ROUNDS=7
while (($#)); do
  case $1 in
    --rounds) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || { echo "bench-trace-mappings: --rounds takes a count" >&2; exit 2; }
      ROUNDS=$2; shift 2 ;;
    *) echo "bench-trace-mappings: unknown option $1; usage: $0 [--rounds N]" >&2; exit 2 ;;
  esac
done
FORKSCOPE=${FORKSCOPE:-build/forkscope}
MAP_FORK=${MAP_FORK:-build/tests/map_fork}
((EUID == 0)) || { echo "bench-trace-mappings: needs root (forkscope trace loads BPF programs)" >&2; exit 3; }
for bin in "$FORKSCOPE" "$MAP_FORK"; do
  [[ -x $bin ]] || { echo "bench-trace-mappings: $bin is not an executable; build first or set FORKSCOPE/MAP_FORK" >&2; exit 3; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# layout name, map_fork arguments, the batch whose time counts
layouts=("small|0 0 - 200|0" "heap|64 0 - 100|0" "vmas|0 0 - 50 vmas:1000|1")

# One traced run; prints the ns per fork of the batch that counts.
one() {
  local variant=$1 args=$2 batch=$3 extra=()
  [[ $variant == off ]] && extra=(--no-mappings)
  # shellcheck disable=SC2086  # args is a word list on purpose
  "$FORKSCOPE" trace -q --no-color "${extra[@]}" --out "$work/out" -- "$MAP_FORK" bench $args >"$work/stdout" 2>"$work/stderr" ||
    { echo "bench-trace-mappings: forkscope trace failed:" >&2; cat "$work/stderr" >&2; exit 1; }
  awk -v b="batch $batch:" '$1 " " $2 == b { printf "%.0f\n", $6 / $3 }' "$work/stdout"
}

echo "bench-trace-mappings: $ROUNDS interleaved rounds per layout, $(uname -r), $(nproc) CPUs" >&2
results="$work/results"
: >"$results"
for layout in "${layouts[@]}"; do
  IFS='|' read -r name args batch <<<"$layout"
  for ((r = 0; r < ROUNDS; r++)); do
    if ((r % 2 == 0)); then order=(on off); else order=(off on); fi
    for v in "${order[@]}"; do
      ns=$(one "$v" "$args" "$batch")
      echo "$name $r $v $ns" >>"$results"
    done
  done
done

python3 - "$results" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
by = {}
for name, r, v, ns in rows:
    by.setdefault(name, {}).setdefault(int(r), {})[v] = float(ns)
print(f"{'layout':8} {'on p50':>10} {'off p50':>10} {'ratio on/off':>14} {'[min, max]':>16}")
for name, rounds in by.items():
    on = [x["on"] for x in rounds.values()]
    off = [x["off"] for x in rounds.values()]
    ratios = [x["on"] / x["off"] for x in rounds.values()]
    print(f"{name:8} {statistics.median(on)/1000:9.1f}us {statistics.median(off)/1000:9.1f}us "
          f"{statistics.median(ratios):14.3f} [{min(ratios):.3f}, {max(ratios):.3f}]")
print("per fork: the traced program's own clock around each batch of forks (fork + waitpid of a child that exits at once)")
EOF
