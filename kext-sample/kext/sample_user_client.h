// The sample kext's user client: a plain IOUserClient with the legacy five-argument
// externalMethod. It decides nothing itself. Every call goes to kb::UserClientCore
// (kext-sample/core), which checks the selector, counts, sizes and privilege and keeps
// this client's retain ledger and resource-request table; closing or dying releases what the
// ledger still holds and cancels every pending request. If the service is terminated first,
// IOKit calls neither: free() hands both to a thread call.
//
// Asynchronous calls (requestResource only; the core refuses the rest): externalMethod hands
// the kernel-filled async reference to the core, which copies it. Every async call this
// client answers with kIOReturnSuccess leaves it one wake-port send right, which the core
// gives back through releaseAsyncReference64 exactly once (after the completion, a cancel, a
// refusal in scalar 0, or the close); on any other answer MIG destroys it and nothing is
// released here (kernel-facts §8.2).
//
// Raw-token class name: see sample_service.h.
#ifndef KEXTBRIDGE_KEXT_SAMPLE_USER_CLIENT_H
#define KEXTBRIDGE_KEXT_SAMPLE_USER_CLIENT_H

#include <IOKit/IOLocks.h>
#include <IOKit/IOUserClient.h>

namespace kbkext {
class ClientSession;
}
class org_kextbridge_SampleService;

class org_kextbridge_SampleUserClient : public IOUserClient {
  OSDeclareDefaultStructors(org_kextbridge_SampleUserClient);

 public:
  // IOService::newUserClient calls the form with properties; the other stays inherited.
  using IOUserClient::initWithTask;
  bool initWithTask(task_t owningTask, void *securityToken, UInt32 type,
                    OSDictionary *properties) override;
  bool start(IOService *provider) override;
  void stop(IOService *provider) override;
  void free() override;

  IOReturn clientClose() override;
  IOReturn clientDied() override;

  // From the service's newUserClient, once this client exists: it holds one of process
  // pid's open slots, given back (and the service released) in free().
  void holdOpenSlot(org_kextbridge_SampleService *service, int pid);

  // IOUserClient::sendAsyncResult64 is protected: this is the way the session's notifier
  // reaches it. Does not block and takes no lock a KPI holds (kernel-facts §8.3), so the core
  // may call it from the kernel's resource callback with sKextLock and its own lock held.
  static IOReturn sendCompletion(OSAsyncReference64 reference, IOReturn result,
                                 io_user_reference_t *args, UInt32 count);

  MIG_SERVER_ROUTINE IOReturn externalMethod(uint32_t selector,
                                             IOExternalMethodArguments *arguments,
                                             IOExternalMethodDispatch *dispatch,
                                             OSObject *target, void *reference) override;

 private:
  // Releases every retain this client still holds (idempotent); `when` names the path.
  void releaseHeld(const char *when);

  // Set by the constructor the OSDefine macro writes, so free() is safe on every path.
  bool privileged_ = false;
  IOLock *lock_ = nullptr;
  kbkext::ClientSession *session_ = nullptr;
  org_kextbridge_SampleService *slotService_ = nullptr;  // retained while the slot is held
  int slotPid_ = 0;
};

#endif
