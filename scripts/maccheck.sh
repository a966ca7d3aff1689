#!/usr/bin/env bash
# npm run maccheck: type-check, compile and symbol-check kextbridge's macOS code on any
# machine with ../shared/tools/maccheck (clang/lld 16 and header trees built from Apple's
# open-source repositories; see that tool's maccheck.md).
#
#   kernel side, on each header tree (MACHDRS, default /tmp/macsdk = current xnu; and
#   MACHDRS_11, default /tmp/macsdk-11 = xnu-7195.50.7.100.1, macOS 11), arm64e + x86_64:
#     kext       kext-sample/kext/*.cpp + kext-sample/core/*.cpp, -Wall -Wextra -Werror
#     kext (C)   the generated kmod-info source
#     kext-obj + kext-link   with KPIs from the generated Info.plist: no undefined symbol
#     kext KPIs  the objects really call the issue-13 KPIs (OSKextLoadKextWithIdentifier,
#                OSKextRequestResource, OSKextCancelRequest, sendAsyncResult64,
#                releaseAsyncReference64), so kext-link proved those resolve
#   user side, on MACHDRS, arm64 + x86_64:
#     user       bridge/iokit_transport.cc, the other bridge/*.cc and native/*.cc, -Werror, availability
#                warnings on, at the addon's deployment target (11.0) and at 14.0
#     user       iokit_transport.cc against IOKitUser's own KextManager.h, when the mirror
#                is there (proves its fallback declaration matches)
#     user       test/native/iokit_async_smoke.cc, the async smoke test a Mac runs
#                (test/native/mac-async-smoke.sh)
#     user-obj   iokit_transport.cc as objects: it calls IOConnectCallAsyncMethod with an
#                IONotificationPort on a dispatch queue (and destroys it), and no CFRunLoop API
#
# A header tree named in the environment (MACHDRS or MACHDRS_11 set) must be there: if it is
# missing, or the maccheck tool is, that is a failure. Only the default paths (variable
# unset) may be missing, which is a skip (say why; exit 0 when nothing else failed). The
# summary names each tree checked, with its xnu revision. Generated files go to a temporary
# directory, never the repo.
#
# Environment: MACCHECK (the tool), MACHDRS, MACHDRS_11, MIRROR (Apple repo mirrors, for the
# KextManager.h check; default ../.mirror beside the repo).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

MACCHECK=${MACCHECK:-../shared/tools/maccheck}
TREE_CURRENT=${MACHDRS:-/tmp/macsdk}
TREE_11=${MACHDRS_11:-/tmp/macsdk-11}
# Asked for by name (set, even to the default path), or only the default?
ASKED_CURRENT=${MACHDRS+yes}
ASKED_11=${MACHDRS_11+yes}
MIRROR=${MIRROR:-$(dirname "$repo")/.mirror}
# The kext's floor is macOS 11 for both slices (kext-sample/kext/Makefile), the addon's too.
KEXT_ARCHS="arm64e-apple-macos11 x86_64-apple-macos11"
USER_ARCHS_MIN="arm64-apple-macos11 x86_64-apple-macos11"
USER_ARCHS_NEW="arm64-apple-macos14 x86_64-apple-macos14"

if [ ! -x "$MACCHECK" ]; then
  if [ -n "$ASKED_CURRENT$ASKED_11" ]; then
    echo "maccheck: FAILED: header trees were named (MACHDRS/MACHDRS_11), but the maccheck tool is not at $MACCHECK (set MACCHECK=...)."
    exit 1
  fi
  echo "maccheck: SKIPPED: the maccheck tool is not at $MACCHECK (set MACCHECK=...)."
  exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kextbridge-maccheck.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

results=()
failed=0
skipped_all=1

# run LABEL CMD...: run one check; any non-zero exit is a failure. Checks run only on a tree
# that maccheck status found (tree_or_skip), so even exit 3 (no header tree) means the tree
# is broken or went away mid-run, not that it may be skipped.
run() {
  local label=$1 rc=0
  shift
  echo "== $label"
  "$@" || rc=$?
  case $rc in
    0) results+=("PASS  $label"); skipped_all=0 ;;
    3) results+=("FAIL  $label (exit 3: the header tree is incomplete or went away; rebuild it with 'maccheck setup')"); failed=1 ;;
    *) results+=("FAIL  $label (exit $rc)"); failed=1 ;;
  esac
  return 0
}

