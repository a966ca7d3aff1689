// The kext's one kb::OpenLimit (kext-sample/core/open_limit.h) with the IOLock adapter it
// runs on: owned by the sample service, which counts every open of a user client against the
// opening process. One heap block, allocated in the service's start() before it registers
// (so no open can arrive first) and freed in its free(), after every client that held a slot
// has released it (each client keeps the service retained until its own free()).
#ifndef KEXTBRIDGE_KEXT_OPEN_SLOTS_H
#define KEXTBRIDGE_KEXT_OPEN_SLOTS_H

#include <IOKit/IOLocks.h>

#include "io_lock.h"
#include "open_limit.h"

namespace kbkext {

class OpenSlots {
 public:
  // lock: an IOLock the caller owns and frees after this object is gone.
  explicit OpenSlots(IOLock *lock) : lock_(lock), limit_(lock_) {}

  kb::OpenLimit &limit() { return limit_; }

  // From IOMalloc, as ClientSession: no global operator new/delete in the kext.
  static void *operator new(size_t size) noexcept;
  static void operator delete(void *block, size_t size);

 private:
  OpenSlots(const OpenSlots &);
  OpenSlots &operator=(const OpenSlots &);

  IOLockRef lock_;  // declared before limit_: the limit is built on it
  kb::OpenLimit limit_;
};

} // namespace kbkext

#endif
