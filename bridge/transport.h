// One backend contract for a connection to the sample kext's user client: the real one
// (IOKitTransport, macOS) and the simulated one (SimTransport) answer identically.
// Calls on one Transport are serialised by the Connection that owns it.
#ifndef KEXTBRIDGE_TRANSPORT_H
#define KEXTBRIDGE_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include <vector>

#include "kext_info.h"

namespace kb {

// Where a Transport hands the completions of its asynchronous calls (what IOKit's
// IOAsyncCallback64 receives from the wake port).
//
// Threading: asyncCompleted may run on any thread, never the caller's of callAsyncMethod
// while that call runs (IOKit: the transport's dispatch queue; sim: the thread that advances
// the simulated clock, holding the simulated kernel's lock and the user client's lock, as
// the kext's sendAsyncResult64 runs under the kernel's callback). One completion at a time
// per transport. It may arrive BEFORE callAsyncMethod has returned the reply of its call:
// match it by refcon (register the refcon before calling). The sink must not block and must
// not call back into the Transport, the Connection or the simulated kernel (copy the args
// and hand them off, e.g. napi_call_threadsafe_function in non-blocking mode).
class AsyncSink {
 public:
  // refcon: as given to callAsyncMethod. result: the IOReturn the user client completed with.
  // args: numArgs words (for requestResource: protocol.gen.h Completion).
  virtual void asyncCompleted(uint64_t refcon, uint32_t result, const uint64_t *args,
                              uint32_t numArgs) = 0;

 protected:
  ~AsyncSink() {}
};

class Transport {
 public:
  virtual ~Transport() = default;

  // IOConnectCallMethod: a kern_return_t as unsigned. On anything but success no output
  // is written (*outputCnt and *outStructCnt are set to 0), as MIG does.
  virtual uint32_t callMethod(uint32_t selector, const uint64_t *input, uint32_t inputCnt,
                              const void *inStruct, size_t inStructCnt, uint64_t *output,
                              uint32_t *outputCnt, void *outStruct, size_t *outStructCnt) = 0;

  // Where completions go; set once, before the first callAsyncMethod; the sink must outlive
  // close(). Calling it again, or with null, is a programming error (ignored).
  virtual void setAsyncSink(AsyncSink *sink) = 0;

  // IOConnectCallAsyncMethod with a wake port and this refcon (reference word
  // kIOAsyncCalloutRefconIndex): otherwise exactly callMethod. When it answers success and
  // the selector's reply says the kernel took the request, one completion for refcon
  // arrives later at the sink, unless the request is cancelled (cancelRequest answered
  // kOSReturnSuccess) or the transport is closed first. When it answers anything else, no
  // completion arrives. kIOReturnNotReady when no sink is set.
  virtual uint32_t callAsyncMethod(uint32_t selector, uint64_t refcon, const uint64_t *input,
                                   uint32_t inputCnt, const void *inStruct, size_t inStructCnt,
                                   uint64_t *output, uint32_t *outputCnt, void *outStruct,
                                   size_t *outStructCnt) = 0;

  // KextManagerCopyLoadedKextInfo for every loaded kext, ordered by load tag.
  virtual uint32_t loadedKexts(std::vector<KextInfo> &out) = 0;

  // IOServiceClose. The first close succeeds; afterwards every call, and a second close,
  // answers MACH_SEND_INVALID_DEST. The user client cancels its pending requests in the
  // kernel. When close() returns, no completion is running and none will arrive at the sink
  // (IOKit: the notification port is destroyed and its queue drained; a completion already
  // in the port is dropped). May run on any thread, also while another thread is in a call.
  virtual uint32_t close() = 0;

  // After close(): the retains the user client could not release (the kernel refused them)
  // and still records. 0 where user space cannot see it (IOKit: the kext's clientClose).
  virtual uint32_t unreleasedAtClose() const { return 0; }
};

} // namespace kb

#endif
