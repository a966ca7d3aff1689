#!/usr/bin/env bash
# npm run test:sanitize — the user-client core, SimTransport and SimKernel under sanitizers.
#
# Builds the core, bridge/ and sim/ with test/native/stress.cc (test/native/build.sh, the one
# C++ build recipe) with clang, into build/sanitize/:
#   asan/stress  -fsanitize=address,undefined -fno-sanitize-recover=all
#   tsan/stress  -fsanitize=thread
# and runs the stress harness under each, once per seed (8 threads × 100,000 calls on shared
# connections, plus 2 events threads; see test/native/stress.cc; plus --transport-close-race, --unload-race, --request-race and the negative control with the lock-across-KPI bug planted). The core is compiled as the kext needs it
# (-fno-exceptions -fno-rtti -nostdinc++). Any sanitizer report stops the run with a non-zero
# status (halt_on_error, exitcode), and the logs are also scanned for reports; a harness
# check that fails makes its last line "N passed, M failed" with M > 0 and exits non-zero.
#
# Environment: CXX (default clang++-16, else clang++), STRESS_CALLS / STRESS_THREADS (both
# runs), TSAN_CALLS (the TSan run only; default: the same 100,000 calls per thread),
# STRESS_SEEDS (each sanitizer runs the harness once per seed; default 3 seeds),
# SANITIZE_ONLY=asan|tsan (one sanitizer), SANITIZE_TIMEOUT (seconds per run, default 240: a hang,
# e.g. a corrupted ledger count that close() walks for billions of releases, is a failure).
set -uo pipefail
cd "$(dirname "$0")/.."

OUT=build/sanitize
THREADS="${STRESS_THREADS:-8}"
CALLS="${STRESS_CALLS:-100000}"
TSAN_CALLS="${TSAN_CALLS:-$CALLS}"
ONLY="${SANITIZE_ONLY:-}"
LIMIT="${SANITIZE_TIMEOUT:-240}"
SEEDS="${STRESS_SEEDS:-0x6b62737472657373 0x2545f4914f6cdd1d 0x9e3779b97f4a7c15}"

die() {
  echo "sanitize: $*" >&2
  exit 1
}

# ---- toolchain: clang with its sanitizer runtimes ----
if [[ -z "${CXX:-}" ]]; then
  if command -v clang++-16 >/dev/null 2>&1; then CXX=clang++-16
  elif command -v clang++ >/dev/null 2>&1; then CXX=clang++
  fi
fi
if [[ -z "${CXX:-}" ]] || ! command -v "$CXX" >/dev/null 2>&1; then
  die "no clang++ found (${CXX:+CXX=$CXX does not exist; }looked for clang++-16 and clang++). On Debian/Ubuntu:
    apt-get update && apt-get install -y clang-16 libclang-rt-16-dev
  or set CXX to a clang++ that has the ASan/UBSan/TSan runtimes."
fi
mkdir -p "$OUT/asan" "$OUT/tsan" "$OUT/tsan-lock-across-kpi"
probe() {  # $1 = sanitizer flags: can this compiler link and run a program with them?
  printf 'int main() { return 0; }\n' >"$OUT/probe.cc"
  "$CXX" $1 "$OUT/probe.cc" -o "$OUT/probe" >"$OUT/probe.log" 2>&1 && "$OUT/probe" >>"$OUT/probe.log" 2>&1
}
for flags in "-fsanitize=address,undefined" "-fsanitize=thread"; do
  if ! probe "$flags"; then
    sed 's/^/    /' "$OUT/probe.log" >&2
    die "$CXX cannot build and run a program with $flags: the sanitizer runtimes are missing.
    On Debian/Ubuntu: apt-get update && apt-get install -y clang-16 libclang-rt-16-dev"
  fi
done
rm -f "$OUT/probe" "$OUT/probe.cc" "$OUT/probe.log"
echo "sanitize: $("$CXX" --version | head -1)"

build() {  # $1 = profile (asan|tsan|tsan-lock-across-kpi): the one C++ build recipe
  CXX="$CXX" bash test/native/build.sh "$1" "$OUT/$1/stress" test/native/stress.cc &&
    CXX="$CXX" bash test/native/build.sh "$1" "$OUT/$1/serial_queue_test" test/native/serial_queue_test.cc
}

# A run passes when the harness exits 0, its last line says "0 failed", and the log holds no
# sanitizer report (belt and braces: halt_on_error already turns a report into a failure).
# MODE: extra harness flags (e.g. --transport-close-race) for one run.
run() {  # $1 = name, $2 = calls per thread, $3 = seed, rest = environment assignments
  local name=$1 calls=$2 seed=$3
  shift 3
  local mode="${MODE:-}"
  local log="$OUT/$name/stress-$seed${mode//[^a-z]/-}.log" start end rc
  echo "sanitize: running $name: $THREADS threads x $calls calls, seed $seed ${MODE:-}"
  start=$(date +%s%N)
  # shellcheck disable=SC2086  # MODE is a list of flags
  timeout -k 10 "$LIMIT" env "$@" "$OUT/$name/stress" --threads "$THREADS" --calls "$calls" --seed "$seed" ${MODE:-} >"$log" 2>&1
  rc=$?
  end=$(date +%s%N)
  local took
  took=$(awk -v ns=$((end - start)) 'BEGIN { printf "%.1f", ns / 1e9 }')
  if [[ $rc -ne 0 ]]; then
    # A sanitizer report can run to hundreds of lines (template-heavy frames): its start,
    # its SUMMARY and the harness's last line say what happened; the log has the rest.
    head -n 60 "$log" | sed 's/^/    /'
    echo "    ..."
    grep -E '^SUMMARY:|^FAIL ' "$log" | head -n 20 | sed 's/^/    /'
    tail -n 1 "$log" | sed 's/^/    /'
    if [[ $rc -eq 124 || $rc -eq 137 ]]; then
      echo "sanitize: $name FAILED: still running after $LIMIT s (SANITIZE_TIMEOUT); log: $log" >&2
    else
      echo "sanitize: $name FAILED (exit status $rc) after $took s; log: $log" >&2
    fi
    return 1
  fi
  sed 's/^/    /' "$log"
  if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:|WARNING: ThreadSanitizer|SUMMARY: [A-Za-z]+Sanitizer' "$log"; then
    echo "sanitize: $name FAILED: a sanitizer report is in $log" >&2
    return 1
  fi
  if ! tail -n 1 "$log" | grep -qE '^[0-9]+ passed, 0 failed$'; then
    echo "sanitize: $name FAILED: the harness did not end with 'N passed, 0 failed'" >&2
    return 1
  fi
  echo "sanitize: $name passed in $took s"
}

