#!/usr/bin/env bash
# The local fleet script: up brings N agents and an inventory, down leaves no
# process behind. Driven with the real CLI.
set -euo pipefail
herd=$1
repo=$(cd "$(dirname "$0")/../.." && pwd)
export HERD_FLEET_DIR
HERD_FLEET_DIR=$(mktemp -d)
export HERDD=$2 HERD=$1
trap '"$repo/scripts/fleet.sh" down >/dev/null 2>&1 || true; rm -rf "$HERD_FLEET_DIR"' EXIT

"$repo/scripts/fleet.sh" up 4
pids=$(cat "$HERD_FLEET_DIR"/*/pid)
[[ $(wc -w <<<"$pids") -eq 4 ]] || { echo "FAIL: expected 4 pids"; exit 1; }
[[ $(stat -c %a "$HERD_FLEET_DIR/pki/ca.key") == 600 ]] || { echo "FAIL: ca.key not 0600"; exit 1; }
# Every agent was enrolled: its own key (0600) beside a fleet certificate, its token used up.
for d in "$HERD_FLEET_DIR"/node0*; do
  [[ $(stat -c %a "$d/state/tls/agent.key") == 600 ]] || { echo "FAIL: $d agent.key not 0600"; exit 1; }
  [[ -f $d/state/tls/ca.crt ]] || { echo "FAIL: $d not enrolled (no ca.crt)"; exit 1; }
  [[ ! -e $d/state/join-token ]] || { echo "FAIL: $d join token not burnt"; exit 1; }
done
[[ -z $(ls "$HERD_FLEET_DIR/pki" | grep -v '^\(ca\|admin\)\.\(crt\|key\)$' || true) ]] ||
  { echo "FAIL: agent keys in the operator's PKI folder: $(ls "$HERD_FLEET_DIR/pki")"; exit 1; }
[[ $("$herd" -i "$HERD_FLEET_DIR/inventory.yaml" inventory role=web | wc -l) -eq 2 ]] ||
  { echo "FAIL: enrolled labels missing from the inventory"; exit 1; }
out=$("$herd" -i "$HERD_FLEET_DIR/inventory.yaml" --pki-dir "$HERD_FLEET_DIR/pki" --no-progress run @web --fold -- echo hi 2>&1 </dev/null)
grep -q "node0\[1-2\],node05\|node\[01-02\] (2 hosts)" <<<"$out" || { echo "FAIL: fold output: $out"; exit 1; }
"$repo/scripts/fleet.sh" status | grep -q "4 agent(s) alive"
if "$repo/scripts/fleet.sh" up 2 2>/dev/null; then echo "FAIL: second up should refuse"; exit 1; fi
# A mux started on the fleet's credentials goes down with the fleet.
"$herd" --pki-dir "$HERD_FLEET_DIR/pki" mux start >/dev/null
mux=$(cat "$HERD_FLEET_DIR/pki/mux-admin.sock.pid")
kill -0 "$mux" || { echo "FAIL: mux not running"; exit 1; }
"$repo/scripts/fleet.sh" down
# Running: neither gone nor a zombie (an exited process whose parent, here
# init, has not yet collected it; kill -0 still finds those).
for p in $pids $mux; do
  state=$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null || true)
  if [[ -n $state && $state != Z && $state != X ]]; then
    echo "FAIL: process $p still running after down (state $state)"
    exit 1
  fi
done
echo "fleet test: 1 passed, 0 failed"
