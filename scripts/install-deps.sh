#!/usr/bin/env bash
# Installs herd's build, test and demo dependencies from Debian 12 packages.
# Idempotent: packages already present are skipped, so a second run does nothing
# but a dpkg query. Usage: scripts/install-deps.sh [--bench]
#   --bench   also install the peers the benchmark compares against
#             (openssh-server, pdsh, ansible-core, hyperfine-free: only apt packages)
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  libyaml-cpp-dev prometheus-cpp-dev libspdlog-dev libfmt-dev
  catch2 libcli11-dev libssl-dev nlohmann-json3-dev libcurl4-openssl-dev
  clang-format-14
  libarchive-dev libzstd-dev   # app bundles: outer archive, zstd payload
  minisign                     # app signatures: tests check both directions with the real tool
  clang libclang-rt-14-dev     # libFuzzer targets for the app manifest and bundle readers
  bubblewrap                   # the app sandbox (agent/apps/sandbox.h)
  libsqlite3-dev               # the apps' state on the agent (agent/apps/app_db.h)
  python3                      # the sample app (examples/notes)
  curl ca-certificates
  prometheus   # real Prometheus server + promtool, for the monitoring tests
  procps       # ps/pgrep used by the local fleet and benchmarks
)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(openssh-server openssh-client pdsh ansible-core time)
fi

# The unprivileged account herdd runs operators' commands as (exec.run_as):
# no home, no login shell, no password.
ensure_account() {
  if ! getent passwd herd-run >/dev/null; then
    local sudo=""
    if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
    $sudo useradd --system --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin --comment "herd commands" herd-run
    echo "install-deps: created account herd-run"
  fi
}

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages already installed"
  ensure_account
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# --no-install-recommends keeps the machine lean; policy-rc.d style start of the
# prometheus service is harmless but we never rely on it (tests run their own).
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
ensure_account
echo "install-deps: done"
