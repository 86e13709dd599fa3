#!/usr/bin/env bash
# Rollout benchmark: a 50 MB bundle (the sample app with 50 MB of random
# bytes beside it) rolled to N local agents (scripts/fleet.sh, mTLS; default
# 100), a canary then batches of 25%: wall time, bytes over loopback, the
# CLI's peak RSS, each wave's time to healthy; then the same
# rollout again once every agent holds the digest (rolled back first, so
# each activates again but receives nothing); and `herd copy` of the same
# bytes to every agent, the transfer's floor; then a rollout of another
# such bundle by name through the fleet's catalogue (each agent fetches it
# from `herd catalog serve`): what the catalogue served, and again once
# every agent holds it. The baseline for peer-to-peer
# distribution between agents. A benchmark, not a test: it prints figures
# and asserts nothing about them. Needs root (apps run as their own uids).
#
#   bench/rollout.sh [N] [MB]      agents (default 100, 1-500), payload MB (default 50)
#
# Environment: HERD, HERDD (binaries).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
herd=${HERD:-$repo/build/cmd/herd}
export HERDD=${HERDD:-$repo/build/cmd/herdd}
n=${1:-100}
mb=${2:-50}
[[ $n =~ ^[0-9]+$ && $n -ge 1 && $n -le 500 && $mb =~ ^[0-9]+$ && $mb -ge 1 && $mb -le 2048 ]] || {
  echo "usage: bench/rollout.sh [N 1-500] [MB 1-2048]" >&2
  exit 1
}
echo "== $n agents (scripts/fleet.sh up $n)"
# shellcheck source=bench/lib.sh
source "$repo/bench/lib.sh"
bench_fleet "$n"

HERD=$herd bash "$repo/examples/notes/build.sh" "$work/notes" "$HERD_FLEET_DIR/publisher.key" >/dev/null
big=$work/big
mkdir -p "$big"
cp "$repo/examples/notes/1.1/app.yaml" "$repo/examples/notes/server.py" "$big/"
head -c "$((mb * 1024 * 1024))" /dev/urandom >"$big/blob.bin"
"$herd" app pack "$big" -o "$work/notes-big.herd" >/dev/null
"$herd" app sign "$work/notes-big.herd" --key "$HERD_FLEET_DIR/publisher.key" >/dev/null
size=$(stat -c %s "$work/notes-big.herd")
"$herd" -q app install all "$work/notes/notes-1.0.herd" >/dev/null
"$herd" -q app activate all notes 1.0 >/dev/null

# Runs herd ARGS in the background; prints "SECONDS LOOPBACK_BYTES PEAK_RSS_KB":
# the bytes are what crossed the loopback interface meanwhile (the upload,
# TLS and every reply; the fleet is the only traffic), the peak RSS is read
# from herd's /proc entry every 50 ms until it ends (at most an hour).
measure() {
  local out=$1
  shift
  local t0 p rss=0 i=0 v lo0
  lo0=$(cat /sys/class/net/lo/statistics/tx_bytes)
  t0=$(date +%s.%N)
  "$herd" "$@" >"$out" 2>/dev/null &
  p=$!
  while [[ -e /proc/$p/status && $i -lt 72000 ]]; do
    v=$(awk '/^VmHWM/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
    [[ -n $v ]] && rss=$v
    sleep 0.05
    i=$((i + 1))
  done
  wait "$p" || true
  awk -v a="$t0" -v b="$(date +%s.%N)" -v rss="$rss" -v lo0="$lo0" \
    -v lo1="$(cat /sys/class/net/lo/statistics/tx_bytes)" \
    'BEGIN { printf "%.2f %.0f %d\n", b - a, lo1 - lo0, rss }'
}

# Each wave's time to healthy, from the JSON events: from its start to its
# last host_updated.
waves() {
  python3 - "$1" <<'PY'
import json, sys
start, last, sizes = {}, {}, {}
wave = 0
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e["event"] == "wave_started":
        wave = e["wave"]; start[wave] = e["elapsed_ms"]; sizes[wave] = len(e["hosts"])
    elif e["event"] == "host_updated":
        last[wave] = e["elapsed_ms"]
    elif e["event"] == "finished":
        print(f"    outcome {e['outcome']}: {e['updated']} updated, {e['failed']} failed")
for w in sorted(start):
    print(f"    wave {w} ({sizes[w]} hosts): healthy after {(last.get(w, start[w]) - start[w]) / 1000:.2f} s")
PY
}

report() {
  local label=$1 figures=$2
  read -r secs io rss <<<"$figures"
  printf '  %-36s %7.2f s, loopback %8.1f MB (%.2f x bundle x hosts), CLI peak RSS %.1f MB\n' \
    "$label" "$secs" "$(awk -v b="$io" 'BEGIN { print b / 1048576 }')" \
    "$(awk -v b="$io" -v s="$size" -v n="$n" 'BEGIN { print b / (s * n) }')" \
    "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')"
}

echo "== rollout of a $((size / 1048576)) MB bundle, canary 1, batches of 25%"
r1=$(measure "$work/first.jsonl" -o json rollout "$work/notes-big.herd" all --canary 1 --batch 25% --yes)
report "first (every host receives it)" "$r1"
waves "$work/first.jsonl"
"$herd" -q app rollback all notes --restore-data >/dev/null
r2=$(measure "$work/again.jsonl" -o json rollout "$work/notes-big.herd" all --canary 1 --batch 25% --yes)
report "again (every host holds the digest)" "$r2"
waves "$work/again.jsonl"
echo "== the same bytes with herd copy to every host (the transfer's floor)"
r3=$(measure "$work/copy.txt" -q copy all "$big/blob.bin" "$dest/copied.bin")
report "herd copy" "$r3"

echo "== through the fleet's catalogue: another $((size / 1048576)) MB bundle, rolled out by name"
sed -e 's/^version: .*/version: "1.3"/' -e 's/^sequence: .*/sequence: 4/' \
  "$repo/examples/notes/1.1/app.yaml" >"$big/app.yaml"
head -c "$((mb * 1024 * 1024))" /dev/urandom >"$big/blob.bin"
"$herd" app pack "$big" -o "$work/notes-big2.herd" >/dev/null
"$herd" app sign "$work/notes-big2.herd" --key "$HERD_FLEET_DIR/publisher.key" >/dev/null
"$herd" catalog add "$HERD_FLEET_DIR/catalog" "$work/notes-big2.herd" \
  --publisher "$HERD_FLEET_DIR/publisher.pub" >/dev/null
catalog_url=$(<"$HERD_FLEET_DIR/catalog.url")
served() { curl -s "${catalog_url}metrics" | awk '/^herd_catalog_bytes_served_total\{file="bundle"\}/ {print $2}'; }
served_report() {
  awk -v a="$1" -v b="$2" -v s="$size" -v n="$n" \
    'BEGIN { printf "    the catalogue served %.1f MB of bundles (%.2f x bundle x hosts)\n", (b - a) / 1048576, (b - a) / (s * n) }'
}
s0=$(served); s0=${s0:-0}
r4=$(measure "$work/catalog.jsonl" -o json rollout notes@1.3 all --canary 1 --batch 25% --yes)
report "by name (every host fetches it)" "$r4"
s1=$(served)
served_report "$s0" "$s1"
waves "$work/catalog.jsonl"
"$herd" -q app rollback all notes --restore-data >/dev/null
r5=$(measure "$work/catalog-again.jsonl" -o json rollout notes@1.3 all --canary 1 --batch 25% --yes)
report "by name again (every host holds it)" "$r5"
served_report "$s1" "$(served)"
waves "$work/catalog-again.jsonl"
