#!/usr/bin/env bash
# Seeds for fuzz_sealed: programs of 3-byte steps (a step, then a 16-bit
# argument): 0 seal a record of 1+arg bytes, 1 write 1+arg sealed bytes to
# the socket, 2 receive into 1+4*arg bytes, 3 put the next (arg % 64)+1
# input bytes on the socket as junk.
set -euo pipefail
out=$1
mkdir -p "$out"
step() { printf "\\$(printf '%03o' "$1")\\$(printf '%03o' $(($2 >> 8)))\\$(printf '%03o' $(($2 & 255)))"; }
{ step 0 999; step 1 65535; step 2 250; } > "$out/one-record"
{ step 0 65535; step 0 7; step 0 30000; for i in $(seq 1 12); do step 1 9000; step 2 100; done; } > "$out/pieces"
{ step 0 4000; step 1 2000; step 2 2000; step 1 3000; step 2 2000; } > "$out/split-record"
{ step 0 500; step 1 65535; step 2 200; step 3 9; printf 'not-a-record'; step 2 200; } > "$out/junk"
