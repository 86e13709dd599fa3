#!/usr/bin/env bash
# Fan-out benchmark: herd against pdsh and ansible, side by side in one run.
# A benchmark, not a test: it prints figures and asserts nothing about them.
#
#   bench/fanout.sh [N ...]     fleet sizes to measure (default: 10 100 1000)
#   bench/fanout.sh --quick     N = 10 100 and RUNS=3
#
# Environment:
#   RUNS=5        runs per measurement; the median is reported (ansible: at most 3)
#   PEER_MAX=100  pdsh and ansible are measured only for N <= PEER_MAX
#   SSH_KEX=      KexAlgorithms for the peers' ssh (default: OpenSSH's own,
#                 sntrup761x25519 first; e.g. SSH_KEX=curve25519-sha256)
#   HERD, HERDD   binaries (default: build/cmd/herd, build/cmd/herdd)
#
# For each N it starts N herdd agents on 127.0.0.1 (scripts/fleet.sh, in a
# private temporary fleet directory) and measures:
#   herd run all -- true     wall time, median of RUNS
#   herd ping all            wall time, median of RUNS
#   true alone               N local /bin/true processes, posix_spawn, nproc at a
#                            time, no network: the job's own cost, the floor
#   CLI peak RSS             /usr/bin/time -f %M of 'herd run', max of 3 runs
#   agent idle RSS and PSS   VmRSS (median, max) and Pss (median) over all agents
#   agent idle CPU           utime+stime over a 10 s window, average per agent
# and, for N <= PEER_MAX, the peers against one private sshd on 127.0.0.1 with
# N host names h1..hN: pdsh -R ssh -f 32, ansible -m command and -m raw -f 50.
# Needs root (creates the unprivileged user 'herdbench' for the sshd peers).
# Everything it starts is stopped on exit, also on error or Ctrl-C.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
herd=${HERD:-$repo/build/cmd/herd}
# shellcheck source=bench/lib.sh
source "$repo/bench/lib.sh"
export HERDD=${HERDD:-$repo/build/cmd/herdd}

usage() {
  sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

runs=${RUNS:-5}
# TRANSPORT=mtls (default: the fleet CA, as users run it, a handshake per host
# per command), mux (mTLS through 'herd mux', connections kept warm between
# commands) or plaintext (agents with --plaintext): run them to measure what
# mTLS costs.
transport=${TRANSPORT:-mtls}
use_mux=0
case $transport in
  mtls) fleet_flags=(); herd_transport=(--no-mux) ;;
  mux) fleet_flags=(); herd_transport=(); use_mux=1 ;;
  plaintext) fleet_flags=(--plaintext); herd_transport=(--plaintext) ;;
  *) echo "bench: TRANSPORT must be mtls, mux or plaintext" >&2; exit 1 ;;
esac
peer_max=${PEER_MAX:-100}
sizes=()
for arg in "$@"; do
  case "$arg" in
    --quick) sizes=(10 100); runs=3 ;;
    -h | --help) usage 0 ;;
    *)
      [[ $arg =~ ^[0-9]+$ && $arg -ge 1 ]] || { echo "fanout: not a fleet size: $arg" >&2; usage 1; }
      sizes+=("$arg") ;;
  esac
done
((${#sizes[@]})) || sizes=(10 100 1000)
[[ $runs =~ ^[0-9]+$ && $runs -ge 1 ]] || { echo "fanout: RUNS must be >= 1" >&2; exit 1; }
[[ $peer_max =~ ^[0-9]+$ ]] || { echo "fanout: PEER_MAX must be a number" >&2; exit 1; }
ansible_runs=$((runs > 3 ? 3 : runs))

need_peers=0
for n in "${sizes[@]}"; do
  if ((n <= peer_max)); then need_peers=1; fi
done
if ((need_peers)) && [[ $(id -u) -ne 0 ]]; then
  echo "fanout: the pdsh/ansible peers need root (a user and an sshd are set up):" >&2
  echo "        sudo bash bench/fanout.sh ...   or   PEER_MAX=0 bash bench/fanout.sh ..." >&2
  exit 1
fi

bash "$repo/scripts/install-deps.sh" --bench
for bin in "$herd" "$HERDD"; do
  [[ -x $bin ]] || { echo "fanout: $bin not built (run scripts/build.sh)" >&2; exit 1; }
done

# The largest fleet needs a file descriptor per agent connection in the CLI.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

work=$(mktemp -d /tmp/herd-bench.XXXXXX)
chmod 711 "$work" # the sshd reads authorized_keys as herdbench
fleet=$work/fleet
ssh_dir=$work/ssh
sshd_pid=""

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -d $fleet/pki ]]; then
    "$herd" --pki-dir "$fleet/pki" mux stop >/dev/null 2>&1 || true
  fi
  if [[ -d $fleet ]]; then
    HERD_FLEET_DIR=$fleet bash "$repo/scripts/fleet.sh" down >/dev/null 2>&1 || true
  fi
  if [[ -n $sshd_pid ]] && kill -0 "$sshd_pid" 2>/dev/null; then
    kill -TERM "$sshd_pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 50; i++)); do kill -0 "$sshd_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$sshd_pid" 2>/dev/null || true
  fi
  # Per-connection sshd children of our sshd exit with their connections; make sure.
  if [[ -n $sshd_pid ]]; then
    local child
    for child in $(pgrep -P "$sshd_pid" || true); do kill -KILL "$child" 2>/dev/null || true; done
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '[bench] %s\n' "$*"; }

