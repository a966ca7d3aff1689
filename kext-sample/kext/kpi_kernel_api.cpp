#include "kpi_kernel_api.h"

#include <libkern/OSKextLib.h>

namespace kbkext {

// OSReturn is a signed kern_return_t; the core speaks unsigned 32-bit codes.
uint32_t KpiKernelApi::retainKext(uint32_t loadTag) {
  return (uint32_t)OSKextRetainKextWithLoadTag((OSKextLoadTag)loadTag);
}

uint32_t KpiKernelApi::releaseKext(uint32_t loadTag) {
  return (uint32_t)OSKextReleaseKextWithLoadTag((OSKextLoadTag)loadTag);
}

uint32_t KpiKernelApi::ownLoadTag() { return (uint32_t)OSKextGetCurrentLoadTag(); }

const char *KpiKernelApi::ownIdentifier() { return OSKextGetCurrentIdentifier(); }

const char *KpiKernelApi::ownVersion() { return OSKextGetCurrentVersionString(); }

} // namespace kbkext
