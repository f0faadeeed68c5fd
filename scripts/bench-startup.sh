#!/usr/bin/env bash
# Start-up and footprint (issue 5, point 6).  A benchmark that prints figures,
# not a test: the targets are checked and printed as PASS/FAIL, exit status 0.
#
#   scripts/bench-startup.sh [--quick] [--runs N] [--out DIR]
#
# Start-up: `forkscope run --iterations 1 --heap 0 --modes vfork`, --runs times
# (default 7, --quick 3) for the default backend (auto) and for --backend
# tracepoint.  Measured from outside, nothing added to the product:
#   - launch -> first traced launch: CLOCK_MONOTONIC at the launch (taken by
#     tests/bench/forkloop.c --now) to forkscope's first sched_process_fork, read
#     from a private tracefs instance with the mono trace clock (its BPF programs
#     are attached before it launches anything: the first launch is traced);
#   - launch -> its first line on stderr ("... backend attached"; printed after
#     the start-up calibration), and launch -> exit.
# Footprint:
#   - peak RSS (VmHWM, /usr/bin/time %M) of the same 1-launch runs, and of a
#     full-size run with no heap (every mode, --iterations 10000, 1 s cells),
#     so the runner's heap is excluded;
#   - RSS when launching (results.json cells[].backing.vm_rss_bytes): what every
#     fork copies page tables for;
#   - BPF map memory: results.json bpf_map_bytes, cross-checked against the
#     memlock of the map fds the running process holds (/proc/PID/fdinfo).
# Targets (issue 5): start-up < 1 s, RSS < 64 MB.
#
# Needs root and build/forkscope (FORKSCOPE=... for another).  Under a minute.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
QUICK=0 RUNS="" OUT=""
usage() { echo "usage: scripts/bench-startup.sh [--quick] [--runs N] [--out DIR]" >&2; exit 2; }
while (($#)); do
  case "$1" in
    --quick) QUICK=1; shift ;;
    --runs) [[ $# -ge 2 && $2 =~ ^[1-9][0-9]*$ ]] || usage; RUNS=$2; shift 2 ;;
    --out) [[ $# -ge 2 ]] || usage; OUT=$2; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ {print; next} NR > 1 {exit}' "$0"; exit 0 ;;
    *) usage ;;
  esac
done
[[ $(id -u) -eq 0 ]] || { echo "bench-startup: needs root (forkscope loads BPF programs; tracefs)" >&2; exit 3; }
FORKSCOPE=${FORKSCOPE:-$ROOT/build/forkscope}
[[ -x $FORKSCOPE ]] || { echo "bench-startup: no $FORKSCOPE; build it first: cmake --build $ROOT/build -j2" >&2; exit 3; }
[[ -x /usr/bin/time ]] || { echo "bench-startup: needs /usr/bin/time (Debian package time)" >&2; exit 3; }
[[ -n $RUNS ]] || { if ((QUICK)); then RUNS=3; else RUNS=7; fi; }
T_START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
[[ -n $OUT ]] || OUT=$(mktemp -d /tmp/forkscope-bench-startup.XXXXXX)
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d /tmp/forkscope-bench-startup-work.XXXXXX)
INST=""
cleanup() {
  if [[ -n $INST ]]; then echo 0 >"$INST/tracing_on" 2>/dev/null; echo 0 >"$INST/events/sched/sched_process_fork/enable" 2>/dev/null; rmdir "$INST" 2>/dev/null; fi
  rm -rf "$WORK"
  true
}
trap cleanup EXIT
cc -O2 -o "$WORK/forkloop" "$ROOT/tests/bench/forkloop.c"
now_ns() { "$WORK/forkloop" --now; }
# A sleep without a fork: read with a timeout on a FIFO nobody writes.
mkfifo "$WORK/never"; exec 9<>"$WORK/never"
nap() { read -rt "$1" -u 9 || true; }

# The tracefs instance: forks by forkscope, and by /usr/bin/time (which tells
# forkscope's pid), with CLOCK_MONOTONIC timestamps.
TR=/sys/kernel/tracing
[[ -d $TR/instances ]] || mount -t tracefs nodev "$TR" 2>/dev/null || true
if [[ -d $TR/instances ]] && mkdir "$TR/instances/forkscope-bench-startup-$$" 2>/dev/null; then
  INST="$TR/instances/forkscope-bench-startup-$$"
  echo mono >"$INST/trace_clock"
  echo 'parent_comm == "forkscope" || parent_comm == "time"' >"$INST/events/sched/sched_process_fork/filter"
  echo 1 >"$INST/events/sched/sched_process_fork/enable"
  # Where start-up goes: forkscope's exec and its bpf(2) calls (NR 321 on x86-64).
  echo 'filename ~ "*forkscope"' >"$INST/events/sched/sched_process_exec/filter" || true
  echo 1 >"$INST/events/sched/sched_process_exec/enable" || true
  for e in sys_enter sys_exit; do
    if echo 'comm == "forkscope" && id == 321' >"$INST/events/raw_syscalls/$e/filter"; then
      echo 1 >"$INST/events/raw_syscalls/$e/enable" || true
    fi
  done
  echo 16384 >"$INST/buffer_size_kb" || true
  echo 1 >"$INST/tracing_on"
else
  echo "bench-startup: no tracefs instance: launch -> first traced launch will be n/a" >&2
fi
# The first "sched_process_fork: comm=COMM pid=PID" line: "timestamp_ns child_pid".
first_fork() {  # COMM PID
  [[ -n $INST ]] || return 0
  awk -v m="sched_process_fork: comm=$1 pid=$2 " 'index($0, m) {
      for (i = 1; i <= NF; i++) {
        if ($i ~ /^[0-9]+\.[0-9]+:$/) {sub(":", "", $i); split($i, p, "."); ts = sprintf("%d%06d000", p[1], p[2])}
        if ($i ~ /^child_pid=/) {sub("child_pid=", "", $i); child = $i}
      }
      print ts, child; exit
    }' "$INST/trace" 2>/dev/null || true
}

