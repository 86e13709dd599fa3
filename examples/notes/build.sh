#!/usr/bin/env bash
# Packs and signs the three versions of the sample app.
# Usage: examples/notes/build.sh OUT_DIR [KEY]
#   OUT_DIR  where notes-1.0.herd, notes-1.1.herd and notes-1.2.herd go
#   KEY      a publisher secret key (herd app keygen); default: OUT_DIR/publisher.key,
#            made when missing
# HERD: the herd binary (default: build/cmd/herd of this checkout).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
herd=${HERD:-$root/build/cmd/herd}
out=${1:?usage: build.sh OUT_DIR [KEY]}
mkdir -p "$out"
key=${2:-$out/publisher.key}
if [[ ! -f $key ]]; then
  "$herd" app keygen "$(basename "$key" .key)" --dir "$(dirname "$key")" >/dev/null
fi
for v in 1.0 1.1 1.2; do
  src="$out/notes-$v"
  rm -rf "$src"
  mkdir -p "$src"
  cp "$here/$v/app.yaml" "$here/server.py" "$src/"
  "$herd" app pack "$src" -o "$out/notes-$v.herd" >/dev/null
  "$herd" app sign "$out/notes-$v.herd" --key "$key" >/dev/null
  rm -rf "$src"
  echo "$out/notes-$v.herd"
done
