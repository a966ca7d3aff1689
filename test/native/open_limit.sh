#!/usr/bin/env bash
# Builds and runs the OpenLimit unit test. The core file is compiled as the kext compiles it
# (no exceptions, no RTTI, no C++ standard library headers), the test around it with the
# standard library. Last line "N passed, M failed"; non-zero exit on a build or check failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
CXX="${CXX:-g++}"
OUT="$(mktemp -d "${TMPDIR:-/tmp}/open_limit_test.XXXXXX")"
trap 'rm -rf "$OUT"' EXIT
"$CXX" -std=c++17 -Wall -Wextra -Werror -O1 -fno-exceptions -fno-rtti -nostdinc++ \
  -I kext-sample/core -c kext-sample/core/open_limit.cpp -o "$OUT/open_limit.o"
"$CXX" -std=c++17 -Wall -Wextra -Werror -O1 -pthread -I kext-sample/core \
  test/native/open_limit_test.cc "$OUT/open_limit.o" -o "$OUT/open_limit_test"
"$OUT/open_limit_test"
