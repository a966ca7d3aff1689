# Shared by load.sh and unload.sh (sourced, not run). macOS ships bash 3.2: nothing newer
# is used here.
#
# Every system tool (uname, sw_vers, id, csrutil, sysctl, kmutil, ioreg, ioclasscount, chown)
# is found through PATH, and PlistBuddy through PLISTBUDDY, so test/scripts.test.ts can run
# these scripts on any machine with stand-ins that print what the real tools print.

KB_SCRIPTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KB_KEXT_DIR=$(cd "$KB_SCRIPTS_DIR/../kext" && pwd)
# Where load.sh keeps the root-owned copy it loads (kexts must be root:wheel, not writable by
# group or other; the build output stays yours).
KB_STAGE_DIR=${KEXTBRIDGE_STAGE_DIR:-/Library/Application Support/kextbridge}
PLISTBUDDY=${PLISTBUDDY:-/usr/libexec/PlistBuddy}

kb_me=$(basename "$0")

# fail PROBLEM NEXT...: say what went wrong and what to do next, then stop.
fail() {
  local problem=$1
  shift
  echo "$kb_me: $problem" >&2
  local line
  for line in "$@"; do echo "  next: $line" >&2; done
  exit 1
}

note() { echo "$kb_me: $*"; }

# macOS 11 or later, or stop. The kext's Info.plist asks for the macOS 11 KPIs
# (OSBundleLibraries version 20.0, Darwin 20), which no earlier kernel offers, and only
# kmutil (macOS 11 on) is used to load it.
require_macos() {
  local system
  system=$(uname -s)
  [ "$system" = Darwin ] ||
    fail "this runs on macOS only (this is $system)." \
      "On other systems use the simulated backend; 'npm run maccheck' type-checks the kext."
  # SYSTEM_VERSION_COMPAT=1 would make macOS 11+ call itself 10.16.
  KB_MACOS=$(SYSTEM_VERSION_COMPAT=0 sw_vers -productVersion)
  KB_MACOS_MAJOR=${KB_MACOS%%.*}
  # macOS 10.x reports 10.minor; 11 and later report the major number first.
  case $KB_MACOS_MAJOR in '' | *[!0-9]*) fail "cannot read the macOS version (sw_vers said '$KB_MACOS')." "Report this with the output of sw_vers." ;; esac
  [ "$KB_MACOS_MAJOR" -ge 11 ] ||
    fail "macOS $KB_MACOS is too old: the sample kext needs macOS 11 Big Sur or later (its Info.plist asks for the macOS 11 kernel interfaces, version 20.0, which this kernel does not have)." \
      "Use a Mac with macOS 11 or later, or the simulated backend (open({ backend: 'sim' }))."
}

require_root() {
  [ "$(id -u)" = 0 ] ||
    fail "loading and unloading kexts needs root." "Run it again with sudo: sudo $0 $*"
}

apple_silicon() { [ "$(sysctl -n hw.optional.arm64 2>/dev/null || echo 0)" = 1 ]; }

# plist_get PLIST KEYPATH: one value, or nothing.
plist_get() { "$PLISTBUDDY" -c "Print :$2" "$1" 2>/dev/null || true; }

# The personality key is the service class (gen-bundle.js writes exactly one).
service_class_of() {
  "$PLISTBUDDY" -c "Print :IOKitPersonalities" "$1" 2>/dev/null |
    awk '/= Dict \{/ {print $1; exit}'
}

# is_loaded BUNDLE_ID: prints the kernel's line for it and succeeds when it is loaded.
is_loaded() {
  local line
  line=$(kmutil showloaded --list-only --bundle-identifier "$1" 2>/dev/null | grep -F " $1 " || true)
  [ -n "$line" ] && echo "$line"
}

# service_registered CLASS: succeeds when the I/O Registry has an instance of CLASS that is
# registered and active, which is what IOServiceGetMatchingService (and so open()) finds.
# ioreg shows one line per instance: "+-o NAME  <class CLASS, id 0x..., registered, ...>".
service_registered() {
  ioreg -r -c "$1" -d 1 2>/dev/null | grep -F "<class $1," | grep -v -e '!registered' -e 'inactive' | grep -q .
}

# The bundle npm run build:kext makes (kext-sample/kext/build/<executable>.kext), or nothing.
# node may be missing from root's PATH, so fall back to the one bundle in build/.
default_kext() {
  local name found=
  name=$(cd "$KB_KEXT_DIR" && node gen-bundle.js --get executable 2>/dev/null || true)
  if [ -n "$name" ] && [ -d "$KB_KEXT_DIR/build/$name.kext" ]; then
    echo "$KB_KEXT_DIR/build/$name.kext"
    return 0
  fi
  for name in "$KB_KEXT_DIR"/build/*.kext; do
    [ -d "$name" ] || continue
    [ -z "$found" ] || return 0  # more than one: make the caller name it
    found=$name
  done
  echo "$found"
}
