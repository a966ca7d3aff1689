#!/usr/bin/env bash
# npm run fuzz [-- libFuzzer flags...]: builds test/native/fuzz/core_fuzzer.cc (the user-client core through
# SimTransport and directly, on SimKernel) with clang-16, libFuzzer, ASan and UBSan into
# build/fuzz/ (test/native/build.sh, profile fuzz), copies the seed corpus test/native/fuzz/corpus/ to a fresh working corpus build/fuzz/corpus/
# (the repo's seeds are never written to), and runs it.
#
#   npm run fuzz                              60 s (the default -max_total_time)
#   npm run fuzz -- -max_total_time=300       any libFuzzer flag passes through
#   npm run fuzz -- build/fuzz/artifacts/crash-…   replay inputs (no corpus, no time limit);
#                                             KB_FUZZ_TRACE=1 prints every decoded step
#
# Prints libFuzzer's final stats (executions, exec/s) and the last cov:/ft:/corp: line, and
# exits non-zero if the fuzzer found a crash (the input goes to build/fuzz/artifacts/).
# Installs nothing: without clang-16 + libFuzzer it stops with what to install.
#
# Environment: CXX (default clang++-16), FUZZ_KEEP_CORPUS=1 keeps build/fuzz/corpus/ from the
# last run instead of starting again from the seeds. (With -jobs/-workers libFuzzer logs to
# fuzz-N.log files, so the summary below has no numbers.)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

CXX=${CXX:-clang++-16}
OUT=build/fuzz
BIN=$OUT/core_fuzzer
WORK=$OUT/corpus
ARTIFACTS=$OUT/artifacts
LOG=$OUT/last-run.log

missing() {
  echo "fuzz: $1" >&2
  echo "fuzz: needs Debian's clang-16 with libFuzzer, e.g.:" >&2
  echo "        apt-get update && apt-get install -y clang-16 libfuzzer-16-dev lld-16" >&2
  echo "      (or set CXX to another clang++ that supports -fsanitize=fuzzer)" >&2
  exit 2
}

command -v "$CXX" >/dev/null 2>&1 || missing "'$CXX' not found."
mkdir -p "$OUT" "$ARTIFACTS"

# Probe: can this compiler link a libFuzzer + ASan + UBSan binary at all?
probe_src=$OUT/probe.cc
printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
  'extern "C" int LLVMFuzzerTestOneInput(const uint8_t *, size_t) { return 0; }' >"$probe_src"
if ! "$CXX" -fsanitize=fuzzer,address,undefined "$probe_src" -o "$OUT/probe" \
     >"$OUT/probe.log" 2>&1; then
  sed 's/^/  /' "$OUT/probe.log" >&2
  missing "'$CXX' cannot link a -fsanitize=fuzzer,address,undefined binary (libFuzzer runtime missing?)."
fi
rm -f "$OUT/probe" "$probe_src" "$OUT/probe.log"

echo "fuzz: building $BIN with $CXX ($("$CXX" --version | head -1)), the one C++ build recipe"
CXX="$CXX" bash test/native/build.sh fuzz "$BIN" test/native/fuzz/core_fuzzer.cc

# Inputs given (files to replay)? Then no corpus and no default time limit.
positional=0
has_time=0
for a in "$@"; do
  case "$a" in
    -max_total_time=*) has_time=1 ;;
    -*) ;;
    *) positional=1 ;;
  esac
done

args=(-print_final_stats=1 "-artifact_prefix=$ARTIFACTS/")
if [ "$positional" = 0 ]; then
  [ "$has_time" = 1 ] || args+=(-max_total_time=60)
  if [ "${FUZZ_KEEP_CORPUS:-0}" != 1 ]; then rm -rf "$WORK"; fi
  mkdir -p "$WORK"
  cp -n test/native/fuzz/corpus/* "$WORK"/ 2>/dev/null || true
  seeds=$(find test/native/fuzz/corpus -type f | wc -l)
  echo "fuzz: working corpus $WORK ($seeds seeds from test/native/fuzz/corpus)"
fi
# Stack traces for UBSan reports too (ASan prints them anyway).
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
set +e
if [ "$positional" = 0 ]; then
  "$BIN" "${args[@]}" "$@" "$WORK" 2>&1 | tee "$LOG"
else
  "$BIN" "${args[@]}" "$@" 2>&1 | tee "$LOG"
fi
rc=${PIPESTATUS[0]}
set -e

stat() { sed -n "s/^stat::$1:[[:space:]]*//p" "$LOG" | tail -1; }
last=$(grep -E '#[0-9]+.*cov: ' "$LOG" | tail -1 || true)
field() { sed -n "s/.* $1: \([0-9A-Za-z/]*\).*/\1/p" <<<"$last"; }
echo
echo "==== fuzz summary ===="
echo "executions:  $(stat number_of_executed_units)"
echo "exec/s:      $(stat average_exec_per_sec)"
echo "new units:   $(stat new_units_added)"
echo "peak RSS:    $(stat peak_rss_mb) MB"
if [ -n "$last" ]; then
  echo "cov:         $(field cov)   ft: $(field ft)   corp: $(field corp)"
  echo "last line:   $last"
fi
if [ "$positional" = 0 ]; then
  echo "corpus:      $(find "$WORK" -type f | wc -l) files, $(du -sk "$WORK" | cut -f1) KB in $WORK"
fi
if [ "$rc" != 0 ]; then
  echo "RESULT: FAILED (libFuzzer exit $rc); crash inputs in $ARTIFACTS/:"
  ls -1t "$ARTIFACTS" 2>/dev/null | head -5 | sed "s|^|  $ARTIFACTS/|"
  echo "replay: npm run fuzz -- <input>   (KB_FUZZ_TRACE=1 for a step trace)"
  exit "$rc"
fi
echo "RESULT: ok, no crash"