# Where PID's start-up went, from the instance (ns, relative to T0):
# "exec first_bpf progload_sum progload_count progload_max first_fork".
startup_split() {  # PID T0
  [[ -n $INST ]] || { echo "- - - - - -"; return 0; }
  awk -v pid="$1" -v t0="$2" '
    function ts(   i, p) {for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+\.[0-9]+:$/) {sub(":", "", $i); split($i, p, "."); return p[1] * 1e9 + p[2] * 1e3 - t0}}
    index($0, "sched_process_exec:") && index($0, " pid=" pid " ") && exec == "" {exec = ts()}
    $1 == "forkscope-" pid && index($0, "sys_enter: NR 321 (") {
      t = ts(); if (fb == "") fb = t
      a = $0; sub(/.*NR 321 \(/, "", a); split(a, f, ","); cmd = f[1]; start = t
    }
    $1 == "forkscope-" pid && index($0, "sys_exit: NR 321 ") && cmd == "5" {
      d = ts() - start; sum += d; n++; if (d > mx) mx = d; cmd = ""
    }
    index($0, "sched_process_fork: comm=forkscope pid=" pid " ") && ff == "" {ff = ts()}
    END {printf "%s %s %.0f %d %.0f %s\n", exec == "" ? "-" : sprintf("%.0f", exec), fb == "" ? "-" : sprintf("%.0f", fb), sum, n, mx, ff == "" ? "-" : sprintf("%.0f", ff)}
  ' "$INST/trace" 2>/dev/null || echo "- - - - - -"
}

# One measured 1-launch run.  Prints "launch->first-traced-launch launch->first-stderr-line
# launch->exit peak-RSS-KiB rss-at-launch-bytes bpf-map-bytes" (ns; "-" when unknown).
one_run() {  # BACKEND OUTDIR
  local backend=$1 out=$2 t0 pid t_line="" t_end rc=0 fs first
  rm -rf "$out"; mkdir -p "$out"
  t0=$(now_ns)
  /usr/bin/time -f '%M' -o "$out/rss" "$FORKSCOPE" run --backend "$backend" --iterations 1 --heap 0 --modes vfork \
    --out "$out/res" --no-color >"$out/stdout" 2>"$out/stderr" &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    if [[ -z $t_line && -s $out/stderr ]]; then t_line=$(now_ns); fi
    nap 0.005
  done
  wait "$pid" || rc=$?
  t_end=$(now_ns)
  if ((rc != 0)) || [[ ! -f $out/res/results.json ]]; then
    echo "bench-startup: forkscope run --backend $backend failed: $(grep -av '^\s*$' "$out/stderr" | tail -n 1)" >&2
    return 1
  fi
  [[ -n $t_line ]] || t_line=$t_end
  fs=$(first_fork time "$pid" | awk '{print $2}')
  first="" split="- - - - - -"
  if [[ -n $fs ]]; then
    first=$(first_fork forkscope "$fs" | awk '{print $1}')
    split=$(startup_split "$fs" "$t0")
  fi
  echo "$([[ -n $first ]] && echo $((first - t0)) || echo -) $((t_line - t0)) $((t_end - t0)) $(tail -n 1 "$out/rss")" \
    "$(jq -r '.cells[0].backing.vm_rss_bytes' "$out/res/results.json") $(jq -r '.bpf_map_bytes' "$out/res/results.json") $split"
  # A fresh buffer for the next run.
  [[ -z $INST ]] || : >"$INST/trace"
}

