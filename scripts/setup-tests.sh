#!/usr/bin/env bash
# setup.sh (build packages, configure, build) plus what the test lanes need.
# Used by test.sh; the quick start's run.sh needs none of these.
# Environment: FORKSCOPE_CACHE (default /var/cache/forkscope): speedscope is
# installed from npm under it (tests/browser/check_speedscope.sh finds it there).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

TEST_PACKAGES=(shellcheck clang-format  # the lint lane
               stress-ng procps  # the runtime lane: fork storms; pgrep finds traced commands left running
               prometheus  # the runtime lane: the real server scrapes `forkscope serve` (promtool too)
               chromium  # the browser lane: report.html rendered headless
               qemu-system-x86 busybox-static cpio kmod  # the kernel lane (scripts/qemu-lab.sh)
               libclang-rt-14-dev)  # the fuzz lane: libFuzzer
# The browser lane loads the timeline into speedscope, installed with npm (a
# NodeSource nodejs brings its own npm; Debian's is a package of its own).
command -v npm >/dev/null || TEST_PACKAGES+=(npm)
"$ROOT/scripts/setup.sh" "${TEST_PACKAGES[@]}"

# speedscope, pinned (check_speedscope.sh names the same version), in a cache
# directory of its own: nothing is installed system-wide.
SPEEDSCOPE_VERSION=1.25.0
SPEEDSCOPE_DIR="${FORKSCOPE_CACHE:-/var/cache/forkscope}/speedscope-$SPEEDSCOPE_VERSION"
if [[ ! -f $SPEEDSCOPE_DIR/node_modules/speedscope/dist/release/index.html ]]; then
  if ! mkdir -p "$SPEEDSCOPE_DIR" 2>/dev/null || [[ ! -w $SPEEDSCOPE_DIR ]]; then
    echo "forkscope: cannot write $SPEEDSCOPE_DIR; run this script as root or set FORKSCOPE_CACHE to a writable directory" >&2
    exit 3
  fi
  echo "forkscope: installing speedscope $SPEEDSCOPE_VERSION into $SPEEDSCOPE_DIR" >&2
  npm install --prefix "$SPEEDSCOPE_DIR" --ignore-scripts --no-audit --no-fund --loglevel=error \
    "speedscope@$SPEEDSCOPE_VERSION" >/dev/null
fi
