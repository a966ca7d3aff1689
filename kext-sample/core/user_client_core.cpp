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
  if (shape.structInputVariable)
    return a.structureInputSize >= 1 && a.structureInputSize <= shape.structInputSize &&
           a.structureOutputSize == shape.structOutputSize;
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
  if (a.outOfLine) return false;
  // Only the async selector takes an async reference, and it takes nothing else.
  if (a.async != shape.async) return false;
  if (shape.async &&
      (!a.asyncReference || a.asyncReferenceCount < 1 || a.asyncReferenceCount > kAsyncRefWords))
    return false;
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

// A name field: not empty and NUL-terminated within its size (so at most size - 1 chars).
bool validName(const uint8_t *field, uint32_t size) {
  if (size == 0 || field[0] == 0) return false;
  for (uint32_t i = 1; i < size; i++)
    if (field[i] == 0) return true;
  return false;
}

void copyBytes(void *to, const void *from, uint32_t n) { __builtin_memcpy(to, from, n); }

}  // namespace

UserClientCore::UserClientCore(KernelApi &kernel, Lock &lock, bool privileged,
                               AsyncNotifier *notifier)
    : kernel_(kernel), lock_(lock), privileged_(privileged), closed_(false), terminated_(false),
      notifier_(notifier) {
  for (uint32_t i = 0; i < kRequestCapacity; i++) slots_[i].core = this;
}

