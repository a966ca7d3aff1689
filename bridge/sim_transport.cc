#include "sim_transport.h"

#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

namespace kb {


std::unique_ptr<Transport> SimTransport::open(std::shared_ptr<sim::SimKernel> kernel,
                                              bool privileged, uint32_t *kr, int32_t pid) {
  std::unique_ptr<SimTransport> t(new SimTransport(kernel, privileged, pid));
  *kr = kernel->openUserClient(t.get(), pid);
  if (*kr != RC_kIOReturnSuccess) {
    t->closed_ = true;  // never opened: nothing to close
    return nullptr;
  }
  return t;
}

SimTransport::SimTransport(std::shared_ptr<sim::SimKernel> kernel, bool privileged, int32_t pid)
    : kernel_(kernel), api_(kernel), core_(api_, lock_, privileged, this), pid_(pid) {}

// A process that exits or a connection that is dropped: the kernel calls clientDied.
SimTransport::~SimTransport() { close(); }

uint32_t SimTransport::callMethod(uint32_t selector, const uint64_t *input, uint32_t inputCnt,
                                  const void *inStruct, size_t inStructCnt, uint64_t *output,
                                  uint32_t *outputCnt, void *outStruct, size_t *outStructCnt) {
  return call(selector, nullptr, input, inputCnt, inStruct, inStructCnt, output, outputCnt,
              outStruct, outStructCnt);
}

void SimTransport::setAsyncSink(AsyncSink *sink) {
  AsyncSink *none = nullptr;
  if (sink) sink_.compare_exchange_strong(none, sink);  // once
}

// IOConnectCallAsyncMethod: the kernel fills word 0 of the reference with the wake port;
// here, this transport's address. The refcon sits at kIOAsyncCalloutRefconIndex.
uint32_t SimTransport::callAsyncMethod(uint32_t selector, uint64_t refcon, const uint64_t *input,
                                       uint32_t inputCnt, const void *inStruct,
                                       size_t inStructCnt, uint64_t *output, uint32_t *outputCnt,
                                       void *outStruct, size_t *outStructCnt) {
  if (!sink_.load()) {
    *outputCnt = 0;
    *outStructCnt = 0;
    return closed_ ? RC_MACH_SEND_INVALID_DEST : RC_kIOReturnNotReady;
  }
  uint64_t ref[kAsyncRefWords] = {(uint64_t)(uintptr_t)this, 0, refcon};
  return call(selector, ref, input, inputCnt, inStruct, inStructCnt, output, outputCnt, outStruct,
              outStructCnt);
}

// Under the core's lock and the kernel's mu_ (the resource callback): straight to the sink,
// unless close() has begun (then the completion is dropped, as a destroyed port drops it).
void SimTransport::sendAsyncResult(const AsyncRef &ref, uint32_t result, const uint64_t *args,
                                   uint32_t count) {
  if (ref.words[0] != (uint64_t)(uintptr_t)this || closed_) return;
  if (AsyncSink *sink = sink_.load()) sink->asyncCompleted(ref.words[2], result, args, count);
}

void SimTransport::releaseAsyncReference(const AsyncRef &ref) {
  if (ref.words[0] == (uint64_t)(uintptr_t)this) refsHeld_--;
}

uint32_t SimTransport::call(uint32_t selector, const uint64_t *asyncRef, const uint64_t *input,
                            uint32_t inputCnt, const void *inStruct, size_t inStructCnt,
                            uint64_t *output, uint32_t *outputCnt, void *outStruct,
                            size_t *outStructCnt) {
  uint32_t requestedOut = *outputCnt;
  size_t requestedStruct = *outStructCnt;
  *outputCnt = 0;
  *outStructCnt = 0;
  if (closed_) return RC_MACH_SEND_INVALID_DEST;        // the port name was released
  if (inputCnt > kMaxScalars) return RC_MIG_ARRAY_TOO_LARGE;  // the MIG user stub refuses
  if (kernel_->panicked()) return RC_MIG_SERVER_DIED;
  if (uint32_t us = kernel_->takeCallDelay()) std::this_thread::sleep_for(std::chrono::microseconds(us));

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
  args.async = asyncRef != nullptr;
  args.asyncReference = asyncRef;
  args.asyncReferenceCount = asyncRef ? kAsyncRefWords : 0;

  uint32_t kr = core_.externalMethod(selector, args);
  if (kr != RC_kIOReturnSuccess) return kr;  // MIG sends a bare error reply: no outputs
  if (asyncRef) refsHeld_++;  // success: the user client owns the wake-port right now
  *outputCnt = args.scalarOutputCount;
  *outStructCnt = args.structureOutputSize;
  return kr;
}

std::vector<KextInfo> ToKextInfo(const std::vector<sim::KextRecord> &records) {
  std::vector<KextInfo> out;
  out.reserve(records.size());
  for (const sim::KextRecord &r : records) {
    KextInfo info;
    info.bundleId = r.bundleId;
    info.version = r.version;
    info.uuid = r.uuid;
    info.loadTag = r.loadTag;
    info.retainCount = r.retainCount;
    info.started = r.started;
    info.dependencies = r.dependencies;
    for (const sim::ClassSpec &c : r.classes) info.classes.push_back({c.name, c.superclass, c.instances});
    out.push_back(std::move(info));
  }
  return out;
}

uint32_t SimTransport::loadedKexts(std::vector<KextInfo> &out) {
  if (kernel_->panicked()) return RC_MIG_SERVER_DIED;
  out = ToKextInfo(kernel_->loadedKexts());
  return RC_kOSReturnSuccess;
}

uint32_t SimTransport::userClients(std::vector<UserClientInfo> &out) {
  out.clear();
  if (kernel_->panicked()) return RC_MIG_SERVER_DIED;
  out = SimUserClients(*kernel_);
  return RC_kIOReturnSuccess;
}

std::string ProcessShortName(int32_t pid) {
  const size_t kMaxComLen = 16;  // MAXCOMLEN: the kernel keeps at most this many bytes
  std::string name;
#if defined(__linux__)
  // The executable's file name, as exec records p_comm on a Mac; /proc/PID/comm (already
  // shortened, and renamable by the process) only when the link cannot be read.
  const std::string dir = "/proc/" + std::to_string(pid);
  char path[4096];
  ssize_t n = readlink((dir + "/exe").c_str(), path, sizeof path - 1);
  if (n > 0) {
    path[n] = '\0';
    std::string full(path);
    const std::string deleted = " (deleted)";
    if (full.size() > deleted.size() && full.compare(full.size() - deleted.size(), deleted.size(), deleted) == 0)
      full.resize(full.size() - deleted.size());
    size_t slash = full.rfind('/');
    name = slash == std::string::npos ? full : full.substr(slash + 1);
  } else {
    std::ifstream comm(dir + "/comm");
    std::getline(comm, name);
  }
#elif defined(__APPLE__)
  if (pid == (int32_t)getpid()) name = getprogname();
#endif
  if (name.size() > kMaxComLen) name.resize(kMaxComLen);
  return name.empty() ? "unknown" : name;
}

std::vector<UserClientInfo> SimUserClients(const sim::SimKernel &kernel) {
  std::vector<UserClientInfo> out;
  for (int32_t pid : kernel.userClientPids()) {
    UserClientInfo c;
    c.pid = pid;
    c.process = ProcessShortName(pid);
    out.push_back(c);
  }
  return out;
}

uint32_t SimTransport::close() {
  if (closed_.exchange(true)) return RC_MACH_SEND_INVALID_DEST;
  core_.close();  // clientClose: the ledger is released, pending requests cancelled
  // A cancel the kernel answered kOSReturnError dequeued nothing: the kernel still holds that
  // entry's address, so the core (a member: it goes with this transport) must outlive it.
  // Retry, as the kext's deferred release does; each retry is one more cancel per such entry.
  // (The sim's failCancels is finite, so this ends; a kernel that refused forever would keep
  // the entry, and the kext leaks its session then rather than free it under the kernel.)
  for (uint32_t i = 0; i < kCancelRetries && core_.requestsInUse() > 0; i++) core_.close();
  // The core keeps what the kernel refused to release (an injected fault): say so.
  unreleased_ = core_.outstanding();
  kernel_->closeUserClient(this, pid_);
  return RC_kIOReturnSuccess;
}

// IOUserClient::stop, on the terminating thread with the kernel's kext lock held: only a flag.
// The ledger is released when the connection closes (clientClose), as in the kext.
void SimTransport::serviceTerminated() { core_.terminate(); }

} // namespace kb
