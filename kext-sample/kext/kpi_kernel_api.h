// kb::KernelApi over the real KPIs: the kext-retain, load and resource-request calls from
// com.apple.kpi.libkern (each takes the kernel's kext lock, so the core calls none of them
// with its own lock held), the kext's own identity from libkmod (which reads this kext's
// kmod_info, stamped at load), and resource buffers from IOMalloc (com.apple.kpi.iokit;
// IOMallocData is not exported on macOS 11, kernel-facts §8.5).
#ifndef KEXTBRIDGE_KEXT_KPI_KERNEL_API_H
#define KEXTBRIDGE_KEXT_KPI_KERNEL_API_H

#include "kernel_api.h"

namespace kbkext {

class KpiKernelApi final : public kb::KernelApi {
 public:
  uint32_t retainKext(uint32_t loadTag) override;
  uint32_t releaseKext(uint32_t loadTag) override;
  uint32_t ownLoadTag() override;
  const char *ownIdentifier() override;
  const char *ownVersion() override;
  uint32_t loadKextWithIdentifier(const char *bundleId) override;
  uint32_t requestResource(const char *bundleId, const char *resourceName,
                           kb::ResourceCallback callback, void *context,
                           uint32_t *requestTag) override;
  uint32_t cancelRequest(uint32_t requestTag, void **context) override;
  void *allocBuffer(uint32_t size) override;
  void freeBuffer(void *block, uint32_t size) override;
};

} // namespace kbkext

#endif
