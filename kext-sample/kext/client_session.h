// Everything one open connection owns: the user-client core with its ledger, and the
// kernel and lock adapters it runs on. One heap block per client, allocated once the
// client's IOService init has succeeded and freed in its free().
//
// Allocated from IOMalloc through class-specific operator new/delete, so the kext links
// no global operator new/delete (the sized delete a newer compiler may emit is not
// exported by older kernels).
#ifndef KEXTBRIDGE_KEXT_CLIENT_SESSION_H
#define KEXTBRIDGE_KEXT_CLIENT_SESSION_H

#include <IOKit/IOLocks.h>

#include "io_lock.h"
#include "kpi_kernel_api.h"
#include "user_client_core.h"

namespace kbkext {

class ClientSession {
 public:
  // lock: an IOLock the caller owns and frees after the session is gone.
  ClientSession(IOLock *lock, bool privileged)
      : lock_(lock), core_(kernel_, lock_, privileged) {}

  kb::UserClientCore &core() { return core_; }

  // noexcept: a null result skips the constructor and reaches the caller as null.
  static void *operator new(size_t size) noexcept;
  static void operator delete(void *block, size_t size);

 private:
  ClientSession(const ClientSession &);
  ClientSession &operator=(const ClientSession &);

  KpiKernelApi kernel_;  // declared before core_: the core is built on both adapters
  IOLockRef lock_;
  kb::UserClientCore core_;
};

} // namespace kbkext

#endif