# ---------------------------------------------------------------- kernel side ---
gen=$tmp/gen
node kext-sample/kext/gen-bundle.js "$gen"
bundle_id=$(node kext-sample/kext/gen-bundle.js --get bundleId)
version=$(node kext-sample/kext/gen-bundle.js --get version)
info_c=$gen/$(node kext-sample/kext/gen-bundle.js --get infoC)

kext_sources=(kext-sample/kext/*.cpp kext-sample/core/*.cpp)
kext_flags="-Wall -Wextra -Werror -I kext-sample/core -I kext-sample/kext -I $gen"

# The kmod-info source is C: compiled as C after maccheck's kernel flags. clang notes that
# the C++-only -fapple-kext of that profile is ignored; that note is not a warning.
info_flags="-Wall -Wextra -Werror -x c -std=gnu11"

# After kext-link, the generated kmod info object must define what libkmod and the kernel
# look for (kmod_info, _realmain, _antimain) and leave _start/_stop to libkmod.
check_info_symbols() { # OBJDIR
  local nm arch syms ok=0
  nm=$(command -v llvm-nm-16 || command -v llvm-nm || true)
  if [ -z "$nm" ]; then echo "no llvm-nm: symbol check of the kmod info object not run"; return 0; fi
  for arch in arm64e x86_64; do
    syms=$("$nm" "$1/$arch/$(basename "${info_c%.c}").o")
    grep -Eq ' [DS] _kmod_info$' <<< "$syms" || { echo "$arch: _kmod_info not defined"; ok=1; }
    grep -Eq ' [DSB] __realmain$' <<< "$syms" || { echo "$arch: _realmain not defined"; ok=1; }
    grep -Eq ' [DSB] __antimain$' <<< "$syms" || { echo "$arch: _antimain not defined"; ok=1; }
    grep -Eq ' U __start$' <<< "$syms" || { echo "$arch: _start should come from libkmod"; ok=1; }
    grep -Eq ' U __stop$' <<< "$syms" || { echo "$arch: _stop should come from libkmod"; ok=1; }
  done
  return $ok
}

# The KPIs issue 13 calls must be referenced by the kext objects (undefined there, so the
# kext-link run that passed resolved them against the Info.plist's libraries).
KEXT_ASYNC_KPIS="_OSKextLoadKextWithIdentifier _OSKextRequestResource _OSKextCancelRequest __ZN12IOUserClient17sendAsyncResult64EPyiS0_j __ZN12IOUserClient23releaseAsyncReference64EPy"
check_kext_kpis() { # OBJDIR
  local nm arch syms sym ok=0
  nm=$(command -v llvm-nm-16 || command -v llvm-nm || true)
  if [ -z "$nm" ]; then echo "no llvm-nm: KPI reference check not run"; return 1; fi
  for arch in arm64e x86_64; do
    syms=$("$nm" -u "$1/$arch/"*.o 2>/dev/null | awk '{ print $NF }' | sort -u)
    for sym in $KEXT_ASYNC_KPIS; do
      grep -Fqx -- "$sym" <<< "$syms" || { echo "$arch: $sym is not referenced by the kext objects"; ok=1; }
    done
  done
  return $ok
}

# The IOKit transport's object must call the async-call and notification-port APIs, deliver on
# a dispatch queue and tear down with a barrier, and use no CFRunLoop API (nothing may need a
# run loop on the JS thread).
USER_ASYNC_APIS="_IOConnectCallAsyncMethod _IONotificationPortCreate _IONotificationPortGetMachPort _IONotificationPortSetDispatchQueue _IONotificationPortDestroy _dispatch_queue_create _dispatch_sync_f"
check_user_async() { # OBJDIR
  local nm arch syms sym ok=0
  nm=$(command -v llvm-nm-16 || command -v llvm-nm || true)
  if [ -z "$nm" ]; then echo "no llvm-nm: async API check not run"; return 1; fi
  for arch in arm64 x86_64; do
    syms=$("$nm" -u "$1/$arch/iokit_transport.o" | awk '{ print $NF }' | sort -u)
    for sym in $USER_ASYNC_APIS; do
      grep -Fqx -- "$sym" <<< "$syms" || { echo "$arch: iokit_transport.o does not call ${sym#_}"; ok=1; }
    done
    if grep -q '^_CFRunLoop' <<< "$syms"; then
      echo "$arch: iokit_transport.o uses a CFRunLoop API: $(grep '^_CFRunLoop' <<< "$syms" | tr '\n' ' ')"; ok=1
    fi
  done
  return $ok
}

# has_tree TREE: maccheck status answers 3 when there is no header tree there.
has_tree() { MACHDRS=$1 "$MACCHECK" status >/dev/null 2>&1; }

# xnu_of TREE: the xnu revision maccheck status reports for the tree ("xnu xnu-7195... abc").
xnu_of() {
  MACHDRS=$1 "$MACCHECK" status 2>/dev/null | awk '$1 == "xnu" { print $2; exit }' || true
}

trees=()
# tree_or_skip LABEL TREE VAR ASKED: succeeds when the tree is there (and records it for the
# summary). Otherwise records a failure when the tree was named in the environment, a skip
# when it was only the default path, and fails.
tree_or_skip() {
  local label=$1 tree=$2 var=$3 asked=$4
  if has_tree "$tree"; then
    local rev
    rev=$(xnu_of "$tree")
    case " ${trees[*]:-} " in *" $tree "*) ;; *) trees+=("$tree  ${rev:-unknown xnu}") ;; esac
    return 0
  fi
  if [ -n "$asked" ]; then
    results+=("FAIL  $label checks: $var=$tree was set, but there is no header tree there (build it: $var=$tree maccheck setup; see maccheck.md)")
    failed=1
  else
    results+=("SKIP  $label checks ($tree, the default; $var unset): no header tree; see maccheck.md 'setup'")
  fi
  return 1
}

kernel_checks() { # NAME TREE VAR ASKED
  local name=$1 tree=$2 objs=$tmp/ko-$1 infoobjs=$tmp/io-$1
  tree_or_skip "kernel $name" "$tree" "$3" "$4" || return 0
  export MACHDRS=$tree ARCHS=$KEXT_ARCHS
  run "kext $name: kext + core sources" env EXTRA_FLAGS="$kext_flags" "$MACCHECK" kext "${kext_sources[@]}"
  run "kext $name: generated kmod info (C)" env EXTRA_FLAGS="$info_flags" "$MACCHECK" kext "$info_c"
  run "kext-obj $name: kext + core objects" env EXTRA_FLAGS="$kext_flags" "$MACCHECK" kext-obj "$objs" "${kext_sources[@]}"
  # KPIs from the generated Info.plist's OSBundleLibraries: proves they are enough.
  run "kext-link $name: no undefined symbol (KPIs from Info.plist)" \
    env KEXT_PLIST="$gen/Info.plist" BUNDLE_ID="$bundle_id" KEXT_VERSION="$version" \
    "$MACCHECK" kext-link "$objs"
  if [ -d "$objs/x86_64" ]; then
    run "kext KPIs $name: the issue-13 KPIs are referenced (and so resolved above)" check_kext_kpis "$objs"
  fi
  run "kext-obj $name: generated kmod info object" env EXTRA_FLAGS="$info_flags" "$MACCHECK" kext-obj "$infoobjs" "$info_c"
  if [ -d "$infoobjs/x86_64" ]; then
    run "kmod info $name: kmod_info/_realmain/_antimain defined, _start/_stop from libkmod" check_info_symbols "$infoobjs"
  fi
  unset MACHDRS ARCHS
}

kernel_checks current "$TREE_CURRENT" MACHDRS "$ASKED_CURRENT"
kernel_checks macos11 "$TREE_11" MACHDRS_11 "$ASKED_11"

# ------------------------------------------------------------------ user side ---
user_sources=(bridge/iokit_transport.cc)
for f in bridge/*.cc native/*.cc; do
  [ "$f" = bridge/iokit_transport.cc ] || user_sources+=("$f")
done
user_flags="-Inative -Ibridge -Isim -Ikext-sample/core -DKB_HAVE_IOKIT=1 -Wall -Wextra -Werror -Wunguarded-availability -Wdeprecated-declarations"
if [ -d node_modules/node-addon-api ]; then
  # binding.gyp builds the addon against node_addon_api_except
  user_flags="$user_flags -Inode_modules/node-addon-api -DNAPI_VERSION=8 -DNAPI_CPP_EXCEPTIONS"
else
  echo "maccheck: node_modules/node-addon-api missing (run npm install): checking only bridge/iokit_transport.cc"
  results+=("SKIP  user: bridge/*.cc and native/*.cc other than iokit_transport.cc (no node_modules/node-addon-api)")
  user_sources=(bridge/iokit_transport.cc)
fi

if tree_or_skip "user current" "$TREE_CURRENT" MACHDRS "$ASKED_CURRENT"; then
  export MACHDRS=$TREE_CURRENT
  run "user current macOS 11.0: ${user_sources[*]}" \
    env USER_ARCHS="$USER_ARCHS_MIN" EXTRA_FLAGS="$user_flags" "$MACCHECK" user "${user_sources[@]}"
  run "user current macOS 11.0: test/native/iokit_async_smoke.cc (the Mac smoke test)" \
    env USER_ARCHS="$USER_ARCHS_MIN" EXTRA_FLAGS="-Itest/native $user_flags" "$MACCHECK" user test/native/iokit_async_smoke.cc
  run "user-obj current macOS 11.0: iokit_transport.cc objects" \
    env USER_ARCHS="$USER_ARCHS_MIN" EXTRA_FLAGS="$user_flags" "$MACCHECK" user-obj "$tmp/uo" bridge/iokit_transport.cc
  if [ -d "$tmp/uo/x86_64" ]; then
    run "user-obj current: async call on a notification port's dispatch queue, no CFRunLoop" check_user_async "$tmp/uo"
  fi
  # After the Master→Main rename: no deprecation warning either.
  run "user current macOS 14.0: bridge/iokit_transport.cc" \
    env USER_ARCHS="$USER_ARCHS_NEW" EXTRA_FLAGS="$user_flags" "$MACCHECK" user bridge/iokit_transport.cc
  # The SDK ships IOKit/kext/KextManager.h, the type-check tree does not. With IOKitUser's
  # own copy on the include path, the transport's declaration must agree with it.
  iokituser=$MIRROR/apple-oss-distributions+IOKitUser/repo
  if git --git-dir="$iokituser" rev-parse -q --verify HEAD >/dev/null 2>&1; then
    mkdir -p "$tmp/kextmanager/IOKit/kext"
    git --git-dir="$iokituser" show HEAD:kext.subproj/KextManager.h > "$tmp/kextmanager/IOKit/kext/KextManager.h"
    run "user current macOS 11.0: iokit_transport.cc with IOKitUser's KextManager.h" \
      env USER_ARCHS="$USER_ARCHS_MIN" EXTRA_FLAGS="-I$tmp/kextmanager $user_flags" \
      "$MACCHECK" user bridge/iokit_transport.cc
  else
    results+=("SKIP  user: iokit_transport.cc with IOKitUser's KextManager.h (no IOKitUser mirror at $iokituser)")
  fi
  unset MACHDRS
fi

echo
echo "maccheck summary:"
printf '  %s\n' "${results[@]}"
if [ "${#trees[@]}" -gt 0 ]; then
  echo "header trees checked:"
  printf '  %s\n' "${trees[@]}"
else
  echo "header trees checked: none"
fi
if [ "$failed" != 0 ]; then
  echo "maccheck: FAILED"
  exit 1
fi
if [ "$skipped_all" = 1 ]; then
  echo "maccheck: SKIPPED: nothing could be checked (no header tree); see ../shared/tools/maccheck.md"
  exit 0
fi
echo "maccheck: passed (type-checked and symbol-checked against Apple's open-source headers; not built with Xcode, not run)"
