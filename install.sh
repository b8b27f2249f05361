#!/usr/bin/env bash
# Install everything osvkit and its tests need on a fresh Debian machine (as root):
# QEMU (system emulator and qemu-img) from Debian, osvkit and its test extras from PyPI.
set -euo pipefail
cd "$(dirname "$0")"
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v qemu-img >/dev/null || need+=(qemu-utils)
command -v readelf >/dev/null || need+=(binutils)
# the Linux witness tests (gcc -static /init) and the --app tests (C with zlib, C++ with threads)
command -v gcc >/dev/null || need+=(gcc)
command -v g++ >/dev/null || need+=(g++)
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || need+=(libc6-dev)
[ -e /usr/include/zlib.h ] || need+=(zlib1g-dev)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "install.sh: please install ${need[*]} (Debian packages)" >&2
  fi
fi
# the tests fetch Debian's kernel with apt-get download, which needs the package lists
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! apt-cache show linux-image-amd64 >/dev/null 2>&1; then
  apt-get update -qq
fi
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -e '.[test]'
