#include "sample_service.h"

#include <libkern/OSKextLib.h>

#include "log.h"

OSDefineMetaClassAndStructors(org_kextbridge_SampleService, IOService);

bool org_kextbridge_SampleService::start(IOService *provider) {
  if (!IOService::start(provider)) {
    KB_LOG("service: IOService::start failed");
    return false;
  }
  // Without this, IOServiceGetMatchingService never finds the service.
  registerService();
  KB_LOG("service started (load tag %u, %s %s)", (unsigned)OSKextGetCurrentLoadTag(),
         OSKextGetCurrentIdentifier(), OSKextGetCurrentVersionString());
  return true;
}

void org_kextbridge_SampleService::stop(IOService *provider) {
  KB_LOG("service stopping");
  IOService::stop(provider);
}
