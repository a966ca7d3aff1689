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
  // IOConnectCallAsyncMethod: no selector is asynchronous. Answering success would leave
  // the client owning the caller's wake-port send right, a leak any caller could repeat.
  bool async = false;
};

class UserClientCore {
 public:
  // privileged: the opening task passed clientHasPrivilege(kIOClientPrivilegeAdministrator).
  UserClientCore(KernelApi &kernel, Lock &lock, bool privileged);

  // The IOReturn for externalMethod. Anything but success means MIG drops every output.
  uint32_t externalMethod(uint32_t selector, MethodArgs &args);

  // IOUserClient::stop (the service is going away, possibly on a thread holding the kernel's
  // kext lock): later calls answer kIOReturnNotOpen. Takes no lock, calls no KPI, never blocks.
  void terminate();

  // clientClose / clientDied / free: later calls answer kIOReturnNotOpen, and everything this
  // client still holds is released, outside the lock. Safe to call more than once and from
  // several threads: each held retain is released by exactly one caller. Returns the
  // releases this call made.
  uint32_t close();

  // Read under the lock, for tests and invariant checks.
  uint32_t heldCount(uint32_t loadTag);
  uint32_t outstanding();
  bool closed();

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
};

} // namespace kb

#endif
