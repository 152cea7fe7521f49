#!/usr/bin/env bash
# The image's own build steps: the Dockerfile's builder stage runs this, and
# CI runs it too (on Debian 12, where CI runs; the image builds on NVIDIA's
# Ubuntu CUDA image), so the recipe's steps are proved on every change.
#   1. build packages and the build, through scripts/setup.sh (the script
#      every build of the project uses), without the tests;
#   2. install under PREFIX: bin/sagerun, lib/libnccl-net-sagerun.so and,
#      where nvcc is (the image's builder), lib/libsagerun-cuda.so;
#   3. check what was installed: the binary runs, the plugin exports NCCL's
#      ABI tables and the GPU trainer its one entry point, nothing else of
#      ours, and every library resolves;
#   4. write PREFIX/share/sagerun/runtime-packages.txt: the packages the
#      runtime stage installs (docker/runtime_packages.sh), plus openmpi-bin
#      for `--launcher mpirun`.
# Usage: docker/build.sh PREFIX [BUILD_DIR]
#        docker/build.sh cpu|gpu [TAG]   builds the image itself (docker/image.sh)
set -euo pipefail
case ${1:-} in
  cpu | gpu) exec "$(dirname "$0")/image.sh" "$@" ;;
esac
prefix=${1:?usage: docker/build.sh PREFIX [BUILD_DIR] | docker/build.sh cpu|gpu [TAG]}
build=${2:-build-image}
cd "$(dirname "$0")/.."

SAGERUN_SETUP_PACKAGES=build scripts/setup.sh "$build" -DCMAKE_BUILD_TYPE=Release -DSAGERUN_TESTS=OFF \
  -DCMAKE_INSTALL_PREFIX="$prefix"
cmake --install "$build" --strip > /dev/null

"$prefix/bin/sagerun" help > /dev/null
exports=$(nm -D --defined-only "$prefix/lib/libnccl-net-sagerun.so" | awk '$2 ~ /[TDBR]/ {print $3}' |
  grep -v '^_' | sort | tr '\n' ' ')
if [ "$exports" != "ncclNetPlugin_v10 ncclNetPlugin_v11 ncclNetPlugin_v9 " ]; then
  echo "build: the NCCL plugin exports \"$exports\", want the ncclNetPlugin_v9/v10/v11 tables only" >&2
  exit 1
fi

libraries=("$prefix/lib/libnccl-net-sagerun.so")
gpu_library=$prefix/lib/libsagerun-cuda.so
if command -v nvcc > /dev/null; then
  exports=$(nm -D --defined-only "$gpu_library" | awk '$2 ~ /[TDBR]/ {print $3}' | grep -v '^_' | sort |
    tr '\n' ' ')
  if [ "$exports" != "sagerun_cuda_bench sagerun_cuda_engine " ]; then
    echo "build: $gpu_library exports \"$exports\", want sagerun_cuda_bench and sagerun_cuda_engine only" >&2
    exit 1
  fi
  libraries+=("$gpu_library")
fi

mkdir -p "$prefix/share/sagerun"
{
  # CUDA's libraries (cuBLAS, NCCL) come with the CUDA base image.
  docker/runtime_packages.sh --provided "$prefix" --provided /usr/local/cuda "$prefix/bin/sagerun" "${libraries[@]}"
  echo openmpi-bin
} | sort -u > "$prefix/share/sagerun/runtime-packages.txt"
echo "build: installed under $prefix; runtime packages: $(tr '\n' ' ' < "$prefix/share/sagerun/runtime-packages.txt")"
