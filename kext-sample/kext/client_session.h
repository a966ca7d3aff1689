// Everything one open connection owns: the user-client core with its ledger and request
// table, and the kernel, lock and async-completion adapters it runs on. One heap block per
// client, allocated once the client's IOService init has succeeded and freed in its free()
// (or by the deferred release, when the core still holds something then).
//
// The core's request table lives in this block and its entries are the contexts the kernel
// holds for pending resource requests: the block must outlive every pending request, which
// the core's close() (cancel each, kernel-facts §8.4) and the user client's free() (defer
// while any is in use) guarantee.
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

// kb::AsyncNotifier over IOUserClient's async-reference calls: sendAsyncResult64 (through the
// user client class, where it is reachable) and releaseAsyncReference64. Both work on a
// per-call copy of the stored words, since the kernel may write a flag into word 0.
class IOKitAsyncNotifier final : public kb::AsyncNotifier {
 public:
  void sendAsyncResult(const kb::AsyncRef &ref, uint32_t result, const uint64_t *args,
                       uint32_t count) override;
  void releaseAsyncReference(const kb::AsyncRef &ref) override;
};

class ClientSession {
 public:
  // lock: an IOLock the caller owns and frees after the session is gone.
  ClientSession(IOLock *lock, bool privileged)
      : lock_(lock), core_(kernel_, lock_, privileged, &notifier_) {}

  kb::UserClientCore &core() { return core_; }

  // noexcept: a null result skips the constructor and reaches the caller as null.
  static void *operator new(size_t size) noexcept;
  static void operator delete(void *block, size_t size);

 private:
  ClientSession(const ClientSession &);
  ClientSession &operator=(const ClientSession &);

  // Declared before core_: the core is built on all three adapters.
  KpiKernelApi kernel_;
  IOKitAsyncNotifier notifier_;
  IOLockRef lock_;
  kb::UserClientCore core_;
};

} // namespace kbkext

#endif
