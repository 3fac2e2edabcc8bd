#!/usr/bin/env bash
# A Debian bookworm root filesystem with Python from Debian's packages (python3, python3-venv), as a
# tar under .tools/cache/, for tests/test_image.py: it is the base image of the test build, because no
# container registry (and so no official Python image) is reachable here. Built once, then reused.
# Needs root and debootstrap (scripts/install-tools.sh installs it). Prints the tar's path.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/.tools/cache/debian-python-bookworm.tar"
if [ -s "$out" ]; then
  echo "$out"
  exit 0
fi
mkdir -p "$(dirname "$out")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if ! debootstrap --variant=minbase --include=python3,python3-venv bookworm "$work/rootfs" >"$work/log" 2>&1; then
  tail -n 20 "$work/log" >&2
  exit 1
fi
# Package caches, indexes, documentation and translations: not needed to run Python.
rm -rf "$work/rootfs/var/cache/apt/"* "$work/rootfs/var/lib/apt/lists/"* \
  "$work/rootfs/usr/share/doc/"* "$work/rootfs/usr/share/man/"* "$work/rootfs/usr/share/locale/"*
tar --numeric-owner -C "$work/rootfs" -cf "$out.tmp" .
mv "$out.tmp" "$out"
echo "$out"
