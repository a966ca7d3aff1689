#!/usr/bin/env bash
# Cross-builds an N-API prebuild for another Linux architecture with Debian's cross toolchain
# (linux-arm64: apt-get install g++-aarch64-linux-gnu), into prebuilds/linux-<arch>/.
# It builds in a temporary copy of the sources, so the checkout's own build/ stays native.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
arch=${1:-arm64}
case "$arch" in
  arm64) triple=aarch64-linux-gnu ;;
  *) echo "prebuild-cross: no cross toolchain known for '$arch' (known: arm64)" >&2; exit 2 ;;
esac
if ! command -v "$triple-g++" >/dev/null; then
  echo "prebuild-cross: $triple-g++ not found: apt-get install g++-$triple" >&2
  exit 1
fi
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cp -r package.json binding.gyp native bridge sim kext-sample protocol "$work"/
ln -s "$root/node_modules" "$work/node_modules"
cd "$work"
CC=$triple-gcc CXX=$triple-g++ LINK=$triple-g++ AR=$triple-ar PREBUILD_STRIP_BIN=$triple-strip \
  "$root/node_modules/.bin/prebuildify" --napi --strip --tag-libc --arch "$arch" --out "$root"
file "$root/prebuilds/linux-$arch/"*.node 2>/dev/null || ls -l "$root/prebuilds/linux-$arch/"
