// The kext's one logging macro. Messages carry the executable name so
//   log stream --predicate 'sender == "KextBridgeSample"'
// finds them (kernel messages are attributed to the kext's executable).
#ifndef KEXTBRIDGE_KEXT_LOG_H
#define KEXTBRIDGE_KEXT_LOG_H

#include <IOKit/IOLib.h>

#include "protocol.gen.h"

#define KB_LOG(fmt, ...) IOLog(KB_SAMPLE_EXECUTABLE ": " fmt "\n", ##__VA_ARGS__)

#endif
