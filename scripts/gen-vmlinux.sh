#!/usr/bin/env bash
# Regenerates bpf/vmlinux.h from the running kernel's BTF. The header is vendored:
# CO-RE relocations make programs built against it load on other kernels.
set -euo pipefail
cd "$(dirname "$0")/.."
bpftool btf dump file /sys/kernel/btf/vmlinux format c > bpf/vmlinux.h.tmp
mv bpf/vmlinux.h.tmp bpf/vmlinux.h
echo "bpf/vmlinux.h regenerated from $(uname -r)"
