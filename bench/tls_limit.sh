#!/usr/bin/env bash
# How close encrypted traffic between hosts runs to what this machine's CPU
# can encrypt, measured in one run: two hosts as network namespaces
# (tests/netns/cluster.sh) on one machine, so both ends share its cores.
#
#   1. The cipher: sealing and opening records on one core, with the code,
#      keys and record size the encrypted paths use (sagerun-tls-cipher).
#   2. The NCCL net plugin (tests/nccl_net_peer through the plugin's ABI),
#      64 MiB messages both ways at once: plaintext, TLS with sealed records
#      (the default) and TLS with OpenSSL's records (SAGERUN_NET_RECORDS=tls),
#      interleaved, median of 5; GB/s each way and the CPU seconds the
#      plugin's threads used (both ends together) per byte each way.
#   3. The host ring all-reduce (sagerun train -- sagerun-allreduce), 64 MiB
#      of fp32, plaintext and TLS, interleaved, median of 5; busbw (= bytes
#      each way per second for 2 ranks) and CPU per byte, both ranks.
#   4. The plugin with TLS on 1 core and on 2 (taskset), 1 and 2 threads.
#   5. The plugin on links capped with tc at 4 and 2 Gbit/s, where TLS must
#      equal plaintext.
#   6. Where perf can count system calls (Debian's linux-perf): the system
#      calls and context switches of one end per MiB, for each path.
# The limit (the model, written into the results): with p the plaintext
# path's CPU seconds per byte each way (both ends, every copy and system
# call of the kernel's TCP), each byte each way is sealed once and opened
# once in each direction, so encrypted traffic needs p + 2/E + 2/D seconds
# of CPU per byte each way, E and D the one-core seal and open rates; with
# C cores the limit is C / (p + 2/E + 2/D) bytes each way per second.
#
#   sudo bash bench/tls_limit.sh [OUT.md]   (default bench/results/tls-limit.md)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench/results/tls-limit.md}
peer=$PWD/build/tests/nccl_net_peer
plugin=$PWD/build/launcher/libnccl-net-sagerun.so
cipher=$PWD/build/bench/sagerun-tls-cipher
sagerun=$PWD/build/launcher/sagerun
allreduce=$PWD/build/bench/sagerun-allreduce
for f in "$peer" "$plugin" "$cipher" "$sagerun" "$allreduce"; do [ -e "$f" ] || { scripts/setup.sh build; break; }; done
cores=$(nproc)
all_cpus=0-$((cores - 1))
work=$(mktemp -d)
cluster=tests/netns/cluster.sh
sh "$cluster" up 2 >/dev/null
trap 'sh "$cluster" down 2; rm -rf "$work"' EXIT
mib64=67108864

# plugin ENCRYPTION RECORDS CPUS THREADS ITERS: "GBps machine_s threads_s bytes": rank 0's rate; the
# machine's busy CPU seconds while rank 0 measured, less both calling threads' (which poll, as NCCL's
# proxy thread does); both ends' plugin threads' CPU seconds.
plugin() {
  local dir
  dir=$(mktemp -d -p "$work")
  for r in 0 1; do
    ip netns exec "algo-$((r + 1))" env SAGERUN_ENCRYPTION="$1" SAGERUN_NET_RECORDS="$2" SAGERUN_NET_THREADS="$4" \
      SAGERUN_TLS_PSK=bench-key-0123456789abcdef SAGERUN_NET_IFNAME=eth0 \
      taskset -c "$3" "$peer" "$plugin" 11 "$r" "$dir" --bench "$mib64" --iters "$5" > "$dir/$r.log" 2>&1 &
  done
  wait
  local gbps bytes cpu
  gbps=$(sed -n 's/^peer 0: ok .*, \([0-9.]*\) GB\/s each way/\1/p' "$dir/0.log")
  bytes=$(sed -n 's/^peer 0: ok [0-9]* messages, \([0-9]*\) bytes each way.*/\1/p' "$dir/0.log")
  cpu=$(cat "$dir"/0.log "$dir"/1.log | sed -n 's/^peer \([01]\): CPU seconds: plugin threads \([0-9.]*\), calling thread \([0-9.]*\), machine busy \([0-9.]*\)/\1 \2 \3 \4/p' |
        awk '{threads += $2; callers += $3; if ($1 == 0) machine = $4} END {printf "%.3f %.3f", machine - callers, threads}')
  [ -n "$gbps" ] && [ -n "$bytes" ] && [ -n "$cpu" ] || { cat "$dir"/[01].log >&2; exit 1; }
  echo "$gbps $cpu $bytes"
}

