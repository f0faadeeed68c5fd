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
#    untraced.  forkscope's runner keeps its VMA count fixed (~70): this sweep
#    varies heap size only.
# 2. VMA sweep (skip with --no-vmas): forkscope cannot vary the VMA count, so
#    tests/bench/forkloop.c (cc -O2, temp dir) forks with 0 .. 16000 extra
#    one-page VMAs and no heap, untraced, 3 interleaved passes; least-squares
#    ns per VMA (untraced only: no forkscope run can trace this workload).
#
# Needs root and build/forkscope (FORKSCOPE=... to use another).  About 2-4
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

# --- the VMA sweep (untraced, forkloop) -----------------------------------------
: >"$OUT/vmas.txt"
if ((VMAS)); then
  WORK=$(mktemp -d /tmp/forkscope-bench-scale-work.XXXXXX)
  trap 'rm -rf "$WORK"' EXIT
  cc -O2 -o "$WORK/forkloop" "$ROOT/tests/bench/forkloop.c"
  maxmap=$(cat /proc/sys/vm/max_map_count)
  if ((QUICK)); then counts=(0 2000 8000); forks=40; else counts=(0 1000 4000 8000 16000); forks=100; fi
  echo "bench-scale: VMA sweep ${counts[*]} extra one-page VMAs (forkloop, untraced, 3 passes)" >&2
  for pass in 1 2 3; do
    # Alternate the order per pass, so drift hits every size alike.
    order=("${counts[@]}")
    if ((pass == 2)); then order=(); for ((i = ${#counts[@]} - 1; i >= 0; i--)); do order+=("${counts[$i]}"); done; fi
    for n in "${order[@]}"; do
      ((n + 100 < maxmap)) || continue
      FORKLOOP_OUT="$WORK/fl.out" "$WORK/forkloop" 0 "$forks" 5 "$n" || continue
      echo "$n $(awk '$1 == "vmas" {v = $2} $1 == "median_ns" {m = $2} $1 == "vm_pte_kib" {p = $2} END {print v, m, p}' "$WORK/fl.out")" >>"$OUT/vmas.txt"
    done
  done
fi

# --- the table --------------------------------------------------------------
{
  echo "forkscope bench-scale, $(date -u '+%Y-%m-%d %H:%M UTC'), took $((($(date +%s) - T_START) / 60)) min"
  echo "machine: $(nproc) vCPU Firecracker guest, kernel $(uname -r), MemAvailable $((avail_kib >> 10)) MiB, THP $(sed 's/.*\[\(.*\)\].*/\1/' /sys/kernel/mm/transparent_hugepage/enabled) (forkscope: no THP for the heap); load average at start ${LOAD_START}, at the end $(cut -d' ' -f1-3 /proc/loadavg) (shared machine, other builds running: noisy)"
  python3 - "$OUT/forkscope/results.json" "$OUT/vmas.txt" "${skipped[*]:-}" <<'PY'
import json, sys, statistics as st

run = json.load(open(sys.argv[1]))
vma_rows = [l.split() for l in open(sys.argv[2]) if l.strip()]
skipped = sys.argv[3]

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
print(f"forkscope {run.get('tool_version', '?')}, backend {run['backend']}, {len(cells)} fork cells, --overhead (untraced blocks interleaved)")
print()
hdr = ("heap", "VmPTE", "VMAs", "launches", "untraced p50", "traced p50", "ratio [95% CI]", "dup_mmap mean (traced)")
rows = []
for c in cells:
    dm = next((p for p in c["phases"] if p["name"] == "dup_mmap"), None)
    o = c["overhead"]
    rows.append((size(c["heap_bytes"]), f"{c['backing']['vm_pte_bytes'] / 1024:.0f} KiB", str(c["backing"]["vmas"]),
                 f"{c['launches']}{' (time-capped)' if c.get('time_capped') else ''}",
                 t(o["untraced"]["p50"]), t(c["user"]["call_to_return"]["p50"]),
                 f"{o['ratio']:.2f} [{o['ratio_low']:.2f}, {o['ratio_high']:.2f}]", t(dm["mean_ns"]) if dm else "-"))
w = [max(len(r[i]) for r in rows + [hdr]) for i in range(len(hdr))]
for r in [hdr] + rows:
    print("  ".join(v.ljust(w[i]) for i, v in enumerate(r)).rstrip())
if skipped:
    print(f"(not run: {skipped}, above a quarter of MemAvailable)")
huge = [c for c in cells if c["backing"].get("anon_huge_bytes")]
if huge:
    print("WARNING: some heaps were backed by huge pages: " + ", ".join(size(c["heap_bytes"]) for c in huge))

print()
L = 46
print(f"{'least-squares slopes of fork p50 against':<{L}}{'untraced':<28}{'traced':<28}traced - untraced")
mib = [c["heap_bytes"] / (1 << 20) for c in cells]
pte = [c["backing"]["vm_pte_bytes"] / 1024 for c in cells]
un = [c["overhead"]["untraced"]["p50"] for c in cells]
tr = [c["user"]["call_to_return"]["p50"] for c in cells]
def line(label, xs, unit):
    fu, ft = fit(xs, un), fit(xs, tr)
    if not fu or not ft:
        print(f"{'  ' + label:<{L}}n/a (the sweep does not vary it)")
        return
    a = f"{fu[0]:.0f} ns/{unit} (r2 {fu[2]:.3f})"
    b = f"{ft[0]:.0f} ns/{unit} (r2 {ft[2]:.3f})"
    d = f"{ft[0] - fu[0]:+.0f} ns/{unit} ({(ft[0] / fu[0] - 1) * 100 if fu[0] else 0:+.0f}%)"
    print(f"{'  ' + label:<{L}}{a:<28}{b:<28}{d}")
line("heap size", mib, "MiB")
line("page-table size (VmPTE)", pte, "KiB")
vm = [c["backing"]["vmas"] for c in cells]
if len(set(vm)) > 1 and max(vm) - min(vm) > 10:
    line("VMA count", vm, "VMA")
else:
    print(f"{'  VMA count (forkscope sweep)':<{L}}not varied: forkscope's runner keeps {min(vm)}-{max(vm)} VMAs; only heap size varies")

if vma_rows:
    xs = [float(r[1]) for r in vma_rows]  # measured VMA count (/proc/self/maps lines)
    ys = [float(r[2]) for r in vma_rows]
    f = fit(xs, ys)
    by = {}
    for r in vma_rows: by.setdefault(int(r[0]), []).append(float(r[2]))
    pts = ", ".join(f"{k}: {t(st.median(v))}" for k, v in sorted(by.items()))
    if f:
        a = f"{f[0]:.0f} ns/VMA (r2 {f[2]:.3f})"
        print(f"{'  VMA count (forkloop, heap 0, 1-page VMAs)':<{L}}{a:<28}traced: n/a (forkscope traces only its own runner, which cannot vary VMAs)")
    print(f"    forkloop fork p50 by extra VMAs: {pts}")
print()
print("untraced p50 = cells[].overhead.untraced.p50, traced p50 = cells[].user.call_to_return.p50 (call to return in the parent);")
print("ratio = forkscope's traced/untraced p50 with its bootstrap interval; dup_mmap = mean kernel time per launch as forkscope measured it.")
PY
  echo "results: $OUT/forkscope/results.json${VMAS:+, VMA sweep: $OUT/vmas.txt}"
} | tee "$OUT/table.txt"
