// What a kextbridge user-client call does, decided once: the kext's IOUserClient and the
// simulator both hand every externalMethod call here. Kernel-safe C++: no standard library,
// no exceptions, no RTTI, no allocation.
//
// Lock discipline: every kernel call (KernelApi) takes the kernel's kext lock, and the kernel
// holds that lock while it terminates our service (an unload) and so calls stop(). So no
// KernelApi call is ever made while this client's lock is held, and terminate() takes no lock.
#ifndef KEXTBRIDGE_USER_CLIENT_CORE_H
#define KEXTBRIDGE_USER_CLIENT_CORE_H

#include <stdint.h>

#include "kernel_api.h"
#include "ledger.h"
#include "protocol.gen.h"

namespace kb {

// The parts of IOExternalMethodArguments the core reads and writes. Output counts and sizes
// come in as the caller's capacity and go out as what was written.
struct MethodArgs {
  const uint64_t *scalarInput = nullptr;
  uint32_t scalarInputCount = 0;
  const void *structureInput = nullptr;
  uint32_t structureInputSize = 0;
  uint64_t *scalarOutput = nullptr;
  uint32_t scalarOutputCount = 0;
  void *structureOutput = nullptr;
  uint32_t structureOutputSize = 0;
  bool outOfLine = false;  // a structure came as an IOMemoryDescriptor; this protocol never uses one
  // IOConnectCallAsyncMethod (asyncWakePort set). Only a selector marked async in the
  // protocol (requestResource) accepts one; any other answers kIOReturnBadArgument, since
  // answering success would leave the client owning the caller's wake-port send right, a
  // leak any caller could repeat. asyncReference / asyncReferenceCount: the reference the
  // kernel filled (word 0: the wake port), 1 to kAsyncRefWords words.
  bool async = false;
  const uint64_t *asyncReference = nullptr;
  uint32_t asyncReferenceCount = 0;
};

// One entry of a client's resource-request table (fixed size: kRequestCapacity). Its address
// is the context the kernel holds for the request. Fields under the client's lock.
struct RequestSlot {
  enum State : uint8_t {
    Free,        // unused (buffer may still be attached, reused by the next request)
    Requesting,  // a thread is in OSKextRequestResource for it
    Pending,     // the kernel has it under tag; no callback yet
    Cancelling,  // a thread is in OSKextCancelRequest for it (cancel or close)
    Ready,       // delivered; bytes wait for fetchResource
    Orphaned,    // closed or stopped, and its cancel answered kOSReturnError: the kernel may
                 // still hold the request (and call back); ended by a later cancel that
                 // answers success or NotFound (close() retries) or by the callback
  };
  class UserClientCore *core = nullptr;
  State state = Free;
  bool called = false;  // the kernel's callback ran for this occupancy (exactly once)
  bool keep = false;    // the callback kept bytes for fetchResource
  bool sent = false;    // the callback sent the completion
  bool ownsRef = false; // Orphaned: the async reference is ours to release when it ends (not
                        // when the request's own reply was an error: MIG took the right back)
  uint32_t tag = 0xFFFFFFFFu;
  uint32_t length = 0;   // Ready: bytes in buffer
  uint32_t fetched = 0;  // Ready: bytes handed out so far
  void *buffer = nullptr;  // kMaxResourceSize bytes from KernelApi::allocBuffer, or null
  AsyncRef ref;
};

class UserClientCore {
 public:
  // privileged: the opening task passed clientHasPrivilege(kIOClientPrivilegeAdministrator).
  // notifier: completes requestResource's async references; without one requestResource
  // answers kIOReturnUnsupported.
  UserClientCore(KernelApi &kernel, Lock &lock, bool privileged, AsyncNotifier *notifier = nullptr);
  // Frees the request buffers (close() must have run: no request may be pending).
  ~UserClientCore();

  // The IOReturn for externalMethod. Anything but success means MIG drops every output.
  uint32_t externalMethod(uint32_t selector, MethodArgs &args);

  // IOUserClient::stop (the service is going away, possibly on a thread holding the kernel's
  // kext lock): later calls answer kIOReturnNotOpen. Takes no lock, calls no KPI, never blocks.
  void terminate();

