#!/usr/bin/env bash
# README command 1: sets up sagerun and runs it on the embedded sample job, a
# simulated 2-host SageMaker cluster on this machine (one /opt/ml tree per host).
# For each host it prints the plan and SM_* environment (`sagerun env`), then
# starts the host's container entrypoint (`sagerun train`) on a small user
# command that reports what a training script would see.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
sagerun=$PWD/build/launcher/sagerun
job=${SAGERUN_DEMO_DIR:-/tmp/sagerun-demo}
rm -rf "$job"
"$sagerun" sample --out "$job" --hosts 2

for host in algo-1 algo-2; do
  echo
  echo "===== $host: sagerun env"
  "$sagerun" env --ml-root "$job/$host"
done

echo
echo "===== both hosts: sagerun train -- <user command>"
pids=()
for host in algo-1 algo-2; do
  "$sagerun" train --ml-root "$job/$host" -- /bin/sh -c \
    'echo "[$SM_CURRENT_HOST] host rank $SM_CURRENT_HOST_RANK of $SM_HOST_COUNT, master $SM_MASTER_ADDR:$SM_MASTER_PORT, data $SM_CHANNEL_TRAIN, args: $*"' \
    user-script &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