# median of the numbers on stdin
median() {
  sort -g | awk '{a[NR] = $1} END {
    if (NR == 0) { print "nan"; exit }
    if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# measure RUNS CMD...: runs CMD RUNS times; REPLY = median wall seconds, or
# "fail" when any run exits non-zero (the first error lines are shown).
measure() {
  local count=$1 i t0 t1 fails=0 times=""
  shift
  for ((i = 0; i < count; i++)); do
    t0=$(date +%s.%N)
    if "$@" >"$work/out" 2>"$work/err"; then
      t1=$(date +%s.%N)
      times+="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')"$'\n'
    else
      local rc=$?
      fails=$((fails + 1))
      say "  run $((i + 1)) failed (exit $rc): $(cat "$work/err" "$work/out" | head -c 300 | tr '\n' ' ')"
    fi
  done
  if ((fails)); then REPLY=fail; else REPLY=$(printf '%s' "$times" | median); fi
}

# seconds with 3 decimals; KB as MB with 1 decimal; "-" (not measured) and "fail" pass through
fmt_s() { awk -v v="$1" 'BEGIN { if (v ~ /^[0-9.]+$/) printf "%.3f", v; else printf "%s", v }'; }
# The job without any fan-out: N /bin/true processes started with posix_spawn
# (as herdd starts commands), as many at a time as there are CPUs. Prints the
# seconds it took.
true_alone() {
  python3 - "$1" <<'PY'
import os, sys, time
n, par = int(sys.argv[1]), os.cpu_count()
t0 = time.monotonic()
started = running = 0
while started < n or running:
    if started < n and running < par:
        os.posix_spawn("/bin/true", ["true"], os.environ)
        started += 1
        running += 1
    else:
        os.wait()
        running -= 1
print(f"{time.monotonic() - t0:.3f}")
PY
}

fmt_mb() { awk -v v="$1" 'BEGIN { if (v ~ /^[0-9.]+$/) printf "%.1f", v / 1024; else printf "%s", v }'; }

# ---------------------------------------------------------------- peers: sshd
setup_peers() {
  say "peers: setting up a private sshd on 127.0.0.1 for user herdbench"
  bench_sshd "$work" "$ssh_dir"
  say "peers: sshd pid $sshd_pid on 127.0.0.1:$ssh_port; smoke test at N=2"
  local what
  for what in pdsh ansible-command ansible-raw; do
    if ! peer_cmd "$what" 2 >"$work/out" 2>&1; then
      echo "fanout: $what smoke test at N=2 failed:" >&2
      head -40 "$work/out" >&2
      exit 1
    fi
  done
}

write_ansible_inventory() {
  local n=$1 i
  {
    echo "[bench]"
    for ((i = 1; i <= n; i++)); do echo "h$i"; done
    echo "[bench:vars]"
    echo "ansible_user=herdbench"
  } >"$work/ansible/inv-$n.ini"
}

# peer_cmd WHAT N: one run of a peer against h1..hN
peer_cmd() {
  local what=$1 n=$2
  case "$what" in
    pdsh) pdsh -S -R ssh -f 32 -l herdbench -w "h[1-$n]" true ;;
    ansible-command | ansible-raw)
      [[ -f $work/ansible/inv-$n.ini ]] || write_ansible_inventory "$n"
      ansible all -i "$work/ansible/inv-$n.ini" -f 50 -m "${what#ansible-}" -a true ;;
  esac
}

