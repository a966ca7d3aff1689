// The real backend (macOS only): a connection to the sample kext's user client through
// IOKit (asynchronous calls complete through a wake port, an IONotificationPort served by a
// private serial dispatch queue; docs/kernel-facts.md §8), and the loaded-kext table through
// KextManager. Compiled only when binding.gyp
// builds for OS=="mac" (KB_HAVE_IOKIT); this header needs no Apple header itself.
#ifndef KEXTBRIDGE_IOKIT_TRANSPORT_H
#define KEXTBRIDGE_IOKIT_TRANSPORT_H

#include <stdint.h>

#include <memory>
#include <string>

#include "transport.h"

namespace kb {

// Finds the sample kext's service (IOServiceMatching(KB_SERVICE_CLASS_NAME)) and opens a
// connection to it (IOServiceOpen, type 0).
// Success: a transport, *kr = kIOReturnSuccess, *why empty.
// Failure: nullptr, *kr = the code (unsigned) and *why = a sentence saying what it means and
// what to do. No matching service gives kIOReturnNotFound (as the simulator does), and the
// sentence points to kext-sample/scripts/load.sh. kr and why may be null.
std::unique_ptr<Transport> openIOKitTransport(uint32_t *kr, std::string *why);

} // namespace kb

#endif
