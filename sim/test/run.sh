#!/usr/bin/env bash
# Builds and runs the SimKernel unit test: core + sim_kernel.cpp + sim_kernel_test.cc.
# Exits non-zero if the build or any check fails; the last line is "N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/../.."
CXX="${CXX:-g++}"
OUT="$(mktemp -d "${TMPDIR:-/tmp}/sim_kernel_test.XXXXXX")"
trap 'rm -rf "$OUT"' EXIT
"$CXX" -std=c++17 -Wall -Wextra -Werror -O1 -pthread -I kext-sample/core -I native -I sim \
  kext-sample/core/*.cpp sim/sim_kernel.cpp sim/test/sim_kernel_test.cc \
  -o "$OUT/sim_kernel_test"
"$OUT/sim_kernel_test"
