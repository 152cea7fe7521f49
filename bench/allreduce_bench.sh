#!/usr/bin/env bash
# Host-backend all-reduce vs OpenMPI's MPI_Allreduce, side by side, 4 KiB to
# 256 MiB of fp32, busbw as nccl-tests defines it (algbw x 2(n-1)/n):
#   A. two hosts (network namespaces algo-1, algo-2 on a bridge, see
#      tests/netns/cluster.sh), one rank each: sagerun plaintext, sagerun TLS
#      1.3, and MPI_Allreduce over its TCP transport with orted started in
#      the other namespace (bench/netns_rsh.sh);
#   B. one host, two ranks over loopback TCP: the same three.
# Needs root (namespaces) and a build in build/. Writes the tables to
# bench/results/allreduce-cpu-<machine>.md (or $1).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=${1:-bench/results/allreduce-cpu-$(hostname -s).md}
sagerun=$root/build/launcher/sagerun
ar=$root/build/bench/sagerun-allreduce
mpi=$root/build/bench/sagerun-mpi-allreduce
max=${SAGERUN_BENCH_MAX_BYTES:-268435456}
work=$(mktemp -d)
trap 'tests/netns/cluster.sh down 2; rm -rf "$work"' EXIT

# job FLAG HOSTS NPROC: runs sagerun-allreduce --bench on every host; prints rank 0's table.
job() {
  local flag=$1 hosts=$2 nproc=$3 dir=$work/job$RANDOM
  "$sagerun" sample --out "$dir" --hosts "$hosts" $flag >/dev/null
  local pids=()
  for h in $(seq 1 "$hosts"); do
    local run=("$sagerun" train --ml-root "$dir/algo-$h" --nproc-per-host "$nproc" -- "$ar" --bench --max-bytes "$max")
    if [ "$hosts" -gt 1 ]; then run=(ip netns exec "algo-$h" "${run[@]}"); fi
    "${run[@]}" > "$dir/algo-$h.log" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  grep '^\[algo-1:0\]' "$dir/algo-1.log" | sed 's/^\[algo-1:0\] //'
}

mpi_two_hosts() {
  ip netns exec algo-1 mpirun --allow-run-as-root -H algo-1:1,algo-2:1 -np 2 \
    --mca plm_rsh_agent "$root/bench/netns_rsh.sh" --mca btl tcp,self \
    --mca btl_tcp_if_include eth0 --mca oob_tcp_if_include eth0 "$mpi" 4096 "$max"
}

mpi_one_host() {
  mpirun --allow-run-as-root -np 2 --mca btl tcp,self --mca btl_tcp_if_include lo "$mpi" 4096 "$max"
}

tests/netns/cluster.sh up 2
{
  echo "# Host all-reduce vs MPI_Allreduce ($(date -u +%Y-%m-%d), $(nproc) cores, $(uname -r))"
  echo
  echo "Command: \`bench/allreduce_bench.sh\` (commit $(git rev-parse --short HEAD))."
  echo "OpenSSL: $(openssl version). $(mpirun --version 2>/dev/null | head -1)."
  echo
  echo "## A. Two hosts (network namespaces on a bridge), one rank each"
  for what in "sagerun plaintext:--no-encryption" "sagerun TLS 1.3 (PSK):"; do
    echo; echo "### ${what%%:*}"; echo '```'; job "${what#*:}" 2 1; echo '```'
  done
  echo; echo "### OpenMPI MPI_Allreduce (btl tcp)"; echo '```'; mpi_two_hosts; echo '```'
  echo
  echo "## B. One host, two ranks over loopback TCP"
  for what in "sagerun plaintext:--no-encryption" "sagerun TLS 1.3 (PSK):"; do
    echo; echo "### ${what%%:*}"; echo '```'; job "${what#*:}" 1 2; echo '```'
  done
  echo; echo "### OpenMPI MPI_Allreduce (btl tcp over lo)"; echo '```'; mpi_one_host; echo '```'
} | tee "$out"
