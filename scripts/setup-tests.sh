#!/usr/bin/env bash
# setup.sh (build packages, configure, build) plus what the test lanes need.
# Used by test.sh; the quick start's run.sh needs none of these.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

TEST_PACKAGES=(shellcheck clang-format  # the lint lane
               stress-ng procps  # the runtime lane: fork storms; pgrep finds traced commands left running
               prometheus  # the runtime lane: the real server scrapes `forkscope serve` (promtool too)
               chromium  # the browser lane: report.html rendered headless
               qemu-system-x86 busybox-static cpio kmod  # the kernel lane (scripts/qemu-lab.sh)
               libclang-rt-14-dev)  # the fuzz lane: libFuzzer
exec "$ROOT/scripts/setup.sh" "${TEST_PACKAGES[@]}"
