#!/usr/bin/env bash
# EFA support for the image: libfabric (with its efa provider) and the AWS
# OFI NCCL plugin, each from a release tag checked against a pinned commit
# (docker/fetch_pinned.sh), built against the image's CUDA and installed
# under PREFIX/libfabric and PREFIX/aws-ofi-nccl. The image puts the
# plugin's lib/ on LD_LIBRARY_PATH, where NCCL finds libnccl-net.so (the
# plugin's default symlink) and so reaches EFA on ml.p4d/p5 hosts; with
# inter-container encryption on, sagerun names its own TLS plugin instead
# (README: NCCL over TLS). Needs the network (GitHub), so CI cannot run it;
# CI runs the pin check itself on a local repository (tests/docker/).
# With EFA=0 (images without CUDA, docker/build.sh cpu) it installs nothing
# and lists no packages, so the Dockerfile's steps stay the same.
# Usage: [EFA=0] docker/build_efa.sh PREFIX
set -euo pipefail
prefix=${1:?usage: docker/build_efa.sh PREFIX}
cd "$(dirname "$0")/.."
if [ "${EFA:-1}" = 0 ]; then
  mkdir -p "$prefix/share"
  : > "$prefix/share/efa-runtime-packages.txt"
  echo "build_efa: EFA=0: no EFA in this image"
  exit 0
fi
# Pinned releases (tag and the commit it must be).
LIBFABRIC_TAG=${LIBFABRIC_TAG:-v2.6.0}
LIBFABRIC_COMMIT=${LIBFABRIC_COMMIT:-5de2d6a2df83595bcc38531cb91bf59495559495}
AWS_OFI_NCCL_TAG=${AWS_OFI_NCCL_TAG:-v1.21.1}
AWS_OFI_NCCL_COMMIT=${AWS_OFI_NCCL_COMMIT:-2475c4c736907e68ebeadb3848f31231ee4a44d0}
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}

apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  git ca-certificates autoconf automake libtool make g++ libibverbs-dev librdmacm-dev libhwloc-dev
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

docker/fetch_pinned.sh https://github.com/ofiwg/libfabric.git "$LIBFABRIC_TAG" "$LIBFABRIC_COMMIT" "$work/libfabric"
(cd "$work/libfabric" && ./autogen.sh > /dev/null &&
  ./configure --prefix="$prefix/libfabric" --enable-efa --disable-static > /dev/null &&
  make -j "$(nproc)" > /dev/null && make install > /dev/null)

docker/fetch_pinned.sh https://github.com/aws/aws-ofi-nccl.git "$AWS_OFI_NCCL_TAG" "$AWS_OFI_NCCL_COMMIT" \
  "$work/aws-ofi-nccl"
(cd "$work/aws-ofi-nccl" && ./autogen.sh > /dev/null &&
  ./configure --prefix="$prefix/aws-ofi-nccl" --with-libfabric="$prefix/libfabric" --with-cuda="$CUDA_HOME" \
    --enable-platform-aws --disable-tests > /dev/null &&
  make -j "$(nproc)" > /dev/null && make install > /dev/null)

mkdir -p "$prefix/share"
docker/runtime_packages.sh --provided "$prefix" --provided "$CUDA_HOME" \
  "$prefix"/libfabric/lib/libfabric.so "$prefix"/aws-ofi-nccl/lib/*.so > "$prefix/share/efa-runtime-packages.txt"
echo "build_efa: libfabric $LIBFABRIC_TAG and aws-ofi-nccl $AWS_OFI_NCCL_TAG under $prefix"
