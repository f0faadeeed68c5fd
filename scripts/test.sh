#!/usr/bin/env bash
# Every test lane: install what is missing, build, then the unit lane (no root)
# and the runtime lane (root, real BPF on this kernel), then the kernel lane
# (Debian's stock kernel under QEMU: fentry and kprobes, scripts/qemu-lab.sh) and
# the browser lane (report.html in headless Chromium).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${FORKSCOPE_BUILD:-$ROOT/build}"
"$ROOT/scripts/setup.sh"
cd "$BUILD"
ctest --output-on-failure -L "unit|runtime|browser|kernel"
