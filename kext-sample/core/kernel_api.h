// The only ways the user-client core reaches the kernel. The kext implements these with the
// real KPIs and an IOLock; the simulator with SimKernel and a mutex. Kernel-safe C++.
#ifndef KEXTBRIDGE_KERNEL_API_H
#define KEXTBRIDGE_KERNEL_API_H

#include <stdint.h>

namespace kb {

static const uint32_t kInvalidLoadTag = 0xFFFFFFFFu;     // kOSKextInvalidLoadTag
static const uint32_t kInvalidRequestTag = 0xFFFFFFFFu;  // kOSKextRequestTagInvalid

// OSKextRequestResourceCallback, spelled with fixed-width types: OSKextRequestTag is uint32_t
// and OSReturn is int on Darwin, so the kext passes a function of this type to the KPI as is.
// The kernel calls it once per request that was not cancelled (a delivery, a not-found, a
// timeout), with its kext lock (sKextLock) held, on the thread that handles kernelmanagerd's
// reply or on the autounload thread call. It must not call any KPI that takes that lock.
typedef void (*ResourceCallback)(uint32_t requestTag, int32_t result, const void *data,
                                 uint32_t length, void *context);

class KernelApi {
 public:
  // OSKextRetainKextWithLoadTag / OSKextReleaseKextWithLoadTag: an OSReturn, unsigned.
  virtual uint32_t retainKext(uint32_t loadTag) = 0;
  virtual uint32_t releaseKext(uint32_t loadTag) = 0;
  // OSKextGetCurrentLoadTag / Identifier / VersionString of the kext the core runs in.
  virtual uint32_t ownLoadTag() = 0;
  virtual const char *ownIdentifier() = 0;
  virtual const char *ownVersion() = 0;

  // OSKextLoadKextWithIdentifier: an OSReturn (kOSKextReturnDeferred when the kernel asked
  // kernelmanagerd). bundleId is NUL-terminated and at most kBundleIdSize - 1 characters.
  virtual uint32_t loadKextWithIdentifier(const char *bundleId) = 0;
  // OSKextRequestResource with the callback and context given; *requestTag receives the tag
  // (kInvalidRequestTag unless the result is kOSReturnSuccess). The callback must be code of
  // the kext the core runs in (the kernel checks that), which UserClientCore's is.
  virtual uint32_t requestResource(const char *bundleId, const char *resourceName,
                                   ResourceCallback callback, void *context,
                                   uint32_t *requestTag) = 0;
  // OSKextCancelRequest: kOSReturnSuccess (dequeued: the callback will never run; *context
  // receives the request's context), kOSKextReturnNotFound (no such record: its callback has
  // run, or the kernel dequeued and dropped it without calling), or kOSReturnError (the kernel
  // could not look it up, or the record was malformed): NOTHING was dequeued, the kernel may
  // still call the callback with this context later.
  virtual uint32_t cancelRequest(uint32_t requestTag, void **context) = 0;

  // Storage for delivered resource bytes (the core allocates nothing itself): a block of
  // `size` bytes or null (IOMalloc / IOFree in the kext). Called with no lock held.
  virtual void *allocBuffer(uint32_t size) = 0;
  virtual void freeBuffer(void *block, uint32_t size) = 0;

 protected:
  ~KernelApi() {}
};

// An async reference as the user client got it (OSAsyncReference64: word 0 the wake port
// and flags, then the caller's callback and refcon words).
struct AsyncRef {
  uint64_t words[8];  // kAsyncRefWords
};

// How the core completes an async reference. The kext: IOUserClient::sendAsyncResult64 and
// releaseAsyncReference64; the simulator: SimTransport, into the transport's AsyncSink.
class AsyncNotifier {
 public:
  // sendAsyncResult64(ref, result, args, count). Called from the kernel's resource callback,
  // i.e. holding the kernel's kext lock AND this client's lock: it must not block, take a
  // lock that is held while calling a KPI, or call a KPI.
  virtual void sendAsyncResult(const AsyncRef &ref, uint32_t result, const uint64_t *args,
                               uint32_t count) = 0;
  // releaseAsyncReference64: drops the wake-port right the user client took over when it
  // answered an async call with success. Exactly once per such reference, after its last
  // sendAsyncResult; may be called with this client's lock held (never a KPI's lock).
  virtual void releaseAsyncReference(const AsyncRef &ref) = 0;

 protected:
  ~AsyncNotifier() {}
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