# ---------------------------------------------------------------- agents
agent_pids() {
  local f
  for f in "$fleet"/*/pid; do
    if [[ -f $f ]]; then cat "$f"; fi
  done
}

# CPU ticks (utime + stime, fields 14 and 15 of /proc/PID/stat) summed over the
# files given; counted after the ") " that ends the command name they are 12 and 13.
ticks() { awk '{ sub(/^.*\) /, ""); s += $12 + $13 } END { print s }' "$@"; }

# ---------------------------------------------------------------- main
declare -A R
start=$SECONDS
others=$(($(pgrep -xc herdd || true)))
say "herd fan-out benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
say "machine: $(nproc) CPUs, $(uname -sr), load average $(cut -d' ' -f1-3 /proc/loadavg)"
say "$("$herd" --version); sizes: ${sizes[*]}; RUNS=$runs (median); PEER_MAX=$peer_max; TRANSPORT=$transport"
if ((others)); then say "note: $others herdd process(es) not started by this benchmark are running on this machine"; fi
if ((need_peers)); then
  say "peers: $(pdsh -V 2>&1 | head -1); $(ansible --version 2>/dev/null | awk 'NR == 1'); $(ssh -V 2>&1)"
  if ((ansible_runs < runs)); then
    say "ansible is slow: it gets $ansible_runs runs per figure instead of $runs"
  fi
  say "peers: ssh key exchange: ${SSH_KEX:-OpenSSH default ($(ssh -G h1 2>/dev/null | awk '$1 == "kexalgorithms" { sub(/,.*/, "", $2); print $2 }') ...)}"
  setup_peers
fi
clk_tck=$(getconf CLK_TCK)

for n in "${sizes[@]}"; do
  say "N=$n: starting $n agents"
  HERD_FLEET_DIR=$fleet HERD=$herd bash "$repo/scripts/fleet.sh" up "$n" "${fleet_flags[@]}" >/dev/null
  inv=$fleet/inventory.yaml
  herd_common=("$herd" -i "$inv" --pki-dir "$fleet/pki" "${herd_transport[@]}" -q --no-progress)
  herd_run=("${herd_common[@]}" run -n all -- true)
  herd_ping=("${herd_common[@]}" ping all)

  if ((use_mux)); then
    "$herd" --pki-dir "$fleet/pki" mux start --idle 30m >/dev/null
  fi
  # one warm-up, which also checks that the whole fleet answers (with the mux:
  # the cold run that opens its connections, reported separately)
  t0=$(date +%s.%N)
  if ! "${herd_run[@]}" >"$work/out" 2>&1; then
    echo "fanout: warm-up 'herd run all -- true' at N=$n failed:" >&2
    head -20 "$work/out" >&2
    exit 1
  fi
  if ((use_mux)); then
    say "N=$n: cold run through the mux (opens $n connections) $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }') s"
  fi
  measure "$runs" "${herd_run[@]}"; R[$n,run]=$REPLY
  measure "$runs" "${herd_ping[@]}"; R[$n,ping]=$REPLY
  say "N=$n: herd run $(fmt_s "${R[$n,run]}") s, herd ping $(fmt_s "${R[$n,ping]}") s"
  floors=()
  for ((i = 0; i < runs; i++)); do floors+=("$(true_alone "$n")"); done
  R[$n,floor]=$(printf '%s\n' "${floors[@]}" | median)
  say "N=$n: $n x /bin/true alone, $(nproc) at a time: $(fmt_s "${R[$n,floor]}") s"

  peak=0
  for ((i = 0; i < 3; i++)); do
    if /usr/bin/time -f %M -o "$work/time" "${herd_run[@]}" >/dev/null 2>&1; then
      kb=$(tail -1 "$work/time")
      if ((kb > peak)); then peak=$kb; fi
    fi
  done
  R[$n,cli_rss]=$peak

  for k in pdsh ansible-command ansible-raw; do R[$n,$k]=-; done
  if ((n <= peer_max)); then
    peer_cmd pdsh "$n" >/dev/null 2>&1 || true # warm-up
    measure "$runs" peer_cmd pdsh "$n"; R[$n,pdsh]=$REPLY
    say "N=$n: pdsh $(fmt_s "${R[$n,pdsh]}") s"
    measure "$ansible_runs" peer_cmd ansible-command "$n"; R[$n,ansible-command]=$REPLY
    say "N=$n: ansible -m command $(fmt_s "${R[$n,ansible-command]}") s"
    measure "$ansible_runs" peer_cmd ansible-raw "$n"; R[$n,ansible-raw]=$REPLY
    say "N=$n: ansible -m raw $(fmt_s "${R[$n,ansible-raw]}") s"
  fi

  # Agents at rest after the runs: memory, then CPU over a 10 s window.
  mapfile -t pids < <(agent_pids)
  status_files=() smaps_files=() stat_files=()
  for p in "${pids[@]}"; do
    status_files+=("/proc/$p/status")
    smaps_files+=("/proc/$p/smaps_rollup")
    stat_files+=("/proc/$p/stat")
  done
  rss=$(awk '/^VmRSS:/ { print $2 }' "${status_files[@]}")
  R[$n,rss_med]=$(median <<<"$rss")
  R[$n,rss_max]=$(sort -g <<<"$rss" | tail -1)
  R[$n,pss_med]=$(awk '/^Pss:/ { print $2 }' "${smaps_files[@]}" | median)
  t0=$(ticks "${stat_files[@]}")
  sleep 10 # measurement window
  t1=$(ticks "${stat_files[@]}")
  R[$n,cpu]=$(awk -v a="$t0" -v b="$t1" -v hz="$clk_tck" -v n="${#pids[@]}" \
    'BEGIN { printf "%.3f", (b - a) / hz / 10 / n * 100 }')
  say "N=$n: agent RSS median $(fmt_mb "${R[$n,rss_med]}") MB, PSS median $(fmt_mb "${R[$n,pss_med]}") MB, idle CPU ${R[$n,cpu]} % per agent"

  if ((use_mux)); then
    "$herd" --pki-dir "$fleet/pki" mux stop >/dev/null
  fi
  HERD_FLEET_DIR=$fleet bash "$repo/scripts/fleet.sh" down >/dev/null
