#!/usr/bin/env bash
# The layering rule (docs/architecture.md), checked on every #include:
#   agent/ never includes control/, control/ never includes agent/;
#   common/ includes neither, nor proto/ or gRPC (it links only what it uses);
#   proto/rpc/ includes neither agent/ nor control/;
#   nothing includes cmd/ (cmd/ itself aside).
# Exits 1 and names each offending line. Usage: scripts/check-layers.sh
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
bad=0
check() {  # check DIR PATTERN WHY
  local dir=$1 pattern=$2 why=$3 hits
  hits=$(grep -rnE --include='*.h' --include='*.cc' "^[[:space:]]*#[[:space:]]*include[[:space:]]*[<\"]($pattern)" "$dir" || true)
  if [[ -n $hits ]]; then
    printf 'check-layers: %s\n%s\n' "$why" "$hits" >&2
    bad=1
  fi
}
check agent 'control/' 'agent/ must not include control/ (they meet in proto/ and common/)'
check control 'agent/' 'control/ must not include agent/ (they meet in proto/ and common/)'
check common 'agent/|control/|proto/|cmd/|herd/v1/' 'common/ must not include agent/, control/, proto/ or cmd/'
check common 'grpc|grpcpp/|google/protobuf' 'common/ must stay free of gRPC and protobuf'
check proto 'agent/|control/|cmd/' 'proto/ must not include agent/, control/ or cmd/'
for dir in agent control common proto tests bench; do
  [[ -d $dir ]] && check "$dir" 'cmd/' "nothing outside cmd/ may include cmd/ ($dir/)"
done
# common's CMake target must not link gRPC either.
if grep -qE 'grpc|herd_grpc_stack|herd::proto' common/CMakeLists.txt; then
  echo "check-layers: common/CMakeLists.txt links gRPC or proto" >&2
  bad=1
fi
if ((bad)); then exit 1; fi
echo "check-layers: ok"
