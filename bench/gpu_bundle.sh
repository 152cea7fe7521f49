#!/usr/bin/env bash
# Builds sagerun here (Release, sm_80 + sm_90) for a lent GPU machine and
# gathers into build-gpu/deps the libraries that machine lacks: everything
# the binaries link except glibc's and CUDA's own (cuBLAS and NCCL are
# there, in the image's CUDA and PyTorch's wheels; bench/gpu_session.sh
# finds them). Then one device call runs bench/gpu_session.sh with
# carry=["build-gpu"].
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build-gpu -DCMAKE_BUILD_TYPE=Release
deps=build-gpu/deps
rm -rf "$deps" && mkdir -p "$deps"
binaries=(build-gpu/launcher/sagerun build-gpu/launcher/libsagerun-cuda.so build-gpu/launcher/libnccl-net-sagerun.so
          build-gpu/tests/test_cuda_kernels build-gpu/tests/test_gpu_train)
for f in "${binaries[@]}"; do ldd "$f"; done | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u |
  grep -Ev '/(libc|libm|libdl|librt|libpthread|libgcc_s|libstdc\+\+)\.so|ld-linux|/usr/local/cuda' |
  while read -r lib; do cp -L "$lib" "$deps/"; done
# Build trees carry absolute paths (CTest files); the session runs the binaries directly.
du -sh "$deps" build-gpu/launcher build-gpu/tests/test_cuda_kernels build-gpu/tests/test_gpu_train
ls "$deps"
