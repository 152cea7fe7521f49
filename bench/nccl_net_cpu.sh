#!/usr/bin/env bash
# What TLS costs the NCCL net plugin, without a GPU: two hosts as network
# namespaces (tests/netns/cluster.sh), one nccl_net_peer in each, sending
# each other 64 MiB messages both ways at once through the plugin's ABI,
# with TLS and with the plugin's plaintext mode (SAGERUN_ENCRYPTION=off),
# side by side, median of 3 runs each. The veth link is first unlimited (so
# the CPU is the limit: both ends share this machine's cores), then capped
# with tc at rates a NIC might have, where TLS must keep up with plaintext.
#
#   sudo bash bench/nccl_net_cpu.sh [OUT.md]   (default bench/results/nccl-net-cpu.md)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench/results/nccl-net-cpu.md}
peer=build/tests/nccl_net_peer
plugin=$PWD/build/launcher/libnccl-net-sagerun.so
[ -x "$peer" ] && [ -f "$plugin" ] || scripts/setup.sh build
cluster=tests/netns/cluster.sh
sh "$cluster" up 2
trap 'sh "$cluster" down 2' EXIT

# gbps ENCRYPTION: GB/s each way of one run (rank 0's report).
gbps() {
  local dir
  dir=$(mktemp -d)
  for r in 0 1; do
    ip netns exec "algo-$((r + 1))" env SAGERUN_ENCRYPTION="$1" SAGERUN_TLS_PSK=bench-key-0123456789abcdef \
      SAGERUN_NET_IFNAME=eth0 "$peer" "$plugin" 11 "$r" "$dir" --bench 67108864 --iters 30 > "$dir/$r.log" 2>&1 &
  done
  wait
  sed -n 's/.*, \([0-9.]*\) GB\/s each way/\1/p' "$dir/0.log"
  rm -rf "$dir"
}

median3() { printf '%s\n' "$@" | sort -g | sed -n 2p; }

limit() { # RATE or "none"
  for i in 1 2; do
    ip netns exec "algo-$i" tc qdisc del dev eth0 root 2>/dev/null || true
    [ "$1" = none ] || ip netns exec "algo-$i" tc qdisc add dev eth0 root tbf rate "$1" burst 4mb latency 100ms
  done
}

{
  echo "# NCCL net plugin: TLS vs plaintext, CPU only ($(date -u +%Y-%m-%d))"
  echo
  echo "Command: \`sudo bash bench/nccl_net_cpu.sh\`. Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')."
  echo "Two namespaced hosts on one machine, 64 MiB messages both ways at once, 30 per run, median of 3 runs;"
  echo "plugin defaults (4 data sockets, 2 threads per connection). GB/s each way."
  echo "AES-128-GCM on one core here: $(openssl speed -evp aes-128-gcm -seconds 1 -bytes 16384 2>/dev/null | awk '/^AES-128-GCM/ {printf "%.2f GB/s", $2 / 1e6}')."
  echo
  echo "| link | plaintext | TLS | TLS / plaintext |"
  echo "|---|---:|---:|---:|"
  for rate in none 8gbit 4gbit 2gbit; do
    limit "$rate"
    p=$(median3 "$(gbps off)" "$(gbps off)" "$(gbps off)")
    t=$(median3 "$(gbps on)" "$(gbps on)" "$(gbps on)")
    echo "| ${rate/none/unlimited (veth)} | $p | $t | $(printf "%.2f" "$(echo "scale=4; $t / $p" | bc)") |"
  done
} | tee "$out"
