#include "sample_user_client.h"

#include "client_session.h"
#include "deferred_release.h"
#include "log.h"
#include "sample_service.h"

OSDefineMetaClassAndStructors(org_kextbridge_SampleUserClient, IOUserClient);

bool org_kextbridge_SampleUserClient::initWithTask(task_t owningTask, void *securityToken,
                                                   UInt32 type, OSDictionary *properties) {
  if (!IOUserClient::initWithTask(owningTask, securityToken, type, properties)) return false;

  // Opening is open to everyone; the core refuses retain and release unless this held.
  privileged_ =
      clientHasPrivilege(securityToken, kIOClientPrivilegeAdministrator) == kIOReturnSuccess;

  // A false return here reaches IOServiceOpen as kIOReturnBadArgument; free() cleans up.
  lock_ = IOLockAlloc();
  if (!lock_) {
    KB_LOG("user client: IOLockAlloc failed");
    return false;
  }
  session_ = new kbkext::ClientSession(lock_, privileged_);
  if (!session_) {
    KB_LOG("user client: no memory for the client session");
    return false;
  }
  return true;
}

// No log line per open: any user can open, so that would let anyone flood the log.
bool org_kextbridge_SampleUserClient::start(IOService *provider) {
  if (!session_ || !OSDynamicCast(org_kextbridge_SampleService, provider)) return false;
  return IOUserClient::start(provider);
}

void org_kextbridge_SampleUserClient::holdOpenSlot(org_kextbridge_SampleService *service,
                                                   int pid) {
  service->retain();
  slotService_ = service;
  slotPid_ = pid;
}

// Reached when the service goes away with this client still open, for instance from
// kmutil unload, which terminates the service synchronously on a thread that holds the
// kernel's kext lock (or, if a call was in flight, later on IOKit's terminate thread, which
// that unload may be waiting for). Every KPI takes that lock, so nothing here may call one:
// only a flag. By now IOKit has already cut the connection port (destroyUserReferences):
// user space's calls and IOServiceClose answer kIOReturnBadArgument, and clientClose /
// clientDied will never come for this client; only free() follows. The flag matters for a
// call that looked the port up just before it was cut, and in the sim, which keeps the
// connection and answers kIOReturnNotOpen (kernel-facts §4.4).
// What the client holds is released in clientClose or clientDied when user space closes
// or dies first, else from free(), through a thread call (deferred_release.h).
void org_kextbridge_SampleUserClient::stop(IOService *provider) {
  if (session_) session_->core().terminate();
  IOUserClient::stop(provider);
}

void org_kextbridge_SampleUserClient::free() {
  if (slotService_) {
    slotService_->releaseOpenSlot(slotPid_);
    slotService_->release();
    slotService_ = nullptr;
  }
  // After a termination IOKit never calls clientClose or clientDied: what the client still
  // holds is released from here, but never by calling a KPI on this thread. free() may run on
  // the unloading thread, or on IOKit's terminate thread while an unload holds the kext lock
  // and waits for that thread (kernel-facts §3.10); a thread call does it (deferred_release.h).
  if (session_ && session_->core().outstanding() > 0) {
    if (org_kextbridge_DeferredRelease::schedule(session_, lock_)) {
      session_ = nullptr;  // the deferred release owns both now
      lock_ = nullptr;
    } else {
      KB_LOG("user client freed holding %u retain(s): no memory to release them later; they stay held",
             session_->core().outstanding());
      session_ = nullptr;  // leaked with what it holds: pinned, never over-released
      lock_ = nullptr;
    }
  }
  if (session_) {
    delete session_;
    session_ = nullptr;
  }
  if (lock_) {
    IOLockFree(lock_);
    lock_ = nullptr;
  }
  IOUserClient::free();
}

IOReturn org_kextbridge_SampleUserClient::clientClose() {
  releaseHeld("close");
  terminate();
  return kIOReturnSuccess;
}

// The owning process died without closing. Release first, then the default, which calls
// clientClose once if the client is not closed yet (its release is then a no-op).
IOReturn org_kextbridge_SampleUserClient::clientDied() {
  releaseHeld("client died");
  return IOUserClient::clientDied();
}

// The core releases with its own lock dropped around each KPI call.
void org_kextbridge_SampleUserClient::releaseHeld(const char *when) {
  if (!session_) return;
  uint32_t released = session_->core().close();
  if (released) KB_LOG("user client %s: released %u retain(s) it still held", when, released);
}

IOReturn org_kextbridge_SampleUserClient::externalMethod(uint32_t selector,
                                                        IOExternalMethodArguments *arguments,
                                                        IOExternalMethodDispatch *dispatch,
                                                        OSObject *target, void *reference) {
  (void)dispatch;
  (void)target;
  (void)reference;
  if (!session_ || !arguments) return kIOReturnNotOpen;
  kb::MethodArgs args;
  args.scalarInput = arguments->scalarInput;
  args.scalarInputCount = arguments->scalarInputCount;
  args.structureInput = arguments->structureInput;
  args.structureInputSize = arguments->structureInputSize;
  args.scalarOutput = arguments->scalarOutput;
  args.scalarOutputCount = arguments->scalarOutputCount;
  args.structureOutput = arguments->structureOutput;
  args.structureOutputSize = arguments->structureOutputSize;
  args.outOfLine = arguments->structureInputDescriptor || arguments->structureOutputDescriptor;
  args.async = arguments->asyncWakePort != MACH_PORT_NULL;

  // The core validates everything; the superclass dispatch is deliberately not used.
  uint32_t kr = session_->core().externalMethod(selector, args);
  arguments->scalarOutputCount = args.scalarOutputCount;
  arguments->structureOutputSize = args.structureOutputSize;
  return (IOReturn)kr;
}
