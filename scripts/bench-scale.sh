#!/usr/bin/env bash
# Scale (issue 5, point 5): how fork's launch time grows with the parent's
# memory, traced and untraced.  A benchmark that prints figures, not a test.
#
#   scripts/bench-scale.sh [--quick] [--heaps LIST] [--no-vmas] [--out DIR]
#
# 1. Heap sweep with forkscope itself: `forkscope run --modes fork --overhead`
#    over 0,64M,256M,1G,4G,16G,... up to the largest size not above a quarter of
#    MemAvailable (--quick: up to 1G; --heaps: your list, same cap).  Per cell:
#    VmPTE (backing.vm_pte_bytes), VMA count (backing.vmas), untraced p50
#    (cells[].overhead.untraced.p50), traced p50 (user.call_to_return.p50), the
#    traced/untraced ratio, and the kernel's dup_mmap time per launch.  Then
#    least-squares slopes: ns per MiB of heap and ns per KiB of VmPTE, traced and
#    untraced.  This sweep varies heap size only (the runner has ~40 VMAs).
# 2. VMA sweep (skip with --no-vmas): `forkscope run --modes fork --heap 0
#    --vmas N --overhead` for N = 0 .. 16000 extra one-page VMAs (--quick: up
#    to 8000), one run each; least-squares ns per VMA, traced and untraced.
#
# Needs root and build/forkscope (FORKSCOPE=... to use another).  About 1.5-3
# minutes (--quick: about 1).  Results in --out (default: a new
# /tmp/forkscope-bench-scale.*).  Exit 0 when the table was printed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
QUICK=0 HEAPS="" VMAS=1 OUT=""
usage() { echo "usage: scripts/bench-scale.sh [--quick] [--heaps LIST] [--no-vmas] [--out DIR]" >&2; exit 2; }
while (($#)); do
  case "$1" in
    --quick) QUICK=1; shift ;;
    --heaps) [[ $# -ge 2 && -n $2 ]] || usage; HEAPS=$2; shift 2 ;;
    --no-vmas) VMAS=0; shift ;;
    --out) [[ $# -ge 2 ]] || usage; OUT=$2; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ {print; next} NR > 1 {exit}' "$0"; exit 0 ;;
    *) usage ;;
  esac
done
[[ $(id -u) -eq 0 ]] || { echo "bench-scale: needs root (forkscope loads BPF programs)" >&2; exit 3; }
FORKSCOPE=${FORKSCOPE:-$ROOT/build/forkscope}
[[ -x $FORKSCOPE ]] || { echo "bench-scale: no $FORKSCOPE; build it first: cmake --build $ROOT/build -j2" >&2; exit 3; }
command -v python3 >/dev/null || { echo "bench-scale: needs python3" >&2; exit 3; }
T_START=$(date +%s)
[[ -n $OUT ]] || OUT=$(mktemp -d /tmp/forkscope-bench-scale.XXXXXX)
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# --- the heap list, capped at a quarter of MemAvailable -----------------------
avail_kib=$(awk '/MemAvailable/ {print $2}' /proc/meminfo)
cap=$((avail_kib * 1024 / 4))
to_bytes() {  # 64M -> bytes
  local v=${1^^} n m=1
  n=${v%[KMG]}
  case $v in *K) m=1024 ;; *M) m=$((1 << 20)) ;; *G) m=$((1 << 30)) ;; esac
  [[ $n =~ ^[0-9]+$ ]] || { echo "bench-scale: bad size '$1'" >&2; exit 2; }
  echo $((n * m))
}
if [[ -z $HEAPS ]]; then
  if ((QUICK)); then HEAPS="0,64M,256M,1G"; else HEAPS="0,64M,256M,1G,4G,16G,64G,256G"; fi
fi
heaps=() skipped=()
IFS=, read -ra list <<<"$HEAPS"
for h in "${list[@]}"; do
  if (($(to_bytes "$h") <= cap)); then heaps+=("$h"); else skipped+=("$h"); fi