# The serial queue's own test (order, exclusivity, stop) under the same sanitizer.
queue_test() {  # $1 = name, rest = environment assignments
  local name=$1 log="$OUT/$1/serial_queue_test.log"
  shift
  echo "sanitize: running $name: serial queue"
  if ! timeout -k 10 "$LIMIT" env "$@" "$OUT/$name/serial_queue_test" >"$log" 2>&1 ||
     grep -qE 'WARNING: ThreadSanitizer|ERROR: (Address|Leak)Sanitizer|runtime error:' "$log"; then
    tail -n 40 "$log" | sed 's/^/    /'
    echo "sanitize: $name serial queue FAILED; log: $log" >&2
    return 1
  fi
  tail -n 1 "$log" | sed 's/^/    /'
}

failed=0
if [[ -z "$ONLY" || "$ONLY" == asan ]]; then
  echo "sanitize: building ASan+UBSan into $OUT/asan"
  if build asan; then
    asan_env=(ASAN_OPTIONS=halt_on_error=1:exitcode=86:detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1:strict_string_checks=1
              UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=87)
    for seed in $SEEDS; do
      run asan "$CALLS" "$seed" "${asan_env[@]}" || failed=1
    done
    # Resource requests: completions (64 KiB copies) racing cancels and closes.
    MODE=--request-race run asan 20000 4 "${asan_env[@]}" || failed=1
    queue_test asan "${asan_env[@]}" || failed=1
  else
    echo "sanitize: the ASan+UBSan build failed" >&2
    failed=1
  fi
fi
if [[ -z "$ONLY" || "$ONLY" == tsan ]]; then
  # TSan needs the memory layout it expects; some kernels randomise mmap too widely for
  # clang 16's runtime ("unexpected memory mapping"), so run without ASLR where setarch can.
  norand=()
  if command -v setarch >/dev/null 2>&1 && setarch "$(uname -m)" -R true 2>/dev/null; then
    norand=(setarch "$(uname -m)" -R)
  fi
  # detect_deadlocks: any lock-order inversion (the client lock against the kernel's kext
  # lock) is a report, whether or not this run happened to hang.
  tsan_env=(TSAN_OPTIONS=halt_on_error=1:exitcode=66:detect_deadlocks=1:second_deadlock_stack=1:history_size=4)
  echo "sanitize: building TSan into $OUT/tsan"
  if build tsan; then
    for seed in $SEEDS; do
      run tsan "$TSAN_CALLS" "$seed" "${tsan_env[@]}" "${norand[@]}" || failed=1
    done
    # Threads calling one SimTransport while another thread closes it.
    MODE=--transport-close-race run tsan 20000 1 "${tsan_env[@]}" "${norand[@]}" || failed=1
    # Unloads of the sample kext (terminating its service and stopping its clients on the
    # unloading thread, kext lock held) racing retain/release/close/death on open clients.
    MODE=--unload-race run tsan 20000 2 "${tsan_env[@]}" "${norand[@]}" || failed=1
    # Resource-request completions, delivered on threads advancing the clock (kernel lock,
    # then the client's lock), racing cancels and closes on the workers.
    MODE=--request-race run tsan 20000 4 "${tsan_env[@]}" "${norand[@]}" || failed=1
    queue_test tsan "${tsan_env[@]}" "${norand[@]}" || failed=1
  else
    echo "sanitize: the TSan build failed" >&2
    failed=1
  fi
  # Negative control: the same unload race with the old bug planted (the client lock held
  # across the KPI, stop() taking it). The deadlock detector must report the inversion, or
  # the check above proves nothing. The harness's sequential prologue makes the report
  # deterministic (the concurrent part could really deadlock first).
  echo "sanitize: building the negative control (lock held across the KPI) into $OUT/tsan-lock-across-kpi"
  if build tsan-lock-across-kpi; then
    log="$OUT/tsan-lock-across-kpi/stress-control.log"
    echo "sanitize: running the negative control: it must report a lock-order inversion"
    timeout -k 10 "$LIMIT" env "${tsan_env[@]}" "${norand[@]}" "$OUT/tsan-lock-across-kpi/stress" \
      --threads 4 --calls 2000 --seed 3 --unload-race >"$log" 2>&1
    if grep -q 'WARNING: ThreadSanitizer: lock-order-inversion' "$log"; then
      echo "sanitize: negative control passed: TSan reported the lock-order inversion"
    else
      tail -n 20 "$log" | sed 's/^/    /'
      echo "sanitize: negative control FAILED: no lock-order inversion reported with the bug planted; log: $log" >&2
      failed=1
    fi
  else
    echo "sanitize: the negative-control build failed" >&2
    failed=1
  fi
fi

if [[ $failed -ne 0 ]]; then
  echo "sanitize: FAILED" >&2
  exit 1
fi
echo "sanitize: all runs passed with no sanitizer reports"
