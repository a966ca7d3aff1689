// The sample kext's user client: a plain IOUserClient with the legacy five-argument
// externalMethod. It decides nothing itself. Every call goes to kb::UserClientCore
// (kext-sample/core), which checks the selector, counts, sizes and privilege and keeps
// this client's retain ledger; closing or dying releases what the ledger still holds. If the
// service is terminated first, IOKit calls neither: free() hands it to a thread call.
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
