#!/usr/bin/env bash
# Builds sagerun here (Release, sm_80 + sm_90) for a lent GPU machine and
# gathers what a device call needs into build-gpu-bundle/ (ignored by git,
# and small enough for the device tool's 64 MiB carry limit):
#   bin/   sagerun, its companion libraries (libsagerun-cuda.so, the NCCL net
#          plugin) beside it as installed, and the GPU test programs;
#   deps/  every library those link except glibc's and CUDA's own (cuBLAS
#          and NCCL are on the device machine, in its CUDA and PyTorch's
#          wheels; bench/gpu_session.sh finds them).
# Then device calls run bench/gpu_session.sh PHASE with
# carry=["build-gpu-bundle"].
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build-gpu -DCMAKE_BUILD_TYPE=Release
bundle=build-gpu-bundle
rm -rf "$bundle" && mkdir -p "$bundle/bin" "$bundle/deps"
binaries=(build-gpu/launcher/sagerun build-gpu/launcher/libsagerun-cuda.so build-gpu/launcher/libnccl-net-sagerun.so
          build-gpu/tests/test_cuda_kernels build-gpu/tests/test_gpu_train build-gpu/tests/test_gpu_bench
          build-gpu/bench/sagerun-attention-bench)
cp "${binaries[@]}" "$bundle/bin/"
strip --strip-debug "$bundle"/bin/*
for f in "${binaries[@]}"; do ldd "$f"; done | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u |
  grep -Ev '/(libc|libm|libdl|librt|libpthread|libgcc_s|libstdc\+\+)\.so|ld-linux|/usr/local/cuda' |
  while read -r lib; do cp -L "$lib" "$bundle/deps/"; done
du -sh "$bundle"/*
size=$(du -sm "$bundle" | cut -f1)
if [ "$size" -ge 60 ]; then
  echo "gpu_bundle: $bundle is $size MiB; the device tool carries at most 64 MiB with the working tree" >&2
  exit 1
fi
