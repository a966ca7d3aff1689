// The user-client core in-process, against a SimKernel: what IOServiceOpen +
// IOConnectCallMethod + IOServiceClose do on a Mac, including the Mach/MIG edges.
#ifndef KEXTBRIDGE_SIM_TRANSPORT_H
#define KEXTBRIDGE_SIM_TRANSPORT_H

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "sim_kernel.h"
#include "transport.h"
#include "user_client_core.h"

namespace kb {

// The simulated kernel's table rows in the transport's shape.
std::vector<KextInfo> ToKextInfo(const std::vector<sim::KextRecord> &records);

// The kernel's open user clients of the sample kext, pid and process name, as the Mac's
// IOUserClientCreator would show them (kernel-facts §4.6): what SimTransport::userClients and
// the SimKernel wrapper's explain() both report.
std::vector<UserClientInfo> SimUserClients(const sim::SimKernel &kernel);

// The short name a Mac would record for pid: the executable's file name cut to 16 bytes
// (p_comm, MAXCOMLEN), or "unknown" when this machine cannot tell.
std::string ProcessShortName(int32_t pid);

// The async reference stand-in: word 0 is this transport's "wake port" (its address), word
// kIOAsyncCalloutRefconIndex (2) the caller's refcon. The core completes it through this
// transport's AsyncNotifier side, which calls the sink on the completing thread (the one
// advancing the sim's clock) unless the transport is closed.
class SimTransport : public Transport, public sim::UserClientHandle, public AsyncNotifier {
 public:
  // kIOReturnSuccess and a transport, or the code IOServiceOpen would have answered. pid:
  // the opening process (the sample kext caps open clients per process).
  static std::unique_ptr<Transport> open(std::shared_ptr<sim::SimKernel> kernel, bool privileged,
                                         uint32_t *kr, int32_t pid = 1);
  ~SimTransport() override;

  uint32_t callMethod(uint32_t selector, const uint64_t *input, uint32_t inputCnt,
                      const void *inStruct, size_t inStructCnt, uint64_t *output,
                      uint32_t *outputCnt, void *outStruct, size_t *outStructCnt) override;
  void setAsyncSink(AsyncSink *sink) override;
  uint32_t callAsyncMethod(uint32_t selector, uint64_t refcon, const uint64_t *input,
                           uint32_t inputCnt, const void *inStruct, size_t inStructCnt,
                           uint64_t *output, uint32_t *outputCnt, void *outStruct,
                           size_t *outStructCnt) override;
  uint32_t loadedKexts(std::vector<KextInfo> &out) override;
  uint32_t userClients(std::vector<UserClientInfo> &out) override;
  uint32_t close() override;
  uint32_t unreleasedAtClose() const override { return unreleased_; }
  // IOUserClient::stop when the service goes: later calls reach a stopped user client
  // (kIOReturnNotOpen); what it holds is released when the connection closes.
  void serviceTerminated() override;

  // AsyncNotifier (called by the core, under its lock).
  void sendAsyncResult(const AsyncRef &ref, uint32_t result, const uint64_t *args,
                       uint32_t count) override;
  void releaseAsyncReference(const AsyncRef &ref) override;
  // Async references the user client still owns (0 after close: nothing leaked).
  int32_t asyncRefsHeld() const { return refsHeld_; }
  // The core, for tests that check its table and counters.
  UserClientCore &core() { return core_; }

 private:
  SimTransport(std::shared_ptr<sim::SimKernel> kernel, bool privileged, int32_t pid);

  static const uint32_t kCancelRetries = 64;  // close(): further cancels of orphaned requests
  std::shared_ptr<sim::SimKernel> kernel_;
  sim::SampleKextApi api_;
  sim::MutexLock lock_;
  UserClientCore core_;
  const int32_t pid_;
  std::atomic<uint32_t> unreleased_{0};  // set by close()
  std::atomic<bool> closed_{false};  // a connection may be closed while another thread calls
  std::atomic<AsyncSink *> sink_{nullptr};
  std::atomic<int32_t> refsHeld_{0};  // +1 per accepted async call, -1 per release
  uint32_t call(uint32_t selector, const uint64_t *asyncRef, const uint64_t *input,
                uint32_t inputCnt, const void *inStruct, size_t inStructCnt, uint64_t *output,
                uint32_t *outputCnt, void *outStruct, size_t *outStructCnt);
};

} // namespace kb

#endif