done
((${#heaps[@]} >= 2)) || { echo "bench-scale: fewer than two heap sizes fit under a quarter of MemAvailable ($((cap >> 20)) MiB)" >&2; exit 2; }
if ((QUICK)); then ITER=300 SEC=4; else ITER=2000 SEC=10; fi

echo "bench-scale: forkscope heap sweep ${heaps[*]}${skipped:+ (skipped, above a quarter of MemAvailable = $((cap >> 20)) MiB: ${skipped[*]})}" >&2
rc=0
"$FORKSCOPE" run --modes fork --heap "$(IFS=,; echo "${heaps[*]}")" --overhead --iterations "$ITER" --cell-seconds "$SEC" \
  --out "$OUT/forkscope" --no-color >"$OUT/forkscope.log" 2>&1 || rc=$?
if ((rc != 0)) || [[ ! -f $OUT/forkscope/results.json ]]; then
  echo "bench-scale: forkscope run exited $rc: $(grep -a 'forkscope:' "$OUT/forkscope.log" | tail -n 1)" >&2
  exit 1
fi

# --- the VMA sweep (forkscope --vmas, traced and untraced) ----------------------
vma_results=()
if ((VMAS)); then
  maxmap=$(cat /proc/sys/vm/max_map_count)
  if ((QUICK)); then counts=(0 2000 8000); VSEC=3; else counts=(0 1000 4000 8000 16000); VSEC=6; fi
  echo "bench-scale: VMA sweep ${counts[*]} extra one-page VMAs (forkscope run --vmas N --overhead, one run each)" >&2
  for n in "${counts[@]}"; do
    if ((n + 1000 > maxmap)); then echo "bench-scale: skipping --vmas $n: above vm.max_map_count ($maxmap) - 1000" >&2; continue; fi
    if "$FORKSCOPE" run --modes fork --heap 0 --vmas "$n" --overhead --iterations "$ITER" --cell-seconds "$VSEC" \
        --out "$OUT/vmas-$n" --no-color >"$OUT/vmas-$n.log" 2>&1; then
      vma_results+=("$OUT/vmas-$n/results.json")
    else
      echo "bench-scale: forkscope run --vmas $n failed: $(grep -a 'forkscope:' "$OUT/vmas-$n.log" | tail -n 1)" >&2
    fi
  done
fi

# --- the table --------------------------------------------------------------
{
  echo "forkscope bench-scale, $(date -u '+%Y-%m-%d %H:%M UTC'), took $((($(date +%s) - T_START) / 60)) min"
  echo "machine: $(nproc) vCPU Firecracker guest, kernel $(uname -r), MemAvailable $((avail_kib >> 10)) MiB, THP $(sed 's/.*\[\(.*\)\].*/\1/' /sys/kernel/mm/transparent_hugepage/enabled) (forkscope: no THP for the heap); load average at start ${LOAD_START}, at the end $(cut -d' ' -f1-3 /proc/loadavg) (shared machine, other builds running: noisy)"
  python3 - "$OUT/forkscope/results.json" "${skipped[*]:-}" "${vma_results[@]}" <<'PY'
import json, sys

run = json.load(open(sys.argv[1]))
skipped = sys.argv[2]
vma_cells = [c for f in sys.argv[3:] for c in json.load(open(f))["cells"] if c.get("overhead")]

def fit(xs, ys):
    """Least squares y = a + b x: (b, a, r2)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    a = my - b * mx
    ss = sum((y - my) ** 2 for y in ys)
    r2 = 1 - sum((y - a - b * x) ** 2 for x, y in zip(xs, ys)) / ss if ss else 1.0
    return b, a, r2

def t(ns):
    ns = float(ns)
    if ns >= 1e6: return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3: return f"{ns / 1e3:.1f} us"
    return f"{ns:.0f} ns"

def size(b):
    for unit, s in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if b >= s and b % s == 0: return f"{b // s}{unit}"
    return str(b)

cells = [c for c in run["cells"] if c["mode"] == "fork" and c.get("overhead")]
print(f"forkscope {run.get('tool_version', '?')}, backend {run['backend']}, {len(cells)} fork cells by heap and "
      f"{len(vma_cells)} by VMA count, --overhead (untraced blocks interleaved)")
print()
def table(cs):
    hdr = ("heap", "VmPTE", "VMAs", "launches", "untraced p50", "traced p50", "ratio [95% CI]", "dup_mmap mean (traced)")
    rows = []
    for c in cs:
        dm = next((p for p in c["phases"] if p["name"] == "dup_mmap"), None)
        o = c["overhead"]
        rows.append((size(c["heap_bytes"]), f"{c['backing']['vm_pte_bytes'] / 1024:.0f} KiB", str(c["backing"]["vmas"]),
                     f"{c['launches']}{' (time-capped)' if c.get('time_capped') else ''}",
                     t(o["untraced"]["p50"]), t(c["user"]["call_to_return"]["p50"]),
                     f"{o['ratio']:.2f} [{o['ratio_low']:.2f}, {o['ratio_high']:.2f}]", t(dm["mean_ns"]) if dm else "-"))
    w = [max(len(r[i]) for r in rows + [hdr]) for i in range(len(hdr))]
    for r in [hdr] + rows:
        print("  ".join(v.ljust(w[i]) for i, v in enumerate(r)).rstrip())
table(cells)
if vma_cells:
    print()
    table(vma_cells)
if skipped:
    print(f"(not run: {skipped}, above a quarter of MemAvailable)")
huge = [c for c in cells if c["backing"].get("anon_huge_bytes")]
if huge:
    print("WARNING: some heaps were backed by huge pages: " + ", ".join(size(c["heap_bytes"]) for c in huge))

print()
L = 46
print(f"{'least-squares slopes of fork p50 against':<{L}}{'untraced':<28}{'traced':<28}traced - untraced")
def line(label, xs, unit, cs=cells):
    un = [c["overhead"]["untraced"]["p50"] for c in cs]
    tr = [c["user"]["call_to_return"]["p50"] for c in cs]
    fu, ft = fit(xs, un), fit(xs, tr)
    if not fu or not ft:
        print(f"{'  ' + label:<{L}}n/a (the sweep does not vary it)")
        return
    a = f"{fu[0]:.0f} ns/{unit} (r2 {fu[2]:.3f})"
    b = f"{ft[0]:.0f} ns/{unit} (r2 {ft[2]:.3f})"
    d = f"{ft[0] - fu[0]:+.0f} ns/{unit} ({(ft[0] / fu[0] - 1) * 100 if fu[0] else 0:+.0f}%)"
    print(f"{'  ' + label:<{L}}{a:<28}{b:<28}{d}")
line("heap size", [c["heap_bytes"] / (1 << 20) for c in cells], "MiB")
line("page-table size (VmPTE)", [c["backing"]["vm_pte_bytes"] / 1024 for c in cells], "KiB")
if len(vma_cells) >= 2:
    line("VMA count (heap 0, 1-page VMAs)", [c["backing"]["vmas"] for c in vma_cells], "VMA", vma_cells)
else:
    print(f"{'  VMA count':<{L}}not measured (--no-vmas, or fewer than two --vmas runs)")
print()
print("untraced p50 = cells[].overhead.untraced.p50, traced p50 = cells[].user.call_to_return.p50 (call to return in the parent);")
print("ratio = forkscope's traced/untraced p50 with its bootstrap interval; dup_mmap = mean kernel time per launch as forkscope measured it.")
PY
  echo "results: $OUT/forkscope/results.json${vma_results:+, VMA sweep: $OUT/vmas-N/results.json}"
} | tee "$OUT/table.txt"
