// The only ways the user-client core reaches the kernel. The kext implements these with the
// real KPIs and an IOLock; the simulator with SimKernel and a mutex. Kernel-safe C++.
#ifndef KEXTBRIDGE_KERNEL_API_H
#define KEXTBRIDGE_KERNEL_API_H

#include <stdint.h>

namespace kb {

static const uint32_t kInvalidLoadTag = 0xFFFFFFFFu;  // kOSKextInvalidLoadTag

class KernelApi {
 public:
  // OSKextRetainKextWithLoadTag / OSKextReleaseKextWithLoadTag: an OSReturn, unsigned.
  virtual uint32_t retainKext(uint32_t loadTag) = 0;
  virtual uint32_t releaseKext(uint32_t loadTag) = 0;
  // OSKextGetCurrentLoadTag / Identifier / VersionString of the kext the core runs in.
  virtual uint32_t ownLoadTag() = 0;
  virtual const char *ownIdentifier() = 0;
  virtual const char *ownVersion() = 0;

 protected:
  ~KernelApi() {}
};

class Lock {
 public:
  virtual void lock() = 0;
  virtual void unlock() = 0;

 protected:
  ~Lock() {}
};

class LockGuard {
 public:
  explicit LockGuard(Lock &lock) : lock_(lock) { lock_.lock(); }
  ~LockGuard() { lock_.unlock(); }

 private:
  LockGuard(const LockGuard &);
  LockGuard &operator=(const LockGuard &);
  Lock &lock_;
};

} // namespace kb

#endif
