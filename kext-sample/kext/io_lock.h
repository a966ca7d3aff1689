// kb::Lock over an IOLock (a kernel mutex). The IOLock belongs to whoever allocated it; this
// wrapper only takes and drops it.
#ifndef KEXTBRIDGE_KEXT_IO_LOCK_H
#define KEXTBRIDGE_KEXT_IO_LOCK_H

#include <IOKit/IOLocks.h>

#include "kernel_api.h"

namespace kbkext {

class IOLockRef final : public kb::Lock {
 public:
  explicit IOLockRef(IOLock *lock) : lock_(lock) {}
  void lock() override;
  void unlock() override;

 private:
  IOLock *const lock_;
};

} // namespace kbkext

#endif
