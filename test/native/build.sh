#!/usr/bin/env bash
# The one build recipe for every C++ test binary: the sim unit tests, the sanitizer stress
# harness and the fuzzer compile the same product sources, differing only in flags.
#
#   bash test/native/build.sh PROFILE OUTPUT HARNESS.cc...
#
# PROFILE: plain (g++/clang, -O1) · asan (ASan+UBSan) · tsan (ThreadSanitizer) ·
#          tsan-lock-across-kpi (TSan, core built with the old lock-across-KPI bug planted:
#          the negative control of the deadlock check) · fuzz (libFuzzer+ASan+UBSan).
# The core is always compiled as the kext compiles it: -fno-exceptions -fno-rtti -nostdinc++.
# Objects go to build/native-tests/PROFILE/; OUTPUT is the linked binary.
# Environment: CXX (plain: g++ unless set; the others: clang++-16, else clang++).
set -euo pipefail
cd "$(dirname "$0")/../.."

profile=${1:?profile}
output=${2:?output binary}
shift 2
[ $# -gt 0 ] || { echo "build.sh: no harness source given" >&2; exit 64; }

CORE_SRC=(kext-sample/core/*.cpp)
PRODUCT_SRC=(sim/sim_kernel.cpp bridge/sim_transport.cc bridge/serial_queue.cc bridge/job.cc bridge/resource_job.cc)
INCLUDES=(-I kext-sample/core -I sim -I bridge)
CORE_ONLY=(-fno-exceptions -fno-rtti -nostdinc++)  # kernel-safe C++, as in the kext
core_defs=()

clang() {
  if [ -n "${CXX:-}" ]; then echo "$CXX"
  elif command -v clang++-16 >/dev/null 2>&1; then echo clang++-16
  else echo clang++
  fi
}

case $profile in
  plain) cxx=${CXX:-g++}; san=() ;;
  asan) cxx=$(clang); san=(-fsanitize=address,undefined -fno-sanitize-recover=all) ;;
  tsan) cxx=$(clang); san=(-fsanitize=thread) ;;
  tsan-lock-across-kpi) cxx=$(clang); san=(-fsanitize=thread); core_defs=(-DKB_PLANT_LOCK_ACROSS_KPI=1) ;;
  fuzz) cxx=$(clang); san=(-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined) ;;
  *) echo "build.sh: unknown profile '$profile' (plain, asan, tsan, tsan-lock-across-kpi, fuzz)" >&2; exit 64 ;;
esac
command -v "$cxx" >/dev/null 2>&1 || { echo "build.sh: compiler '$cxx' not found" >&2; exit 2; }

common=(-std=c++17 -g -O1 -fno-omit-frame-pointer -pthread -Wall -Wextra -Werror "${INCLUDES[@]}")
# libFuzzer's main must not be linked into the objects it instruments: only the link gets it.
compile_san=("${san[@]}")
[ "$profile" = fuzz ] && compile_san=(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined)

dir=build/native-tests/$profile
mkdir -p "$dir" "$(dirname "$output")"
objs=() pids=()
for src in "${CORE_SRC[@]}" "${PRODUCT_SRC[@]}" "$@"; do
  obj=$dir/$(basename "${src%.*}").o
  objs+=("$obj")
  extra=()
  [[ "$src" == kext-sample/core/* ]] && extra=("${CORE_ONLY[@]}" "${core_defs[@]}")
  "$cxx" "${common[@]}" "${extra[@]}" "${compile_san[@]}" -c "$src" -o "$obj" &
  pids+=($!)
done
rc=0
for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
[ $rc -eq 0 ] || { echo "build.sh: compiling for profile $profile failed" >&2; exit 1; }
"$cxx" "${san[@]}" -pthread "${objs[@]}" -o "$output"
