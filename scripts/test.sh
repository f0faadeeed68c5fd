#!/usr/bin/env bash
# Every test lane: install what is missing, build, then the unit lane (no root)
# and the runtime lane (root, real BPF on this kernel), then the kernel lane
# (Debian's stock kernel under QEMU: fentry and kprobes, scripts/qemu-lab.sh), the
# browser lane (report.html in headless Chromium), the sanitizer lane (unit and
# runtime under ASan+UBSan, build-asan) and the fuzz lane (libFuzzer, build-fuzz).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${FORKSCOPE_BUILD:-$ROOT/build}"
"$ROOT/scripts/setup.sh"

# Prints how long a lane took, so the CI budget (under 30 minutes on 2 CPUs) stays visible.
lane() {
  local name=$1 start=$SECONDS
  shift
  "$@"
  echo "forkscope: $name lane(s) took $((SECONDS - start)) s" >&2
}

main_lanes() {
  (cd "$BUILD" && ctest --output-on-failure -L "unit|runtime|browser|kernel")
}

# The unit and runtime suites again, built with ASan and UBSan (FORKSCOPE_SANITIZE).
# Unoptimised with line tables only: a quarter of the -O2 -g compile time, and
# the suites spend their time in the kernel anyway.
sanitizer_lane() {
  local dir="$ROOT/build-asan"
  cmake -S "$ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG=-g1 -DCMAKE_CXX_FLAGS_DEBUG=-g1 \
    -DFORKSCOPE_SANITIZE=ON >/dev/null
  cmake --build "$dir" -j"$(nproc)" --target forkscope unit_tests runtime_tests
  (cd "$dir" && ctest --output-on-failure -L "unit|runtime")
}

# libFuzzer on the results parser and on the phase machine, from the seeds in
# tests/fuzz/corpus, FORKSCOPE_FUZZ_SECONDS (30) each.  New inputs collect in the
# build directory; a crash leaves its input there and fails the lane.
fuzz_lane() {
  local dir="$ROOT/build-fuzz" target
  CC=clang CXX=clang++ cmake -S "$ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-O1 -g1" \
    -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" -DFORKSCOPE_FUZZ=ON >/dev/null
  cmake --build "$dir" -j"$(nproc)" --target fuzz_results fuzz_machine
  for target in results machine; do
    mkdir -p "$dir/corpus/$target"
    if ! "$dir/tests/fuzz/fuzz_$target" -use_value_profile=1 -max_total_time="${FORKSCOPE_FUZZ_SECONDS:-30}" \
        -timeout=10 -artifact_prefix="$dir/$target-" "$dir/corpus/$target" "$ROOT/tests/fuzz/corpus/$target" \
        >"$dir/$target.log" 2>&1; then
      tail -n 40 "$dir/$target.log" >&2
      return 1
    fi
  done
}

lane "unit, runtime, browser and kernel" main_lanes
lane sanitizer sanitizer_lane
lane fuzz fuzz_lane
