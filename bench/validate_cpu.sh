#!/usr/bin/env bash
# `sagerun validate` with its default sizes on the sample 2-host job of this
# machine (network namespaces, TLS, one CPU rank per host), as CI's tests
# run it with small sizes; the report lands in bench/results/validate-cpu.txt
# with the command that made it. Needs root (namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
sagerun=$PWD/build/launcher/sagerun
job=$(mktemp -d)
trap 'tests/netns/cluster.sh down 2; rm -rf "$job"' EXIT
"$sagerun" sample --out "$job" --hosts 2 > /dev/null
tests/netns/cluster.sh up 2
pids=()
for host in algo-1 algo-2; do
  ip netns exec "$host" "$sagerun" validate --ml-root "$job/$host" > "$job/$host.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
out=bench/results/validate-cpu.txt
{
  echo "# bash bench/validate_cpu.sh ($(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), no GPU; exit $status)"
  echo "# each host: sagerun validate --ml-root <sample job>/algo-N  (defaults; 2 hosts x 1 CPU rank, TLS)"
  sed -n 's/^\[algo-1:0\] //p' "$job/algo-1.log"
} > "$out"
cat "$out"
