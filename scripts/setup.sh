#!/usr/bin/env bash
# Installs what sagerun needs to build and test on Debian 12, then builds it.
# Usage: scripts/setup.sh [build-dir] [extra cmake args...]
#        scripts/setup.sh --packages-only   (install, do not build: the image's
#                                            builder caches this in a layer)
# SAGERUN_SETUP_PACKAGES=build installs only what building needs (the image's
# builder stage, docker/build.sh, on Ubuntu as on Debian); the default, all,
# adds the test tools (clang for fuzzing, Python, iproute2, tcpdump, ...).
# Skips apt-get when every package is already installed, so repeated runs are fast.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake pkg-config
  libjansson-dev libhwloc-dev libhwloc-plugins hwloc libssl-dev libpcre2-dev
  libopenblas-dev libopenmpi-dev openmpi-bin libcmocka-dev openssl
)
case ${SAGERUN_SETUP_PACKAGES:-all} in
  build) ;;
  all) packages+=(clang libclang-rt-14-dev python3 python3-venv python3-dev iproute2 tcpdump bc
                  docker.io debootstrap openssh-server openssh-client util-linux gdb) ;;
  *) echo "setup: SAGERUN_SETUP_PACKAGES must be build or all" >&2; exit 2 ;;
esac
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages and not root; run as root or install: ${missing[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

[ "${1:-}" = --packages-only ] && exit 0

build_dir=${1:-build}
shift || true
mkdir -p "$build_dir"
log=$build_dir/build.log
if ! { cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" && cmake --build "$build_dir" -j "$(nproc)"; } \
    > "$log" 2>&1; then
  tail -n 40 "$log"
  echo "setup: build in $build_dir failed (full log: $log)" >&2
  exit 1
fi
echo "setup: built $build_dir"
