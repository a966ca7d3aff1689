#!/bin/bash
# Loads the kextbridge sample kext on the test Mac.
#
#   sudo kext-sample/scripts/load.sh [path/to/KextBridgeSample.kext]
#
# Default path: kext-sample/kext/build/<executable>.kext (npm run build:kext). The bundle is
# copied to a root-owned staging folder (root:wheel, 0755; KEXTBRIDGE_STAGE_DIR to change it)
# and loaded from there with kmutil (macOS 11 and later) or kextload (older).
# Every failure says what to do next. See docs/mac.md for the whole setup.
set -euo pipefail

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

require_macos
require_root "$@"

# ---- the bundle ----
kext=${1:-}
if [ -z "$kext" ]; then
  kext=$(default_kext)
  [ -n "$kext" ] ||
    fail "no kext path given and no single kext bundle in $KB_KEXT_DIR/build." \
      "Build it first (npm run build:kext), or pass the path: sudo $0 path/to/KextBridgeSample.kext"
fi
kext=${kext%/}
[ -d "$kext" ] || fail "no kext bundle at $kext." "Build it first: npm run build:kext (or make -C kext-sample/kext)."
plist=$kext/Contents/Info.plist
[ -f "$plist" ] || fail "$kext has no Contents/Info.plist; it is not a complete build." "Rebuild: make -C kext-sample/kext clean all"
bundle_id=$(plist_get "$plist" CFBundleIdentifier)
executable=$(plist_get "$plist" CFBundleExecutable)
version=$(plist_get "$plist" CFBundleVersion)
service_class=$(service_class_of "$plist")
if [ -z "$bundle_id" ] || [ -z "$executable" ] || [ ! -f "$kext/Contents/MacOS/$executable" ]; then
  fail "$kext is incomplete (bundle id '$bundle_id', executable '$executable')." "Rebuild: make -C kext-sample/kext clean all"
fi
note "kext $bundle_id $version from $kext"
note "macOS $KB_MACOS on $(apple_silicon && echo "Apple silicon" || echo "Intel")"

# ---- already there? ----
if line=$(is_loaded "$bundle_id"); then
  note "$bundle_id is already loaded:"
  echo "  $line"
  note "nothing to do. To load a new build, unload first: sudo $(dirname "$0")/unload.sh, then run this again."
  exit 0
fi

# ---- system security settings ----
# An ad-hoc signed kext loads only with SIP off, or (Intel) with kext signing excluded.
sip=$(csrutil status 2>/dev/null || true)
case $sip in
  *"status: disabled"*) note "SIP: disabled" ;;
  *"Kext Signing: disabled"*) note "SIP: custom configuration with kext signing disabled" ;;
  *"status: enabled"*)
    fail "System Integrity Protection is enabled, so macOS will refuse this ad-hoc signed kext." \
      "Restart into Recovery (Apple silicon: shut down, hold the power button until 'Loading startup options', choose Options; Intel: hold Command-R while starting)." \
      "In Recovery open Utilities > Terminal and run: csrutil disable   (Intel alternative: csrutil enable --without kext)" \
      "Restart, then run this again. docs/mac.md explains each step." ;;
  *) note "SIP: could not read 'csrutil status' (got: ${sip:-nothing}); trying anyway." ;;
esac
if apple_silicon; then
  # The boot policy cannot be read without the owner's credentials; say what it must be.
  note "Apple silicon: third-party kexts also need the startup disk at Reduced Security with"
  note "  'Allow user management of kernel extensions from identified developers' turned on"
  note "  (Recovery > Options > Utilities > Startup Security Utility). If it is not, the load"
  note "  below fails and macOS asks you to 'enable system extensions' first."
fi

if [ "$KB_MACOS_MAJOR" -lt 11 ]; then
  note "macOS $KB_MACOS: the default build targets macOS 11 and later. If the load fails with an"
  note "  architecture or version error, rebuild: make -C kext-sample/kext clean all ARCHS=x86_64 MACOSX_VERSION=$KB_MACOS"
fi

# ---- stage a root-owned copy ----
mkdir -p "$KB_STAGE_DIR"
chown root:wheel "$KB_STAGE_DIR"
chmod 0755 "$KB_STAGE_DIR"
staged=$KB_STAGE_DIR/$(basename "$kext")
rm -rf "$staged"
cp -R "$kext" "$staged"
chown -R root:wheel "$staged"
chmod -R 0755 "$staged"
note "staged as $staged (root:wheel, 0755)"

