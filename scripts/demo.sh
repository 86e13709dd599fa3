#!/usr/bin/env bash
# The main job, end to end: installs what is missing, builds, starts a local
# fleet of N agents (default 20) on loopback and drives it with the real CLI:
# ping, run with --fold, health, a metrics scrape, a fleet spec applied, apps
# from a catalogue rolled out. The fleet stays up
# afterwards so you can keep going; scripts/fleet.sh down stops it.
# Usage: scripts/demo.sh [N]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
n=${1:-20}
herd=$repo/build/cmd/herd

show() {
  local shown="" a
  for a in "$@"; do
    if [[ $a =~ ^[A-Za-z0-9_./@=:,+-]+$ ]]; then shown+="$a "; else shown+="'$a' "; fi
  done
  printf '\n\033[1m$ %s\033[0m\n' "$shown"
  set +e
  "$@" </dev/null
  local rc=$?
  set -e
  printf '(exit code %d)\n' "$rc"
}

bash scripts/install-deps.sh
bash scripts/build.sh --no-tests >/dev/null
echo "demo: built $herd and $repo/build/cmd/herdd"

bash scripts/fleet.sh down >/dev/null
bash scripts/fleet.sh up "$n"
export HERD_INVENTORY=$repo/.fleet/inventory.yaml HERD_PKI_DIR=$repo/.fleet/pki
export PATH=$repo/build/cmd:$PATH

show herd inventory @web
show herd ping all
show herd run all --fold -- uname -sr
show herd run 'role=db' --shell 'echo "$(hostname) has $(nproc) CPUs"; exit 0'
show herd run 'node0[1-3]' -o json -- id -un
show herd health all --fold
first=$("$herd" -o json inventory node01 | sed -n 's/.*"metrics":"\([^"]*\)".*/\1/p')
printf '\n\033[1m$ curl -s http://%s/metrics | grep -E "^herd_(build_info|grpc_requests_total|exec_total|agent_resident)"\033[0m\n' "$first"
curl -s "http://$first/metrics" | grep -E '^herd_(build_info|grpc_requests_total|exec_total|agent_resident)'

# Provisioning: a fleet spec (docs/provisioning.md) checked, applied, applied
# again (nothing changes), then a hand edit found by herd drift and put back.
# The agents share this machine, so the spec's files are shared too: they
# hold no per-host text. The agents write as exec.run_as (herd-run).
prov=/tmp/herd-demo-provisioned
rm -rf "$prov" && mkdir -p "$prov" && chmod 0777 "$prov"
cat >.fleet/fleet.yaml <<SPEC
entries:
  - hosts: all
    labels: {managed-by: herd}
    directories:
      - {path: $prov/cache, mode: "0755"}
    files:
      - path: $prov/motd
        content: "managed by herd, on {{ facts.os }}\n"
        template: true
  - hosts: role=web
    files:
      - {path: $prov/web.conf, content: "listen 8080\nworkers 2\n", mode: "0644"}
    commands:
      - {name: stamp, run: [touch, $prov/stamp], creates: $prov/stamp}
SPEC
show herd --fold apply .fleet/fleet.yaml --check --diff
show herd --fold apply .fleet/fleet.yaml
show herd --fold apply .fleet/fleet.yaml
echo "workers 64" >"$prov/web.conf"
show herd drift .fleet/fleet.yaml 'node0[1-4]'
show herd --fold apply .fleet/fleet.yaml 'node0[1-4]' --diff

# Apps through the fleet's catalogue: the sample app (examples/notes), signed
# with the fleet's publisher key, added to the catalogue (.fleet/catalog,
# served by herd catalog serve), installed by name on every agent, which
# fetches and verifies it itself, and activated; rolled out to 1.1 with its
# data (a canary, then two batches), then a broken 1.2 whose canary reverts
# by itself: the rollout halts and no other host is touched. node01 is the
# canary; its notes listens on 18008 (scripts/fleet.sh: ports from 18000 + 8
# per agent).
notes_url=http://127.0.0.1:18008
catalog_url=$(<.fleet/catalog.url)
show bash examples/notes/build.sh .fleet/notes .fleet/publisher.key
show herd catalog add .fleet/catalog .fleet/notes/notes-1.0.herd --publisher .fleet/publisher.pub
show herd catalog add .fleet/catalog .fleet/notes/notes-1.1.herd
show herd catalog add .fleet/catalog .fleet/notes/notes-1.2.herd
show herd catalog show .fleet/catalog notes
show herd --fold app install all notes@1.0
show herd --fold app activate all notes 1.0
show curl -s -X POST --data 'water the plants' "$notes_url/notes"
show herd rollout notes@1.1 all --canary 1 --batch 50% --yes
show curl -s "$notes_url/version"
show curl -s "$notes_url/notes"
show herd rollout notes@1.2 all --yes
show herd apps node01
show curl -s "$notes_url/notes"
show herd logs node01 notes --tail 4
printf '\n\033[1m$ curl -s %smetrics | grep -E "^herd_catalog_(bundles|bytes)"\033[0m\n' "$catalog_url"
curl -s "${catalog_url}metrics" | grep -E '^herd_catalog_(bundles|bytes)'

cat <<MSG

demo: the fleet of $n agents is still running. Try:
  export HERD_INVENTORY=$HERD_INVENTORY HERD_PKI_DIR=$HERD_PKI_DIR PATH=$repo/build/cmd:\$PATH
  herd run @db~node03 -- uptime        herd facts all -o json
  herd targets all                     herd apps all --fold
  herd app rollback node02 notes --restore-data
  scripts/fleet.sh down   # stop every agent and its apps
MSG
