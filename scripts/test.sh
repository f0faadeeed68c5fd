#!/usr/bin/env bash
# Every test lane, cheapest and most likely to fail first, stopping at the first
# lane that fails:
#   build      install what is missing (setup-tests.sh), configure and build
#   unit       no root, no kernel
#   lint       shellcheck on the scripts, clang-format on FORMAT_CHECKED
#   runtime    root, real BPF on this kernel
#   browser    report.html in headless Chromium; the timeline in speedscope
#   kernel     Debian's stock kernel under QEMU: fentry and kprobes (scripts/qemu-lab.sh)
#   sanitizer  unit and runtime under ASan+UBSan (build-asan)
#   fuzz       libFuzzer on the results parser, the report renderers and the phase machine (build-fuzz)
# Usage: test.sh [LANE...]  (default: every lane, in this order; build always runs first)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${FORKSCOPE_BUILD:-$ROOT/build}"
ALL_LANES=(unit lint runtime browser kernel sanitizer fuzz)

# The C++ files clang-format checks (.clang-format): every one but the plain-C headers
# BPF shares (include/forkscope/shared), which keep the kernel's style like bpf/.
mapfile -t FORMAT_CHECKED < <(git -C "$ROOT" ls-files 'src/*.cpp' 'src/*.h' 'include/*.h' 'tests/*.cpp' 'tests/*.h' |
                                grep -v '^include/forkscope/shared/')

# The scripts the lint lane checks: every one.
shell_files() {
  git -C "$ROOT" ls-files 'scripts/*.sh' 'tests/*.sh'
}

# Prints how long a lane took, so the CI budget (under 20 minutes on 2 CPUs) stays
# visible; a lane that fails ends the script with its status.
lane() {
  local name=$1 start=$SECONDS status
  shift
  # A subshell, not part of a condition (which would switch errexit off inside):
  # a lane stops at its first failing command.
  set +e
  (set -e; "$@")
  status=$?
  set -e
  if ((status != 0)); then
    echo "forkscope: $name lane failed (exit $status) after $((SECONDS - start)) s; later lanes not run" >&2
    exit "$status"
  fi
  echo "forkscope: $name lane took $((SECONDS - start)) s" >&2
}

# The kernel lane's guests (one per kernel) run side by side: each is mostly
# waiting on its own QEMU, and one after the other they would pass four minutes.
ctest_lane() {
  cd "$BUILD"
  local jobs=1
  [[ $1 == kernel ]] && jobs=2
  ctest --output-on-failure -j"$jobs" -L "^$1\$"
}

lint_lane() {
  cd "$ROOT"
  local scripts
  mapfile -t scripts < <(shell_files)
  shellcheck "${scripts[@]}"
  clang-format --dry-run --Werror "${FORMAT_CHECKED[@]}"
}

# The unit and runtime suites again, built with ASan and UBSan (FORKSCOPE_SANITIZE).
# Unoptimised with line tables only: a quarter of the -O2 -g compile time, and
# the suites spend their time in the kernel anyway.
sanitizer_lane() {
  local dir="$ROOT/build-asan"
  cmake -S "$ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG=-g1 -DCMAKE_CXX_FLAGS_DEBUG=-g1 \
    -DFORKSCOPE_SANITIZE=ON >/dev/null
  cmake --build "$dir" -j"$(nproc)" --target forkscope unit_tests runtime_tests
  cd "$dir"
  # ServeEviction spends its half minute waiting for groups to go idle; the plain
  # runtime lane runs it, and the exporter's eviction runs here in the unit tests.
  GTEST_FILTER='-ServeEviction.*' ctest --output-on-failure -L "^(unit|runtime)\$"
}

# libFuzzer on the results parser, on the report renderers fed by it and on the
# phase machine, from the seeds in tests/fuzz/corpus, FORKSCOPE_FUZZ_SECONDS (20)
# each, so three targets take the minute two did.  New inputs collect in the build
# directory; a crash leaves its input there and fails the lane.
fuzz_lane() {
  local dir="$ROOT/build-fuzz" target
  CC=clang CXX=clang++ cmake -S "$ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-O1 -g1" \
    -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" -DFORKSCOPE_FUZZ=ON >/dev/null
  cmake --build "$dir" -j"$(nproc)" --target fuzz_results fuzz_report fuzz_machine
  for target in results report machine; do
    mkdir -p "$dir/corpus/$target"
    if ! "$dir/tests/fuzz/fuzz_$target" -use_value_profile=1 -max_total_time="${FORKSCOPE_FUZZ_SECONDS:-20}" \
        -timeout=10 -artifact_prefix="$dir/$target-" "$dir/corpus/$target" "$ROOT/tests/fuzz/corpus/$target" \
        >"$dir/$target.log" 2>&1; then
      tail -n 40 "$dir/$target.log" >&2
      return 1
    fi
  done
}

lanes=("$@")
((${#lanes[@]})) || lanes=("${ALL_LANES[@]}")
for l in "${lanes[@]}"; do
  [[ " ${ALL_LANES[*]} " == *" $l "* ]] || { echo "forkscope: unknown lane '$l'; lanes: ${ALL_LANES[*]}" >&2; exit 2; }
done

lane build "$ROOT/scripts/setup-tests.sh"
for l in "${lanes[@]}"; do
  case $l in
    unit | runtime | browser | kernel) lane "$l" ctest_lane "$l" ;;
    lint) lane lint lint_lane ;;
    sanitizer) lane sanitizer sanitizer_lane ;;
    fuzz) lane fuzz fuzz_lane ;;
  esac
done
