#!/usr/bin/env bash
# Clones release TAG of the git repository at URL into DIR and checks that
# the tag is the commit we pinned: a moved tag or a different repository
# fails the build (and DIR is removed) instead of building unreviewed code.
# A commit id names the whole tree by its hash, which is what a checksum of
# a release tarball would give us.
# Usage: docker/fetch_pinned.sh URL TAG COMMIT DIR
set -euo pipefail
(($# == 4)) || { echo "usage: $0 URL TAG COMMIT DIR" >&2; exit 2; }
url=$1 tag=$2 commit=$3 dir=$4
[[ $commit =~ ^[0-9a-f]{40}$ ]] || { echo "fetch_pinned: $commit is not a 40-digit commit id" >&2; exit 2; }
git -c advice.detachedHead=false clone --quiet --depth 1 --branch "$tag" "$url" "$dir"
actual=$(git -C "$dir" rev-parse HEAD)
if [ "$actual" != "$commit" ]; then
  echo "fetch_pinned: $url $tag is commit $actual, but $commit is pinned; refusing to build it" >&2
  rm -rf "$dir"
  exit 1
fi
echo "fetch_pinned: $url $tag at pinned commit $commit"
