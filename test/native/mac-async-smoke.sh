#!/usr/bin/env bash
# Builds and runs test/native/iokit_async_smoke.cc: the IOKit transport's asynchronous path
# (requestResource, cancel, close, wake-port balance) against the loaded sample kext. macOS
# only; run as root (sudo bash test/native/mac-async-smoke.sh). Exit 2: could not run (the
# reason is printed); 1: a check failed. See docs/mac.md, open questions 9-13.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "$(uname -s)" != Darwin ]; then
  echo "mac-async-smoke: needs macOS (on Linux, npm run maccheck compiles this test)" >&2
  exit 2
fi
out=build/native-tests/bin/iokit_async_smoke
mkdir -p "$(dirname "$out")"
read -r -a cxx <<< "${CXX:-xcrun clang++}"
"${cxx[@]}" -std=c++17 -O1 -g -Wall -Wextra -mmacosx-version-min=11.0 \
  -I bridge -I kext-sample/core -I test/native -DKB_HAVE_IOKIT=1 \
  bridge/iokit_transport.cc test/native/iokit_async_smoke.cc \
  -framework IOKit -framework CoreFoundation -o "$out"
exec "$out"
