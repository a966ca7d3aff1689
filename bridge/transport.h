// One backend contract for a connection to the sample kext's user client: the real one
// (IOKitTransport, macOS) and the simulated one (SimTransport) answer identically.
// Calls on one Transport are serialised by the Connection that owns it.
#ifndef KEXTBRIDGE_TRANSPORT_H
#define KEXTBRIDGE_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include <vector>

#include "kext_info.h"
#include "protocol.gen.h"
#include "user_client_info.h"

namespace kb {

class Transport {
 public:
  virtual ~Transport() = default;

  // IOConnectCallMethod: a kern_return_t as unsigned. On anything but success no output
  // is written (*outputCnt and *outStructCnt are set to 0), as MIG does.
  virtual uint32_t callMethod(uint32_t selector, const uint64_t *input, uint32_t inputCnt,
                              const void *inStruct, size_t inStructCnt, uint64_t *output,
                              uint32_t *outputCnt, void *outStruct, size_t *outStructCnt) = 0;

  // KextManagerCopyLoadedKextInfo for every loaded kext, ordered by load tag.
  virtual uint32_t loadedKexts(std::vector<KextInfo> &out) = 0;

  // The user clients open on the sample kext's service(s), in registry order: on a Mac the
  // IOUserClientCreator of each child in the service plane (kernel-facts §4.6), on the sim
  // the kernel's open connections. Needs no open connection. No service: success, empty.
  virtual uint32_t userClients(std::vector<UserClientInfo> &out) {
    out.clear();
    return RC_kIOReturnUnsupported;
  }

  // IOServiceClose. The first close succeeds; afterwards every call, and a second close,
  // answers MACH_SEND_INVALID_DEST.
  virtual uint32_t close() = 0;

  // After close(): the retains the user client could not release (the kernel refused them)
  // and still records. 0 where user space cannot see it (IOKit: the kext's clientClose).
  virtual uint32_t unreleasedAtClose() const { return 0; }
};

} // namespace kb

#endif
