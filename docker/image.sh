#!/usr/bin/env bash
# Builds the training image with a Docker engine (docker/build.sh cpu|gpu
# runs this), from the repository root as context (.dockerignore keeps it
# to what the Dockerfile copies).
#   gpu  docker/Dockerfile as it is, on NVIDIA's CUDA images (which the
#        engine must be able to pull), tagged sagerun:gpu.
#   cpu  the same recipe on a Debian 12 base that needs no registry: made
#        here with debootstrap (minbase, from the machine's Debian mirror)
#        and imported as sagerun-base:debian12, once; EFA=0; python3 and
#        procps for users' programs (mpirun comes with sagerun's own list).
#        Tagged sagerun:cpu.
# Docker's layer cache keeps the build packages and the runtime packages,
# so a rebuild after a source change only compiles and copies.
# Usage: docker/image.sh cpu|gpu [TAG]
set -euo pipefail
cd "$(dirname "$0")/.."
variant=${1:-}
base=sagerun-base:debian12

debian_base() {
  if docker image inspect "$base" > /dev/null 2>&1; then
    echo "image: base $base (cached)"
    return
  fi
  local work start=$SECONDS
  work=$(mktemp -d /var/tmp/sagerun-base.XXXXXX)
  trap 'rm -rf "$work"' RETURN
  if ! debootstrap --variant=minbase bookworm "$work/rootfs" > "$work/debootstrap.log" 2>&1; then
    tail -n 20 "$work/debootstrap.log" >&2
    echo "image: debootstrap of Debian 12 failed" >&2
    exit 1
  fi
  tar -C "$work/rootfs" -c . | docker import --change 'CMD ["/bin/bash"]' - "$base" > /dev/null
  echo "image: base $base made with debootstrap in $((SECONDS - start)) s"
}

# build TAG [ARGS...]: the log shows only when the build fails.
build() {
  local tag=$1 log
  shift
  log=$(mktemp /var/tmp/sagerun-image.XXXXXX.log)
  if ! docker build -f docker/Dockerfile -t "$tag" "$@" . > "$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "image: docker build of $tag failed (log: $log)" >&2
    exit 1
  fi
  rm -f "$log"
}

# py-spy for the hang watchdog's Python stacks: into the context, pinned.
[ "$variant" = cpu ] || [ "$variant" = gpu ] && docker/fetch_py_spy.sh docker/.vendor

case $variant in
  cpu)
    debian_base
    tag=${2:-sagerun:cpu}
    build "$tag" --build-arg BUILDER_BASE="$base" --build-arg RUNTIME_BASE="$base" --build-arg EFA=0 \
      --build-arg EXTRA_PACKAGES="python3 procps"
    ;;
  gpu)
    tag=${2:-sagerun:gpu}
    build "$tag"
    ;;
  *)
    echo "usage: docker/image.sh cpu|gpu [TAG]" >&2
    exit 2
    ;;
esac
echo "image: built $tag, $(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1 / 1e6}')"
