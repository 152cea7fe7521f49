#!/usr/bin/env bash
# Builds the fuzzer's seed corpus from the fixture trees: one file per config
# file, prefixed with the byte that routes it to its parser.
set -euo pipefail
out=$1
fixtures=$(cd "$(dirname "$0")/../fixtures/ml" && pwd)
mkdir -p "$out"
i=0
for name in resourceconfig hyperparameters inputdataconfig checkpointconfig trainingjobconfig; do
  octal=$(printf '%03o' "$i")
  for f in "$fixtures"/*/input/config/"$name".json; do
    [ -e "$f" ] || continue
    tree=$(basename "$(dirname "$(dirname "$(dirname "$f")")")")
    { printf "\\$octal"; cat "$f"; } > "$out/$name-$tree"
  done
  i=$((i + 1))
done