  // clientClose / clientDied / free: later calls answer kIOReturnNotOpen, and everything this
  // client still holds is released, outside the lock. Safe to call more than once and from
  // several threads: each held retain is released by exactly one caller. Returns the
  // releases this call made. Every pending resource request is cancelled in the kernel
  // (outside the lock) and no completion is sent after close() has set the closed flag;
  // when close() returns, the kernel can no longer call back into this client for any of
  // them (the core may be destroyed once no externalMethod call is running) — unless a
  // cancel answered kOSReturnError: that entry stays Orphaned (requestsInUse() > 0, the
  // core must NOT be destroyed yet); a later close() retries its cancel.
  uint32_t close();

  // The OSKextRequestResource callback (context: a RequestSlot of some core). Kernel code of
  // the kext: the kext passes this very function to the KPI. Copies the bytes (at most
  // kMaxResourceSize, else refused and counted), completes the async reference. Takes this
  // client's lock (a leaf under the kernel's kext lock), calls no KPI.
  static void resourceCallback(uint32_t requestTag, int32_t result, const void *data,
                               uint32_t length, void *context);

  // Read under the lock, for tests and invariant checks.
  uint32_t heldCount(uint32_t loadTag);
  uint32_t outstanding();
  bool closed();
  uint32_t requestsInUse();     // table entries not Free (pending, in flight, unfetched, orphaned)
  uint32_t oversizeRefused();   // deliveries refused for exceeding kMaxResourceSize
  uint32_t completionsSent();   // sendAsyncResult calls made

 private:
  typedef uint32_t (UserClientCore::*Handler)(MethodArgs &args);
  static const Handler kHandlers[kSelectorCount];  // dispatch.gen.inc, from the protocol file

  // One handler per selector (protocol/kextbridge.json), named on<Selector>.
  uint32_t onGetInfo(MethodArgs &args);
  uint32_t onRetain(MethodArgs &args);
  uint32_t onRelease(MethodArgs &args);
  uint32_t onHeld(MethodArgs &args);
  uint32_t onRetainBatch(MethodArgs &args);
  uint32_t onReleaseBatch(MethodArgs &args);
  uint32_t onLoadKextWithIdentifier(MethodArgs &args);
  uint32_t onRequestResource(MethodArgs &args);
  uint32_t onFetchResource(MethodArgs &args);
  uint32_t onCancelRequest(MethodArgs &args);

  // One retain or release with the ledger rule: the user client's refusal (an IOReturn) or
  // the kernel's OSReturn in *code, the held count after in *held. Returns false only when
  // the client is closed or terminated (the answer is then kIOReturnNotOpen).
  bool retainOne(uint32_t loadTag, uint32_t *code, uint32_t *held);
  bool releaseOne(uint32_t loadTag, uint32_t *code, uint32_t *held);
  uint32_t batch(MethodArgs &args, bool retain);
  bool open() const;  // neither closed nor terminated; under the lock

  KernelApi &kernel_;
  Lock &lock_;
  const bool privileged_;
  bool closed_;       // under lock_
  bool terminated_;   // atomic (terminate() takes no lock)
  Ledger ledger_;     // under lock_
  AsyncNotifier *const notifier_;
  RequestSlot slots_[kRequestCapacity];  // under lock_
  uint32_t oversize_ = 0;                // under lock_
  uint32_t completions_ = 0;             // under lock_

  void delivered(RequestSlot &slot, uint32_t tag, uint32_t result, const void *data,
                 uint32_t length);  // the callback's work, under lock_
  // Back to Free; releases the async reference when the call that gave it answered success.
  void finishSlot(RequestSlot &slot, bool releaseRef);  // under lock_
  // After the cancel of an entry of a closed or stopped client (under lock_): success or
  // NotFound (the kernel no longer has it) or a callback that already ran ends it; any other
  // answer (kOSReturnError: nothing was dequeued) leaves it Orphaned. True when ended.
  bool settleClosedCancel(RequestSlot &slot, uint32_t kr, bool ownsRef);
};

} // namespace kb

#endif
