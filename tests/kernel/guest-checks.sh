#!/usr/bin/env bash
# Kernel lane, guest side: runs inside scripts/qemu-lab.sh's guest (Debian's
# stock kernel, with fentry and kprobes) on the host's freshly built binaries,
# writes every run to /out, and lets kernel_checks judge the results.
#
#   guest-checks.sh FORKSCOPE KERNEL_CHECKS
#
# Exit 0 only when every check that can run passed.  Checks for features the
# binary does not have yet (forkscope run --backend) print SKIPPED lines, and so
# does the fentry/kprobe means cross-check without qemu-lab.sh --icount (it needs
# a guest clock that does not follow the host's load).  The fentry and kprobe
# sweeps run back to back for it; each run calibrates its probe cost at start-up.
set -euo pipefail

FORKSCOPE=${1:?usage: guest-checks.sh FORKSCOPE KERNEL_CHECKS}
CHECKS=${2:?usage: guest-checks.sh FORKSCOPE KERNEL_CHECKS}
OUT=/out
ITERATIONS=100
HEAPS=2M,64M
HEAP_BYTES=$((2 << 20)),$((64 << 20))   # the same, for kernel_checks

[[ ${QEMU_LAB:-} == 1 ]] || { echo "guest-checks.sh: run me through scripts/qemu-lab.sh" >&2; exit 2; }

failures=()
fail() { echo "FAILED: $*"; failures+=("$*"); }
step() { printf '\n--- %s (guest uptime %s s)\n' "$*" "$(cut -d' ' -f1 /proc/uptime)"; }

step "kernel $(uname -r), $(nproc) CPUs, THP $(cat /sys/kernel/mm/transparent_hugepage/enabled)"

step "forkscope doctor"
doctor_rc=0
doctor=$("$FORKSCOPE" doctor 2>&1) || doctor_rc=$?
echo "$doctor"
# Debian's kernel has both: the lane exists to prove the backends there.
grep -Eq '^\s*fentry/fexit\s+yes' <<<"$doctor" || fail "doctor does not report fentry/fexit usable"
grep -Eq '^\s*kprobe/kretprobe\s+yes' <<<"$doctor" || fail "doctor does not report kprobe/kretprobe usable"
((doctor_rc == 0)) || fail "doctor exited $doctor_rc"
# The syscall hooks: the syscall functions themselves (fentry; kprobes where
# fentry cannot attach, fork and vfork on 6.1), so other syscalls run nothing.
grep -Eq '^\s*syscall hooks\s+yes\s+fentry/fexit on the syscall functions' <<<"$doctor" \
  || fail "doctor does not report fentry on the syscall functions as the syscall hooks"
# A catalog function this kernel inlined (dup_mmap on 6.12) must be named as such.
for fn in dup_mmap copy_page_range copy_process; do
  grep -q "^$fn\b" /sys/kernel/tracing/available_filter_functions && continue
  grep -Eq "^\s*\S+\s+$fn\s+fentry: not in kernel BTF \(inlined" <<<"$doctor" \
    || fail "doctor does not say that $fn cannot be probed on $(uname -r)"
done

# One sweep per backend: fork and pthread, a small and a large heap.  The cell
# time cap is lifted so every cell runs exactly ITERATIONS launches despite
# the emulation being ~10x slower than the host.
sweep() {  # NAME [forkscope run options...]
  local name=$1; shift
  rm -rf "${OUT:?}/$name"
  local rc=0
  # --detail: the checks include the page-table pages dup_mm allocates.
  "$FORKSCOPE" run --modes fork,pthread --heap "$HEAPS" --iterations "$ITERATIONS" --cell-seconds 300 \
    --out "$OUT/$name" --no-color --detail "$@" || rc=$?
  if ((rc != 0)); then fail "forkscope run $* exited $rc"; return 1; fi
  [[ -f $OUT/$name/results.json ]] || { fail "forkscope run $* wrote no results.json"; return 1; }
}

