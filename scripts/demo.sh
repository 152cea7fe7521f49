#!/usr/bin/env bash
# README command 1: sets up sagerun and runs the embedded sample job, a
# simulated 2-host SageMaker training job on this machine. Each host is a
# network namespace (algo-1, algo-2, see tests/netns/cluster.sh) with its own
# eth0, /etc/hosts and /opt/ml tree; inter-container traffic encryption is on
# (the sample's job key arrives in a "tls" channel). Each host's container
# entrypoint (`sagerun train`) starts 2 ranks of the built-in GPT trainer,
# which train the tiny model on the sample's synthetic data (a Markov chain
# whose entropy rate is the loss floor) with gradients all-reduced over TLS
# 1.3. Ends with `sagerun metrics check` on host 1's log. Without root (no
# namespaces) it runs the same 4 ranks as one host on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
sagerun=$PWD/build/launcher/sagerun
job=${SAGERUN_DEMO_DIR:-/tmp/sagerun-demo}
rm -rf "$job"
mkdir -p "$job"
start=$(date +%s.%N)

if [ "$(id -u)" -eq 0 ] && command -v ip >/dev/null; then
  "$sagerun" sample --out "$job" --hosts 2
  echo "===== algo-1: sagerun env (the plan and what a rank sees)"
  # Whole into a file, then its head: a pipe into head would depend on
  # timing under pipefail (SIGPIPE when head exits first).
  "$sagerun" env --ml-root "$job/algo-1" > "$job/algo-1.env"
  sed -n 1,12p "$job/algo-1.env"
  tests/netns/cluster.sh up 2
  trap 'tests/netns/cluster.sh down 2' EXIT
  echo "===== algo-1 and algo-2 (network namespaces): sagerun train, 2 ranks each"
  pids=()
  for host in algo-1 algo-2; do
    ip netns exec "$host" "$sagerun" train --ml-root "$job/$host" --nproc-per-host 2 > "$job/$host.log" 2>&1 &
    pids+=($!)
  done
  tail -n +1 -f "$job/algo-1.log" --pid "${pids[0]}" &
  status=0
  for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
  log=$job/algo-1.log
else
  echo "demo: not root, so no network namespaces: one host with 4 ranks on loopback"
  "$sagerun" sample --out "$job" --hosts 1
  log=$job/algo-1.log
  status=0
  "$sagerun" train --ml-root "$job/algo-1" --nproc-per-host 4 2>&1 | tee "$log" || status=$?
fi
sleep 0.2 # let tail print the last lines
if [ "$status" -ne 0 ]; then
  echo "demo: the job failed (exit $status); see $job/*.log and $job/*/output/failure" >&2
  exit "$status"
fi
echo
echo "===== loss curve (train_loss by step) against the data's floor"
grep -o 'the best achievable loss is its entropy rate, [0-9.]*' "$log" | sed 's/.*, /floor (entropy rate, nats\/token): /'
grep -o 'step=[0-9]* epoch=[0-9]* train_loss=[0-9.]*' "$log" | awk -F'[= ]' '{printf "%s:%s ", $2, $6} END {print ""}'
echo
echo "===== sagerun metrics check $log"
"$sagerun" metrics check "$log"
printf 'demo: done in %.1f s\n' "$(echo "$(date +%s.%N) - $start" | bc)"
