#include "kpi_kernel_api.h"

#include <IOKit/IOLib.h>
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

uint32_t KpiKernelApi::loadKextWithIdentifier(const char *bundleId) {
  return (uint32_t)OSKextLoadKextWithIdentifier(bundleId);
}

// kb::ResourceCallback has OSKextRequestResourceCallback's exact type (uint32_t tag, int
// result, data, length, context): the core's function goes to the kernel as it is.
static_assert(__is_same(kb::ResourceCallback, OSKextRequestResourceCallback),
              "the core's resource callback has the KPI's type");

// The callback is the core's own function, i.e. code of this kext, which is what the kernel
// requires (it strips pointer authentication before it looks the address up, kernel-facts
// §8.4). It may run before this returns, on kernelmanagerd's thread with sKextLock held.
uint32_t KpiKernelApi::requestResource(const char *bundleId, const char *resourceName,
                                       kb::ResourceCallback callback, void *context,
                                       uint32_t *requestTag) {
  OSKextRequestTag tag = kOSKextRequestTagInvalid;
  OSReturn r = OSKextRequestResource(bundleId, resourceName, callback, context, &tag);
  *requestTag = (uint32_t)tag;
  return (uint32_t)r;
}

// Once this answers kOSReturnSuccess or kOSKextReturnNotFound, no callback for the tag is
// running or will run; kOSReturnError dequeued nothing (kernel-facts §8.4).
uint32_t KpiKernelApi::cancelRequest(uint32_t requestTag, void **context) {
  return (uint32_t)OSKextCancelRequest((OSKextRequestTag)requestTag, context);
}

// May wait for memory: the core calls it with no lock held.
void *KpiKernelApi::allocBuffer(uint32_t size) { return size ? IOMalloc(size) : nullptr; }

void KpiKernelApi::freeBuffer(void *block, uint32_t size) {
  if (block) IOFree(block, size);
}

} // namespace kbkext
