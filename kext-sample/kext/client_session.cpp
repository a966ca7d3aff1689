#include "client_session.h"

#include <IOKit/IOLib.h>
#include <IOKit/IOUserClient.h>

#include "sample_user_client.h"

namespace kbkext {

// The core's reference is an OSAsyncReference64 word for word.
static_assert(kb::kAsyncRefWords == (uint32_t)kOSAsyncRef64Count,
              "kAsyncRefWords differs from kOSAsyncRef64Count");
static_assert(sizeof(io_user_reference_t) == sizeof(uint64_t),
              "an async reference word is 64 bits");

namespace {

void copyReference(const kb::AsyncRef &from, OSAsyncReference64 to) {
  for (uint32_t i = 0; i < kOSAsyncRef64Count; i++) to[i] = (io_user_reference_t)from.words[i];
}

} // namespace

// Called by the core under its lock, from the kernel's resource callback (sKextLock held):
// sendAsyncResult64 only queues a message (MACH_SEND_ALWAYS, kernel-facts §8.3). Its result
// is not needed: a failed send (the process died, its port is gone) changes nothing here, and
// the reference is released by the core either way.
void IOKitAsyncNotifier::sendAsyncResult(const kb::AsyncRef &ref, uint32_t result,
                                         const uint64_t *args, uint32_t count) {
  if (count > kMaxAsyncArgs) count = kMaxAsyncArgs;
  OSAsyncReference64 reference;
  copyReference(ref, reference);
  io_user_reference_t words[kMaxAsyncArgs];
  for (uint32_t i = 0; i < count; i++) words[i] = (io_user_reference_t)args[i];
  (void)org_kextbridge_SampleUserClient::sendCompletion(reference, (IOReturn)result, words,
                                                        count);
}

// One send right per async call answered with success; the core calls this once for each.
void IOKitAsyncNotifier::releaseAsyncReference(const kb::AsyncRef &ref) {
  OSAsyncReference64 reference;
  copyReference(ref, reference);
  (void)IOUserClient::releaseAsyncReference64(reference);
}

void *ClientSession::operator new(size_t size) noexcept { return IOMalloc(size); }

void ClientSession::operator delete(void *block, size_t size) {
  if (block) IOFree(block, size);
}

} // namespace kbkext
