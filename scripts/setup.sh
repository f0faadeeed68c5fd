#!/usr/bin/env bash
# Installs what building forkscope needs from Debian's packages (only what is
# missing), then configures and builds.  Used by run.sh, the quick start.
# Usage: setup.sh [PACKAGE...]: further packages to install when missing
# (setup-tests.sh passes what the test lanes need).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${FORKSCOPE_BUILD:-$ROOT/build}"

PACKAGES=(build-essential cmake pkg-config clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev
          libcli11-dev libfmt-dev nlohmann-json3-dev
          prometheus-cpp-dev  # serve: the exposition and its HTTP endpoint
          libgtest-dev)  # the test binaries are part of the build
PACKAGES+=("$@")

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

# FORKSCOPE_CMAKE_ARGS: further cmake options, split at spaces.
read -ra cmake_args <<<"${FORKSCOPE_CMAKE_ARGS:-}"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${cmake_args[@]}" >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