# ---- load ----
policy_help() {
  if [ "$KB_MACOS_MAJOR" -ge 13 ]; then pane="System Settings > Privacy & Security"
  else pane="System Preferences > Security & Privacy"; fi
  if [ "$KB_MACOS_MAJOR" -ge 11 ]; then
    fail "macOS did not allow $bundle_id to load yet (system policy: kOSKextReturnSystemPolicy 0xDC00801B, or 'not approved')." \
      "Open $pane and allow the software (the button is shown for a while after this attempt; unlock with your password first)." \
      "On Apple silicon, if it says to enable system extensions first: Recovery > Options > Utilities > Startup Security Utility > Reduced Security + 'Allow user management of kernel extensions from identified developers'." \
      "Reboot when macOS asks (the kext joins the auxiliary kernel collection at boot)." \
      "Then run this again: sudo $0 $*"
  else
    fail "macOS did not allow $bundle_id to load (system policy: kOSKextReturnSystemPolicy 0xDC00801B)." \
      "Open $pane and click Allow next to the blocked software, then run this again (no reboot needed before macOS 11)."
  fi
}

rc=0
if [ "$KB_MACOS_MAJOR" -ge 11 ]; then
  note "kmutil load -p $staged"
  out=$(kmutil load -p "$staged" 2>&1) || rc=$?
else
  note "kextload $staged"
  out=$(kextload "$staged" 2>&1) || rc=$?
fi
[ -z "$out" ] || printf '%s\n' "$out"

if [ "$rc" != 0 ]; then
  # Most specific first; a policy refusal is the usual first-time answer on macOS 11+.
  case $out in
    *"Incompatible architecture"* | *"Cannot find arm64e"*)
      fail "the kext has no slice for this Mac's kernel architecture." \
        "Rebuild with both slices (the default): make -C kext-sample/kext clean all; check with: make -C kext-sample/kext check" ;;
    *"not approved"* | *"pprove"* | *"system policy"* | *"System Policy"* | *"SystemPolicy"* | \
      *"Security Policy"* | *"0xdc00801b"* | *"0xDC00801B"* | *"-603946981"* | *"eboot"* | *"estart"*)
      policy_help "$@" ;;
    *"code signature"* | *"signature"* | *"Authenticat"*)
      fail "the kext's signature was rejected." \
        "Ad-hoc signed kexts need SIP disabled (csrutil status). Rebuild so signing is the last step: make -C kext-sample/kext clean all" ;;
    *"owner/permissions"*)
      fail "the staged copy has the wrong owner or permissions." "Check that $KB_STAGE_DIR is on a volume that honours ownership, or set KEXTBRIDGE_STAGE_DIR." ;;
    *)
      fail "the load failed (exit $rc); the messages above are from $( [ "$KB_MACOS_MAJOR" -ge 11 ] && echo kmutil || echo kextload )." \
        "Kernel log for the kext: log show --last 5m --predicate 'sender == \"$executable\"'" \
        "Kext management log: log show --last 5m --predicate 'process == \"kernelmanagerd\"'" \
        "docs/mac.md lists the usual causes." ;;
  esac
fi

# ---- verify ----
if line=$(is_loaded "$bundle_id"); then
  note "loaded:"
  echo "  $line"
else
  fail "the load command succeeded but $bundle_id is not listed as loaded." \
    "Run: kmutil showloaded --bundle-identifier $bundle_id ; and read the kernel log: log show --last 5m --predicate 'sender == \"$executable\"'"
fi
if [ -n "$service_class" ]; then
  if ioreg -rc "$service_class" -d 1 2>/dev/null | grep -q "$service_class"; then
    note "service $service_class is registered; user space can open it."
  else
    note "warning: no $service_class in the I/O Registry yet. It starts once IOKit matches it; check"
    note "  in a few seconds with: ioreg -rc $service_class ; kernel log: log show --last 5m --predicate 'sender == \"$executable\"'"
  fi
fi
note "next: sudo KEXTBRIDGE_TEST_IOKIT=1 npm run test:mac   (unload with: sudo $(dirname "$0")/unload.sh)"
