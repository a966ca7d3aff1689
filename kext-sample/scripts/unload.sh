#!/bin/bash
# Unloads the kextbridge sample kext.
#
#   sudo kext-sample/scripts/unload.sh [bundle-id]
#
# The bundle id defaults to the one in the staged copy load.sh made (or the build output).
# Uses kmutil unload -b (macOS 11 or later only, as load.sh). The staged copy is kept, so
# load.sh can load it again.
set -euo pipefail

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

require_macos
require_root "$@"

# ---- which kext ----
bundle_id=${1:-}
plist=
for candidate in "$KB_STAGE_DIR"/*.kext "$(default_kext)"; do
  if [ -n "$candidate" ] && [ -f "$candidate/Contents/Info.plist" ]; then
    plist=$candidate/Contents/Info.plist
    break
  fi
done
if [ -z "$bundle_id" ]; then
  [ -n "$plist" ] ||
    fail "no bundle id given, and no staged or built kext to read it from." \
      "Pass it: sudo $0 org.kextbridge.sample (the sampleKext.bundleId in protocol/kextbridge.json)"
  bundle_id=$(plist_get "$plist" CFBundleIdentifier)
  [ -n "$bundle_id" ] || fail "$plist has no CFBundleIdentifier." "Pass the bundle id: sudo $0 <bundle-id>"
fi
executable=
service_class=
client_class=
if [ -n "$plist" ]; then
  executable=$(plist_get "$plist" CFBundleExecutable)
  service_class=$(service_class_of "$plist")
  [ -z "$service_class" ] || client_class=$(plist_get "$plist" "IOKitPersonalities:$service_class:IOUserClientClass")
fi

if ! line=$(is_loaded "$bundle_id"); then
  note "$bundle_id is not loaded; nothing to do."
  exit 0
fi
note "unloading $bundle_id:"
echo "  $line"

# ---- unload ----
rc=0
note "kmutil unload -b $bundle_id"
out=$(kmutil unload -b "$bundle_id" 2>&1) || rc=$?
[ -z "$out" ] || printf '%s\n' "$out"

if [ "$rc" != 0 ] || is_loaded "$bundle_id" >/dev/null; then
  case $out in
    *"in use"* | *"InUse"* | *"retained"* | *"0xdc008018"* | *"0xDC008018"* | *"-603946984"* | *"instances"*)
      echo "$kb_me: the kernel refused: the kext is in use (kOSKextReturnInUse, 0xDC008018)." >&2
      echo "  It is retained, or objects of its classes are still alive:" >&2
      echo "  - a process holds a connection to its user client (an open kextbridge connection in" >&2
      echo "    Node, or a test still running). Close them: kb.close(), or end the process; the" >&2
      echo "    kernel then releases what that client retained." >&2
      echo "  - something retained it with OSKextRetainKextWithLoadTag (the Refs column of" >&2
      echo "    kmutil showloaded is above 0)." >&2
      [ -z "$client_class" ] || echo "  Open user clients now: $(ioclasscount "$client_class" 2>/dev/null || echo "? (ioclasscount $client_class)")" >&2
      echo "  Refs now: $(is_loaded "$bundle_id" || echo '?')" >&2
      if [ -n "$service_class" ] && ! service_registered "$service_class"; then
        echo "  The service $service_class is already stopped (this unload terminated it): the kext" >&2
        echo "  stays loaded only for the open user clients, and nothing can open it until it is" >&2
        echo "  unloaded and loaded again. Once they are closed, the kernel unloads it by itself" >&2
        echo "  within about 60 s, or run this again." >&2
      fi
      fail "not unloaded." "Close every kextbridge connection (or quit those Node processes), then run this again (or wait about 60 s), then load it: sudo $(dirname "$0")/load.sh" ;;
    *)
      fail "the unload failed (exit $rc); the messages above say why." \
        "Check who holds it: kmutil showloaded --bundle-identifier $bundle_id (Refs)${client_class:+ and ioclasscount $client_class}." \
        "Kernel log: log show --last 5m --predicate 'sender == \"${executable:-$bundle_id}\"'" ;;
  esac
fi
note "unloaded. Load it again with: sudo $(dirname "$0")/load.sh"
