#!/usr/bin/env bash
# Prints the Debian/Ubuntu packages that hold the shared libraries FILES
# need, one per line, sorted: what the image's runtime stage installs, read
# off the builder (so the list is right on whichever distribution the CUDA
# base image uses, and never goes stale). Libraries under a --provided
# directory (the base image's CUDA, our own prefix) are skipped; any other
# library no package owns is an error, since the runtime stage would miss it.
# Usage: docker/runtime_packages.sh [--provided DIR]... FILE...
set -euo pipefail
provided=()
while [ "${1:-}" = --provided ]; do
  provided+=("$(realpath -m "$2")")
  shift 2
done
(($#)) || { echo "usage: $0 [--provided DIR]... FILE..." >&2; exit 2; }

# The package owning a library path; merged /usr means dpkg may know it
# under /usr/lib while ldd says /lib, or the other way round.
owner() {
  local path=$1 real
  real=$(realpath "$path")
  for candidate in "$path" "$real" "/usr$path" "/usr$real" "${path#/usr}" "${real#/usr}"; do
    if pkg=$(dpkg -S "$candidate" 2>/dev/null | head -n 1 | cut -d: -f1) && [ -n "$pkg" ]; then
      echo "$pkg"
      return 0
    fi
  done
  return 1
}

# Prints the owner of every library FILE needs; returns 1 if one has none.
owners_of() {
  local file=$1 deps lib dir status=0
  if ! deps=$(ldd "$file" 2>&1) || grep -q 'not found' <<<"$deps"; then
    echo "runtime_packages: ldd $file: unresolved or failed:" >&2
    echo "$deps" >&2
    return 1
  fi
  while read -r lib; do
    for dir in "${provided[@]}"; do
      [[ $(realpath "$lib") == "$dir"/* ]] && continue 2
    done
    if ! owner "$lib"; then
      echo "runtime_packages: no package owns $lib (needed by $file)" >&2
      status=1
    fi
  done < <(sed -n 's/.*=> \(\/[^ ]*\) (0x.*/\1/p' <<<"$deps")
  return "$status"
}

list_all() {
  local file status=0
  for file in "$@"; do
    owners_of "$file" || status=1
  done
  return "$status"
}

list_all "$@" | sort -u
exit "${PIPESTATUS[0]}"
