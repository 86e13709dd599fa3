#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: format and layering
# checks, unit, integration (real agents, real CLI, real Prometheus), a bounded
# libFuzzer run of the app readers, then the same suites under
# AddressSanitizer + UndefinedBehaviorSanitizer. Exits non-zero on any
# failure. Usage: scripts/test.sh [--no-asan]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
asan=1
[[ ${1:-} == --no-asan ]] && asan=0

step() { printf '\n==> %s\n' "$*"; }

step "dependencies"
bash scripts/install-deps.sh

step "format check"
bash scripts/check-format.sh

step "layering check"
bash scripts/check-layers.sh

step "build"
bash scripts/build.sh

step "tests"
# Integration tests spawn agents; run two at a time on this 2-core machine.
(cd build && ctest --output-on-failure -j 2)

step "fuzz the app manifest and bundle readers (libFuzzer, 20 s each)"
bash scripts/fuzz.sh 20

if ((asan)); then
  step "build with ASan + UBSan"
  bash scripts/build.sh --asan
  step "tests with ASan + UBSan"
  export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  (cd build-asan && ctest --output-on-failure -j 2 -LE config)
fi
step "all tests passed"
