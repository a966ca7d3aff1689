#!/usr/bin/env bash
# npm run test:native — the C++ unit tests (SimKernel, the serial queue, the open limit, the user-client list), built by the one
# recipe (build.sh, profile plain) and run. Each binary's last line is "N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/../.."
out=build/native-tests/bin
for t in sim_kernel_test serial_queue_test open_limit_test user_client_info_test; do
  bash test/native/build.sh plain "$out/$t" "test/native/$t.cc"
  echo "== $t"
  "$out/$t"
done
