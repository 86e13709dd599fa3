#!/usr/bin/env bash
# Configures and builds herd. Usage: scripts/build.sh [--asan] [--no-tests]
#   default     build/       (RelWithDebInfo, warnings as errors)
#   --asan      build-asan/  (AddressSanitizer + UndefinedBehaviorSanitizer)
#   --no-tests  build only the herd and herdd binaries
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=$repo/build
args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DHERD_WERROR=ON -DHERD_BUILD_TESTS=ON)
targets=()
for a in "$@"; do
  case $a in
    --asan) dir=$repo/build-asan; args+=(-DHERD_SANITIZE=address,undefined -DCMAKE_BUILD_TYPE=Debug) ;;
    --no-tests) targets=(--target herd herdd) ;;
    *) echo "build.sh: unknown option $a" >&2; exit 1 ;;
  esac
done
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [[ ! -f $dir/CMakeCache.txt ]]; then
  cmake -S "$repo" -B "$dir" "${generator[@]}" "${args[@]}" >/dev/null
else
  cmake "$dir" "${args[@]}" >/dev/null
fi
# Two jobs at most: gRPC-heavy translation units need ~1 GB each.
cmake --build "$dir" -j "$(( $(nproc) < 2 ? 1 : 2 ))" "${targets[@]}"
echo "build.sh: built $dir"