# ring FLAG: "busbw_GBps machine_us ranks_us bytes" for 64 MiB all-reduces over 2 hosts: the
# machine's busy CPU and both ranks' CPU per all-reduce.
ring() {
  local dir=$work/ring$RANDOM
  "$sagerun" sample --out "$dir" --hosts 2 $1 >/dev/null
  for h in 1 2; do
    ip netns exec "algo-$h" "$sagerun" train --ml-root "$dir/algo-$h" --nproc-per-host 1 -- \
      "$allreduce" --bench --min-bytes "$mib64" --max-bytes "$mib64" --iters 10 > "$dir/algo-$h.log" 2>&1 &
  done
  wait
  local row
  row=$(grep "^\[algo-1:0\]  *$mib64 " "$dir/algo-1.log" || { cat "$dir"/algo-*.log >&2; exit 1; })
  grep -m1 '^\[algo-1:0\] # sagerun host backend' "$dir/algo-1.log" | sed 's/^\[algo-1:0\] # //' > "$work/ring-$1.how"
  echo "$row" | awk -v b="$mib64" '{print $6, $8, $7, b}'
}

# calls ENCRYPTION RECORDS: one plugin run with peer 0 under perf stat; prints per MiB each way:
# read, write, readv, recvfrom, sendto, poll, sched_yield calls and context switches (its threads).
calls() {
  local dir
  dir=$(mktemp -d -p "$work")
  local events=syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_readv,syscalls:sys_enter_recvfrom
  events=$events,syscalls:sys_enter_sendto,syscalls:sys_enter_poll,syscalls:sys_enter_sched_yield,context-switches
  for r in 0 1; do
    local run=("$peer" "$plugin" 11 "$r" "$dir" --bench "$mib64" --iters 30)
    [ "$r" = 1 ] || run=(perf stat -x, -e "$events" -o "$dir/stat" -- "${run[@]}")
    ip netns exec "algo-$((r + 1))" env SAGERUN_ENCRYPTION="$1" SAGERUN_NET_RECORDS="$2" \
      SAGERUN_TLS_PSK=bench-key-0123456789abcdef SAGERUN_NET_IFNAME=eth0 "${run[@]}" > "$dir/$r.log" 2>&1 &
  done
  wait
  awk -F, -v mib=$((32 * 64)) '/^[0-9]/ {printf "%.1f ", $1 / mib} END {print ""}' "$dir/stat"
}

median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
col() { awk -v c="$1" '{print $c}'; }
ns_per_byte() { awk -v c="${1:-2}" '{printf "%.3f\n", $c / $4 * 1e9}'; } # column c of "rate machine threads bytes"
limit_tc() {
  for i in 1 2; do
    ip netns exec "algo-$i" tc qdisc del dev eth0 root 2>/dev/null || true
    [ "$1" = none ] || ip netns exec "algo-$i" tc qdisc add dev eth0 root tbf rate "$1" burst 4mb latency 100ms
  done
}

echo "tls_limit: cipher" >&2
taskset -c 0 "$cipher" > "$work/cipher"
E=$(awk '$1 == "seal" && $2 == 262144 {print $3}' "$work/cipher")
D=$(awk '$1 == "open" && $2 == 262144 {print $3}' "$work/cipher")

echo "tls_limit: plugin and ring, 5 rounds" >&2
for round in 1 2 3 4 5; do
  plugin off sealed "$all_cpus" 2 30 >> "$work/p-plain"
  plugin on sealed "$all_cpus" 2 30 >> "$work/p-sealed"
  plugin on tls "$all_cpus" 2 30 >> "$work/p-tls"
  ring --no-encryption >> "$work/r-plain"
  ring "" >> "$work/r-tls"
done
echo "tls_limit: cores and threads" >&2
for round in 1 2 3; do
  for cpus in 0 "$all_cpus"; do
    for t in 1 2; do plugin on sealed "$cpus" "$t" 20 >> "$work/s-$cpus-$t"; done
  done
