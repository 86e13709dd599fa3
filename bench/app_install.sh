#!/usr/bin/env bash
# App install benchmark: `herd app install` of a bundle against `herd copy` of
# the same bytes to the same agent, in one run. A benchmark, not a test: it
# prints figures and asserts nothing about them.
#
#   bench/app_install.sh [MB]     payload size in MB (default 50), incompressible
#
# Environment: RUNS=5 (median reported), HERD, HERDD (binaries).
#
# One agent on 127.0.0.1 (scripts/fleet.sh, a private fleet directory, mTLS).
# Each install run uses a bundle of its own (a new sequence), so every run
# uploads, verifies signatures and digests, and extracts; the difference to
# the copy is the device's verification and extraction. Also measured: a
# re-install of a bundle already there (answered before any upload).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
herd=${HERD:-$repo/build/cmd/herd}
export HERDD=${HERDD:-$repo/build/cmd/herdd}
runs=${RUNS:-5}
mb=${1:-50}
[[ $mb =~ ^[0-9]+$ && $mb -ge 1 && $mb -le 4096 ]] || {
  echo "usage: bench/app_install.sh [MB 1-4096]" >&2
  exit 1
}
[[ $runs =~ ^[0-9]+$ && $runs -ge 1 && $runs -le 100 ]] || { echo "RUNS must be 1-100" >&2; exit 1; }

# shellcheck source=bench/lib.sh
source "$repo/bench/lib.sh"
bench_fleet 1

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.4f", b - a }'; }
calc() { awk "BEGIN { printf \"%.4f\", $1 }"; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "bench: packing $runs bundles of $mb MB" >&2
mkdir -p "$work/app"
head -c $((mb * 1000 * 1000)) /dev/urandom >"$work/app/data.bin"
echo 'sleep 1000' >"$work/app/run.sh"
for ((i = 1; i <= runs; i++)); do
  printf 'name: bench\nversion: "%d"\nsequence: %d\ncommand: [/bin/sh, run.sh]\n' "$i" "$i" \
    >"$work/app/app.yaml"
  "$herd" app pack "$work/app" -o "$work/b$i.herd" >/dev/null
  "$herd" app sign "$work/b$i.herd" --key "$HERD_FLEET_DIR/publisher.key" >/dev/null
done
size=$(stat -c %s "$work/b1.herd")

copy=() install=() again=()
for ((i = 1; i <= runs; i++)); do
  t=$(now)
  "$herd" -q copy all "$work/b$i.herd" "$dest/copied.herd" >/dev/null
  copy+=("$(since "$t")")
  t=$(now)
  "$herd" -q app install all "$work/b$i.herd" >/dev/null
  install+=("$(since "$t")")
  t=$(now)
  "$herd" -q app install all "$work/b$i.herd" >/dev/null
  again+=("$(since "$t")")
done
c=$(printf '%s\n' "${copy[@]}" | median)
n=$(printf '%s\n' "${install[@]}" | median)
a=$(printf '%s\n' "${again[@]}" | median)
printf 'bundle: %d bytes (%d MB payload, incompressible), median of %d runs\n' "$size" "$mb" "$runs"
printf '  herd copy (the same bytes)    %8.3f s\n' "$c"
printf '  herd app install              %8.3f s   %.2fx the copy (+%.3f s verify and extract)\n' \
  "$n" "$(calc "$n / $c")" "$(calc "$n - $c")"
printf '  install again (no-op)         %8.3f s\n' "$a"
