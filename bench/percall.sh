#!/usr/bin/env bash
# CPU per call: what one `run all -- true` and one `ping all` cost the agents
# and the mux, per host, on a local fleet of N enrolled agents through the mux.
# A benchmark, not a test: it prints figures and asserts nothing.
#
#   bash bench/percall.sh [N] [RUNS]     (defaults: N=200, RUNS=10)
#
# Agent and mux CPU are utime + stime of every thread (fields 14 and 15 of
# /proc/PID/stat) before and after RUNS commands, divided by N x RUNS; the
# commands' own processes (`true`) are not in them. Context switches per call
# come from `perf stat -e context-switches` on the agents when perf is
# installed (they then include the `true` processes).
# Environment: HERD, HERDD (binaries; default build/cmd/herd, build/cmd/herdd).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-200}
runs=${2:-10}
[[ $n =~ ^[0-9]+$ && $runs =~ ^[0-9]+$ && $n -ge 1 && $runs -ge 1 ]] || {
  echo "usage: bench/percall.sh [N] [RUNS]" >&2
  exit 1
}
herd=${HERD:-$repo/build/cmd/herd}
export HERDD=${HERDD:-$repo/build/cmd/herdd}
for bin in "$herd" "$HERDD"; do
  [[ -x $bin ]] || { echo "percall: $bin is missing: run scripts/build.sh first" >&2; exit 1; }
done
HERD_FLEET_DIR=$(mktemp -d /tmp/herd-percall.XXXXXX)
export HERD_FLEET_DIR
rmdir "$HERD_FLEET_DIR"  # fleet.sh creates it
inv=$HERD_FLEET_DIR/inventory.yaml
pki=$HERD_FLEET_DIR/pki
cleanup() {
  bash "$repo/scripts/fleet.sh" down >/dev/null 2>&1 || true
  rm -rf "$HERD_FLEET_DIR"
}
trap cleanup EXIT

echo "[percall] starting $n agents" >&2
bash "$repo/scripts/fleet.sh" up "$n" >/dev/null
"$herd" -i "$inv" --pki-dir "$pki" mux start --idle 10m >/dev/null
"$herd" -i "$inv" --pki-dir "$pki" -q --no-progress run -n all -- true >/dev/null  # warm-up

mapfile -t agents < <(awk -F= '/^pid=/ {print $2}' "$HERD_FLEET_DIR"/*/ready 2>/dev/null)
if ((${#agents[@]} != n)); then
  echo "percall: found ${#agents[@]} agent pids for $n agents" >&2
  exit 1
fi
mux=$(cat "$pki"/mux-*.sock.pid)
tck=$(getconf CLK_TCK)
ticks() {
  local sum=0 pid f
  for pid in "$@"; do
    read -r -a f <"/proc/$pid/stat"
    sum=$((sum + f[13] + f[14]))
  done
  echo "$sum"
}

measure() {  # LABEL HERD-ARGS...
  local label=$1
  shift
  local a0 m0 a1 m1 t0 t1 cs="" i stat
  stat=$(mktemp)
  a0=$(ticks "${agents[@]}")
  m0=$(ticks "$mux")
  t0=$(date +%s.%N)
  local loop="for ((i = 0; i < $runs; i++)); do \"$herd\" -i \"$inv\" --pki-dir \"$pki\" -q --no-progress $* </dev/null >/dev/null; done"
  if command -v perf >/dev/null && perf stat -e context-switches true >/dev/null 2>&1; then
    perf stat -x, -e context-switches -p "$(IFS=,; echo "${agents[*]}")" -o "$stat" -- bash -c "$loop"
    cs=$(awk -F, '/context-switches/ {print $1}' "$stat")
  else
    bash -c "$loop"
  fi
  t1=$(date +%s.%N)
  a1=$(ticks "${agents[@]}")
  m1=$(ticks "$mux")
  rm -f "$stat"
  awk -v l="$label" -v a=$((a1 - a0)) -v m=$((m1 - m0)) -v tck="$tck" -v n="$n" -v r="$runs" \
    -v t0="$t0" -v t1="$t1" -v cs="$cs" 'BEGIN {
      printf "| %s | %.3f | %.3f | %s | %.3f |\n", l, a / tck * 1000 / (n * r),
        m / tck * 1000 / (n * r), cs == "" ? "-" : sprintf("%.1f", cs / (n * r)), (t1 - t0) / r }'
}

echo "N=$n, $runs commands each, through the mux ($("$herd" --version))"
echo
echo "| command | agent CPU per host (ms) | mux CPU per host (ms) | agent context switches per host | wall per command (s) |"
echo "|---|---:|---:|---:|---:|"
measure "run all -- true" run all -- true
measure "ping all" ping all
