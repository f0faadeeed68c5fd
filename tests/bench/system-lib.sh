# shellcheck shell=bash
# Unrelated-work benchmark helpers, sourced by scripts/bench-system.sh (host)
# and tests/bench/system-guest.sh (QEMU guest), after tests/bench/peers-lib.sh
# (say, slug, reason_from, oneline, stop_tool, settle).
#
# A "set" is one pass of every unrelated workload: tests/bench/unrelated.c (all
# of its workloads, CPU and wall ns per operation) and a parallel compile of the
# generated sources in $COMPILE_DIR (xargs -P2 cc -O2 -c; CPU seconds =
# user + sys of the compilers, and wall seconds).  Per round and condition one
# untraced set and one traced set run back to back, the order alternating with
# the round (ABBA: even rounds untraced first), so slow drifts of a shared
# machine hit both sides alike.  A traced set starts the condition's tracer in
# the background, waits for the line it prints once attached, runs the set,
# stops the tracer with SIGINT and checks it left nothing behind: its process
# gone, and none of the BPF programs it held (its fds' fdinfo) still loaded.
#
# Figures are appended to $RAW, tab-separated:
#   env  condition  round  u|t  workload  cpu  wall  foreign
# foreign: BPF tracing programs (tracepoint, raw_tracepoint, tracing, kprobe)
# loaded by anyone but this set's tracer, at the set's start or end, whichever
# is more: other users of the machine tracing it too (another forkscope) make an
# "untraced" set traced.
# and anything wrong with a condition (not ready, output unverified, left
# programs behind) to $NOTES as "env<TAB>condition<TAB>text".
# Callers set: ENV_NAME RAW NOTES LOGS WORK ROUNDS UNRELATED BATCHES SCALE
# COMPILE_DIR FORKSCOPE CLONE_BT READY_TIMEOUT, optionally WORKLOADS (a comma
# list of unrelated.c's workloads and compile; default all), and call
# system_cleanup from their EXIT trap.

# Conditions: NAME or NAME@BACKEND (the guest's fentry and kprobe); a forkscope
# condition may end in +DEPTH (run+syscall: forkscope run --depth syscall).
#   run       forkscope run --modes fork --heap 2M --iterations 1000000
#             --cell-seconds 600: a long fork cell whose runner launches the whole
#             time (one CPU busy), SIGINT after the set (run then exits 1)
#   trace-a   forkscope trace -a: every task but forkscope
#   trace-p   forkscope trace -p of an idle process (sleep 1000)
#   serve     forkscope serve -a on a loopback port ($SERVE_PORT), not scraped
#             during the set; scraped once at its end, which must show launches
#   bpftrace  the floor: bpftrace counting clone/clone3 on the per-syscall
#             tracepoints ($CLONE_BT)
# shellcheck disable=SC2034  # read by the scripts that source this
SYSTEM_CONDITIONS="run trace-a trace-p serve bpftrace"
SYSTEM_DEFAULT="run trace-a trace-p bpftrace"  # serve on request (the host: the guest has no prometheus-cpp)
SERVE_PORT=${SERVE_PORT:-39464}
TPID="" IDLE_PID=""

# Tracing programs loaded, not held by process $1 (empty: none excluded).
foreign_progs() {
  local mine
  mine=$(if [[ -n ${1:-} ]]; then held_progs "$1"; fi | jq -s -c . 2>/dev/null || echo '[]')
  bpftool prog show -j 2>/dev/null | jq --argjson m "${mine:-[]}" '[.[] | select(.type == "tracepoint" or .type == "raw_tracepoint"
    or .type == "tracing" or .type == "kprobe") | select(.id as $i | $m | index($i) | not)] | length' 2>/dev/null || echo 0
}

