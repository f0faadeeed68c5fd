# shellcheck shell=bash
# Peer-tool benchmark helpers, sourced by scripts/bench-peers.sh (host) and
# tests/bench/peers-guest.sh (QEMU guest).  Every peer is measured the same way:
#
#   ROUNDS rounds; each round runs the fork workload (tests/bench/forkloop.c, a
#   SMALL and a LARGE heap) once untraced and once traced, in alternating order
#   (ABBA: even rounds untraced first, odd rounds traced first), so slow drifts of
#   a noisy machine hit both sides alike.  Ratio = median over rounds of the
#   traced fork medians / median of the untraced ones; the range printed next to
#   it is the smallest and largest per-round ratio (a noise gauge, not a CI).
#
#   Start-up = CLOCK_MONOTONIC from launching the tool to the moment its probes
#   are attached: a ready line the tool prints after attaching (bpftrace's BEGIN
#   fires after every probe is attached; funclatency prints "Tracing ..."), or, for
#   tools that launch the workload (perf record/trace/ftrace -- CMD), the
#   workload's first instruction (perf enables its events at the exec).
#
# Results are appended to $ROWS as tab-separated lines:
#   env  tool  small-heap cell  large-heap cell  start-up cell  breakdown  note
# (note: why the tool could not be measured; empty when it was).
# Callers set: FORKLOOP ENV_NAME ROWS LOGS WORK ROUNDS SMALL_MIB SMALL_FORKS
# LARGE_MIB LARGE_FORKS READY_TIMEOUT.

now_ns() { "$FORKLOOP" --now; }
# Value of KEY in a forkloop output file (empty when absent).
kv() { awk -v k="$2" '$1 == k {print $2; exit}' "$1" 2>/dev/null; }
median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
secs() { awk -v n="$1" 'BEGIN {printf "%.2f s", n / 1e9}'; }
say() { echo "bench: $*" >&2; }
# One line, tabs and newlines flattened: for table cells.
oneline() { tr '\t\n' '  ' | sed 's/  */ /g; s/^ //; s/ $//' | cut -c1-"${1:-110}"; }
# A file name for a tool's log.
slug() { printf '%s' "$1" | tr -c 'A-Za-z0-9._-' '_' | sed 's/__*/_/g; s/_$//'; }
row() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$ENV_NAME" "$1" "$2" "$3" "$4" "$5" "${6:-}" >>"$ROWS"; }
na_row() { row "$1" "n/a" "n/a" "n/a" "$3" "$2"; }
# The reason a tool failed: a line naming a known cause, else its last
# error-looking line, else its last line.
reason_from() {
  local r
  if grep -q 'Unable to find kernel headers' "$1" 2>/dev/null; then
    echo "bcc found no kernel headers for $(uname -r) to compile against (no /lib/modules/$(uname -r)/build, no kheaders module)"
    return
  fi
  r=$(grep -aE 'not available for your kernel|cannot work on this kernel' "$1" 2>/dev/null | tail -n 1 | oneline 200)
  [[ -n $r ]] || r=$(grep -aiE 'error|denied|not permitted|not supported|cannot|could not|failed|unknown|no such|refus|missing|invalid' "$1" 2>/dev/null \
      | grep -v RLIMIT_MEMLOCK | tail -n 1 | oneline 200)
  [[ -n $r ]] || r=$(grep -av '^\s*$' "$1" 2>/dev/null | tail -n 1 | oneline 200)
  echo "${r:-no output}"
}

# fl OUTFILE MIB FORKS [PREFIX...]: one workload run, optionally under PREFIX (a tool).
fl() {
  local out=$1 mib=$2 forks=$3; shift 3
  rm -f "$out"
  FORKLOOP_OUT=$out "$@" "$FORKLOOP" "$mib" "$forks" >>"$LOGS/workload-stdout.log" 2>&1
}

