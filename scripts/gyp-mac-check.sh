#!/usr/bin/env bash
# Generates the macOS makefiles for binding.gyp on any machine (stand-in xcodebuild, xcrun
# and sw_vers answer gyp's questions; nothing is compiled) and checks what a Mac build would
# do: every xcode_settings key understood, the host's arch (never i386), macOS 11 for the C++
# compile and for the link (the last -mmacosx-version-min on each line).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/bin" "$work/src"
printf '#!/bin/sh\ncase "$*" in *-version*) echo "Xcode 15.0"; echo "Build version 15A240d";; esac\n' >"$work/bin/xcodebuild"
printf '#!/bin/sh\ncase "$*" in *--show-sdk-path*) echo /nonexistent.sdk;; *--show-sdk-version*) echo 14.0;; esac\n' >"$work/bin/xcrun"
printf '#!/bin/sh\necho 14.0\n' >"$work/bin/sw_vers"
chmod +x "$work/bin/"*
cp -r "$root/binding.gyp" "$root/native" "$root/sim" "$root/kext-sample" "$work/src/"
ln -s "$root/node_modules" "$work/src/node_modules"

# The headers of the Node that runs this (as npm would pass them), so nothing is downloaded.
nodedir="${npm_config_nodedir:-$(node -p "require('path').resolve(process.execPath, '../..')")}"
nodedir_arg=()
[ -f "$nodedir/include/node/common.gypi" ] && nodedir_arg=(--nodedir="$nodedir")

cd "$work/src"
PATH="$work/bin:$PATH" node "$root/node_modules/node-gyp/bin/node-gyp.js" configure "${nodedir_arg[@]}" -- -f make-mac -DOS=mac >"$work/log" 2>&1 || {
  cat "$work/log"; echo "gyp-mac-check: configure failed" >&2; exit 1; }
mk=build/kextbridge.target.mk
fail() { echo "gyp-mac-check: $*" >&2; exit 1; }
if grep -q 'Ignoring not yet implemented key' "$work/log"; then grep 'Ignoring' "$work/log" >&2; fail "gyp ignored an xcode_settings key"; fi
grep -q 'iokit_transport' "$mk" || fail "the IOKit transport is not in the macOS build"
grep -q -- '-framework IOKit' "$mk" || fail "IOKit is not linked"
grep -q 'KB_HAVE_IOKIT' "$mk" || fail "KB_HAVE_IOKIT is not defined"
if grep -A1 -- '-arch' "$mk" | grep -q i386; then fail "the build would target i386"; fi
# var NAME: the make variable NAME's list (one "NAME := \" line, then one item a line).
var() { sed -n "/^$1 :=/,/^\$/p" "$mk"; }
# last_min TEXT: the deployment target the last -mmacosx-version-min in TEXT sets.
last_min() { grep -o 'mmacosx-version-min=[0-9.]*' <<<"$1" | tail -n1 | cut -d= -f2 || true; }
for config in Debug Release; do
  # A C++ compile gets CFLAGS_<config> then CFLAGS_CC_<config> (GYP_CXXFLAGS); the link
  # gets LDFLAGS_<config>. The compiler driver obeys the last -mmacosx-version-min.
  cxx=$(var "CFLAGS_$config"; var "CFLAGS_CC_$config")
  ld=$(var "LDFLAGS_$config")
  [ -n "$ld" ] || fail "no LDFLAGS_$config in $mk"
  min=$(last_min "$cxx")
  [ "$min" = 11.0 ] || fail "$config: C++ compiles for ${min:-no deployment target}, not macOS 11.0"
  min=$(last_min "$ld")
  [ "$min" = 11.0 ] || fail "$config: the addon links for ${min:-no deployment target}, not macOS 11.0 (node-addon-api's gypi says 10.7)"
done
echo "gyp-mac-check: passed (IOKit transport and frameworks in, host arch, compile and link for macOS 11.0)"
