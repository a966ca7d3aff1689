#include "user_client_core.h"

namespace kb {

// What getInfo and held write must fit the sizes the selector table makes callers pass.
static_assert(kSelectorShapes[kSelectorGetInfo].structOutputSize == 2 * kInfoStringSize,
              "getInfo writes two info strings");
static_assert(kSelectorShapes[kSelectorHeld].structOutputSize == kHeldEntrySize * kLedgerCapacity,
              "held writes up to kLedgerCapacity entries");
static_assert(kSelectorShapes[kSelectorRetainBatch].structOutputPerUnit == kBatchEntrySize &&
                  kSelectorShapes[kSelectorReleaseBatch].structOutputPerUnit == kBatchEntrySize,
              "a batch answers one entry per tag");

#include "dispatch.gen.inc"

namespace {

// Wire format of every structure: explicit little-endian bytes, so no alignment assumption
// is made about the caller's buffer.
void storeU32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

uint32_t loadU32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

// Copies at most size-1 bytes of s and NUL-pads the rest of the field.
void storeString(uint8_t *field, uint32_t size, const char *s) {
  uint32_t i = 0;
  if (s)
    for (; i + 1 < size && s[i]; i++) field[i] = (uint8_t)s[i];
  for (; i < size; i++) field[i] = 0;
}

bool structSizesMatch(const SelectorShape &shape, const MethodArgs &a) {
  if (!shape.structInputUnit)
    return a.structureInputSize == shape.structInputSize &&
           a.structureOutputSize == shape.structOutputSize;
  // Whole units in; room for an entry per unit out.
  const uint32_t in = a.structureInputSize;
  if (in == 0 || in > shape.structInputSize || in % shape.structInputUnit) return false;
  const uint32_t need = in / shape.structInputUnit * shape.structOutputPerUnit;
  return a.structureOutputSize >= need && a.structureOutputSize <= shape.structOutputSize;
}

bool shapeMatches(const SelectorShape &shape, const MethodArgs &a) {
  if (a.outOfLine || a.async) return false;
  if (a.scalarInputCount != shape.scalarInputs || a.scalarOutputCount != shape.scalarOutputs)
    return false;
  if (!structSizesMatch(shape, a)) return false;
  if (shape.scalarInputs && !a.scalarInput) return false;
  if (shape.structInputSize && !a.structureInput) return false;
  if (shape.scalarOutputs && !a.scalarOutput) return false;
  if (shape.structOutputSize && !a.structureOutput) return false;
  return true;
}

// Scalars travel as 64 bits; a tag above 32 bits is refused rather than truncated.
bool tagOf(const MethodArgs &args, uint32_t *tag) {
  if (args.scalarInput[0] > 0xFFFFFFFFull) return false;
  *tag = (uint32_t)args.scalarInput[0];
  return true;
}

}  // namespace

UserClientCore::UserClientCore(KernelApi &kernel, Lock &lock, bool privileged)
    : kernel_(kernel), lock_(lock), privileged_(privileged), closed_(false), terminated_(false) {}

bool UserClientCore::open() const {
  return !closed_ && !__atomic_load_n(&terminated_, __ATOMIC_ACQUIRE);
}

uint32_t UserClientCore::externalMethod(uint32_t selector, MethodArgs &args) {
  // Bounds before indexing: the selector is the caller's number.
  if (selector >= kSelectorCount) return RC_kIOReturnBadArgument;
  const SelectorShape &shape = kSelectorShapes[selector];
  if (!shapeMatches(shape, args)) return RC_kIOReturnBadArgument;
  if (shape.admin && !privileged_) return RC_kIOReturnNotPrivileged;
  return (this->*kHandlers[selector])(args);
}

uint32_t UserClientCore::onGetInfo(MethodArgs &args) {
  {
    LockGuard guard(lock_);
    if (!open()) return RC_kIOReturnNotOpen;
  }
  // The kext's identity comes from the kernel side: asked with the lock dropped.
  args.scalarOutput[GetInfoOut::protocolVersion] = kProtocolVersion;
  args.scalarOutput[GetInfoOut::ownLoadTag] = kernel_.ownLoadTag();
  args.scalarOutput[GetInfoOut::privileged] = privileged_ ? 1 : 0;
  args.scalarOutput[GetInfoOut::ledgerCap] = kLedgerCapacity;
  uint8_t *out = (uint8_t *)args.structureOutput;
  storeString(out, kInfoStringSize, kernel_.ownIdentifier());
  storeString(out + kInfoStringSize, kInfoStringSize, kernel_.ownVersion());
  return RC_kIOReturnSuccess;
}

// Reserve under the lock, call the kernel without it, then commit or roll back. A retain
// whose client closed meanwhile gives back what it got: nothing may stay held unrecorded.
bool UserClientCore::retainOne(uint32_t loadTag, uint32_t *code, uint32_t *held) {
  {
    LockGuard guard(lock_);
    if (!open()) return false;
    if (!ledger_.reserve()) {
      *code = RC_kIOReturnNoResources;
      *held = ledger_.count(loadTag);
      return true;
    }
  }
#if KB_PLANT_LOCK_ACROSS_KPI
  lock_.lock();  // the old bug, for the sanitizer's negative control only
#endif
  const uint32_t kr = kernel_.retainKext(loadTag);
#if KB_PLANT_LOCK_ACROSS_KPI
  lock_.unlock();
#endif
  bool kept = false;
  bool stillOpen;
  {
    LockGuard guard(lock_);
    stillOpen = open();
    if (kr == RC_kOSReturnSuccess && stillOpen) {
      *held = ledger_.commit(loadTag);
      kept = true;
    } else {
      ledger_.cancel();
      *held = ledger_.count(loadTag);
    }
  }
  if (kr == RC_kOSReturnSuccess && !kept) kernel_.releaseKext(loadTag);
  if (!stillOpen) return false;
  *code = kr;
  return true;
}

// Take the unit under the lock, call the kernel without it, restore it if the kernel refused.
bool UserClientCore::releaseOne(uint32_t loadTag, uint32_t *code, uint32_t *held) {
  bool tookUnit;
  {
    LockGuard guard(lock_);
    if (!open()) return false;
    tookUnit = ledger_.beginRelease(loadTag);
    // Only what this client retained may be released. The invalid tag goes through so the
    // caller sees the kernel's own kOSKextReturnInvalidArgument; it can never be held.
    if (!tookUnit && loadTag != kInvalidLoadTag) {
      *code = RC_kIOReturnNotPermitted;
      *held = 0;
      return true;
    }
  }
  const uint32_t kr = kernel_.releaseKext(loadTag);
  *code = kr;
  *held = 0;
  if (tookUnit) {
    LockGuard guard(lock_);
    *held = ledger_.finishRelease(loadTag, kr != RC_kOSReturnSuccess);
  }
  return true;
}

uint32_t UserClientCore::onRetain(MethodArgs &args) {
  uint32_t tag, code, held;
  if (!tagOf(args, &tag)) return RC_kIOReturnBadArgument;
  if (!retainOne(tag, &code, &held)) return RC_kIOReturnNotOpen;
  if (code == RC_kIOReturnNoResources) return code;  // the user client's refusal: no outputs
  args.scalarOutput[RetainOut::osReturn] = code;
  args.scalarOutput[RetainOut::heldAfter] = held;
  return RC_kIOReturnSuccess;
}

uint32_t UserClientCore::onRelease(MethodArgs &args) {
  uint32_t tag, code, held;
  if (!tagOf(args, &tag)) return RC_kIOReturnBadArgument;
  if (!releaseOne(tag, &code, &held)) return RC_kIOReturnNotOpen;
  if (code == RC_kIOReturnNotPermitted) return code;
  args.scalarOutput[ReleaseOut::osReturn] = code;
  args.scalarOutput[ReleaseOut::heldAfter] = held;
  return RC_kIOReturnSuccess;
}

// Each tag in order with the same rule as a single call; a refusal of one tag is that tag's
// entry. If the client closes midway, the entries so far are the answer (or kIOReturnNotOpen
// when there are none).
uint32_t UserClientCore::batch(MethodArgs &args, bool retain) {
  const uint8_t *in = (const uint8_t *)args.structureInput;
  uint8_t *out = (uint8_t *)args.structureOutput;
  const uint32_t n = args.structureInputSize / 4;
  uint32_t done = 0;
  for (; done < n; done++) {
    const uint32_t tag = loadU32(in + 4 * done);
    uint32_t code, held;
    if (!(retain ? retainOne(tag, &code, &held) : releaseOne(tag, &code, &held))) break;
    uint8_t *entry = out + done * kBatchEntrySize;
    storeU32(entry + 4 * BatchEntry::code, code);
    storeU32(entry + 4 * BatchEntry::heldAfter, held);
  }
  if (done == 0) return RC_kIOReturnNotOpen;
  args.structureOutputSize = done * kBatchEntrySize;
  return RC_kIOReturnSuccess;
}

uint32_t UserClientCore::onRetainBatch(MethodArgs &args) { return batch(args, true); }

uint32_t UserClientCore::onReleaseBatch(MethodArgs &args) { return batch(args, false); }

uint32_t UserClientCore::onHeld(MethodArgs &args) {
  LockGuard guard(lock_);
  if (!open()) return RC_kIOReturnNotOpen;
  uint8_t *out = (uint8_t *)args.structureOutput;
  uint32_t n = ledger_.entryCount();
  for (uint32_t i = 0; i < n; i++) {
    uint8_t *entry = out + i * kHeldEntrySize;
    storeU32(entry + 4 * HeldEntry::loadTag, ledger_.entry(i).loadTag);
    storeU32(entry + 4 * HeldEntry::count, ledger_.entry(i).count);
  }
  args.structureOutputSize = n * kHeldEntrySize;
  return RC_kIOReturnSuccess;
}

void UserClientCore::terminate() {
#if KB_PLANT_LOCK_ACROSS_KPI
  LockGuard guard(lock_);  // the old stop(), which took the client lock: negative control only
#endif
  __atomic_store_n(&terminated_, true, __ATOMIC_RELEASE);
}

uint32_t UserClientCore::close() {
  {
    LockGuard guard(lock_);
    closed_ = true;
  }
  // One unit at a time, each taken out under the lock and released without it.
  uint32_t released = 0;
  for (;;) {
    uint32_t tag;
    {
      LockGuard guard(lock_);
      if (!ledger_.takeAny(&tag)) break;
    }
    if (kernel_.releaseKext(tag) == RC_kOSReturnSuccess) {
      released++;
      continue;
    }
    // The kernel refused (only an injected fault can): keep it recorded for a later close.
    LockGuard guard(lock_);
    if (ledger_.reserve()) ledger_.commit(tag);
    break;
  }
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
