#!/usr/bin/env bash
# Local fleet: N herdd agents on loopback, each with its own state directory,
# and the matching inventory. Used by the demo, the tests and the benchmarks.
#
#   scripts/fleet.sh up N [--plaintext]
#                              start N agents and enrol each with 'herd enroll' (its own
#                              key and join token, a fleet CA in DIR/pki, identity admin),
#                              which writes DIR/inventory.yaml; --plaintext: no TLS.
#                              Every agent trusts the app publisher key DIR/publisher.pub
#                              (sign bundles with DIR/publisher.key); agent N's apps get
#                              uids 61000+8N.. and ports 18000+8N.. (DIR/nodeNN/agent.yaml),
#                              their folders in DIR/nodeNN/state-apps, or below /var/tmp
#                              when DIR is out of the apps' reach (in /root, say).
#                              A catalogue DIR/catalog (key DIR/catalog.key) is served by
#                              'herd catalog serve' on a loopback port (DIR/catalog.url),
#                              and every agent installs from it (apps.catalogs)
#   scripts/fleet.sh down      stop every agent of DIR and any 'herd mux' serving DIR/pki
#                              (TERM, then KILL), verify none is left
#   scripts/fleet.sh status    how many agents of DIR are alive
#
# Environment: HERD_FLEET_DIR (default: <repo>/.fleet), HERDD (agent binary,
# default <repo>/build/cmd/herdd), HERD (CLI, default <repo>/build/cmd/herd).
# Ports are picked by the kernel (127.0.0.1:0) and read back from each agent's
# ready file; nothing is guessed.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${HERD_FLEET_DIR:-$repo/.fleet}
herdd=${HERDD:-$repo/build/cmd/herdd}
herd=${HERD:-$repo/build/cmd/herd}

