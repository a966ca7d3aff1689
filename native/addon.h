// Per-environment state of the addon (one per main thread or worker thread).
#ifndef KEXTBRIDGE_ADDON_H
#define KEXTBRIDGE_ADDON_H

#include <napi.h>

namespace kb {

struct AddonData {
  Napi::FunctionReference connection;
  Napi::FunctionReference simKernel;
};

} // namespace kb

#endif
