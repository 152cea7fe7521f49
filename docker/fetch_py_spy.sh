#!/usr/bin/env bash
# Puts py-spy (a static binary, from its PyPI wheel) at DIR/py-spy for the
# image, which reads a hung job's Python stacks with it (sagerun's hang
# watchdog). Pinned: the wheel's sha256 must match, or nothing is installed.
# x86_64 only, as the image is. Usage: docker/fetch_py_spy.sh DIR
set -euo pipefail
(($# == 1)) || { echo "usage: $0 DIR" >&2; exit 2; }
dir=$1
version=0.4.3
wheel=py_spy-$version-py2.py3-none-manylinux1_x86_64.manylinux_2_5_x86_64.whl
sha256=8a4277225f470d394a85cca0cdd944bef87f0097b6f20150a6dd3ac2e92806b8
if [ -x "$dir/py-spy" ] && [ "$(cat "$dir/py-spy.sha256" 2>/dev/null)" = "$sha256" ]; then
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download --no-deps --disable-pip-version-check -q --only-binary=:all: \
  --platform manylinux_2_5_x86_64 --python-version 3 "py-spy==$version" -d "$work"
actual=$(sha256sum "$work/$wheel" | cut -d' ' -f1)
if [ "$actual" != "$sha256" ]; then
  echo "fetch_py_spy: $wheel has sha256 $actual, but $sha256 is pinned; refusing it" >&2
  exit 1
fi
mkdir -p "$dir"
python3 -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))' \
  "$work/$wheel" "py_spy-$version.data/scripts/py-spy" > "$dir/py-spy"
chmod 755 "$dir/py-spy"
echo "$sha256" > "$dir/py-spy.sha256"
echo "fetch_py_spy: py-spy $version (wheel sha256 $sha256) in $dir"
