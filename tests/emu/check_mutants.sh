#!/usr/bin/env bash
# Puts each deliberate bug below into a scratch copy of the tree, one at a
# time, and shows that the emulated suite (label emu) fails on it: which
# test, and the first line it said about it. Not part of CI (it builds the
# emulated targets once and then once per bug); run it after changing the
# emulator, to see that it still catches what it is there to catch.
#   tests/emu/check_mutants.sh [SCRATCH_DIR]
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-/tmp/sagerun-mutants}
rm -rf "$work"
mkdir -p "$work/src"
(cd "$src" && git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$work/src")
cmake -S "$work/src" -B "$work/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$work/build" -j "$(nproc)" --target sagerun test_cuda_kernels_emulated test_nccl_grads_emulated \
  test_emulator >/dev/null

missed=0
# mutant FILE FROM TO TEST WHAT: FROM must occur exactly once in FILE.
mutant() {
  local file=$work/src/$1 from=$2 to=$3 test=$4 what=$5
  cp "$file" "$file.orig"
  python3 - "$file" "$from" "$to" <<'EOF'
import sys
path, old, new = sys.argv[1:]
text = open(path).read()
if text.count(old) != 1:
    sys.exit(f"{path}: {old!r} occurs {text.count(old)} times, not once")
open(path, "w").write(text.replace(old, new))
EOF
  cmake --build "$work/build" -j "$(nproc)" --target "$test" >/dev/null
  local log=$work/$test.log
  if (cd "$work/build/tests/emu" && "./$test" >"$log" 2>&1); then
    echo "NOT CAUGHT: $what ($test passed)"
    missed=1
  else
    echo "caught by $test: $what"
    grep -m 2 -E '^cuda_emu:|^ERROR|differ from|ERROR   \] ---' "$log" | sed 's/^/    /' | cut -c1-220 || true
  fi
  mv "$file.orig" "$file"
  touch "$file" # newer than the mutant's objects, so the next build puts it back
}

mutant kernels/cuda/encoder.cu "    if (i >= n)" "    if (i > n)" test_cuda_kernels_emulated \
  "an off-by-one in a kernel's bounds (encoder_forward_kernel writes element n)"
mutant runtime/gpu/nccl_grads.c "if (cudaEventRecord(b->ready, g->compute) != cudaSuccess ||
        cudaStreamWaitEvent(g->comm_stream, b->ready, 0) != cudaSuccess) {" \
  "if (cudaEventRecord(b->ready, g->compute) != cudaSuccess) {" test_nccl_grads_emulated \
  "no cudaStreamWaitEvent before a bucket's all-reduce"
mutant kernels/cuda/matmul.cu "{OC, N, C, true, false, weight," "{OC, N, C, false, false, weight," \
  test_cuda_kernels_emulated "a transposed cuBLASLt operand (the weight in matmul_forward_cuda)"
mutant kernels/cuda/crossentropy.cu "launch_kernel(loss_sum_kernel, 1, 1024," "launch_kernel(loss_sum_kernel, 1, 2048," \
  test_cuda_kernels_emulated "a launch with 2048 threads per block (loss_sum_kernel)"
mutant kernels/cuda/flash_attention_kernels.cuh "copy16(dst, src + (size_t)(row0 + r) * stride + c);" \
  "copy16(dst, src + (size_t)(row0 + r) * stride + c + 1);" test_cuda_kernels_emulated \
  "a 16-byte vector load at an odd offset (the fused attention's tile load)"
exit $missed
