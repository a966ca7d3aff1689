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
// What the client holds (retains; resource requests, which the core also stops completing
// once terminated) is released or cancelled in clientClose or clientDied when user space closes
// or dies first, else from free(), through a thread call (deferred_release.h).
void org_kextbridge_SampleUserClient::stop(IOService *provider) {
  if (session_) session_->core().terminate();
  IOUserClient::stop(provider);
}

// free() must not call a KPI (below); with retains held or requests in the table the session
// goes to a thread call, which releases the one and cancels the other. A pending request
// keeps the session alive there: the kernel's callback points into it until its cancel has
// returned (kernel-facts §8.4). Only a termination that bypassed clientClose gets here with
// requests: an unload by kmutil is refused while any is pending.
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
  if (session_ &&
      (session_->core().outstanding() > 0 || session_->core().requestsInUse() > 0)) {
    if (org_kextbridge_DeferredRelease::schedule(session_, lock_)) {
      session_ = nullptr;  // the deferred release owns both now
      lock_ = nullptr;
    } else {
      // Leaked with what it holds: the retains stay (pinned, never over-released), and a
      // request's callback still finds valid memory (the kernel keeps the kext loaded while
      // it is pending; the table's wake-port rights stay with the leak).
      KB_LOG("user client freed holding %u retain(s) and %u request(s): no memory to end "
             "them later; they stay",
             session_->core().outstanding(), session_->core().requestsInUse());
      session_ = nullptr;
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

// The core releases and cancels with its own lock dropped around each KPI call. With default
// locking (kernel-facts §4.4, §8.1) IOKit holds this client's IPC lock for writing here, so no
// externalMethod of this client runs meanwhile; the kernel's resource callback may, and the
// core orders it against the close with its own lock.
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
  // is_io_connect_async_method has already put the wake port (and the 64-bit flag) into word
  // 0 of the reference. The pointer is into the MIG request, valid for this call only: the
  // core copies the words it keeps before it returns (kernel-facts §8.1).
  args.async = arguments->asyncWakePort != MACH_PORT_NULL;
  if (args.async) {
    args.asyncReference = arguments->asyncReference;
    args.asyncReferenceCount = arguments->asyncReferenceCount;
  }

  // The core validates everything (an async call to any selector but requestResource is
  // refused, so MIG takes its wake port back); the superclass dispatch is deliberately not used.
  uint32_t kr = session_->core().externalMethod(selector, args);
  arguments->scalarOutputCount = args.scalarOutputCount;
  arguments->structureOutputSize = args.structureOutputSize;
  return (IOReturn)kr;
}

IOReturn org_kextbridge_SampleUserClient::sendCompletion(OSAsyncReference64 reference,
                                                        IOReturn result,
                                                        io_user_reference_t *args,
                                                        UInt32 count) {
  return sendAsyncResult64(reference, result, args, count);
}