done
echo "tls_limit: capped links" >&2
for rate in 4gbit 2gbit; do
  limit_tc "$rate"
  for round in 1 2 3; do
    plugin off sealed "$all_cpus" 2 10 >> "$work/l-$rate-off"
    plugin on sealed "$all_cpus" 2 10 >> "$work/l-$rate-on"
  done
done
limit_tc none
if command -v perf >/dev/null && perf stat -e syscalls:sys_enter_read true >/dev/null 2>&1; then
  echo "tls_limit: system calls" >&2
  for m in "off sealed" "on sealed" "on tls"; do calls $m > "$work/calls-${m// /-}"; done
fi

rate_of() { col 1 < "$1" | median; }
cpu_of() { ns_per_byte < "$1" | median; }
# limit P: C / (P + 2/E + 2/D) with P in ns per byte, E, D in GB/s; GB/s
limit_of() { awk -v p="$1" -v e="$E" -v d="$D" -v c="$cores" 'BEGIN {printf "%.3f", c / (p + 2 / e + 2 / d)}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
predicted() { awk -v p="$1" -v e="$E" -v d="$D" 'BEGIN {printf "%.3f", p + 2 / e + 2 / d}'; }
busy() { awk -v g="$1" -v n="$2" -v c="$cores" 'BEGIN {printf "%.2f", g * n / c}'; } # cores busy = rate x ns/B

pp=$(rate_of "$work/p-plain") ps=$(rate_of "$work/p-sealed") pt=$(rate_of "$work/p-tls")
cp=$(cpu_of "$work/p-plain") cs=$(cpu_of "$work/p-sealed") ct=$(cpu_of "$work/p-tls")
rp=$(rate_of "$work/r-plain") rt=$(rate_of "$work/r-tls")
ring_ns() { awk -v c="${2:-2}" '{printf "%.3f\n", $c * 1e3 / $4}' "$1" | median; }
crp=$(ring_ns "$work/r-plain") crt=$(ring_ns "$work/r-tls")
tp=$(ns_per_byte 3 < "$work/p-plain" | median) ts=$(ns_per_byte 3 < "$work/p-sealed" | median)
tt=$(ns_per_byte 3 < "$work/p-tls" | median)
trp=$(ring_ns "$work/r-plain" 3) trt=$(ring_ns "$work/r-tls" 3)
lp=$(limit_of "$cp") lr=$(limit_of "$crp")

{
  echo "# Encrypted traffic against the CPU's limit ($(date -u +%Y-%m-%d))"
  echo
  echo "Command: \`sudo bash bench/tls_limit.sh\` (commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- runtime bench tests || echo ', with uncommitted changes'))."
  echo "Machine: $cores cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r), $(openssl version | cut -d' ' -f1-2)."
  echo "Two hosts as network namespaces on one machine: both ends share its $cores cores. Kernel TLS: $(grep -qw '^tls' /proc/modules 2>/dev/null && echo loaded || echo 'not loaded'), so TLS runs in user space."
  echo
  echo "## The model"
  echo
  echo "Each byte each way is sealed once and opened once in each direction, on top of what plaintext"
  echo "costs; so encrypted traffic needs p + 2/E + 2/D CPU seconds per byte each way, and with C cores"
  echo "the limit is C / (p + 2/E + 2/D) bytes each way per second. p counts the whole machine's busy"
  echo "time (/proc/stat: the kernel's network work runs partly in softirq threads, outside the"
  echo "processes), less the plugin callers' polling threads."
  echo
  echo "| input | value | from |"
  echo "|---|---:|---|"
  echo "| E: sealing, one core | $E GB/s | \`taskset -c 0 sagerun-tls-cipher\`, $(head -1 "$work/cipher" | sed 's/^# //'), 256 KiB records from a 64 MiB buffer |"
  echo "| D: opening, one core | $D GB/s | the same, opened in place across a 64 MiB buffer |"
  echo "| the same at OpenSSL's 16 KiB records | $(awk '$2 == 16384 {printf "%s %s, ", $1, $3}' "$work/cipher" | sed 's/, $//') GB/s | |"
  echo "| p, plugin plaintext | $cp ns per byte each way | machine busy less the callers, median of 5 |"
  echo "| p, ring plaintext | $crp ns per byte each way | machine busy, median of 5 |"
  echo "| C | $cores cores | nproc |"
  echo
  echo "Limit: plugin **$lp GB/s** each way, ring **$lr GB/s** busbw."
  echo
  echo "## Results (64 MiB, both directions at once, median of 5 interleaved rounds)"
  echo
  echo "CPU is ns per byte each way: the machine's (as for p) and, after the slash, the plugin threads' or"
  echo "the ranks' own. Busy: the share of the machine's cores that CPU fills at that rate."
  echo
  echo "| path | GB/s each way | CPU ns/B | model ns/B | busy | TLS / plaintext | TLS / limit |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  echo "| plugin plaintext | $pp | $cp / $tp | | $(busy "$pp" "$cp") | | |"
  echo "| plugin TLS, sealed records (default) | $ps | $cs / $ts | $(predicted "$cp") | $(busy "$ps" "$cs") | $(ratio "$ps" "$pp") | **$(ratio "$ps" "$lp")** |"
  echo "| plugin TLS, OpenSSL's records (\`SAGERUN_NET_RECORDS=tls\`) | $pt | $ct / $tt | $(predicted "$cp") | $(busy "$pt" "$ct") | $(ratio "$pt" "$pp") | $(ratio "$pt" "$lp") |"
  echo "| ring plaintext (busbw) | $rp | $crp / $trp | | $(busy "$rp" "$crp") | | |"
  echo "| ring TLS, sealed records (busbw) | $rt | $crt / $trt | $(predicted "$crp") | $(busy "$rt" "$crt") | $(ratio "$rt" "$rp") | **$(ratio "$rt" "$lr")** |"
  echo
  echo "Ring: $(cat "$work/ring---no-encryption.how"); $(cat "$work/ring-.how")."
  echo
  echo "Every round, GB/s each way (machine CPU ns per byte each way):"
  echo
  echo "| round | plugin plaintext | plugin sealed | plugin OpenSSL records | ring plaintext | ring TLS |"
  echo "|---|---|---|---|---|---|"
  for i in 1 2 3 4 5; do
    row="| $i"
    for f in p-plain p-sealed p-tls; do row="$row | $(sed -n "${i}p" "$work/$f" | awk '{printf "%s (%.3f)", $1, $2 / $4 * 1e9}')"; done
    for f in r-plain r-tls; do row="$row | $(sed -n "${i}p" "$work/$f" | awk '{printf "%s (%.3f)", $1, $2 * 1e3 / $4}')"; done
    echo "$row |"
  done
  if [ -f "$work/calls-on-tls" ]; then
    echo
    echo "## System calls and context switches of one end, per MiB each way (\`perf stat\`, one run each)"
    echo
    echo "The peer's own polling thread (NCCL's proxy thread's stand-in) makes the sched_yield calls."
    echo
    echo "| path | read | write | readv | recvfrom | sendto | poll | sched_yield | context switches |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for m in "off-sealed:plaintext" "on-sealed:TLS, sealed records" "on-tls:TLS, OpenSSL's records"; do
      echo "| ${m#*:} | $(sed 's/ *$//; s/ / | /g' "$work/calls-${m%%:*}") |"
    done
  fi
  echo
  echo "## Cores and threads (plugin, TLS with sealed records, median of 3)"
  echo
  echo "| cores (taskset, both ends) | threads per connection | GB/s each way | machine CPU ns/B |"
  echo "|---|---:|---:|---:|"
  for cpus in 0 "$all_cpus"; do
    for t in 1 2; do
      echo "| $cpus | $t | $(rate_of "$work/s-$cpus-$t") | $(cpu_of "$work/s-$cpus-$t") |"
    done
  done
  echo
  echo "## Links slower than the CPU (tc tbf on both ends, median of 3)"
  echo
  echo "| link | plaintext | TLS | TLS / plaintext |"
  echo "|---|---:|---:|---:|"
  for rate in 4gbit 2gbit; do
    a=$(rate_of "$work/l-$rate-off") b=$(rate_of "$work/l-$rate-on")
    echo "| $rate | $a | $b | $(ratio "$b" "$a") |"
  done
} | tee "$out"
