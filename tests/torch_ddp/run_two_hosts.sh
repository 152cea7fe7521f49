#!/bin/sh
# A real PyTorch DDP (gloo) job over two network-namespace hosts under
# sagerun, once with inter-container encryption off and once on. Not in CI
# (PyTorch is a 5 GB install); run once by hand, its output kept in the
# closing note of the issue that asked for it:
#   python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch
#   sudo tests/torch_ddp/run_two_hosts.sh build/launcher/sagerun /tmp/torchvenv/bin/python
# Each host runs `sagerun train --nproc-per-host 2 -- PYTHON ddp.py` with its
# own /opt/ml tree; a capture on algo-2's link counts the marker that rank 0
# broadcasts over gloo (sagerun does not encrypt gloo: readable either way).
set -eu
sagerun=$(realpath "$1")
python=$2
here=$(cd "$(dirname "$0")" && pwd)
cluster=$here/../netns/cluster.sh
work=$(mktemp -d)
trap 'sh "$cluster" down 2; rm -rf "$work"' EXIT

run_job() { # $1: --no-encryption or ""
  rm -rf "$work/job" && mkdir "$work/job"
  "$sagerun" sample --out "$work/job" --hosts 2 $1 > /dev/null
  sh "$cluster" up 2
  ip netns exec sagerun-switch tcpdump -i v-algo-2 -w "$work/cap.pcap" -U tcp > /dev/null 2>&1 &
  dump=$!
  sleep 1
  for i in 1 2; do
    ip netns exec "algo-$i" "$sagerun" train --ml-root "$work/job/algo-$i" --nproc-per-host 2 -- \
      "$python" "$here/ddp.py" > "$work/algo-$i.log" 2>&1 &
  done
  status=0
  wait %2 || status=$?
  wait %3 || status=$?
  sleep 1
  kill "$dump"; wait "$dump" || true
  for i in 1 2; do echo "--- algo-$i"; grep -E "^\[algo|sagerun: (encryption|algo)" "$work/algo-$i.log" | grep -v "step [1-3] " ; done
  echo "exit status: $status; gloo marker seen in clear on algo-2's link: $(tcpdump -r "$work/cap.pcap" -A 2>/dev/null | grep -c SAGERUN-GLOO-MARKER) packets"
  sh "$cluster" down 2
}

echo "=== encryption off ($("$python" -c 'import torch; print("torch", torch.__version__)'))"
run_job --no-encryption
echo "=== encryption on"
run_job ""
