// The sample kext's service. It matches IOResources (one instance per boot), registers
// itself so user space can find it with IOServiceMatching, and names the user-client
// class in its personality (IOUserClientClass), so IOService::newUserClient makes one per
// IOServiceOpen. Its live instance is what keeps the kext from being autounloaded.
//
// The class name is written as a raw token, as OSDeclare/OSDefine require; sdk_checks.cpp
// proves it equals KB_SERVICE_CLASS_NAME from protocol/kextbridge.json.
#ifndef KEXTBRIDGE_KEXT_SAMPLE_SERVICE_H
#define KEXTBRIDGE_KEXT_SAMPLE_SERVICE_H

#include <IOKit/IOService.h>

class org_kextbridge_SampleService : public IOService {
  OSDeclareDefaultStructors(org_kextbridge_SampleService);

 public:
  bool start(IOService *provider) override;
  void stop(IOService *provider) override;
};

#endif
