#!/usr/bin/env bash
# NCCL all-reduce through sagerun's TLS net plugin vs NCCL's own socket
# transport, on one machine with a GPU (run it with the device tool):
#
#   bash bench/nccl_net_gpu.sh [OUTDIR]     (default: $OUT, else bench/results/nccl-net-gpu)
#
# Two ranks share GPU 0 and each gets its own NCCL_HOSTID, so NCCL treats
# them as two hosts: no P2P or shared memory between them, every byte goes
# through the net transport over loopback. Time-slicing one GPU adds
# latency to both transports alike, so only the ratio between them means
# anything. Three runs, 1 MiB to 1 GiB, fp32 sum, each checked for wrong
# elements:
#   socket     NCCL_NET=Socket (plaintext), 2 threads x 2 sockets
#   tls        NCCL_NET=sagerun-tls, SAGERUN_ENCRYPTION=on (2 threads x 4 sockets)
#   plaintext  the plugin with SAGERUN_ENCRYPTION=off (what TLS itself costs)
# Writes <run>-rank<r>.log, results.json and results.md (busbw per size and
# tls/socket) to OUTDIR. Builds sagerun first unless build/ already has it.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-bench/results/nccl-net-gpu}}
mkdir -p "$out"
bin=build/bench/sagerun-nccl-allreduce
plugin=$PWD/build/launcher/libnccl-net-sagerun.so
if [ ! -x "$bin" ] || [ ! -f "$plugin" ]; then
  scripts/setup.sh build
fi
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$out/gpu.txt"

# run NAME VAR=VALUE...: both ranks with those settings; rank 0's log has the table.
run() {
  local name=$1 dir
  shift
  dir=$(mktemp -d)
  for r in 0 1; do
    env "$@" RANK=$r WORLD_SIZE=2 NCCL_HOSTID="sagerun-bench-host-$r" NCCL_SOCKET_IFNAME=lo \
      NCCL_DEBUG=INFO NCCL_DEBUG_SUBSYS=INIT,NET "$bin" "$dir" 1048576 1073741824 > "$out/$name-rank$r.log" 2>&1 &
  done
  wait
  rm -rf "$dir"
  grep -q '^json ' "$out/$name-rank0.log" || { echo "nccl_net_gpu: $name produced no results" >&2; tail -20 "$out/$name-rank0.log" >&2; exit 1; }
}

key="sagerun-bench-key-$(date +%s%N)"
run socket NCCL_NET=Socket NCCL_SOCKET_NTHREADS=2 NCCL_NSOCKS_PERTHREAD=2
run tls NCCL_NET=sagerun-tls NCCL_NET_PLUGIN="$plugin" SAGERUN_ENCRYPTION=on SAGERUN_TLS_PSK="$key" \
  SAGERUN_NET_IFNAME=lo NCCL_OOB_NET_ENABLE=1 NCCL_RAS_ENABLE=0
run plaintext NCCL_NET=sagerun-tls NCCL_NET_PLUGIN="$plugin" SAGERUN_ENCRYPTION=off \
  SAGERUN_NET_IFNAME=lo NCCL_OOB_NET_ENABLE=1 NCCL_RAS_ENABLE=0

python3 - "$out" <<'EOF'
import json, sys, datetime
out = sys.argv[1]
runs = {}
for name in ("socket", "tls", "plaintext"):
    rows = [json.loads(l[5:]) for l in open(f"{out}/{name}-rank0.log") if l.startswith("json ")]
    runs[name] = {r["bytes"]: r for r in rows}
gpu = open(f"{out}/gpu.txt").read().strip()
doc = {"date": datetime.date.today().isoformat(), "gpu": gpu, "command": "bash bench/nccl_net_gpu.sh", "runs": runs}
json.dump(doc, open(f"{out}/results.json", "w"), indent=1)
with open(f"{out}/results.md", "w") as md:
    md.write(f"# NCCL all-reduce, 2 ranks on one GPU as 2 hosts ({gpu}), {doc['date']}\n\n")
    md.write("busbw in GB/s; `bash bench/nccl_net_gpu.sh`\n\n| bytes | socket | tls | plugin plaintext | tls / socket |\n|---:|---:|---:|---:|---:|\n")
    for b in sorted(runs["socket"]):
        s, t, p = (runs[n].get(b, {}).get("busbw_gbs", float("nan")) for n in ("socket", "tls", "plaintext"))
        md.write(f"| {b} | {s:.2f} | {t:.2f} | {p:.2f} | {t / s:.2f} |\n")
print(open(f"{out}/results.md").read())
EOF
grep -h 'kernel TLS\|NET/Plugin' "$out/tls-rank0.log" | head -5 || true