export FORKSCOPE_KERNEL_ITERATIONS=$ITERATIONS FORKSCOPE_KERNEL_HEAPS=$HEAP_BYTES
if [[ $("$FORKSCOPE" run --help 2>&1) == *--backend* ]]; then
  step "forkscope run --backend tracepoint"
  # --overhead: the calibration that takes the landmarks' own cost out before
  # kernel_checks compares them with fentry (issue 13 item 7).
  sweep tp --backend tracepoint --overhead && export FORKSCOPE_KERNEL_TRACEPOINT=$OUT/tp
  step "forkscope run --backend fentry"
  sweep fentry --backend fentry --phase anon_vma_fork:dup_mmap && export FORKSCOPE_KERNEL_FENTRY=$OUT/fentry
  step "forkscope run --backend kprobe"
  sweep kprobe --backend kprobe --phase anon_vma_fork:dup_mmap && export FORKSCOPE_KERNEL_KPROBE=$OUT/kprobe
else
  step "forkscope run (its only backend: tracepoint)"
  sweep tp && export FORKSCOPE_KERNEL_TRACEPOINT=$OUT/tp
  echo "SKIPPED: forkscope run --backend fentry (forkscope run has no --backend yet)"
  echo "SKIPPED: forkscope run --backend kprobe (forkscope run has no --backend yet)"
  echo "SKIPPED: fentry/kprobe cross-check (forkscope run has no --backend yet)"
fi

for backend in fentry kprobe; do
  step "forkscope trace --backend $backend (a shell loop: launches and execs)"
  rc=0
  # shellcheck disable=SC2016  # $(seq 20) is for the guest's sh to expand
  "$FORKSCOPE" trace --backend "$backend" --out "$OUT/trace-$backend" --no-color \
    -- sh -c 'for i in $(seq 20); do /bin/true; done' || rc=$?
  if ((rc == 0)); then
    export "FORKSCOPE_KERNEL_TRACE_${backend^^}=$OUT/trace-$backend"
  else
    fail "forkscope trace --backend $backend exited $rc"
  fi
done

step "forkscope trace contains its command (a TERM-ignoring background job)"
# The command runs in a cgroup of its own (doctor says so), and what it leaves,
# here a job that ignores SIGTERM, is ended with it and the cgroup removed.
grep -Eq '^\s*trace containment\s+yes' <<<"$doctor" || fail "doctor: trace cannot give its command a cgroup"
rc=0
"$FORKSCOPE" trace -q -v --out "$OUT/trace-contained" -- sh -c "(trap '' TERM; sleep 1000.7) & exit 0" \
  2>"$OUT/contained.err" >/dev/null || rc=$?
((rc == 0)) || fail "forkscope trace of a command leaving a job exited $rc"
grep -q "the command runs in " "$OUT/contained.err" || fail "trace ran its command in no cgroup: $(cat "$OUT/contained.err")"
# pgrep's pattern "[s]leep" does not match pgrep itself.
if pgrep -f '[s]leep 1000.7' >/dev/null; then fail "the command's background job outlived the trace"; fi
if ls -d /sys/fs/cgroup/forkscope-* 2>/dev/null; then fail "the command's cgroup was left behind"; fi

step "kernel_checks"
# Runs without results are skipped by kernel_checks; those that ran must pass.
# CI shows only the tail of the lane's output: the failed assertions are printed
# again at the end, where it can be read.
checks_log=$OUT/kernel_checks.log
"$CHECKS" --gtest_color=no 2>&1 | tee "$checks_log" || fail "kernel_checks failed"

step "done"
if ((${#failures[@]})); then
  printf 'kernel lane: %d failure(s):\n' "${#failures[@]}"
  printf '  %s\n' "${failures[@]}"
  if [[ -s ${checks_log:-} ]] && grep -q ': Failure$' "$checks_log"; then
    echo "kernel_checks' failed assertions (repeated from above):"
    grep -A8 ': Failure$' "$checks_log" | cut -c1-300
  fi
  exit 1
fi
echo "kernel lane: all checks passed"