UserClientCore::~UserClientCore() {
  for (uint32_t i = 0; i < kRequestCapacity; i++)
    if (slots_[i].buffer) kernel_.freeBuffer(slots_[i].buffer, kMaxResourceSize);
}

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
    closed_ = true;  // from here no completion is sent
  }
  // Every pending request is cancelled in the kernel, one at a time, outside the lock. When
  // the cancel answers kOSReturnSuccess (dequeued) or kOSKextReturnNotFound (no record: its
  // callback has run or the kernel dropped it), the kernel can no longer call back for it:
  // xnu dequeues a record and invokes its callback within one hold of sKextLock
  // (dispatchResource, under handleRequest or the autounload thread call), and
  // OSKextCancelRequest takes that lock too. Any other answer (kOSReturnError: the kernel
  // could not build its lookup key, or a malformed record) dequeued nothing: the kernel still
  // holds the entry's address and may call it later, so the entry stays Orphaned (counted by
  // requestsInUse(), absorbing that callback) and the next close() retries its cancel. An
  // entry another thread is requesting or cancelling is left to that thread, which sees the
  // flag when its KPI returns.
  for (uint32_t i = 0; i < kRequestCapacity; i++) {
    RequestSlot &slot = slots_[i];
    uint32_t tag = kInvalidRequestTag;
    bool ownsRef = true;
    void *spare = nullptr;
    {
      LockGuard guard(lock_);
      if (slot.state == RequestSlot::Pending || slot.state == RequestSlot::Orphaned) {
        if (slot.state == RequestSlot::Orphaned) ownsRef = slot.ownsRef;
        slot.state = RequestSlot::Cancelling;
        tag = slot.tag;
      } else if (slot.state == RequestSlot::Ready) {
        finishSlot(slot, true);  // delivered and never fetched: dropped
      }
      if (slot.state == RequestSlot::Free) {
        spare = slot.buffer;
        slot.buffer = nullptr;
      }
    }
    if (tag != kInvalidRequestTag) {
      void *context = nullptr;
      const uint32_t kr = kernel_.cancelRequest(tag, &context);
      LockGuard guard(lock_);
      if (settleClosedCancel(slot, kr, ownsRef)) {
        spare = slot.buffer;
        slot.buffer = nullptr;
      }
    }
    if (spare) kernel_.freeBuffer(spare, kMaxResourceSize);
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

// ---- load and resource requests ----

uint32_t UserClientCore::onLoadKextWithIdentifier(MethodArgs &args) {
  const uint8_t *id = (const uint8_t *)args.structureInput;
  if (!validName(id, args.structureInputSize)) return RC_kIOReturnBadArgument;
  {
    LockGuard guard(lock_);
    if (!open()) return RC_kIOReturnNotOpen;
  }
  args.scalarOutput[LoadKextWithIdentifierOut::osReturn] =
      kernel_.loadKextWithIdentifier((const char *)id);
  return RC_kIOReturnSuccess;
}

void UserClientCore::finishSlot(RequestSlot &slot, bool releaseRef) {
  if (releaseRef && notifier_) notifier_->releaseAsyncReference(slot.ref);
  slot.state = RequestSlot::Free;
  slot.called = false;
  slot.keep = false;
  slot.sent = false;
  slot.ownsRef = false;
  slot.tag = kInvalidRequestTag;
  slot.length = 0;
  slot.fetched = 0;
}

bool UserClientCore::settleClosedCancel(RequestSlot &slot, uint32_t kr, bool ownsRef) {
  if (kr == RC_kOSReturnSuccess || kr == RC_kOSKextReturnNotFound || slot.called) {
    finishSlot(slot, ownsRef);
    return true;
  }
  slot.state = RequestSlot::Orphaned;
  slot.ownsRef = ownsRef;
  return false;
}

// Reserve an entry (and its buffer) first, so the callback, which may run as soon as the KPI
// has dropped the kernel's lock and before this thread gets the client lock back, always finds
// a place for the bytes. The KPI is called with no lock held.
uint32_t UserClientCore::onRequestResource(MethodArgs &args) {
  const uint8_t *in = (const uint8_t *)args.structureInput;
  if (!validName(in, kBundleIdSize) || !validName(in + kBundleIdSize, kResourceNameSize))
    return RC_kIOReturnBadArgument;
  if (!notifier_) return RC_kIOReturnUnsupported;
  RequestSlot *slot = nullptr;
  bool needBuffer;
  {
    LockGuard guard(lock_);
    if (!open()) return RC_kIOReturnNotOpen;
    for (uint32_t i = 0; i < kRequestCapacity && !slot; i++)
      if (slots_[i].state == RequestSlot::Free) slot = &slots_[i];
    if (!slot) return RC_kIOReturnNoResources;
    finishSlot(*slot, false);
    slot->state = RequestSlot::Requesting;
    for (uint32_t w = 0; w < kAsyncRefWords; w++)
      slot->ref.words[w] = w < args.asyncReferenceCount ? args.asyncReference[w] : 0;
    needBuffer = slot->buffer == nullptr;
  }
  if (needBuffer) {
    void *block = kernel_.allocBuffer(kMaxResourceSize);
    LockGuard guard(lock_);
    if (!block) {
      finishSlot(*slot, false);  // the error reply gives the wake port back (MIG)
      return RC_kIOReturnNoMemory;
    }
    slot->buffer = block;
  }

  uint32_t tag = kInvalidRequestTag;
  const uint32_t kr = kernel_.requestResource((const char *)in, (const char *)in + kBundleIdSize,
                                              &UserClientCore::resourceCallback, slot, &tag);
  bool cancel = false;
  {
    LockGuard guard(lock_);
    if (!open() && kr == RC_kOSReturnSuccess && slot->called && slot->sent) {
      // Closed after the completion went out: the call still answers success (a completion
      // never follows an error reply), and the bytes, if any, are dropped with the client.
      finishSlot(*slot, true);
      args.scalarOutput[RequestResourceOut::osReturn] = kr;
      args.scalarOutput[RequestResourceOut::requestTag] = tag;
      return RC_kIOReturnSuccess;
    }
    if (!open()) {
      // Closed meanwhile (close() left this entry to us): the reply will be an error, so the
      // wake port goes back with it; a request the kernel took is cancelled below.
      if (kr == RC_kOSReturnSuccess && !slot->called) {
        slot->state = RequestSlot::Cancelling;
        slot->tag = tag;
        cancel = true;
      } else {
        finishSlot(*slot, false);
      }
    } else if (kr != RC_kOSReturnSuccess) {
      finishSlot(*slot, true);  // no callback will come; the success reply hands us the port
    } else {
      slot->tag = tag;
      if (!slot->called) slot->state = RequestSlot::Pending;
      else if (slot->keep) slot->state = RequestSlot::Ready;  // delivered before we got here
      else finishSlot(*slot, true);
    }
  }
  if (cancel) {
    // The error reply gives the wake port back (MIG): the entry never owns the reference.
    void *context = nullptr;
    const uint32_t ckr = kernel_.cancelRequest(tag, &context);
    LockGuard guard(lock_);
    (void)settleClosedCancel(*slot, ckr, false);
    return RC_kIOReturnNotOpen;
  }
  args.scalarOutput[RequestResourceOut::osReturn] = kr;
  args.scalarOutput[RequestResourceOut::requestTag] = tag;
  return RC_kIOReturnSuccess;
}

void UserClientCore::resourceCallback(uint32_t requestTag, int32_t result, const void *data,
                                      uint32_t length, void *context) {
  RequestSlot *slot = (RequestSlot *)context;
  if (!slot || !slot->core) return;
  UserClientCore &core = *slot->core;
  LockGuard guard(core.lock_);
  core.delivered(*slot, requestTag, (uint32_t)result, data, length);
}

// Under lock_ (and the kernel's kext lock): the one callback of this occupancy.
void UserClientCore::delivered(RequestSlot &slot, uint32_t tag, uint32_t result,
                               const void *data, uint32_t length) {
  if (slot.state == RequestSlot::Free || slot.called) return;  // not ours to complete
  if (slot.state != RequestSlot::Requesting && slot.tag != tag) return;
  slot.called = true;
  slot.tag = tag;
  if (!open()) {  // nothing is delivered to a closed or stopped client
    // An orphan's one callback: the kernel is done with the entry now (its buffer stays
    // attached, freed by a later close() or the destructor: no KernelApi call here).
    if (slot.state == RequestSlot::Orphaned) finishSlot(slot, slot.ownsRef);
    return;
  }
  uint32_t verdict = RC_kIOReturnSuccess;
  if (result == RC_kOSReturnSuccess && length > kMaxResourceSize) {
    verdict = RC_kIOReturnNoSpace;  // refused: not kept, counted
    oversize_++;
  } else if (result == RC_kOSReturnSuccess && length > 0 && data && slot.buffer) {
    copyBytes(slot.buffer, data, length);
    slot.length = length;
    slot.fetched = 0;
    slot.keep = true;
  }
  uint64_t words[Completion::fieldCount];
  words[Completion::requestTag] = tag;
  words[Completion::osReturn] = result;
  words[Completion::length] = length;
  notifier_->sendAsyncResult(slot.ref, verdict, words, Completion::fieldCount);
  slot.sent = true;
  completions_++;
  if (slot.state == RequestSlot::Pending) {
    if (slot.keep) slot.state = RequestSlot::Ready;
    else finishSlot(slot, true);
  }
  // Requesting / Cancelling: the thread in the KPI finishes the entry when it returns.
}

uint32_t UserClientCore::onFetchResource(MethodArgs &args) {
  uint32_t tag;
  if (!tagOf(args, &tag) || args.scalarInput[1] > 0xFFFFFFFFull) return RC_kIOReturnBadArgument;
  const uint32_t offset = (uint32_t)args.scalarInput[1];
  LockGuard guard(lock_);
  if (!open()) return RC_kIOReturnNotOpen;
  RequestSlot *slot = nullptr;
  for (uint32_t i = 0; i < kRequestCapacity && !slot; i++)
    if (slots_[i].state == RequestSlot::Ready && slots_[i].tag == tag) slot = &slots_[i];
  if (!slot) return RC_kIOReturnNotFound;
  if (offset != slot->fetched) return RC_kIOReturnBadArgument;
  uint32_t n = slot->length - slot->fetched;
  if (n > kFetchChunkSize) n = kFetchChunkSize;
  copyBytes(args.structureOutput, (const uint8_t *)slot->buffer + slot->fetched, n);
  slot->fetched += n;
  args.scalarOutput[FetchResourceOut::length] = slot->length;
  args.scalarOutput[FetchResourceOut::copied] = n;
  args.structureOutputSize = n;
  if (slot->fetched == slot->length) finishSlot(*slot, true);  // handed over once
  return RC_kIOReturnSuccess;
}

// Only this client's pending request reaches the kernel: OSKextCancelRequest would cancel
// anyone's tag.
uint32_t UserClientCore::onCancelRequest(MethodArgs &args) {
  uint32_t tag;
  if (!tagOf(args, &tag)) return RC_kIOReturnBadArgument;
  RequestSlot *slot = nullptr;
  {
    LockGuard guard(lock_);
    if (!open()) return RC_kIOReturnNotOpen;
    for (uint32_t i = 0; i < kRequestCapacity && !slot; i++)
      if (slots_[i].state == RequestSlot::Pending && slots_[i].tag == tag) slot = &slots_[i];
    if (!slot) return RC_kIOReturnNotFound;
    slot->state = RequestSlot::Cancelling;
  }
  void *context = nullptr;
  const uint32_t kr = kernel_.cancelRequest(tag, &context);
  void *spare = nullptr;
  uint32_t answer = RC_kIOReturnSuccess;
  {
    LockGuard guard(lock_);
    const bool isOpen = open();
    if (kr == RC_kOSReturnSuccess) {
      finishSlot(*slot, true);  // cancelled: the callback never runs
    } else if (slot->called || kr == RC_kOSKextReturnNotFound) {
      // The kernel no longer has it: the callback ran (the delivery won), or the kernel
      // dropped the record without calling (dispatchResource does when the requesting kext
      // is not started, among others). Its bytes are kept only for an open client that got
      // the completion.
      const bool completed = slot->called && slot->sent;
      if (completed && slot->keep && isOpen) slot->state = RequestSlot::Ready;
      else finishSlot(*slot, true);
      // No completion went out (dropped, or the callback found the client stopped or
      // closed): "the delivery won" (NotFound, either layer) would leave user space waiting
      // for nothing. kIOReturnNotOpen says the request is over with no completion; the kernel
      // drops a record only when the requesting kext (this one) is not started, i.e. its
      // service is going away.
      if (!completed) answer = RC_kIOReturnNotOpen;
    } else if (isOpen) {
      slot->state = RequestSlot::Pending;  // the kernel refused otherwise: still pending
    } else {
      // Closed or stopped meanwhile (close() left this entry to us) and nothing dequeued.
      (void)settleClosedCancel(*slot, kr, true);
      answer = RC_kIOReturnNotOpen;
    }
    if (!isOpen && slot->state == RequestSlot::Free) {
      spare = slot->buffer;
      slot->buffer = nullptr;
    }
  }
  if (spare) kernel_.freeBuffer(spare, kMaxResourceSize);
  if (answer != RC_kIOReturnSuccess) return answer;
  args.scalarOutput[CancelRequestOut::osReturn] = kr;
  return RC_kIOReturnSuccess;
}

uint32_t UserClientCore::requestsInUse() {
  LockGuard guard(lock_);
  uint32_t n = 0;
  for (uint32_t i = 0; i < kRequestCapacity; i++)
    if (slots_[i].state != RequestSlot::Free) n++;
  return n;
}

uint32_t UserClientCore::oversizeRefused() {
  LockGuard guard(lock_);
  return oversize_;
}

uint32_t UserClientCore::completionsSent() {
  LockGuard guard(lock_);
  return completions_;
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
