# Shared set-up of the benchmarks that run a private local fleet
# (bench/app_install.sh, bench/rollout.sh). Sourced, not run:
#
#   source "$repo/bench/lib.sh"
#   bench_fleet N      a work folder ($work, 0711: apps reach their files
#                      through it), a folder the agents' exec.run_as account
#                      may write ($dest, for herd copy), a fleet of N agents
#                      in $work/fleet (mTLS) with HERD_INVENTORY and
#                      HERD_PKI_DIR set, and an EXIT trap that stops the
#                      fleet and removes both folders.
#
#   bench_sshd WORK SSH_DIR
#                      a private sshd on 127.0.0.1 (port $ssh_port, pid
#                      $sshd_pid) for the unprivileged user herdbench, with
#                      host names h* (SSH_DIR/ssh_config), and pdsh and
#                      ansible set up to use it, isolated in WORK/ansible
#                      (ANSIBLE_* exported). Needs root. The caller stops
#                      $sshd_pid.
#
# Needs $repo (the checkout) set by the caller.

bench_fleet() {
  work=$(mktemp -d)
  chmod 0711 "$work"
  dest=$(mktemp -d /tmp/herd-bench-copy.XXXXXX)
  chmod 0777 "$dest"
  export HERD_FLEET_DIR=$work/fleet
  trap bench_cleanup EXIT
  bash "$repo/scripts/fleet.sh" up "$1" >/dev/null
  export HERD_INVENTORY=$HERD_FLEET_DIR/inventory.yaml HERD_PKI_DIR=$HERD_FLEET_DIR/pki
}

bench_cleanup() {
  bash "$repo/scripts/fleet.sh" down >/dev/null 2>&1 || true
  rm -rf "$work" "$dest"
}

bench_sshd() {
  local work=$1 ssh_dir=$2
  if ! id herdbench >/dev/null 2>&1; then
    useradd -m -s /bin/sh herdbench
  fi
  # Without PAM, sshd refuses accounts whose password field starts with '!'
  # (useradd's default); '*' allows key logins and still no password.
  if [[ $(getent shadow herdbench | cut -d: -f2) == '!'* ]]; then
    usermod -p '*' herdbench
  fi
  mkdir -p "$ssh_dir" /run/sshd
  chmod 711 "$ssh_dir"
  ssh-keygen -q -t ed25519 -N '' -C herd-bench-host -f "$ssh_dir/host_key"
  ssh-keygen -q -t ed25519 -N '' -C herd-bench-client -f "$ssh_dir/client_key"
  cp "$ssh_dir/client_key.pub" "$ssh_dir/authorized_keys"
  chmod 644 "$ssh_dir/authorized_keys"
  ssh_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  cat >"$ssh_dir/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $ssh_port
HostKey $ssh_dir/host_key
PidFile $ssh_dir/sshd.pid
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile $ssh_dir/authorized_keys
AllowUsers herdbench
PermitRootLogin no
UseDNS no
MaxStartups 1000:30:1000
MaxSessions 1000
LogLevel ERROR
Subsystem sftp internal-sftp
EOF
  /usr/sbin/sshd -t -f "$ssh_dir/sshd_config"
  /usr/sbin/sshd -f "$ssh_dir/sshd_config" -D -e >"$ssh_dir/sshd.log" 2>&1 &
  sshd_pid=$!
  local i ok=0
  for ((i = 0; i < 100; i++)); do # up to 10 s
    if (exec 3<>"/dev/tcp/127.0.0.1/$ssh_port") 2>/dev/null; then ok=1; break; fi
    kill -0 "$sshd_pid" 2>/dev/null || break
    sleep 0.1
  done
  if ((!ok)); then
    echo "bench: sshd did not accept on 127.0.0.1:$ssh_port; log:" >&2
    cat "$ssh_dir/sshd.log" >&2
    exit 1
  fi
  cat >"$ssh_dir/ssh_config" <<EOF
Host h*
  HostName 127.0.0.1
  Port $ssh_port
  User herdbench
  IdentityFile $ssh_dir/client_key
  IdentitiesOnly yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
  BatchMode yes
EOF
  if [[ -n ${SSH_KEX:-} ]]; then echo "  KexAlgorithms $SSH_KEX" >>"$ssh_dir/ssh_config"; fi

  # pdsh: the ssh arguments are ours; pdsh substitutes %u (from -l) and %h.
  export PDSH_SSH_ARGS="-F $ssh_dir/ssh_config -x -l%u %h"
  export PDSH_RCMD_TYPE=ssh
  # ansible: isolated from ~/.ansible and any ansible.cfg; every run starts cold
  # (no ControlPersist master left behind, like pdsh and herd), pipelining on
  # (one ssh connection per host for -m command), no interpreter discovery.
  mkdir -p "$work/ansible/home" "$work/ansible/local" "$work/ansible/cp" "$work/ansible/remote"
  chmod 755 "$work/ansible"
  chown herdbench "$work/ansible/remote"
  : >"$work/ansible/ansible.cfg"
  export ANSIBLE_CONFIG=$work/ansible/ansible.cfg
  export ANSIBLE_HOME=$work/ansible/home
  export ANSIBLE_LOCAL_TEMP=$work/ansible/local
  export ANSIBLE_REMOTE_TEMP=$work/ansible/remote
  export ANSIBLE_SSH_CONTROL_PATH_DIR=$work/ansible/cp
  export ANSIBLE_SSH_ARGS="-F $ssh_dir/ssh_config -o ControlMaster=no -o ControlPath=none"
  export ANSIBLE_HOST_KEY_CHECKING=False
  export ANSIBLE_PIPELINING=True
  export ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3
  export ANSIBLE_NOCOLOR=1 ANSIBLE_DEPRECATION_WARNINGS=False ANSIBLE_RETRY_FILES_ENABLED=False

}
