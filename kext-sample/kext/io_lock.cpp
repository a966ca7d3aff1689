#include "io_lock.h"

namespace kbkext {

void IOLockRef::lock() { IOLockLock(lock_); }

void IOLockRef::unlock() { IOLockUnlock(lock_); }

} // namespace kbkext
