#include "deferred_release.h"

#include "client_session.h"
#include "log.h"

OSDefineMetaClassAndStructors(org_kextbridge_DeferredRelease, OSObject);

bool org_kextbridge_DeferredRelease::schedule(kbkext::ClientSession *session, IOLock *lock) {
  org_kextbridge_DeferredRelease *d = new org_kextbridge_DeferredRelease;
  if (!d) return false;
  if (!d->init()) {
    d->release();
    return false;
  }
  d->call_ = thread_call_allocate(&org_kextbridge_DeferredRelease::run, d);
  if (!d->call_) {
    d->release();
    return false;
  }
  d->session_ = session;
  d->lock_ = lock;
  thread_call_enter(d->call_);
  return true;
}

void org_kextbridge_DeferredRelease::run(thread_call_param_t self, thread_call_param_t) {
  org_kextbridge_DeferredRelease *d = static_cast<org_kextbridge_DeferredRelease *>(self);
  // The core drops its lock around each KPI call; the kext lock may be taken here freely.
  // close() also cancels every pending request; when it returns no callback can reach the
  // session any more, so it may go. If an entry is still in use after it (a cancel the kernel
  // could not carry out, kOSReturnError: its record may still be queued and call back into
  // the table later, kernel-facts §8.4), the session is leaked rather than freed under it.
  uint32_t requests = d->session_->core().requestsInUse();
  uint32_t released = d->session_->core().close();
  uint32_t left = d->session_->core().requestsInUse();
  if (released || requests)
    KB_LOG("user client freed: released %u retain(s) and ended %u request(s) it still had",
           released, requests - left);
  if (left) {
    KB_LOG("user client freed: %u request(s) could not be cancelled; their state is kept",
           left);
  } else {
    delete d->session_;
    IOLockFree(d->lock_);
  }
  // Freeing our own call while it runs is allowed: the thread running it holds a reference
  // until it returns. Then this instance goes, and with it the last thing that kept the kext.
  thread_call_free(d->call_);
  d->release();
}