usage() {
  sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

alive_pids() {
  [[ -d $dir ]] || return 0
  local f pid
  for f in "$dir"/*/pid; do
    [[ -f $f ]] || continue
    pid=$(<"$f")
    if kill -0 "$pid" 2>/dev/null && grep -q herdd "/proc/$pid/comm" 2>/dev/null; then
      echo "$pid"
    fi
  done
}

# Only a folder this script made (it holds .herd-fleet) is ever removed.
# The first folder of PATH's ancestors (itself included) that other users
# may not pass (no o+x), or nothing.
closed_ancestor() {
  local cur="" part
  local -a parts
  IFS=/ read -r -a parts <<<"$1"
  for part in "${parts[@]}"; do
    [[ -z $part ]] && continue
    cur+="/$part"
    [[ -d $cur ]] || return 0
    if (((8#$(stat -c %a "$cur") & 1) == 0)); then
      echo "$cur"
      return 0
    fi
  done
}

# Where the agents' apps folders go: beside their state (DIR/nodeNN/state-apps)
# when apps' uids can reach DIR, else below /var/tmp (DIR in /root, say),
# recorded in DIR/apps-dir.
apps_base() {
  if [[ -f $dir/apps-dir ]]; then
    cat "$dir/apps-dir"
  elif [[ -n $(closed_ancestor "$dir") ]]; then
    echo "/var/tmp/herd-fleet-apps-$(printf '%s' "$dir" | md5sum | cut -c1-12)"
  fi
}

remove_fleet_dir() {
  [[ -e $dir ]] || return 0
  if [[ -d $dir && -z $(ls -A "$dir") ]]; then
    rmdir "$dir"
    return 0
  fi
  if [[ ! -f $dir/.herd-fleet ]]; then
    echo "fleet: $dir was not made by fleet.sh (no .herd-fleet marker); not removing it" >&2
    exit 1
  fi
  rm -rf "$dir"
}

# herd mux processes serving this fleet's credentials (DIR/pki/mux-*.sock.pid).
# The fleet's catalogue server (herd catalog serve), if it runs.
catalog_pid() {
  [[ -f $dir/catalog.pid ]] || return 0
  local pid
  pid=$(<"$dir/catalog.pid")
  if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'herd.* catalog serve'; then
    echo "$pid"
  fi
}

mux_pids() {
  [[ -d $dir/pki ]] || return 0
  local f pid
  for f in "$dir"/pki/mux-*.sock.pid; do
    [[ -f $f ]] || continue
    pid=$(<"$f")
    if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
      tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'herd.* mux'; then
      echo "$pid"
    fi
  done
}

# Those of the given pids that still run: a process that is exiting or has
# exited (a zombie waiting for its parent) no longer runs, though its pid is
# still there.
running() {
  local pid state
  for pid in "$@"; do
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || continue
    [[ -n $state && $state != Z && $state != X ]] && echo "$pid"
  done
  return 0
}

cmd_down() {
  # Who they are is checked once, here; afterwards only whether they run.
  local -a targets
  read -r -a targets <<<"$(mux_pids | tr '\n' ' ') $(catalog_pid) $(alive_pids | tr '\n' ' ')"
  local pids
  if ((${#targets[@]})); then
    kill -TERM "${targets[@]}" 2>/dev/null || true
    local i
    for ((i = 0; i < 100; i++)); do   # up to 10 s for a clean stop
      pids=$(running "${targets[@]}")
      [[ -z $pids ]] && break
      sleep 0.1
    done
    if [[ -n $pids ]]; then
      echo "fleet: $(wc -w <<<"$pids") process(es) ignored SIGTERM; sending SIGKILL" >&2
      # shellcheck disable=SC2086
      kill -KILL $pids 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do
        pids=$(running "${targets[@]}")
        [[ -z $pids ]] && break
        sleep 0.1
      done
    fi
    if [[ -n $pids ]]; then
      echo "fleet: still running after SIGKILL: $pids" >&2
      exit 1
    fi
  fi
  # Apps outlive their agent by design (docs/apps.md): the fleet's go with it.
  local uids
  local base
  base=$(apps_base)
  uids=$( (cat "$dir"/*/state-apps/uids ${base:+"$base"/*/uids} 2>/dev/null || true) |
    awk '{print $2}' | sort -u | paste -sd, -)
  if [[ -n $uids ]]; then
    pkill -KILL -U "$uids" 2>/dev/null || true
    local j
    for ((j = 0; j < 50; j++)); do   # up to 5 s
      pgrep -U "$uids" >/dev/null || break
      sleep 0.1
    done
    local u   # and their (now empty) cgroups, named APP.UID
    for u in ${uids//,/ }; do
      rmdir /sys/fs/cgroup/*/herd-apps/*."$u" /sys/fs/cgroup/herd-apps/*."$u" 2>/dev/null || true
    done
  fi
  [[ -n $base && $base == /var/tmp/herd-fleet-apps-* ]] && rm -rf "$base"
  remove_fleet_dir
  echo "fleet: down (no agents left in $dir)"
}

cmd_up() {
  local n=${1:-} plaintext=0
  [[ ${2:-} == --plaintext ]] && plaintext=1
  [[ $n =~ ^[0-9]+$ && $n -ge 1 ]] || { echo "fleet: up needs a count, e.g. 'up 20'" >&2; exit 1; }
  [[ -x $herdd && -x $herd ]] || { echo "fleet: $herdd or $herd not built (run scripts/build.sh)" >&2; exit 1; }
  if [[ -n $(alive_pids) ]]; then
    echo "fleet: agents already running in $dir; 'scripts/fleet.sh down' first" >&2
    exit 1
  fi
  if [[ -e $dir && ! -f $dir/.herd-fleet && -n $(ls -A "$dir" 2>/dev/null) ]]; then
    echo "fleet: $dir exists and was not made by fleet.sh; choose another HERD_FLEET_DIR" >&2
    exit 1
  fi
  remove_fleet_dir
  mkdir -p "$dir"
  touch "$dir/.herd-fleet"
  local width=${#n}
  ((width < 2)) && width=2
  local roles=(web web db cache) zones=(a b)
  local i name
  local -a tls=()
  if ((plaintext)); then
    tls=(--plaintext)
  else
    "$herd" --pki-dir "$dir/pki" ca init --name "herd local fleet CA" >/dev/null
    "$herd" --pki-dir "$dir/pki" cert issue admin --role admin >/dev/null
  fi
  # The fleet's app publisher: every agent trusts DIR/publisher.pub, so
  # bundles signed with DIR/publisher.key install (docs/apps.md).
  "$herd" app keygen publisher --dir "$dir" >/dev/null
  local base
  base=$(apps_base)
  if [[ -n $base ]]; then
    echo "$base" >"$dir/apps-dir"
    mkdir -p "$base"
    chmod 0711 "$base"
  fi
  # The fleet's catalogue, served before the agents start: their config names it.
  "$herd" catalog init "$dir/catalog" >/dev/null
  "$herd" -o json catalog serve "$dir/catalog" --listen 127.0.0.1:0 >"$dir/catalog.log" 2>&1 &
  echo $! >"$dir/catalog.pid"
  local url="" k
  for ((k = 0; k < 100; k++)); do   # up to 10 s
    url=$(sed -n 's/.*"url":"\([^"]*\)".*/\1/p' "$dir/catalog.log")
    [[ -n $url ]] && break
    sleep 0.1
  done
  [[ -n $url ]] || { echo "fleet: the catalogue server did not start; see $dir/catalog.log" >&2; exit 1; }
  echo "$url" >"$dir/catalog.url"
  printf '# Written by scripts/fleet.sh: what every agent of the local fleet shares.\napps:\n  publishers: [%s]\n  catalogs:\n    - {url: "%s", key: %s}\n' \
    "$dir/publisher.pub" "$url" "$dir/catalog/catalog.pub" >"$dir/agent.yaml"
  for ((i = 1; i <= n; i++)); do
    printf -v name "node%0${width}d" "$i"
    mkdir -p "$dir/$name"
    # Without TLS files the agent starts in enrolment mode: it makes its own
    # key and join token in its state dir.
    # Apps' uids and ports of its own: the agents share one machine here.
    { cat "$dir/agent.yaml"; printf '  uid_base: %d\n  uid_count: 8\n  port_base: %d\n  port_count: 8\n' \
      $((61000 + i * 8)) $((18000 + i * 8)); [[ -z $base ]] || echo "  dir: $base/$name"; } \
      >"$dir/$name/agent.yaml"
    "$herdd" --config "$dir/$name/agent.yaml" "${tls[@]}" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
      --state-dir "$dir/$name/state" --ready-file "$dir/$name/ready" --name "$name" \
      --label "role=${roles[$(((i - 1) % 4))]}" --label "zone=${zones[$(((i - 1) % 2))]}" \
      >"$dir/$name/log" 2>&1 &
    echo $! >"$dir/$name/pid"
  done
  # Wait for every ready file, bounded: 30 s plus 50 ms per agent.
  local deadline=$((SECONDS + 30 + n / 20)) ready=0
  while ((SECONDS < deadline)); do
    ready=$(find "$dir" -mindepth 2 -maxdepth 2 -name ready | wc -l)
    ((ready == n)) && break
    sleep 0.1
  done
  if ((ready != n)); then
    echo "fleet: only $ready of $n agents became ready; see $dir/*/log" >&2
    exit 1
  fi
  local groups='groups:
  web: {selector: "role=web"}
  db: {selector: "role=db"}
  cache: {selector: "role=cache"}
  zone-a: {selector: "zone=a"}'
  if ((plaintext)); then
    {
      echo "# Local fleet of $n agents written by scripts/fleet.sh; removed by 'fleet.sh down'."
      echo "hosts:"
      for ((i = 1; i <= n; i++)); do
        printf -v name "node%0${width}d" "$i"
        echo "  - name: $name"
        echo "    address: $(sed -n 's/^grpc=//p' "$dir/$name/ready")"
        echo "    metrics: $(sed -n 's/^metrics=//p' "$dir/$name/ready")"
        echo "    labels: {role: ${roles[$(((i - 1) % 4))]}, zone: ${zones[$(((i - 1) % 2))]}}"
      done
      echo "$groups"
    } >"$dir/inventory.yaml.tmp"
    mv "$dir/inventory.yaml.tmp" "$dir/inventory.yaml"
  else
    # Enrol every agent the way an operator would; herd enroll adds each to
    # the inventory (two at a time: it locks the file for its edit).
    printf '# Local fleet of %s agents enrolled by scripts/fleet.sh; removed by '"'"'fleet.sh down'"'"'.\nhosts: []\n%s\n' \
      "$n" "$groups" >"$dir/inventory.yaml"
    for ((i = 1; i <= n; i++)); do
      printf -v name "node%0${width}d" "$i"
      printf '%s %s %s %s role=%s,zone=%s\n' "$name" \
        "$(sed -n 's/^grpc=//p' "$dir/$name/ready")" "$(sed -n 's/^metrics=//p' "$dir/$name/ready")" \
        "$dir/$name/state/join-token" "${roles[$(((i - 1) % 4))]}" "${zones[$(((i - 1) % 2))]}"
    done >"$dir/enrol.list"
    if ! xargs -P 2 -L 1 bash -c 'exec "$0" --pki-dir "$1" -i "$2" enroll "$4" --name "$3" \
          --metrics "$5" --token-file "$6" --labels "$7" --no-wait >/dev/null' \
          "$herd" "$dir/pki" "$dir/inventory.yaml" <"$dir/enrol.list"; then
      echo "fleet: enrolment failed for some agent (see above)" >&2
      exit 1
    fi
    rm -f "$dir/enrol.list"
    # Each agent restarts its listener with its fleet certificate after enrolment.
    local answered=0
    deadline=$((SECONDS + 30 + n / 20))
    while ((SECONDS < deadline)); do
      answered=$("$herd" --pki-dir "$dir/pki" -i "$dir/inventory.yaml" -q -o json ping all 2>/dev/null |
        grep -c '"outcome":"ok"' || true)
      ((answered == n)) && break
      sleep 0.5
    done
    if ((answered != n)); then
      echo "fleet: only $answered of $n agents answer mTLS after enrolment; see $dir/*/log" >&2
      exit 1
    fi
  fi
  if ((plaintext)); then
    echo "fleet: $n agents up (plain text: use herd --plaintext); inventory: $dir/inventory.yaml"
    echo "       export HERD_INVENTORY=$dir/inventory.yaml"
  else
    echo "fleet: $n agents up (mTLS); inventory: $dir/inventory.yaml, credentials: $dir/pki"
    echo "       export HERD_INVENTORY=$dir/inventory.yaml HERD_PKI_DIR=$dir/pki"
  fi
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) cmd_down ;;
  status)
    echo "fleet: $(alive_pids | wc -l) agent(s) alive in $dir" ;;
  -h | --help | help) usage 0 ;;
  *) usage 1 ;;
esac
