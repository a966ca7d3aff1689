// What a user client still held when it was freed — retains, and resource requests still in
// its table — released and cancelled later on a thread call.
//
// free() must not call a KPI: after an unload has terminated our service, IOKit can free the
// client on its terminate thread while the unloading thread holds the kernel's kext lock and
// waits (without a timeout) for that terminate thread. Every OSKext KPI takes the kext lock,
// so a release there would hang both for good. A thread call runs on a thread nobody waits
// for; it may block on the kext lock until the unload is done, then releases.
//
// A pending request is cancelled the same way (OSKextCancelRequest also takes the kext lock).
// Until its cancel has returned, the kernel's callback may still run and write into the
// session, so the session is freed only after close() has cancelled them all.
//
// This object is an instance of one of the kext's own classes, so the kext cannot unload
// (explicitly or by autounload) while a release is pending: its code stays mapped until the
// thread call has run. The call's last act is to drop that instance.
#ifndef KEXTBRIDGE_KEXT_DEFERRED_RELEASE_H
#define KEXTBRIDGE_KEXT_DEFERRED_RELEASE_H

#include <IOKit/IOLocks.h>
#include <kern/thread_call.h>
#include <libkern/c++/OSObject.h>

namespace kbkext {
class ClientSession;
}

class org_kextbridge_DeferredRelease : public OSObject {
  OSDeclareDefaultStructors(org_kextbridge_DeferredRelease);

 public:
  // Takes over session and lock (the lock the session's core uses) and, on a thread call,
  // releases what the core holds and cancels its requests (the core's close()), then frees
  // both. False when no object or thread call could be
  // made: the caller keeps both, and what the session holds stays retained (a leak that pins
  // those kexts, never an over-release or a hang).
  static bool schedule(kbkext::ClientSession *session, IOLock *lock);

 private:
  static void run(thread_call_param_t self, thread_call_param_t unused);

  kbkext::ClientSession *session_ = nullptr;
  IOLock *lock_ = nullptr;
  thread_call_t call_ = nullptr;
};

#endif
