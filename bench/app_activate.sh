#!/usr/bin/env bash
# App activation benchmark, on one local agent (scripts/fleet.sh, mTLS) with
# the sample app (examples/notes): install and activation split into
# transfer, verification + extraction, sandbox start and first healthy
# probe; an upgrade (snapshot, stop, start); the sandbox's start cost against
# the same command started directly (build/bench/herd_bench_sandbox); and the
# agent's idle footprint with 5 apps supervised and probed. A benchmark, not
# a test: it prints figures and asserts nothing about them. Needs root.
#
#   bench/app_activate.sh [IDLE_SECONDS]    CPU is measured over this (default 60)
#
# Environment: HERD, HERDD (binaries).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
herd=${HERD:-$repo/build/cmd/herd}
export HERDD=${HERDD:-$repo/build/cmd/herdd}
idle=${1:-60}
[[ $idle =~ ^[0-9]+$ && $idle -ge 5 && $idle -le 3600 ]] || {
  echo "usage: bench/app_activate.sh [IDLE_SECONDS 5-3600]" >&2
  exit 1
}
work=$(mktemp -d)
chmod 0711 "$work"
export HERD_FLEET_DIR=$work/fleet
cleanup() {
  bash "$repo/scripts/fleet.sh" down >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
bash "$repo/scripts/fleet.sh" up 1 >/dev/null
export HERD_INVENTORY=$HERD_FLEET_DIR/inventory.yaml HERD_PKI_DIR=$HERD_FLEET_DIR/pki
pid=$(cat "$HERD_FLEET_DIR/node01/pid")
metrics=$("$herd" -o json inventory node01 | sed -n 's/.*"metrics":"\([^"]*\)".*/\1/p')

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" | head -1; }
device_seconds() {
  curl -s "http://$metrics/metrics" | awk '/^herd_app_install_duration_seconds_sum/ {print $2}'
}

HERD=$herd bash "$repo/examples/notes/build.sh" "$work/notes" "$HERD_FLEET_DIR/publisher.key" >/dev/null
size=$(stat -c %s "$work/notes/notes-1.0.herd")

echo "== install and activation of the sample app (notes 1.0, $size bytes) on one device"
before=$(device_seconds)
t=$(now)
"$herd" -q app install node01 "$work/notes/notes-1.0.herd" >/dev/null
install=$(since "$t")
device=$(awk -v a="$before" -v b="$(device_seconds)" 'BEGIN { printf "%.3f", b - a }')
t=$(now)
json=$("$herd" -q -o json app activate node01 notes 1.0)
activate=$(since "$t")
printf '  install, whole command          %7.3f s\n' "$install"
printf '    transfer and the rest          %7.3f s\n' "$(awk -v a="$install" -v b="$device" 'BEGIN { print a - b }')"
printf '    verification + extraction      %7.3f s   (device, herd_app_install_duration_seconds)\n' "$device"
printf '  activate, whole command         %7.3f s\n' "$activate"
printf '    sandbox start                  %7.3f s\n' "$(field start_ms <<<"$json" | awk '{print $1/1000}')"
printf '    start to first healthy probe   %7.3f s\n' "$(field first_healthy_ms <<<"$json" | awk '{print $1/1000}')"
printf '    then healthy before commit     2.000 s   (the app'"'"'s healthy_before_commit)\n'

"$herd" -q app install node01 "$work/notes/notes-1.1.herd" >/dev/null
json=$("$herd" -q -o json app activate node01 notes 1.1)
echo "== upgrade to 1.1 (data snapshot, stop the old, start the new)"
for f in snapshot_ms stop_ms start_ms first_healthy_ms duration_ms; do
  printf '  %-18s %7.3f s\n' "${f%_ms}" "$(field "$f" <<<"$json" | awk '{print $1/1000}')"
done

echo "== sandbox start against the same command started directly"
"$repo/build/bench/herd_bench_sandbox" 20 | sed 's/^/  /'
"$repo/build/bench/herd_bench_sandbox" 10 /usr/bin/python3 -c pass | sed 's/^/  /'

echo "== agent idle with 5 apps supervised and probed"
for i in 2 3 4 5; do
  mkdir -p "$work/n$i"
  sed "s/^name: notes/name: notes$i/" "$repo/examples/notes/1.0/app.yaml" >"$work/n$i/app.yaml"
  cp "$repo/examples/notes/server.py" "$work/n$i/"
  "$herd" app pack "$work/n$i" -o "$work/n$i.herd" >/dev/null
  "$herd" app sign "$work/n$i.herd" --key "$HERD_FLEET_DIR/publisher.key" >/dev/null
  "$herd" -q app install node01 "$work/n$i.herd" >/dev/null
  "$herd" -q app activate node01 "notes$i" 1.0 >/dev/null
done
sleep 12  # every app past its first liveness interval
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
t0=$(ticks)
sleep "$idle"
t1=$(ticks)
hz=$(getconf CLK_TCK)
rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
anon=$(awk '/^Anonymous/ {print $2}' "/proc/$pid/smaps_rollup")
threads=$(awk '/^Threads/ {print $2}' "/proc/$pid/status")
apps=$("$herd" -q -o json apps node01 | grep -o '"rss_bytes":[0-9]*' | awk -F: '{s += $2} END {print s}')
running=$("$herd" -q -o json apps node01 | grep -o '"state":"running"' | wc -l)
# The same right after those two commands: each is a new mTLS connection,
# whose handshake and gRPC code stay resident until the next install or
# activation releases them (docs/apps.md, "Supervision").
after=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
printf '  apps running                    %d\n' "$running"
printf '  herdd resident memory           %s MB   (of which anonymous %s MB)\n' "$(mb "$rss")" "$(mb "$anon")"
printf '    right after a herd command    %s MB\n' "$(mb "$after")"
printf '  herdd threads                   %d\n' "$threads"
printf '  herdd CPU over %ds              %.3f %% of a core (%d ticks)\n' "$idle" \
  "$(awk -v t=$((t1 - t0)) -v hz="$hz" -v s="$idle" 'BEGIN { print 100 * t / hz / s }')" $((t1 - t0))
printf '  the apps'"'"' own memory             %.1f MB (their cgroups, or main processes)\n' \
  "$(awk -v b="$apps" 'BEGIN { print b / 1048576 }')"
