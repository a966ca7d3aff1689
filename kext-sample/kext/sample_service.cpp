#include "sample_service.h"

#include <libkern/OSKextLib.h>
#include <sys/proc.h>

#include "log.h"
#include "open_slots.h"
#include "sample_user_client.h"

OSDefineMetaClassAndStructors(org_kextbridge_SampleService, IOService);

bool org_kextbridge_SampleService::start(IOService *provider) {
  if (!IOService::start(provider)) {
    KB_LOG("service: IOService::start failed");
    return false;
  }
  // Before registerService: no open can arrive without the limit in place.
  openLock_ = IOLockAlloc();
  if (openLock_) openSlots_ = new kbkext::OpenSlots(openLock_);
  if (!openSlots_) {
    KB_LOG("service: no memory for the open-client limit");
    IOService::stop(provider);
    return false;  // free() releases what was allocated
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

// Clients that held a slot kept this object retained until their own free(), so every slot
// is back by now.
void org_kextbridge_SampleService::free() {
  if (openSlots_) {
    delete openSlots_;
    openSlots_ = nullptr;
  }
  if (openLock_) {
    IOLockFree(openLock_);
    openLock_ = nullptr;
  }
  IOService::free();
}

IOReturn org_kextbridge_SampleService::newUserClient(task_t owningTask, void *securityID,
                                                     UInt32 type, OSDictionary *properties,
                                                     IOUserClient **handler) {
  if (!openSlots_) return kIOReturnNotReady;
  // IOServiceOpen runs this on the opening thread, and xnu refuses an owning task that is
  // not the caller's own before it gets here, so the caller's pid is the owner's.
  // proc_selfpid is a KPI (com.apple.kpi.bsd); there is none for a task_t's pid.
  const int pid = proc_selfpid();
  // No log line for a refusal: it would be one more thing any user could flood.
  if (!openSlots_->limit().acquire(pid)) return kIOReturnNoResources;
  IOReturn result = IOService::newUserClient(owningTask, securityID, type, properties, handler);
  org_kextbridge_SampleUserClient *client =
      result == kIOReturnSuccess && handler
          ? OSDynamicCast(org_kextbridge_SampleUserClient, *handler)
          : nullptr;
  if (client)
    client->holdOpenSlot(this, pid);  // given back by the client's free()
  else
    openSlots_->limit().release(pid);
  return result;
}

void org_kextbridge_SampleService::releaseOpenSlot(int pid) {
  if (openSlots_) openSlots_->limit().release(pid);
}