done

# Seconds per host that all peer runs of one N took (pdsh warm-up + RUNS,
# ansible 2 x its runs), at the largest N they were measured at: used to say
# what a skipped N would have cost.
peer_per_host="" peer_n=""
for n in "${sizes[@]}"; do
  if ((n <= peer_max)); then
    peer_per_host=$(awk -v a="${R[$n,pdsh]}" -v b="${R[$n,ansible-command]}" -v c="${R[$n,ansible-raw]}" -v n="$n" \
      -v r="$runs" -v ar="$ansible_runs" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && c ~ /^[0-9.]+$/)
        printf "%.4f", (a * (r + 1) + (b + c) * ar) / n }')
    peer_n=$n
  fi
done

echo
echo "## herd fan-out benchmark — $(date -u '+%Y-%m-%d'), $(nproc) CPUs, RUNS=$runs (median; ansible $ansible_runs)"
echo
echo "| N | herd run (s) | herd ping (s) | true alone (s) | pdsh (s) | ansible command (s) | ansible raw (s) | pdsh / herd run | CLI peak RSS (MB) | agent RSS median / max (MB) | agent PSS median (MB) | agent idle CPU (% of a core) |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for n in "${sizes[@]}"; do
  ratio=-
  if [[ ${R[$n,pdsh]} != - && ${R[$n,pdsh]} != fail && ${R[$n,run]} != fail ]]; then
    ratio=$(awk -v p="${R[$n,pdsh]}" -v h="${R[$n,run]}" 'BEGIN { printf "%.1fx", p / h }')
  fi
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s | %s |\n' "$n" \
    "$(fmt_s "${R[$n,run]}")" "$(fmt_s "${R[$n,ping]}")" "$(fmt_s "${R[$n,floor]}")" "$(fmt_s "${R[$n,pdsh]}")" \
    "$(fmt_s "${R[$n,ansible-command]}")" "$(fmt_s "${R[$n,ansible-raw]}")" "$ratio" \
    "$(fmt_mb "${R[$n,cli_rss]}")" "$(fmt_mb "${R[$n,rss_med]}")" "$(fmt_mb "${R[$n,rss_max]}")" \
    "$(fmt_mb "${R[$n,pss_med]}")" "${R[$n,cpu]}"
done
echo
echo "true alone: the job without fan-out, $(nproc) local /bin/true processes at a time (posix_spawn)."
echo "herd: one agent per host, forks 128 (default). pdsh -f 32, ansible -f 50, all against one local sshd."
for n in "${sizes[@]}"; do
  if ((n > peer_max)); then
    msg="N=$n: pdsh and ansible not measured (N > PEER_MAX=$peer_max):"
    if [[ -n $peer_per_host ]]; then
      msg+=" their runs took $(awk -v s="$peer_per_host" 'BEGIN { printf "%.0f", s * 1000 }') ms per host at N=$peer_n,"
      msg+=" so at N=$n they would add ~$(awk -v s="$peer_per_host" -v n="$n" 'BEGIN { printf "%.0f", s * n / 60 }') min."
    else
      msg+=" SSH fan-out pays tens of ms per host, so large N take minutes per figure."
    fi
    echo "$msg PEER_MAX=$n includes them."
  fi
done
echo "Total time: $((SECONDS - start)) s; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
