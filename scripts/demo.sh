#!/usr/bin/env bash
# README command 1: sets up sagerun and runs it on the embedded sample job, a
# simulated 2-host SageMaker cluster on this machine: each host is a network
# namespace (algo-1, algo-2, see tests/netns/cluster.sh) with its own eth0,
# /etc/hosts and /opt/ml tree, and inter-container traffic encryption on (the
# sample's job key arrives in a "tls" channel). For each host it prints the
# plan and SM_* environment (`sagerun env`), then starts the host's container
# entrypoint (`sagerun train`) with 2 ranks per host; every rank reports what
# a training script sees, then all 4 ranks all-reduce over TLS 1.3 and check
# the sums. Needs root for the namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
sagerun=$PWD/build/launcher/sagerun
allreduce=$PWD/build/bench/sagerun-allreduce
job=${SAGERUN_DEMO_DIR:-/tmp/sagerun-demo}
rm -rf "$job"
"$sagerun" sample --out "$job" --hosts 2

for host in algo-1 algo-2; do
  echo
  echo "===== $host: sagerun env"
  "$sagerun" env --ml-root "$job/$host"
done

tests/netns/cluster.sh up 2
trap 'tests/netns/cluster.sh down 2' EXIT
echo
echo "===== both hosts (network namespaces): sagerun train -- <user command>"
pids=()
for host in algo-1 algo-2; do
  ip netns exec "$host" "$sagerun" train --ml-root "$job/$host" --nproc-per-host 2 -- /bin/sh -c \
    'echo "rank $RANK of $WORLD_SIZE on $SM_CURRENT_HOST (host $SM_CURRENT_HOST_RANK of $SM_HOST_COUNT), master $MASTER_ADDR:$MASTER_PORT, data $SM_CHANNEL_TRAIN, args: $*"; exec "$0" --check' \
    "$allreduce" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
exit $status
