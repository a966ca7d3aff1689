// A cap on the user clients one process may hold open at once. Opening the sample kext is
// allowed to every local user, and each open client costs kernel memory (the IOUserClient
// object and its session with a fixed-size ledger), so without a cap any user could exhaust
// kernel memory by opening connections in a loop.
//
// One OpenLimit serves the whole kext. It counts open clients per process id in a fixed
// table: at most kPerProcess clients per process, and at most kProcesses processes holding
// clients at the same time (so at most kPerProcess * kProcesses clients in all). A refused
// acquire is what the kext answers kIOReturnNoResources for, without a log line (a log line
// per refusal would be another thing a user could flood).
//
// Kernel-safe C++: no standard library, no exceptions, no allocation. The lock is a leaf:
// nothing else is taken, and no kernel call is made, while it is held, so it can be used
// from any context that may block (an open, or a client's free() on whatever thread drops
// the last reference, including one that holds the kernel's kext lock).
//
// Process ids are reused by the kernel. A process that dies with clients open has its slots
// back once IOKit has closed and freed those clients; a new process that gets the same id
// before that shares the old count until then.
#ifndef KEXTBRIDGE_OPEN_LIMIT_H
#define KEXTBRIDGE_OPEN_LIMIT_H

#include <stdint.h>

#include "kernel_api.h"

namespace kb {

class OpenLimit {
 public:
  static constexpr uint32_t kPerProcess = 16;  // open user clients one process may hold
  static constexpr uint32_t kProcesses = 64;  // processes that may hold open clients at once

  // lock: guards the table; the caller owns it and keeps it alive as long as this object.
  explicit OpenLimit(Lock &lock);

  // One more open client for pid. False (nothing counted) when pid already holds
  // kPerProcess, when kProcesses other processes hold clients and pid is not one of them,
  // or for a negative pid.
  bool acquire(int32_t pid);
  // Gives one of pid's slots back. False (nothing changed) when pid holds none: a release
  // without its acquire is a caller bug, reported instead of corrupting another count.
  bool release(int32_t pid);

  uint32_t openBy(int32_t pid);  // clients pid holds now
  uint32_t processes();          // processes holding at least one client now

 private:
  OpenLimit(const OpenLimit &);
  OpenLimit &operator=(const OpenLimit &);

  struct Entry {
    int32_t pid;
    uint32_t count;  // 0: the entry is free
  };
  Entry *find(int32_t pid);  // lock held

  Lock &lock_;
  Entry entries_[kProcesses];
};

} // namespace kb

#endif
