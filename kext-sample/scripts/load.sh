#!/bin/bash
# Loads the kextbridge sample kext on the test Mac.
#
#   sudo kext-sample/scripts/load.sh [path/to/KextBridgeSample.kext]
#
# Default path: kext-sample/kext/build/<executable>.kext (npm run build:kext). The bundle is
# copied to a root-owned staging folder (root:wheel, 0755; KEXTBRIDGE_STAGE_DIR to change it)
# and loaded from there with kmutil. macOS 11 or later only (the Info.plist asks for the
# macOS 11 KPIs). Every failure says what to do next and exits non-zero; so does a kext that
# is loaded but whose service is gone. See docs/mac.md for the whole setup.
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

client_class=$(plist_get "$plist" "IOKitPersonalities:$service_class:IOUserClientClass")

# ---- already there? ----
if line=$(is_loaded "$bundle_id"); then
  note "$bundle_id is already loaded:"
  echo "  $line"
  if [ -z "$service_class" ]; then
    note "warning: $plist names no IOKit personality, so the service could not be checked."
  elif ! service_registered "$service_class"; then
    # kmutil unload with connections open terminates the service (and its user clients)
    # but cannot unload the kext while those client objects live: it stays loaded with
    # nothing user space can open.
    fail "$bundle_id is loaded, but its service $service_class is not in the I/O Registry, so nothing can open it. This happens after an unload while connections were open: the service was stopped, and the open user clients keep the kext in memory." \
      "Close every kextbridge connection: kb.close(), or quit those Node processes (open user clients now: $(ioclasscount "${client_class:-$service_class}" 2>/dev/null || echo "? (ioclasscount ${client_class:-$service_class})"))." \
      "Then unload it: sudo $(dirname "$0")/unload.sh, or wait about 60 s: with no instances left, the kernel unloads it by itself." \
      "Then load it again: sudo $0 $*"
  else
    note "service $service_class is registered; nothing to do."
  fi
  note "To load a new build, unload first: sudo $(dirname "$0")/unload.sh, then run this again."
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
if [ "$KB_MACOS_MAJOR" -ge 13 ]; then pane="System Settings > Privacy & Security"
else pane="System Preferences > Security & Privacy"; fi

# Not approved yet: the usual first answer for a new build.
approval_help() {
  fail "macOS has not approved $bundle_id yet (kmutil asked for user approval, or answered with the system-policy refusal kOSKextReturnSystemPolicy 0xDC00801B)." \
    "Open $pane and allow the software from \"$executable\" (the button shows for a while after this attempt; if it is gone, run this again)." \
    "On Apple silicon, if it says to enable system extensions first: Recovery > Options > Utilities > Startup Security Utility > Reduced Security + 'Allow user management of kernel extensions from identified developers'." \
    "Restart when macOS asks: the approved kext is built into the auxiliary kernel collection, which is used from the next boot." \
    "After the restart run this again: sudo $0 $*" \
    "This kext is ad-hoc signed (no Team ID), so the approval covers this build only: every rebuild needs a new approval and restart."
}

# Approved (or the auxiliary collection otherwise changed), but it takes effect at boot.
reboot_help() {
  fail "$bundle_id needs a restart before it can load (kmutil: a reboot is required; the auxiliary kernel collection that holds it is used from the next boot)." \
    "Restart the Mac, then run this again: sudo $0 $*" \
    "If it still says so after a restart, it has not been approved: open $pane and look for the software from \"$executable\"."
}

# kOSKextReturnNotLoadable's text ("(libkern/kext) not loadable (reason unspecified)", 0x13 in
# xnu's libkern error strings); on macOS 11+ usually a build that is not (yet) in the
# auxiliary kernel collection of this boot.
not_loadable_help() {
  fail "the kernel answered that $bundle_id is not loadable (reason unspecified, kOSKextReturnNotLoadable 0xDC008013)." \
    "If this build is new (rebuilt, or approved since the last boot): approve it in $pane if macOS asks, restart, and run this again; each ad-hoc signed build needs its own approval and restart." \
    "Otherwise the reason is in the logs: log show --last 5m --predicate 'process == \"kernelmanagerd\"' and log show --last 5m --predicate 'sender == \"$executable\"'"
}

rc=0
note "kmutil load -p $staged"
out=$(kmutil load -p "$staged" 2>&1) || rc=$?
[ -z "$out" ] || printf '%s\n' "$out"

# kmutil's wording varies between releases, so fragments are matched, ignoring case
# ("approval", "approve", "approved" all contain "approv").
shopt -s nocasematch
if [ "$rc" != 0 ]; then
  # Most specific first; a request for approval also needs the restart, so it comes before
  # the restart-only answer.
  case $out in
    *"Incompatible architecture"* | *"Cannot find arm64e"*)
      fail "the kext has no slice for this Mac's kernel architecture." \
        "Rebuild with both slices (the default): make -C kext-sample/kext clean all; check with: make -C kext-sample/kext check" ;;
    *"user approval"* | *"approv"* | *"system policy"* | *"SystemPolicy"* | *"Security Policy"* | \
      *"0xdc00801b"* | *"-603946981"*)
      approval_help "$@" ;;
    *"reboot is required"* | *"requires a reboot"* | *"reboot required"* | *"needs a reboot"* | \
      *"restart is required"* | *"requires a restart"*)
      reboot_help "$@" ;;
    *"not loadable"* | *"0xdc008013"* | *"-603946989"*)
      not_loadable_help "$@" ;;
    # Before the signature case: libkern's text for it is "authentication failure (file
    # ownership/permissions)".
    *"owner/permissions"* | *"ownership/permissions"*)
      fail "the staged copy has the wrong owner or permissions." "Check that $KB_STAGE_DIR is on a volume that honours ownership, or set KEXTBRIDGE_STAGE_DIR." ;;
    *"code signature"* | *"signature"* | *"Authenticat"*)
      fail "the kext's signature was rejected." \
        "Ad-hoc signed kexts need SIP disabled (csrutil status). Rebuild so signing is the last step: make -C kext-sample/kext clean all" ;;
    *)
      fail "the load failed (exit $rc); the messages above are from kmutil." \
        "Kernel log for the kext: log show --last 5m --predicate 'sender == \"$executable\"'" \
        "Kext management log: log show --last 5m --predicate 'process == \"kernelmanagerd\"'" \
        "docs/mac.md lists the usual causes." ;;
  esac
fi
# Whatever kmutil's exit status, a request for approval means nothing was loaded yet.
case $out in
  *"requesting user approval"* | *"requesting approval"*) approval_help "$@" ;;
esac
shopt -u nocasematch

# ---- verify ----
if line=$(is_loaded "$bundle_id"); then
  note "loaded:"
  echo "  $line"
else
  fail "the load command succeeded but $bundle_id is not listed as loaded." \
    "Run: kmutil showloaded --bundle-identifier $bundle_id ; and read the kernel log: log show --last 5m --predicate 'sender == \"$executable\"'"
fi
if [ -n "$service_class" ]; then
  if service_registered "$service_class"; then
    note "service $service_class is registered; user space can open it."
  else
    note "warning: no $service_class in the I/O Registry yet. It starts once IOKit matches it; check"
    note "  in a few seconds with: ioreg -rc $service_class ; kernel log: log show --last 5m --predicate 'sender == \"$executable\"'"
  fi
fi
note "next: sudo node scripts/test-mac.js   (unload with: sudo $(dirname "$0")/unload.sh)"
