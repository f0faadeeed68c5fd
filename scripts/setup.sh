#!/usr/bin/env bash
# Installs forkscope's build and test dependencies from Debian's packages (only
# what is missing), then configures and builds.  Sourced by run.sh and test.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${FORKSCOPE_BUILD:-$ROOT/build}"

PACKAGES=(build-essential cmake pkg-config clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev
          libcli11-dev libfmt-dev nlohmann-json3-dev libgtest-dev
          prometheus-cpp-dev  # serve: the exposition and its HTTP endpoint
          prometheus  # serve's runtime tests: the real server and promtool scrape it
          qemu-system-x86 busybox-static cpio kmod  # these four: the kernel lane (scripts/qemu-lab.sh)
          chromium  # the browser lane: report.html rendered headless
          stress-ng libclang-rt-14-dev  # fork storms for the runtime lane; libFuzzer for the fuzz lane
          procps)  # pgrep: the trace tests check that no traced command is left running

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "forkscope: missing Debian packages: ${missing[*]}; run this script as root (or sudo apt-get install them)" >&2
    exit 3
  fi
  echo "forkscope: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # DPkg::Lock::Timeout: wait for another apt run instead of failing on its lock.
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo ${FORKSCOPE_CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
