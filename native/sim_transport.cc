#include "sim_transport.h"

namespace kb {

namespace {
// io_struct_inband_t: larger structures travel out of line as memory descriptors.
const size_t kInbandStructMax = 4096;
}

std::unique_ptr<Transport> SimTransport::open(std::shared_ptr<sim::SimKernel> kernel,
                                              bool privileged, uint32_t *kr) {
  std::unique_ptr<SimTransport> t(new SimTransport(kernel, privileged));
  *kr = kernel->openUserClient(t.get());
  if (*kr != RC_kIOReturnSuccess) {
    t->closed_ = true;  // never opened: nothing to close
    return nullptr;
  }
  return t;
}

SimTransport::SimTransport(std::shared_ptr<sim::SimKernel> kernel, bool privileged)
    : kernel_(kernel), api_(kernel), core_(api_, lock_, privileged) {}

// A process that exits or a connection that is dropped: the kernel calls clientDied.
SimTransport::~SimTransport() { close(); }

uint32_t SimTransport::callMethod(uint32_t selector, const uint64_t *input, uint32_t inputCnt,
                                  const void *inStruct, size_t inStructCnt, uint64_t *output,
                                  uint32_t *outputCnt, void *outStruct, size_t *outStructCnt) {
  uint32_t requestedOut = *outputCnt;
  size_t requestedStruct = *outStructCnt;
  *outputCnt = 0;
  *outStructCnt = 0;
  if (closed_) return RC_MACH_SEND_INVALID_DEST;        // the port name was released
  if (inputCnt > kMaxScalars) return RC_MIG_ARRAY_TOO_LARGE;  // the MIG user stub refuses
  if (kernel_->panicked()) return RC_MIG_SERVER_DIED;

  MethodArgs args;
  args.scalarInput = input;
  args.scalarInputCount = inputCnt;
  args.scalarOutput = output;
  args.scalarOutputCount = requestedOut < kMaxScalars ? requestedOut : kMaxScalars;
  args.outOfLine = inStructCnt > kInbandStructMax || requestedStruct > kInbandStructMax;
  args.structureInput = args.outOfLine ? nullptr : inStruct;
  args.structureInputSize = args.outOfLine ? 0 : (uint32_t)inStructCnt;
  args.structureOutput = args.outOfLine ? nullptr : outStruct;
  args.structureOutputSize = args.outOfLine ? 0 : (uint32_t)requestedStruct;

  uint32_t kr = core_.externalMethod(selector, args);
  if (kr != RC_kIOReturnSuccess) return kr;  // MIG sends a bare error reply: no outputs
  *outputCnt = args.scalarOutputCount;
  *outStructCnt = args.structureOutputSize;
  return kr;
}

uint32_t SimTransport::loadedKexts(std::vector<KextInfo> &out) {
  if (kernel_->panicked()) return RC_MIG_SERVER_DIED;
  out = kernel_->loadedKexts();
  return RC_kOSReturnSuccess;
}

uint32_t SimTransport::close() {
  if (closed_.exchange(true)) return RC_MACH_SEND_INVALID_DEST;
  core_.close();  // clientClose: the ledger is released
  kernel_->closeUserClient(this);
  return RC_kIOReturnSuccess;
}

void SimTransport::serviceTerminated() { core_.close(); }

} // namespace kb