# Per-round medians are kept in these arrays by the bench_* functions.
declare -a U_S U_L T_S T_L STARTS

# Reads the medians of one untraced or traced pair of runs.
record_pair() {  # u|t small-file large-file
  local s l
  s=$(kv "$2" median_ns); l=$(kv "$3" median_ns)
  [[ -n $s && -n $l ]] || return 1
  if [[ $1 == u ]]; then U_S+=("$s"); U_L+=("$l"); else T_S+=("$s"); T_L+=("$l"); fi
}

untraced_pair() {
  fl "$WORK/u-s.out" "$SMALL_MIB" "$SMALL_FORKS" && fl "$WORK/u-l.out" "$LARGE_MIB" "$LARGE_FORKS" \
    && record_pair u "$WORK/u-s.out" "$WORK/u-l.out"
}

# "1.23 (1.10-1.40)" from the arrays of traced and untraced medians.
ratio_cell() {  # traced-array-name untraced-array-name
  local -n t=$1 u=$2
  local mt mu i rs=()
  mt=$(printf '%s\n' "${t[@]}" | median); mu=$(printf '%s\n' "${u[@]}" | median)
  for i in "${!t[@]}"; do rs+=("$(awk -v a="${t[$i]}" -v b="${u[$i]}" 'BEGIN {print a / b}')"); done
  printf '%s\n' "${rs[@]}" | sort -g | awk -v mt="$mt" -v mu="$mu" \
    '{v[NR] = $1} END {printf "%.2f (%.2f-%.2f)", mt / mu, v[1], v[NR]}'
}

