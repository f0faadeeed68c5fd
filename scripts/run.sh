#!/usr/bin/env bash
# Quick start: install what building needs (setup.sh; none of the test lanes'
# packages), build, and run `forkscope run` (extra arguments are passed on, e.g.
# scripts/run.sh --modes fork,pthread).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
exec "${FORKSCOPE_BUILD:-$ROOT/build}/forkscope" run "$@"
