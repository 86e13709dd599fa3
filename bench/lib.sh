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