# One set; SIDE is u or t.
system_set() {  # COND ROUND SIDE
  local out="$WORK/set.out" tf="$WORK/time.out" cpu wall f0 f1
  f0=$(foreign_progs "$TPID")
  local all=() ws=() w compile=0
  IFS=, read -ra all <<<"${WORKLOADS:-all}"
  for w in "${all[@]}"; do
    [[ $w == all || $w == compile ]] && compile=1
    [[ $w == compile ]] || ws+=("$w")
  done
  : >"$out"
  if ((${#ws[@]})); then
    "$UNRELATED" --batches "$BATCHES" --scale "$SCALE" "${ws[@]}" >"$out" 2>>"$LOGS/workload-stderr.log" || {
      say "$ENV_NAME: unrelated failed ($1 round $2 $3): $(tail -n 1 "$LOGS/workload-stderr.log")"; return 1; }
  fi
  awk -v e="$ENV_NAME" -v c="$1" -v r="$2" -v s="$3" -v OFS='\t' 'NF == 3 {print e, c, r, s, $1, $2, $3}' "$out" >"$out.rows"
  if ((compile)); then
    # bash's time keyword: "real user sys" of the whole pipeline, children included.
    { local TIMEFORMAT='%R %U %S'
      time (find "$COMPILE_DIR" -name '*.c' -print0 | xargs -0 -P2 -n1 cc -O2 -c -o /dev/null >>"$LOGS/compile.log" 2>&1); } 2>"$tf" \
      || { say "$ENV_NAME: the compile failed ($1 round $2 $3): see $LOGS/compile.log"; return 1; }
    read -r wall cpu <<<"$(awk '{print $1, $2 + $3}' "$tf")"
    printf '%s\t%s\t%s\t%s\tcompile\t%s\t%s\n' "$ENV_NAME" "$1" "$2" "$3" "$cpu" "$wall" >>"$out.rows"
  fi
  f1=$(foreign_progs "$TPID")
  awk -v f=$((f0 > f1 ? f0 : f1)) -v OFS='\t' '{print $0, f}' "$out.rows" >>"$RAW"
}

note() { printf '%s\t%s\t%s\n' "$ENV_NAME" "$1" "$2" >>"$NOTES"; }

# Program ids a process holds: the prog_id of its BPF program and link fds
# (fdinfo; this bpftool shows no .pids).
held_progs() { cat /proc/"$1"/fdinfo/* 2>/dev/null | awk '$1 == "prog_id:" {print $2}' | sort -u; }

# Starts COND's tracer in the background (TPID, log $LOGS/<cond>.log) and waits
# until it says it is attached.  False (with a note) when it does not.
start_cond() {  # COND
  local cond=$1 base=${1%@*} bk=() log out
  [[ $cond == *@* ]] && bk=(--backend "${cond#*@}")
  [[ $base == *+* ]] && bk+=(--depth "${base#*+}") && base=${base%+*}
  log="$LOGS/$(slug "$cond").log" out="$WORK/$(slug "$cond").out"
  rm -rf "$out"; : >"$log"
  local ready='backend attached'
  local cmd=()
  case $base in
    run) cmd=("$FORKSCOPE" run "${bk[@]}" --modes fork --heap 2M --iterations 1000000 --cell-seconds 600 --out "$out" --no-color) ;;
    trace-a) cmd=("$FORKSCOPE" trace -a "${bk[@]}" --out "$out" --no-color) ;;
    trace-p)
      if [[ -z $IDLE_PID ]] || ! kill -0 "$IDLE_PID" 2>/dev/null; then
        sleep 1000 & IDLE_PID=$!
      fi
      cmd=("$FORKSCOPE" trace -p "$IDLE_PID" "${bk[@]}" --out "$out" --no-color) ;;
    serve) cmd=("$FORKSCOPE" serve -a "${bk[@]}" --listen "127.0.0.1:$SERVE_PORT") ;;
    bpftrace) cmd=(bpftrace -B none "$CLONE_BT"); ready='^ready' ;;
    *) say "unknown condition $cond"; return 1 ;;
  esac
  # env --default-signal: background jobs of a script start with SIGINT ignored.
  env --default-signal=INT "${cmd[@]}" >"$log" 2>&1 &
  TPID=$!
  local t0=$SECONDS
  while kill -0 "$TPID" 2>/dev/null; do
    grep -qE "$ready" "$log" && return 0
    ((SECONDS - t0 < READY_TIMEOUT)) || break
    sleep 0.05
  done
  note "$cond" "$(if kill -0 "$TPID" 2>/dev/null; then echo "not attached after ${READY_TIMEOUT}s"; else reason_from "$log"; fi)"
  stop_cond "$cond"
  cp "$log" "${log%.log}.failed.log" 2>/dev/null || true
  return 1
}

# Stops the tracer; checks its process and programs are gone and that it saw
# something.  False when the set it wrapped should not count.
stop_cond() {  # COND
  local cond=$1 base=${1%@*} ids id left=() i log ok=0
  base=${base%+*}
  [[ -n $TPID ]] || return 1
  log="$LOGS/$(slug "$cond").log"
  ids=$(held_progs "$TPID")
  if [[ $base == serve ]]; then
    scrape_metrics "$SERVE_PORT" >"$WORK/serve.metrics" 2>/dev/null || true
  fi
  if [[ $base == run ]] && ! kill -0 "$TPID" 2>/dev/null; then
    note "$cond" "forkscope run ended before the set did (see $(basename "$log"))"; ok=1
  fi
  stop_tool "$TPID"
  TPID=""
  for ((i = 0; i < 50; i++)); do
    left=()
    for id in $ids; do bpftool prog show id "$id" >/dev/null 2>&1 && left+=("$id"); done
    ((${#left[@]} == 0)) && break
    sleep 0.2
  done
  ((${#left[@]} == 0)) || note "$cond" "BPF programs still loaded 10 s after it stopped: ids ${left[*]}"
  case $base in
    run|trace-*) [[ -s $WORK/$(slug "$cond").out/results.json ]] || { note "$cond" "no results.json after SIGINT: $(reason_from "$log")"; ok=1; } ;;
    serve) grep -q '^forkscope_launches_total{' "$WORK/serve.metrics" || { note "$cond" "its /metrics showed no launches: $(reason_from "$log")"; ok=1; } ;;
    bpftrace) grep -qa '@\[tracepoint:syscalls:sys_' "$log" || { note "$cond" "no clone counts in its output: $(reason_from "$log")"; ok=1; } ;;
  esac
  settle
  return "$ok"
}

# GET /metrics from 127.0.0.1:PORT (bash's /dev/tcp: no HTTP client needed).
scrape_metrics() {  # PORT; a serve that stops answering fails the scrape after 10 s
  local fd status=0
  exec {fd}<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&"$fd"
  timeout 10 tr -d '\r' <&"$fd" || status=$?
  exec {fd}>&-
  return "$status"
}

# Removes this environment's figures of COND in ROUND (SIDE: only that side).
drop_sets() {  # COND ROUND [SIDE]
  awk -F'\t' -v e="$ENV_NAME" -v c="$1" -v r="$2" -v s="${3:-}" '!($1 == e && $2 == c && $3 == r && (s == "" || $4 == s))' "$RAW" >"$RAW.tmp"
  mv "$RAW.tmp" "$RAW"
}

# ROUNDS rounds of every condition in CONDS (ABBA per condition).
system_rounds() {  # CONDS...
  local r c failed=" "
  for ((r = 0; r < ROUNDS; r++)); do
    for c in "$@"; do
      [[ $failed == *" $c "* ]] && continue
      say "$ENV_NAME: round $((r + 1))/$ROUNDS, $c"
      if ((r % 2 == 0)); then system_set "$c" "$r" u || return 1; fi
      if start_cond "$c"; then
        system_set "$c" "$r" t || { stop_cond "$c"; return 1; }
        # A set whose tracer misbehaved is dropped (the note says why).
        stop_cond "$c" || drop_sets "$c" "$r" t
      else
        failed+="$c "
        drop_sets "$c" "$r"
        continue
      fi
      if ((r % 2 == 1)); then system_set "$c" "$r" u || return 1; fi
    done
  done
}

# N small C files for the compile workload: a header of the C library each
# and a few functions, so each cc -c runs the preprocessor, optimiser and as.
gen_sources() {  # DIR N
  local i
  mkdir -p "$1"
  for ((i = 0; i < $2; i++)); do
    cat >"$1/unit$i.c" <<EOF
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
struct item$i { int key; double weight; char name[32]; };
static int cmp$i(const void* a, const void* b) {
  const struct item$i* x = a; const struct item$i* y = b;
  return (x->key > y->key) - (x->key < y->key);
}
double work$i(int n) {
  struct item$i* v = calloc((size_t)n, sizeof *v);
  double s = 0;
  if (!v) return -1;
  for (int k = 0; k < n; k++) { v[k].key = (k * 7919 + $i) % n; v[k].weight = k * 0.5; snprintf(v[k].name, sizeof v[k].name, "item-%d", k); }
  qsort(v, (size_t)n, sizeof *v, cmp$i);
  for (int k = 0; k < n; k++) s += v[k].weight * (double)strlen(v[k].name);
  free(v);
  return s;
}
EOF
  done
}

# Ends whatever is still running: the tracer (SIGINT, then SIGKILL) and the idle process.
system_cleanup() {
  if [[ -n $TPID ]]; then stop_tool "$TPID"; fi
  if [[ -n $IDLE_PID ]]; then kill -KILL "$IDLE_PID" 2>/dev/null || true; wait "$IDLE_PID" 2>/dev/null || true; fi
  TPID="" IDLE_PID=""
  return 0
}