finish_row() {  # name breakdown
  local st=""
  ((${#STARTS[@]})) && st=$(secs "$(printf '%s\n' "${STARTS[@]}" | median)")
  row "$1" "$(ratio_cell T_S U_S)" "$(ratio_cell T_L U_L)" "$st" "$2"
  # The raw figures, for the log.
  printf '%s %s: untraced small %s large %s | traced small %s large %s | start-up ns %s\n' "$ENV_NAME" "$1" \
    "${U_S[*]}" "${U_L[*]}" "${T_S[*]}" "${T_L[*]}" "${STARTS[*]}" >>"$LOGS/raw.txt"
  echo "$1" >>"$LOGS/measured.txt"
  printf '%s\n' "${U_S[@]}" >>"$LOGS/untraced-small.txt"
  printf '%s\n' "${U_L[@]}" >>"$LOGS/untraced-large.txt"
}

# After a tool stopped: let the kernel finish tearing its probes down before
# the next untraced run (detaching can go on in workqueues after the tool has
# exited: RCU grace periods, kprobe unoptimizing, text patching).  With
# SETTLE_BPF=1 (a machine that is ours alone: the guest) it first waits until no
# more BPF programs are loaded than before the tool; then SETTLE seconds.
bpf_prog_count() { bpftool prog show 2>/dev/null | grep -c '^[0-9]' || true; }
settle() {
  local i
  if [[ ${SETTLE_BPF:-0} == 1 && -n ${BPF_BASE:-} ]]; then
    for ((i = 0; i < 100; i++)); do (($(bpf_prog_count) <= BPF_BASE)) && break; sleep 0.2; done
  fi
  sleep "${SETTLE:-1}"
}

# Stops a background tool: SIGINT (it prints its summary; repeated every 3 s,
# as a first one can go unseen), then SIGKILL after 60 s.
stop_tool() {
  local pid=$1 i
  for ((i = 0; i < 600; i++)); do
    if ((i % 30 == 0)); then kill -INT "$pid" 2>/dev/null || true; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# bench_daemon NAME READY_REGEX EVIDENCE_REGEX BREAKDOWN -- CMD...
# A tool that runs beside the workload: started before the traced pair, ready
# when its output matches READY_REGEX, stopped with SIGINT after it; its
# final output must match EVIDENCE_REGEX (it really saw the workload).
bench_daemon() {
  local name=$1 ready=$2 evidence=$3 breakdown=$4; shift 5
  local log r pid t0 t1 ok
  log="$LOGS/$(slug "$name").log"
  U_S=(); U_L=(); T_S=(); T_L=(); STARTS=()
  BPF_BASE=$(bpf_prog_count)
  say "$ENV_NAME: $name ($ROUNDS rounds)"
  for ((r = 0; r < ROUNDS; r++)); do
    if ((r % 2 == 0)); then untraced_pair || { na_row "$name" "workload failed untraced" "$breakdown"; return; }; fi
    : >"$log"
    t0=$(now_ns)
    # env --default-signal: background jobs of a script start with SIGINT
    # ignored, and Python (bcc) then never turns SIGINT into KeyboardInterrupt.
    # PYTHONUNBUFFERED: bcc's ready line must reach the log at once.
    PYTHONUNBUFFERED=1 env --default-signal=INT "$@" >"$log" 2>&1 &
    pid=$!
    ok=""
    while kill -0 "$pid" 2>/dev/null; do
      if grep -qE "$ready" "$log"; then ok=1; break; fi
      (( ($(now_ns) - t0) / 1000000000 < READY_TIMEOUT )) || break
      sleep 0.02
    done
    t1=$(now_ns)
    if [[ -z $ok ]]; then
      stop_tool "$pid"
      na_row "$name" "$(if kill -0 "$pid" 2>/dev/null; then echo "not ready after ${READY_TIMEOUT}s"; else reason_from "$log"; fi)" "$breakdown"
      cp "$log" "${log%.log}.failed.log" 2>/dev/null || true
      return
    fi
    STARTS+=($((t1 - t0)))
    if fl "$WORK/t-s.out" "$SMALL_MIB" "$SMALL_FORKS"; then fl "$WORK/t-l.out" "$LARGE_MIB" "$LARGE_FORKS" || true; fi
    stop_tool "$pid"
    settle
    record_pair t "$WORK/t-s.out" "$WORK/t-l.out" || { na_row "$name" "workload failed while traced" "$breakdown"; return; }
    if ((r % 2 == 1)); then untraced_pair || { na_row "$name" "workload failed untraced" "$breakdown"; return; }; fi
  done
  if ! grep -qaE "$evidence" "$log"; then name+=" (output unverified: see $(basename "$log"))"; fi
  finish_row "$name" "$breakdown"
}

# bench_wrapper NAME EVIDENCE_REGEX EVIDENCE_FILE BREAKDOWN -- CMD...
# A tool that launches the workload itself: once per round, CMD... /bin/sh -c
# running the small and then the large workload (tools follow children; perf
# ftrace needs --inherit for it).  Start-up is launch -> the first workload's
# first instruction.  EVIDENCE_FILE (may be the tool's log, "$LOGS/<slug>.log")
# must match EVIDENCE_REGEX after the last round, or the row says "unverified".
bench_wrapper() {
  local name=$1 evidence=$2 efile=$3 breakdown=$4; shift 5
  local log r t0 s
  log="$LOGS/$(slug "$name").log"
  U_S=(); U_L=(); T_S=(); T_L=(); STARTS=()
  BPF_BASE=$(bpf_prog_count)
  say "$ENV_NAME: $name ($ROUNDS rounds)"
  for ((r = 0; r < ROUNDS; r++)); do
    if ((r % 2 == 0)); then untraced_pair || { na_row "$name" "workload failed untraced" "$breakdown"; return; }; fi
    : >"$log"
    rm -f "$WORK/t-s.out" "$WORK/t-l.out"
    t0=$(now_ns)
    # shellcheck disable=SC2016  # expanded by that sh
    "$@" /bin/sh -c 'FORKLOOP_OUT="$1" "$0" "$2" "$3" && FORKLOOP_OUT="$4" "$0" "$5" "$6"' \
      "$FORKLOOP" "$WORK/t-s.out" "$SMALL_MIB" "$SMALL_FORKS" "$WORK/t-l.out" "$LARGE_MIB" "$LARGE_FORKS" >>"$log" 2>&1 || true
    s=$(kv "$WORK/t-s.out" start_mono_ns)
    if [[ -z $s || -z $(kv "$WORK/t-s.out" median_ns) || -z $(kv "$WORK/t-l.out" median_ns) ]]; then
      na_row "$name" "$(reason_from "$log")" "$breakdown"
      cp "$log" "${log%.log}.failed.log" 2>/dev/null || true
      return
    fi
    STARTS+=($((s - t0)))
    record_pair t "$WORK/t-s.out" "$WORK/t-l.out"
    settle
    if ((r % 2 == 1)); then untraced_pair || { na_row "$name" "workload failed untraced" "$breakdown"; return; }; fi
  done
  if ! grep -qaE "$evidence" "$efile" 2>/dev/null; then name+=" (output unverified: see $(basename "$efile"))"; fi
  finish_row "$name" "$breakdown"
}

# A tracefs instance that records sched_process_fork of forkscope with the
# CLOCK_MONOTONIC trace clock: the first launch of a given forkscope process is
# when it traces its first launch (its programs are attached before it launches
# anything).  trace_begin prints the instance path (empty when tracefs is absent).
trace_begin() {
  local tr=/sys/kernel/tracing inst
  [[ -d $tr/instances ]] || mount -t tracefs nodev "$tr" 2>/dev/null || true
  [[ -d $tr/instances ]] || return 0
  inst="$tr/instances/forkscope-bench-$$-$RANDOM"
  mkdir "$inst" 2>/dev/null || return 0
  if echo mono >"$inst/trace_clock" && echo 'parent_comm == "forkscope"' >"$inst/events/sched/sched_process_fork/filter" \
     && echo 1 >"$inst/events/sched/sched_process_fork/enable" && echo 1 >"$inst/tracing_on"; then
    echo "$inst"
  else
    rmdir "$inst" 2>/dev/null || true
  fi
}
# trace_first_fork INSTANCE PID: CLOCK_MONOTONIC ns of PID's first fork (empty if none).
trace_first_fork() {
  [[ -n $1 ]] || return 0
  # awk reads the file itself and stops at the first match (no pipe to break).
  awk -v m="sched_process_fork: comm=forkscope pid=$2 " 'index($0, m) {
      for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+\.[0-9]+:$/) {sub(":", "", $i); split($i, p, "."); printf "%d%06d000\n", p[1], p[2]; exit}
    }' "$1/trace" 2>/dev/null || true
}
trace_end() {
  [[ -n $1 ]] || return 0
  BENCH_TRACE_INST=""
  echo 0 >"$1/tracing_on" 2>/dev/null || true
  echo 0 >"$1/events/sched/sched_process_fork/enable" 2>/dev/null || true
  rmdir "$1" 2>/dev/null || true
}

# bench_forkscope NAME HEAPS BREAKDOWN -- FORKSCOPE run ARGS...
# forkscope interleaves untraced and traced blocks itself (--overhead): one run;
# its ratio and 95% bootstrap interval per cell come from results.json.
bench_forkscope() {
  local name=$1 heaps=$2 breakdown=$3; shift 4
  local log out inst t0 t1="" pid rc=0 cells
  log="$LOGS/$(slug "$name").log" out="$WORK/$(slug "$name")"
  say "$ENV_NAME: $name (one run, --overhead interleaves by itself)"
  rm -rf "$out"
  inst=$(trace_begin)
  # shellcheck disable=SC2034  # read by the caller's exit trap, which removes it if we die before trace_end
  BENCH_TRACE_INST=$inst
  t0=$(now_ns)
  "$@" --overhead --heap "$heaps" --out "$out" --no-color >"$log" 2>&1 &
  pid=$!
  wait "$pid" || rc=$?
  t1=$(trace_first_fork "$inst" "$pid")
  trace_end "$inst"
  if ((rc != 0)) || [[ ! -f $out/results.json ]]; then
    na_row "$name" "exit $rc: $(grep -a 'forkscope:' "$log" | tail -n 1 | oneline 130)" "$breakdown"
    return
  fi
  cp "$out/results.json" "${log%.log}.results.json"
  cells=$(jq -r '[.cells[] | select(.mode == "fork") | if .overhead then "\(.overhead.ratio*100|round/100) (\(.overhead.ratio_low*100|round/100)-\(.overhead.ratio_high*100|round/100)) \(.launches)" else "-" end] | join("\t")' "$out/results.json")
  local small large
  small=$(cut -f1 <<<"$cells"); large=$(cut -f2 <<<"$cells")
  # "1.32 (1.24-1.40) 1000": the last word is the traced launch count (kept in raw.txt).
  small="${small% *}*"; large="${large% *}*"
  local st="n/a (no tracefs)"
  if [[ -n $t1 ]]; then st=$(secs $((t1 - t0))); elif [[ -n $inst ]]; then st="n/a (no launch seen)"; fi
  row "$name" "$small" "$large" "$st" "$breakdown"
  echo "$name" >>"$LOGS/measured.txt"
  jq -c '{backend, bpf_map_bytes, calibration, cells: [.cells[] | {heap_bytes, launches, p50: .user.call_to_return.p50, untraced_p50: .overhead.untraced.p50, ratio: .overhead.ratio, ratio_low: .overhead.ratio_low, ratio_high: .overhead.ratio_high, vm_pte_bytes: .backing.vm_pte_bytes, vmas: .backing.vmas}]}' \
    "$out/results.json" | sed "s/^/$ENV_NAME $name: /" >>"$LOGS/raw.txt"
}

# Untraced fork medians over every untraced run of this environment.
untraced_row() {
  local s l
  s=$(median <"$LOGS/untraced-small.txt" 2>/dev/null); l=$(median <"$LOGS/untraced-large.txt" 2>/dev/null)
  [[ -n $s ]] || return 0
  row "untraced" "1 (fork p50 $(awk -v n="$s" 'BEGIN {printf "%.0f us", n / 1e3}'))" \
    "1 (fork p50 $(awk -v n="$l" 'BEGIN {printf "%.2f ms", n / 1e6}'))" "-" \
    "median of the $(wc -l <"$LOGS/untraced-small.txt") untraced workload runs above"
}

# perf ftrace writes the graph to stdout: keep its size and a sample, not the whole text.
pftrace() {
  local rc=0
  perf ftrace -G copy_process --inherit -- "$@" >"$WORK/ftrace.txt" 2>>"$LOGS/perf-ftrace.err" || rc=$?
  echo "perf ftrace: $(wc -l <"$WORK/ftrace.txt") lines of function graph, $(grep -c 'copy_process() {' "$WORK/ftrace.txt") copy_process calls" >>"$LOGS/perf-ftrace.sizes"
  head -n 400 "$WORK/ftrace.txt" >"$LOGS/perf-ftrace.sample"
  rm -f "$WORK/ftrace.txt"
  return "$rc"
}

# The landmark tracepoints forkscope's tracepoint backend attaches by default
# (bpf/forkscope.bpf.c; --detail adds exceptions:page_fault_user and kmem:mm_page_alloc).
# shellcheck disable=SC2034  # used by scripts/bench-peers.sh
LANDMARKS=(raw_syscalls:sys_enter raw_syscalls:sys_exit kmem:kmem_cache_alloc
           mmap_lock:mmap_lock_acquire_returned mmap_lock:mmap_lock_released task:task_newtask
           sched:sched_process_fork sched:sched_wakeup_new sched:sched_switch sched:sched_process_exit)
