// What a kextbridge user-client call does, decided once: the kext's IOUserClient and the
// simulator both hand every externalMethod call here. Kernel-safe C++: no standard library,
// no exceptions, no RTTI, no allocation.
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

  // clientClose / clientDied: release everything this client still holds; later calls
  // answer kIOReturnNotOpen. Safe to call more than once. Returns the releases made.
  uint32_t close();

  // Read under the lock, for tests and invariant checks.
  uint32_t heldCount(uint32_t loadTag);
  uint32_t outstanding();
  bool closed();

 private:
  uint32_t getInfo(MethodArgs &args);
  uint32_t retain(uint32_t loadTag, MethodArgs &args);
  uint32_t release(uint32_t loadTag, MethodArgs &args);
  uint32_t held(MethodArgs &args);

  KernelApi &kernel_;
  Lock &lock_;
  const bool privileged_;
  bool closed_;
  Ledger ledger_;
};

} // namespace kb

#endif