: >"$OUT/runs.txt"
for backend in auto tracepoint; do
  echo "bench-startup: $RUNS runs of forkscope run --backend $backend --iterations 1 --heap 0 --modes vfork" >&2
  for ((i = 1; i <= RUNS; i++)); do
    if r=$(one_run "$backend" "$WORK/run"); then echo "$backend $r" >>"$OUT/runs.txt"; fi
    cp "$WORK/run/stderr" "$OUT/stderr-$backend-$i.txt" 2>/dev/null || true
  done
done

# A full-size run with no heap: every mode, 10000 launches per cell (1 s cells),
# peak RSS; and, while it runs, the memlock of the BPF map fds it holds.
echo "bench-startup: a full-size run with no heap (every mode, --iterations 10000, 1 s cells)" >&2
rm -rf "$WORK/full"; mkdir -p "$WORK/full"
/usr/bin/time -f '%M' -o "$WORK/full/rss" "$FORKSCOPE" run --heap 0 --iterations 10000 --cell-seconds 1 \
  --out "$WORK/full/res" --no-color >"$WORK/full/stdout" 2>"$WORK/full/stderr" &
tpid=$!
fdmaps="" fdprogs="" fdmaxmap=""
while kill -0 "$tpid" 2>/dev/null; do
  fpid=$(first_fork time "$tpid" | awk '{print $2}')
  if [[ -n $fpid && -z $fdmaps ]] && grep -q 'attached' "$WORK/full/stderr" 2>/dev/null; then
    # map fds: "map_id:" in fdinfo; prog fds: "prog_id:".  Each id once.
    # (grep -H: one "file:key: value" per line; mawk has no ENDFILE.)
    read -r fdmaps fdprogs fdmaxmap < <(grep -H -E '^(map_id|prog_id|memlock):' /proc/"$fpid"/fdinfo/* 2>/dev/null | awk -F: '
        {v = $3 + 0; if ($2 == "memlock") mem[$1] = v; else if ($2 == "map_id") map[$1] = v; else prog[$1] = v}
        END {
          for (f in map) if (!(map[f] in seenm)) {seenm[map[f]] = 1; nm++; ms += mem[f]; if (mem[f] > mx) {mx = mem[f]; mxid = map[f]}}
          for (f in prog) if (!(prog[f] in seenp)) {seenp[prog[f]] = 1; np++; ps += mem[f]}
          printf "%d:%d %d:%d %s:%d\n", ms, nm, ps, np, mxid, mx
        }' || true)
  fi
  nap 0.05
done
wait "$tpid" || echo "bench-startup: the full-size run failed: $(tail -n 1 "$WORK/full/stderr")" >&2
full_rss=$(tail -n 1 "$WORK/full/rss" 2>/dev/null || echo -)
full_rss_launch=$(jq -r '[.cells[].backing.vm_rss_bytes] | max' "$WORK/full/res/results.json" 2>/dev/null || echo -)
full_cells=$(jq -r '.cells | length' "$WORK/full/res/results.json" 2>/dev/null || echo -)
biggest=""
if [[ -n $fdmaxmap && ${fdmaxmap%%:*} != "" ]]; then
  biggest=$(bpftool -j map show id "${fdmaxmap%%:*}" 2>/dev/null | jq -r '"\(.name) (\(.type), \(.max_entries) entries)"' 2>/dev/null || true)
fi

# --- the table --------------------------------------------------------------------
{
  echo "forkscope bench-startup, $(date -u '+%Y-%m-%d %H:%M UTC'), took $(($(date +%s) - T_START))s"
  echo "machine: $(nproc) vCPU Firecracker guest, kernel $(uname -r); load average at start ${LOAD_START}, at the end $(cut -d' ' -f1-3 /proc/loadavg) (shared machine, other builds running: noisy)"
  echo "runs: forkscope run --iterations 1 --heap 0 --modes vfork, $RUNS per backend; figures: median (min-max)"
  echo
  python3 - "$OUT/runs.txt" "$full_rss" "$full_rss_launch" "$full_cells" "${fdmaps:-}" "${fdprogs:-}" "${fdmaxmap:-}" "$biggest" <<'PY'
import sys, statistics as st
runs = {}
for line in open(sys.argv[1]):
    f = line.split()
    runs.setdefault(f[0], []).append(f[1:])
full_rss, full_rss_launch, full_cells, fdmaps, fdprogs, fdmax, biggest = sys.argv[2:9]

def stat(vals, fmt):
    vals = [float(v) for v in vals if v not in ("-", "", "null")]
    if not vals: return "n/a", None
    m = st.median(vals)
    return f"{fmt(m)} ({fmt(min(vals))}-{fmt(max(vals))})", m
s = lambda ns: f"{ns / 1e9:.2f} s"
mb = lambda kib: f"{kib / 1024:.1f} MB"
mib_b = lambda b: f"{b / 1048576:.1f} MiB"

rows = [("figure", "backend", "value", "target", "verdict")]
verdict = lambda ok: "PASS" if ok else "FAIL"
for backend, rs in runs.items():
    v, m = stat([r[0] for r in rs], s)
    rows.append(("launch -> first traced launch", backend, v, "< 1 s", verdict(m < 1e9) if m is not None else "n/a"))
    v, _ = stat([r[1] for r in rs], s)
    rows.append(("launch -> first stderr line (\"backend attached\")", backend, v, "", ""))
    v, _ = stat([r[2] for r in rs], s)
    rows.append(("launch -> exit (1 launch, results written)", backend, v, "", ""))
    v, m = stat([r[3] for r in rs], mb)
    rows.append(("peak RSS (VmHWM), heap 0", backend, v, "< 64 MB", verdict(m < 64 * 1024) if m is not None else "n/a"))
    v, _ = stat([r[4] for r in rs], lambda b: f"{b / 1e6:.1f} MB")
    rows.append(("RSS when launching (backing.vm_rss_bytes)", backend, v, "", ""))
    v, _ = stat([r[5] for r in rs], mib_b)
    rows.append(("BPF maps (results.json bpf_map_bytes)", backend, v, "stated", ""))
    # Where the start-up went (tracefs): launch -> exec -> first bpf() -> first launch, and the verifier's share.
    sp = [r[6:12] for r in rs if len(r) >= 12 and "-" not in r[6:12]]
    if sp:
        v, _ = stat([x[1] for x in sp], s)
        rows.append(("  of which launch -> first bpf() call", backend, v, "", ""))
        v, _ = stat([x[2] for x in sp], s)
        n = int(st.median([float(x[3]) for x in sp]))
        rows.append((f"  of which in bpf(BPF_PROG_LOAD), {n} loads", backend, v, "", ""))
        v, _ = stat([x[4] for x in sp], s)
        rows.append(("    the slowest single load", backend, v, "", ""))
        v, _ = stat([float(x[5]) - float(x[1]) - float(x[2]) for x in sp], s)
        rows.append(("  of which other work from first bpf() to first launch", backend, v, "", ""))
if full_rss not in ("", "-"):
    k = float(full_rss)
    rows.append((f"peak RSS, full-size run ({full_cells} cells x 10000, heap 0)", "auto", mb(k), "< 64 MB", verdict(k < 64 * 1024)))
if full_rss_launch not in ("", "-", "null"):
    rows.append(("RSS when launching, full-size run (max)", "auto", f"{float(full_rss_launch) / 1e6:.1f} MB", "", ""))
if fdmaps:
    b, n = fdmaps.split(":")
    note = f"{mib_b(float(b))} in {n} maps"
    if biggest:
        note += f"; largest {biggest}: {mib_b(float(fdmax.split(':')[1]))}"
    rows.append(("BPF maps held (memlock, /proc/PID/fdinfo)", "auto", note, "", ""))
if fdprogs:
    b, n = fdprogs.split(":")
    rows.append(("BPF programs held (memlock, /proc/PID/fdinfo)", "auto", f"{float(b) / 1024:.0f} KiB in {n} programs", "", ""))
w = [max(len(r[i]) for r in rows) for i in range(5)]
for r in rows:
    print("  ".join(v.ljust(w[i]) for i, v in enumerate(r)).rstrip())
PY
  echo
  echo "launch -> first traced launch: from the launch (CLOCK_MONOTONIC) to forkscope's first fork (tracefs sched_process_fork,"
  echo "mono clock); its programs are attached before its first launch.  PASS/FAIL are informational (exit status 0)."
  echo "raw runs: $OUT/runs.txt"
} | tee "$OUT/table.txt"
