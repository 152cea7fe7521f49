#!/usr/bin/env bash
# Seeds for fuzz_rendezvous: one framed message of every kind (first byte:
# where the fuzzer splits the input).
set -euo pipefail
out=$1
mkdir -p "$out"
i=0
while IFS= read -r msg; do
  len=${#msg}
  printf "\\$(printf '%03o' 7)\\$(printf '%03o' $((len >> 24 & 255)))\\$(printf '%03o' $((len >> 16 & 255)))\\$(printf '%03o' $((len >> 8 & 255)))\\$(printf '%03o' $((len & 255)))%s" "$msg" > "$out/msg-$i"
  i=$((i + 1))
done <<'MESSAGES'
{"op":"join","job":"j","host":"algo-2","index":1,"ranks":8,"addr":"10.0.0.2"}
{"op":"welcome","hosts":[{"host":"algo-1","ranks":8,"addr":"10.0.0.1"},{"host":"algo-2","ranks":8,"addr":"10.0.0.2"}]}
{"op":"heartbeat"}
{"op":"failed","reason":"rank 3 (host algo-2) was killed by signal SIGKILL"}
{"op":"done","status":0}
{"op":"finished"}
{"op":"stopped","signal":"SIGTERM"}
{"op":"failed_on","host":"algo-2","reason":"rank 3 (host algo-2, local rank 1, no GPU) exited with status 3"}
{"op":"abort","host":"algo-2","reason":"host algo-2 lost"}
{"op":"set","key":"ring/0","value":"10.0.0.1:40000"}
{"op":"get","key":"ring/1"}
{"op":"value","key":"ring/1","value":"10.0.0.2:40001"}
MESSAGES
