#include "user_client_core.h"

namespace kb {

// What getInfo and held write must fit the sizes the selector table makes callers pass.
static_assert(kSelectorShapes[kSelectorGetInfo].structOutputSize == 2 * kInfoStringSize,
              "getInfo writes two info strings");
static_assert(kSelectorShapes[kSelectorHeld].structOutputSize == 8 * kLedgerCapacity,
              "held writes up to kLedgerCapacity (tag, count) pairs");

namespace {

// Wire format of the held struct and the getInfo strings: explicit little-endian bytes,
// so no alignment assumption is made about the caller's buffer.
void storeU32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

// Copies at most size-1 bytes of s and NUL-pads the rest of the field.
void storeString(uint8_t *field, uint32_t size, const char *s) {
  uint32_t i = 0;
  if (s)
    for (; i + 1 < size && s[i]; i++) field[i] = (uint8_t)s[i];
  for (; i < size; i++) field[i] = 0;
}

bool shapeMatches(const SelectorShape &shape, const MethodArgs &a) {
  if (a.outOfLine || a.async) return false;
  if (a.scalarInputCount != shape.scalarInputs || a.structureInputSize != shape.structInputSize)
    return false;
  if (a.scalarOutputCount != shape.scalarOutputs || a.structureOutputSize != shape.structOutputSize)
    return false;
  if (shape.scalarInputs && !a.scalarInput) return false;
  if (shape.structInputSize && !a.structureInput) return false;
  if (shape.scalarOutputs && !a.scalarOutput) return false;
  if (shape.structOutputSize && !a.structureOutput) return false;
  return true;
}

} // namespace

UserClientCore::UserClientCore(KernelApi &kernel, Lock &lock, bool privileged)
    : kernel_(kernel), lock_(lock), privileged_(privileged), closed_(false) {}

uint32_t UserClientCore::externalMethod(uint32_t selector, MethodArgs &args) {
  // Bounds before indexing: the selector is the caller's number.
  if (selector >= kSelectorCount) return RC_kIOReturnBadArgument;
  const SelectorShape &shape = kSelectorShapes[selector];
  if (!shapeMatches(shape, args)) return RC_kIOReturnBadArgument;
  if (shape.admin && !privileged_) return RC_kIOReturnNotPrivileged;

  switch (selector) {
    case kSelectorGetInfo:
      return getInfo(args);
    case kSelectorRetain:
    case kSelectorRelease: {
      // Scalars travel as 64 bits; refuse rather than truncate a tag above 32 bits.
      uint64_t tag = args.scalarInput[0];
      if (tag > 0xFFFFFFFFull) return RC_kIOReturnBadArgument;
      return selector == kSelectorRetain ? retain((uint32_t)tag, args)
                                         : release((uint32_t)tag, args);
    }
    case kSelectorHeld:
      return held(args);
  }
  return RC_kIOReturnBadArgument;  // a selector in the table without a case
}

uint32_t UserClientCore::getInfo(MethodArgs &args) {
  LockGuard guard(lock_);
  if (closed_) return RC_kIOReturnNotOpen;
  args.scalarOutput[0] = kProtocolVersion;
  args.scalarOutput[1] = kernel_.ownLoadTag();
  args.scalarOutput[2] = privileged_ ? 1 : 0;
  args.scalarOutput[3] = kLedgerCapacity;
  uint8_t *out = (uint8_t *)args.structureOutput;
  storeString(out, kInfoStringSize, kernel_.ownIdentifier());
  storeString(out + kInfoStringSize, kInfoStringSize, kernel_.ownVersion());
  return RC_kIOReturnSuccess;
}

uint32_t UserClientCore::retain(uint32_t loadTag, MethodArgs &args) {
  LockGuard guard(lock_);
  if (closed_) return RC_kIOReturnNotOpen;
  if (ledger_.full()) return RC_kIOReturnNoResources;
  uint32_t kr = kernel_.retainKext(loadTag);
  uint32_t held = kr == RC_kOSReturnSuccess ? ledger_.add(loadTag) : ledger_.count(loadTag);
  args.scalarOutput[0] = kr;
  args.scalarOutput[1] = held;
  return RC_kIOReturnSuccess;
}

uint32_t UserClientCore::release(uint32_t loadTag, MethodArgs &args) {
  LockGuard guard(lock_);
  if (closed_) return RC_kIOReturnNotOpen;
  uint32_t held = ledger_.count(loadTag);
  // Only what this client retained may be released. The invalid tag goes through so the
  // caller sees the kernel's own kOSKextReturnInvalidArgument; it can never be held.
  if (held == 0 && loadTag != kInvalidLoadTag) return RC_kIOReturnNotPermitted;
  uint32_t kr = kernel_.releaseKext(loadTag);
  if (kr == RC_kOSReturnSuccess && held > 0) held = ledger_.remove(loadTag);
  args.scalarOutput[0] = kr;
  args.scalarOutput[1] = held;
  return RC_kIOReturnSuccess;
}

uint32_t UserClientCore::held(MethodArgs &args) {
  LockGuard guard(lock_);
  if (closed_) return RC_kIOReturnNotOpen;
  uint8_t *out = (uint8_t *)args.structureOutput;
  uint32_t n = ledger_.entryCount();
  for (uint32_t i = 0; i < n; i++) {
    storeU32(out + i * 8, ledger_.entry(i).loadTag);
    storeU32(out + i * 8 + 4, ledger_.entry(i).count);
  }
  args.structureOutputSize = n * 8;
  return RC_kIOReturnSuccess;
}

uint32_t UserClientCore::close() {
  LockGuard guard(lock_);
  if (closed_) return 0;
  closed_ = true;
  uint32_t released = 0;
  for (uint32_t i = 0; i < ledger_.entryCount(); i++) {
    const Ledger::Entry &e = ledger_.entry(i);
    for (uint32_t n = 0; n < e.count; n++)
      if (kernel_.releaseKext(e.loadTag) == RC_kOSReturnSuccess) released++;
  }
  ledger_.clear();
  return released;
}

uint32_t UserClientCore::heldCount(uint32_t loadTag) {
  LockGuard guard(lock_);
  return ledger_.count(loadTag);
}

uint32_t UserClientCore::outstanding() {
  LockGuard guard(lock_);
  return ledger_.outstanding();
}

bool UserClientCore::closed() {
  LockGuard guard(lock_);
  return closed_;
}

} // namespace kb
