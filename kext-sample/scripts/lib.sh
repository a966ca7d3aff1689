# Shared by load.sh and unload.sh (sourced, not run). macOS ships bash 3.2: nothing newer
# is used here.

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

require_macos() {
  [ "$(uname -s)" = Darwin ] ||
    fail "this runs on macOS only (this is $(uname -s))." \
      "On other systems use the simulated backend; 'npm run maccheck' type-checks the kext."
  KB_MACOS=$(sw_vers -productVersion)
  KB_MACOS_MAJOR=${KB_MACOS%%.*}
  # macOS 10.x reports 10.minor; 11 and later report the major number first.
  case $KB_MACOS_MAJOR in '' | *[!0-9]*) fail "cannot read the macOS version (sw_vers said '$KB_MACOS')." "Report this with the output of sw_vers." ;; esac
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
  if [ "$KB_MACOS_MAJOR" -ge 11 ]; then
    line=$(kmutil showloaded --list-only --bundle-identifier "$1" 2>/dev/null | grep -F " $1 " || true)
  else
    line=$(kextstat -l -b "$1" 2>/dev/null | grep -F " $1 " || true)
  fi
  [ -n "$line" ] && echo "$line"
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
