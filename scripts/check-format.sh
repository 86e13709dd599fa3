#!/usr/bin/env bash
# Dry-run clang-format (the project's .clang-format) over every C++ source.
# Usage: scripts/check-format.sh [--fix]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
cf=$(command -v clang-format-14 || command -v clang-format)
mapfile -t files < <(git ls-files --cached --others --exclude-standard '*.cc' '*.h' 2>/dev/null || find . -name '*.cc' -o -name '*.h')
if [[ ${1:-} == --fix ]]; then
  "$cf" -i "${files[@]}"
  echo "check-format: formatted ${#files[@]} files"
else
  "$cf" --dry-run --Werror "${files[@]}"
  echo "check-format: ${#files[@]} files clean"
fi
