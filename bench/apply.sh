#!/usr/bin/env bash
# herd apply against ansible-playbook, side by side in one run: a 20-item
# spec applied to N local agents when nothing changed (what a cron job pays
# every time), and the equivalent 20-task play over ssh to N host names on
# one private sshd (as bench/fanout.sh sets up). A benchmark, not a test:
# it prints figures and asserts nothing about them.
#
#   bench/apply.sh [N]        agents and ssh host names (default 100)
#
# Environment: RUNS=3 (median of RUNS after the first, converging run);
# SSH_KEX as in bench/fanout.sh.
# Items, for both: 1 label (ansible: a file), 4 directories, 9 files, 6
# commands made idempotent by guards (3 `creates`, 3 `unless`; ansible:
# `creates` for all 6). Needs root (a user and an sshd are set up). Target:
# herd at least 20 times faster than ansible-playbook.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
herd=${HERD:-$repo/build/cmd/herd}
export HERDD=${HERDD:-$repo/build/cmd/herdd}
# shellcheck source=bench/lib.sh
source "$repo/bench/lib.sh"
n=${1:-100}
runs=${RUNS:-3}
[[ $n =~ ^[0-9]+$ && $n -ge 1 && $runs =~ ^[0-9]+$ && $runs -ge 1 ]] || {
  sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 1
}
[[ $(id -u) -eq 0 ]] || { echo "apply: needs root (an sshd and a user for ansible)" >&2; exit 1; }
bash "$repo/scripts/install-deps.sh" --bench
say() { printf '[bench] %s\n' "$*"; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now() { date +%s.%N; }
# timed CMD...: REPLY = wall seconds of one run (its output discarded); fails loudly.
timed() {
  local t0 t1
  t0=$(now)
  if ! "$@" >"$work/out" 2>&1; then
    echo "apply: '$*' failed:" >&2
    tail -20 "$work/out" >&2
    exit 1
  fi
  t1=$(now)
  REPLY=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
}
# series NAME CMD...: one converging run, then RUNS timed; prints the median.
series() {
  local name=$1 times="" i
  shift
  timed "$@"
  say "$name: first run (converging) ${REPLY} s"
  for ((i = 0; i < runs; i++)); do
    timed "$@"
    times+="$REPLY"$'\n'
  done
  REPLY=$(printf '%s' "$times" | median)
  say "$name: nothing changed, median of $runs: ${REPLY} s"
}

say "herd apply vs ansible-playbook, $(date -u '+%Y-%m-%d %H:%M UTC'); N=$n, RUNS=$runs"
say "machine: $(nproc) CPUs, $(uname -sr), load average $(cut -d' ' -f1-3 /proc/loadavg)"
bench_fleet "$n"
ssh_dir=$work/ssh
sshd_pid=""
stop_all() {
  if [[ -n $sshd_pid ]]; then kill -TERM "$sshd_pid" 2>/dev/null || true; fi
  bench_cleanup
}
trap stop_all EXIT
bench_sshd "$work" "$ssh_dir"

# ---------------------------------------------------------------- herd
h=$dest/herd
mkdir -p "$h"
chmod 0777 "$h"
{
  echo "entries:"
  echo "  - hosts: all"
  echo "    labels: {bench: apply}"
  echo "    directories:"
  for i in 1 2 3 4; do echo "      - {path: $h/d$i, mode: \"0755\"}"; done
  echo "    files:"
  for i in 1 2 3 4 5 6 7 8; do
    echo "      - {path: $h/f$i, content: \"setting$i = value$i\\n\", mode: \"0644\"}"
  done
  echo "      - {path: $h/f9, content: \"os = {{ facts.os }}\\n\", template: true}"
  echo "    commands:"
  for i in 1 2 3; do echo "      - {name: c$i, run: [mkdir, -p, $h/c$i], creates: $h/c$i}"; done
  for i in 1 2 3; do
    echo "      - {name: u$i, run: [touch, $h/u$i], unless: \"test -e $h/u$i\"}"
  done
} >"$work/fleet.yaml"
series "herd apply ($n agents, 20 items)" "$herd" --no-progress apply "$work/fleet.yaml"
herd_s=$REPLY
"$herd" --no-progress -o json apply "$work/fleet.yaml" >"$work/last.json"
changed=$(grep -c '"changed":[1-9]' "$work/last.json" || true)
say "herd apply: hosts with changes in the last run: $changed (0 expected)"

# ---------------------------------------------------------------- ansible
a=$work/ansible-dest
mkdir -p "$a"
chown herdbench "$a"
{
  echo "[bench]"
  for ((i = 1; i <= n; i++)); do echo "h$i"; done
  echo "[bench:vars]"
  echo "ansible_user=herdbench"
} >"$work/ansible/inv.ini"
{
  echo "- hosts: all"
  echo "  gather_facts: false"
  echo "  tasks:"
  echo "    - {name: label, copy: {content: \"bench=apply\\n\", dest: $a/labels}}"
  for i in 1 2 3 4; do echo "    - {name: d$i, file: {path: $a/d$i, state: directory, mode: \"0755\"}}"; done
  for i in 1 2 3 4 5 6 7 8 9; do
    echo "    - {name: f$i, copy: {content: \"setting$i = value$i\\n\", dest: $a/f$i, mode: \"0644\"}}"
  done
  for i in 1 2 3; do echo "    - {name: c$i, command: {cmd: mkdir -p $a/c$i, creates: $a/c$i}}"; done
  for i in 1 2 3; do echo "    - {name: u$i, command: {cmd: touch $a/u$i, creates: $a/u$i}}"; done
} >"$work/play.yml"
# As ansible-playbook runs by default: one ssh connection per host kept for
# the play's tasks (ControlPersist), pipelining on; each run starts cold (a
# fresh control folder; the masters are stopped after it), as a cron job's.
export ANSIBLE_SSH_ARGS="-F $ssh_dir/ssh_config -o ControlMaster=auto -o ControlPersist=60s"
play_run=0
play() {
  play_run=$((play_run + 1))
  export ANSIBLE_SSH_CONTROL_PATH_DIR=$work/ansible/cp-$play_run
  mkdir -p "$ANSIBLE_SSH_CONTROL_PATH_DIR"
  local rc=0
  ansible-playbook -i "$work/ansible/inv.ini" -f 50 "$work/play.yml" || rc=$?
  pkill -f "ControlPersist" 2>/dev/null || true
  return "$rc"
}
series "ansible-playbook ($n hosts, 20 tasks, -f 50, ControlPersist)" play
ansible_s=$REPLY

ratio=$(awk -v a="$ansible_s" -v h="$herd_s" 'BEGIN { printf "%.1f", a / h }')
say "result: herd apply ${herd_s} s, ansible-playbook ${ansible_s} s: herd ${ratio}x faster (target >= 20x)"
