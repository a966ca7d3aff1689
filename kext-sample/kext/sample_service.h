// The sample kext's service. It matches IOResources (one instance per boot), registers
// itself so user space can find it with IOServiceMatching, and names the user-client
// class in its personality (IOUserClientClass), so IOService::newUserClient makes one per
// IOServiceOpen. Its live instance is what keeps the kext from being autounloaded.
//
// Every open is counted against the opening process first (kb::OpenLimit, at most
// kb::OpenLimit::kPerProcess clients per process): one more answers kIOReturnNoResources.
//
// The class name is written as a raw token, as OSDeclare/OSDefine require; sdk_checks.cpp
// proves it equals KB_SERVICE_CLASS_NAME from protocol/kextbridge.json.
#ifndef KEXTBRIDGE_KEXT_SAMPLE_SERVICE_H
#define KEXTBRIDGE_KEXT_SAMPLE_SERVICE_H

#include <IOKit/IOLocks.h>
#include <IOKit/IOService.h>

namespace kbkext {
class OpenSlots;
}

class org_kextbridge_SampleService : public IOService {
  OSDeclareDefaultStructors(org_kextbridge_SampleService);

 public:
  bool start(IOService *provider) override;
  void stop(IOService *provider) override;
  void free() override;

  // The form IOServiceOpen reaches (is_io_service_open_extended calls it with the
  // properties); the others stay inherited.
  using IOService::newUserClient;
  IOReturn newUserClient(task_t owningTask, void *securityID, UInt32 type,
                         OSDictionary *properties, IOUserClient **handler) override;

  // A client of this service gives back the slot newUserClient took for process pid.
  void releaseOpenSlot(int pid);

 private:
  // Set by the constructor the OSDefine macro writes, so free() is safe on every path.
  IOLock *openLock_ = nullptr;
  kbkext::OpenSlots *openSlots_ = nullptr;
};

#endif
