#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (build-fuzz/) and runs each for a
# bounded time on seeds made here: the app manifest parser and the bundle
# reader. Exits non-zero on any crash, leak, timeout or failed check; the
# input that did it is left in build-fuzz/findings/.
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 20)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=${1:-20}
[[ $seconds =~ ^[0-9]+$ ]] || { echo "fuzz: SECONDS must be a number" >&2; exit 1; }
out=$repo/build-fuzz
CC=clang CXX=clang++ cmake -S "$repo" -B "$out" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DHERD_FUZZ=ON -DHERD_BUILD_TESTS=OFF -DHERD_STATIC_STACK=OFF >/dev/null
cmake --build "$out" --target manifest_fuzz bundle_fuzz -- -j2 >/dev/null

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/manifest" "$work/bundle" "$work/app" "$out/findings"
cp "$repo"/tests/fuzz/corpus/manifest/* "$work/manifest/" 2>/dev/null || true
# A real bundle and its manifest as seeds, made with the CLI if it is built.
herd=$repo/build/cmd/herd
if [[ -x $herd ]]; then
  printf 'name: seed\nversion: "1"\nsequence: 1\ncommand: [./run]\n' >"$work/app/app.yaml"
  printf '#!/bin/sh\n' >"$work/app/run"
  "$herd" app pack "$work/app" -o "$work/bundle/seed.herd" >/dev/null
  "$herd" app inspect "$work/bundle/seed.herd" --manifest-out "$work/manifest/seed.json" >/dev/null
  cp "$work/app/app.yaml" "$work/manifest/seed.yaml"
fi
for target in manifest bundle; do
  echo "fuzz: ${target}_fuzz for ${seconds} s"
  "$out/tests/fuzz/${target}_fuzz" -max_total_time="$seconds" -max_len=65536 -timeout=10 \
    -rss_limit_mb=1024 -print_final_stats=1 -artifact_prefix="$out/findings/${target}-" \
    "$work/$target" 2>"$work/$target.log" ||
    { tail -40 "$work/$target.log" >&2; echo "fuzz: ${target}_fuzz failed" >&2; exit 1; }
  grep -E "stat::number_of_executed_units" "$work/$target.log" | sed 's/^/fuzz:   /'
done
echo "fuzz: both targets ran ${seconds} s without a finding"
