// The IOKit transport's asynchronous path against the real sample kext: a Mac-only smoke test
// for the first run (docs/mac.md, open questions 9-13). Built and run on a Mac by
//   sudo bash test/native/mac-async-smoke.sh
// (root: requestResource is for administrators; the sample kext must be loaded). It exits 2
// with a reason when it cannot run (not macOS, not root, no kext), 1 on a failed check.
// maccheck compiles it on Linux; nothing here has run yet.
//
// Environment:
//   KB_SMOKE_WAIT_S     how long to wait after arming each of the two autounload scans a
//                       request nobody answers needs before kOSKextReturnTimeout (default 75;
//                       a scan runs about 60 s after a release arms it)
//   KB_SMOKE_RESOURCE   bundleId:resourceName of a resource that exists (optional), with
//   KB_SMOKE_FILE       the path of that file, to compare the delivered bytes with
//   KB_SMOKE_CYCLES     open/request/close cycles for the port-balance check (default 50)
#include <mach/mach.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "iokit_transport.h"
#include "protocol.gen.h"
#include "unit.h"

// mach_port_names comes from the MIG-generated <mach/mach_port.h> that <mach/mach.h> pulls in
// on a Mac; the Linux type-check tree's stand-in for it lacks this routine. Declared again,
// exactly as the SDK declares it: on a Mac a mismatch is a compile error.
extern "C" kern_return_t mach_port_names(ipc_space_t task, mach_port_name_array_t *names,
                                         mach_msg_type_number_t *namesCnt,
                                         mach_port_type_array_t *types,
                                         mach_msg_type_number_t *typesCnt);

namespace {

using namespace kb;
using Clock = std::chrono::steady_clock;

// Every completion the transport hands over, in order.
class RecordingSink final : public AsyncSink {
 public:
  struct Entry {
    uint64_t refcon;
    uint32_t result;
    std::vector<uint64_t> args;
    Clock::time_point at;
  };

  void asyncCompleted(uint64_t refcon, uint32_t result, const uint64_t *args,
                      uint32_t numArgs) override {
    std::lock_guard<std::mutex> guard(mutex_);
    entries_.push_back({refcon, result, std::vector<uint64_t>(args, args + numArgs), Clock::now()});
    cv_.notify_all();
  }

  // The completion for refcon, waiting up to `wait`; false if none came.
  bool waitFor(uint64_t refcon, std::chrono::milliseconds wait, Entry *out) {
    std::unique_lock<std::mutex> lock(mutex_);
    bool found = cv_.wait_for(lock, wait, [&] { return find(refcon, out); });
    return found;
  }

  size_t countFor(uint64_t refcon) {
    std::lock_guard<std::mutex> guard(mutex_);
    size_t n = 0;
    for (const Entry &e : entries_) n += e.refcon == refcon;
    return n;
  }

  bool anyAfter(uint64_t refcon, Clock::time_point t) {
    std::lock_guard<std::mutex> guard(mutex_);
    for (const Entry &e : entries_)
      if (e.refcon == refcon && e.at > t) return true;
    return false;
  }

 private:
  bool find(uint64_t refcon, Entry *out) {
    for (const Entry &e : entries_)
      if (e.refcon == refcon) {
        if (out) *out = e;
        return true;
      }
    return false;
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<Entry> entries_;
};

struct Opened {
  std::unique_ptr<Transport> transport;
  std::unique_ptr<RecordingSink> sink;
};

Opened openWithSink() {
  Opened o;
  uint32_t kr = 0;
  std::string why;
  // A closed client gives its open slot back in its free(), a little after IOServiceClose:
  // tight open/close cycles may meet the per-process limit for a moment.
  for (int attempt = 0; attempt < 50; attempt++) {
    o.transport = openIOKitTransport(&kr, &why);
    if (o.transport || kr != RC_kIOReturnNoResources) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!o.transport) {
    fprintf(stderr, "cannot open the sample kext's user client: %s\n", why.c_str());
    return o;
  }
  o.sink.reset(new RecordingSink());
  o.transport->setAsyncSink(o.sink.get());
  return o;
}

// requestResource's input: the bundle id field, then the resource name field.
std::vector<uint8_t> requestInput(const std::string &bundleId, const std::string &name) {
  std::vector<uint8_t> in(kBundleIdSize + kResourceNameSize, 0);
  memcpy(in.data(), bundleId.data(), std::min<size_t>(bundleId.size(), kBundleIdSize - 1));
  memcpy(in.data() + kBundleIdSize, name.data(),
         std::min<size_t>(name.size(), kResourceNameSize - 1));
  return in;
}

struct Requested {
  uint32_t kr = 0;        // the call's answer
  uint32_t osReturn = 0;  // scalar 0
  uint32_t tag = 0;       // scalar 1
};

Requested request(Transport &t, uint64_t refcon, const std::string &bundleId,
                  const std::string &name) {
  std::vector<uint8_t> in = requestInput(bundleId, name);
  uint64_t out[RequestResourceOut::fieldCount] = {};
  uint32_t outCnt = RequestResourceOut::fieldCount;
  size_t outStruct = 0;
  Requested r;
  r.kr = t.callAsyncMethod(kSelectorRequestResource, refcon, nullptr, 0, in.data(), in.size(),
                           out, &outCnt, nullptr, &outStruct);
  r.osReturn = (uint32_t)out[RequestResourceOut::osReturn];
  r.tag = (uint32_t)out[RequestResourceOut::requestTag];
  return r;
}

uint32_t cancel(Transport &t, uint32_t tag, uint32_t *osReturn) {
  uint64_t in = tag, out = 0;
  uint32_t outCnt = 1;
  size_t outStruct = 0;
  uint32_t kr = t.callMethod(kSelectorCancelRequest, &in, 1, nullptr, 0, &out, &outCnt, nullptr,
                             &outStruct);
  *osReturn = (uint32_t)out;
  return kr;
}

// getInfo's ownLoadTag: the sample kext's load tag.
uint32_t ownLoadTag(Transport &t) {
  uint64_t out[GetInfoOut::fieldCount] = {};
  uint32_t outCnt = GetInfoOut::fieldCount;
  uint8_t info[2 * kInfoStringSize];
  size_t infoSize = sizeof info;
  t.callMethod(kSelectorGetInfo, nullptr, 0, nullptr, 0, out, &outCnt, info, &infoSize);
  return (uint32_t)out[GetInfoOut::ownLoadTag];
}

// Retains and releases tag: the release (re)arms the kernel's autounload scan (the sample
// kext keeps its service instance, so it does not unload). True when both succeeded.
bool armScan(Transport &t, uint32_t tag) {
  bool ok = true;
  for (uint32_t selector : {(uint32_t)kSelectorRetain, (uint32_t)kSelectorRelease}) {
    uint64_t in = tag, out[RetainOut::fieldCount] = {};
    uint32_t outCnt = RetainOut::fieldCount;
    size_t outStruct = 0;
    ok = ok && t.callMethod(selector, &in, 1, nullptr, 0, out, &outCnt, nullptr, &outStruct) ==
                   RC_kIOReturnSuccess &&
         out[RetainOut::osReturn] == RC_kOSReturnSuccess;
  }
  return ok;
}

// fetchResource until the whole delivery is in; false on any refusal.
bool fetchAll(Transport &t, uint32_t tag, std::vector<uint8_t> *bytes) {
  bytes->clear();
  for (;;) {
    uint64_t in[2] = {tag, bytes->size()};
    uint64_t out[FetchResourceOut::fieldCount] = {};
    uint32_t outCnt = FetchResourceOut::fieldCount;
    uint8_t chunk[kFetchChunkSize];
    size_t chunkSize = sizeof chunk;
    uint32_t kr = t.callMethod(kSelectorFetchResource, in, 2, nullptr, 0, out, &outCnt, chunk,
                               &chunkSize);
    if (kr != RC_kIOReturnSuccess) {
      fprintf(stderr, "fetchResource answered 0x%08X\n", kr);
      return false;
    }
    bytes->insert(bytes->end(), chunk, chunk + out[FetchResourceOut::copied]);
    if (bytes->size() >= out[FetchResourceOut::length]) return true;
    if (out[FetchResourceOut::copied] == 0) return false;
  }
}

// The number of port names this task holds (receive rights, send rights, dead names, sets).
size_t portNames() {
  mach_port_name_array_t names = nullptr;
  mach_msg_type_number_t namesCnt = 0;
  mach_port_type_array_t types = nullptr;
  mach_msg_type_number_t typesCnt = 0;
  if (mach_port_names(mach_task_self(), &names, &namesCnt, &types, &typesCnt) != KERN_SUCCESS)
    return 0;
  vm_deallocate(mach_task_self(), (vm_address_t)names, namesCnt * sizeof names[0]);
  vm_deallocate(mach_task_self(), (vm_address_t)types, typesCnt * sizeof types[0]);
  return namesCnt;
}

int envInt(const char *name, int fallback) {
  const char *v = getenv(name);
  return v && *v ? atoi(v) : fallback;
}

const char *kNoSuchKext = "org.kextbridge.smoke.no-such-kext";

TEST(asyncToSyncSelectorRefused,
     "an async call to a synchronous selector is refused and leaves no right behind") {
  Opened o = openWithSink();
  CHECK(o.transport != nullptr);
  if (!o.transport) return;
  size_t before = portNames();
  for (int i = 0; i < 20; i++) {
    uint64_t out[GetInfoOut::fieldCount] = {};
    uint32_t outCnt = GetInfoOut::fieldCount;
    uint8_t info[2 * kInfoStringSize];
    size_t infoSize = sizeof info;
    CHECK_EQ(o.transport->callAsyncMethod(kSelectorGetInfo, 1, nullptr, 0, nullptr, 0, out,
                                          &outCnt, info, &infoSize),
             (uint32_t)RC_kIOReturnBadArgument);
  }
  // The first async call made the notification port (one receive right); nothing more.
  CHECK(portNames() <= before + 1);
  CHECK_EQ(o.transport->close(), (uint32_t)RC_kIOReturnSuccess);
}

TEST(syncRequestRefused, "a synchronous call to requestResource is refused") {
  Opened o = openWithSink();
  if (!o.transport) {
    CHECK(false);
    return;
  }
  std::vector<uint8_t> in = requestInput(kNoSuchKext, "x");
  uint64_t out[2] = {};
  uint32_t outCnt = 2;
  size_t outStruct = 0;
  CHECK_EQ(o.transport->callMethod(kSelectorRequestResource, nullptr, 0, in.data(), in.size(),
                                   out, &outCnt, nullptr, &outStruct),
           (uint32_t)RC_kIOReturnBadArgument);
  o.transport->close();
}

TEST(unservedRequestCompletesOnce,
     "a request nobody can serve ends with one completion (docs/mac.md question 9)") {
  Opened o = openWithSink();
  if (!o.transport) {
    CHECK(false);
    return;
  }
  Requested r = request(*o.transport, 0x5101, kNoSuchKext, "nothing-here");
  CHECK_EQ(r.kr, (uint32_t)RC_kIOReturnSuccess);
  printf("  requestResource: osReturn 0x%08X tag %u\n", r.osReturn, r.tag);
  if (r.kr != RC_kIOReturnSuccess || r.osReturn != RC_kOSReturnSuccess) return;
  Clock::time_point start = Clock::now();
  RecordingSink::Entry e;
  // kernelmanagerd may answer at once (not found). If not, the request times out at the
  // second autounload scan that sees it, and a scan runs only when something arms it (a
  // release, kernel-facts §3.3/§3.6): a retain and release of the sample kext's own tag arms
  // one about 60 s ahead; that is done twice.
  bool came = o.sink->waitFor(0x5101, std::chrono::seconds(5), &e);
  uint32_t ownTag = ownLoadTag(*o.transport);
  int perScan = envInt("KB_SMOKE_WAIT_S", 75);
  for (int scan = 0; scan < 2 && !came; scan++) {
    CHECK(armScan(*o.transport, ownTag));
    came = o.sink->waitFor(0x5101, std::chrono::seconds(perScan), &e);
  }
  CHECK(came);
  if (came) {
    double s = std::chrono::duration<double>(e.at - start).count();
    printf("  completion after %.1f s: result 0x%08X tag %llu osReturn 0x%08llX length %llu\n", s,
           e.result, (unsigned long long)e.args[Completion::requestTag],
           (unsigned long long)e.args[Completion::osReturn],
           (unsigned long long)e.args[Completion::length]);
    CHECK_EQ(e.args.size(), (size_t)Completion::fieldCount);
    CHECK_EQ((uint32_t)e.args[Completion::requestTag], r.tag);
    CHECK(e.args[Completion::osReturn] != RC_kOSReturnSuccess || e.args[Completion::length] == 0);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  CHECK(o.sink->countFor(0x5101) <= 1);
  CHECK_EQ(o.transport->close(), (uint32_t)RC_kIOReturnSuccess);
}

TEST(resourceArrivesIntact,
     "a resource that exists arrives intact (KB_SMOKE_RESOURCE, KB_SMOKE_FILE)") {
  const char *spec = getenv("KB_SMOKE_RESOURCE");
  const char *file = getenv("KB_SMOKE_FILE");
  if (!spec || !file || !strchr(spec, ':')) {
    printf("  not run: set KB_SMOKE_RESOURCE=bundleId:name and KB_SMOKE_FILE=path\n");
    return;
  }
  std::string bundle(spec, strchr(spec, ':')), name(strchr(spec, ':') + 1);
  std::ifstream f(file, std::ios::binary);
  std::vector<uint8_t> expected((std::istreambuf_iterator<char>(f)),
                                std::istreambuf_iterator<char>());
  Opened o = openWithSink();
  if (!o.transport) {
    CHECK(false);
    return;
  }
  Requested r = request(*o.transport, 0x5102, bundle, name);
  CHECK_EQ(r.kr, (uint32_t)RC_kIOReturnSuccess);
  CHECK_EQ(r.osReturn, (uint32_t)RC_kOSReturnSuccess);
  RecordingSink::Entry e;
  bool came = o.sink->waitFor(0x5102, std::chrono::seconds(envInt("KB_SMOKE_WAIT_S", 75)), &e);
  CHECK(came);
  if (came && e.args.size() == Completion::fieldCount) {
    printf("  completion: result 0x%08X osReturn 0x%08llX length %llu\n", e.result,
           (unsigned long long)e.args[Completion::osReturn],
           (unsigned long long)e.args[Completion::length]);
    CHECK_EQ(e.args[Completion::length], (uint64_t)expected.size());
    if (e.result == RC_kIOReturnSuccess && e.args[Completion::length] > 0) {
      std::vector<uint8_t> got;
      CHECK(fetchAll(*o.transport, r.tag, &got));
      CHECK(got == expected);
    }
  }
  o.transport->close();
}

TEST(cancelBeforeDelivery,
     "cancel before delivery: the kernel says success and no completion comes") {
  Opened o = openWithSink();
  if (!o.transport) {
    CHECK(false);
    return;
  }
  Requested r = request(*o.transport, 0x5103, kNoSuchKext, "cancel-me");
  CHECK_EQ(r.kr, (uint32_t)RC_kIOReturnSuccess);
  if (r.osReturn != RC_kOSReturnSuccess) {
    CHECK(false);
    return;
  }
  uint32_t osReturn = 0;
  CHECK_EQ(cancel(*o.transport, r.tag, &osReturn), (uint32_t)RC_kIOReturnSuccess);
  printf("  cancelRequest: osReturn 0x%08X\n", osReturn);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  if (osReturn == RC_kOSReturnSuccess)
    CHECK_EQ(o.sink->countFor(0x5103), (size_t)0);
  else
    CHECK_EQ(o.sink->countFor(0x5103), (size_t)1);  // the delivery won: its completion came
  CHECK_EQ(o.transport->close(), (uint32_t)RC_kIOReturnSuccess);
}

TEST(closeWithPending, "close with requests pending: nothing arrives after close() returns") {
  Opened o = openWithSink();
  if (!o.transport) {
    CHECK(false);
    return;
  }
  for (uint64_t i = 0; i < kRequestCapacity; i++) {
    Requested r = request(*o.transport, 0x5200 + i, kNoSuchKext, "pending");
    CHECK_EQ(r.kr, (uint32_t)RC_kIOReturnSuccess);
  }
  // One more than the table holds is refused by the user client, unless kernelmanagerd has
  // already answered some of them (an answered request leaves the table).
  size_t answered = 0;
  for (uint64_t i = 0; i < kRequestCapacity; i++) answered += o.sink->countFor(0x5200 + i);
  uint32_t extra = request(*o.transport, 0x52FF, kNoSuchKext, "one-too-many").kr;
  if (answered == 0 && o.sink->countFor(0x52FF) == 0)
    CHECK_EQ(extra, (uint32_t)RC_kIOReturnNoResources);
  else
    printf("  %zu of the requests were answered at once; the table check is not meaningful\n",
           answered);
  CHECK_EQ(o.transport->close(), (uint32_t)RC_kIOReturnSuccess);
  Clock::time_point closed = Clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  for (uint64_t i = 0; i < kRequestCapacity; i++) CHECK(!o.sink->anyAfter(0x5200 + i, closed));
  CHECK_EQ(o.transport->close(), (uint32_t)RC_MACH_SEND_INVALID_DEST);
}

TEST(portsBalance,
     "open, request, close cycles leave the task's port names where they were (question 12)") {
  int cycles = envInt("KB_SMOKE_CYCLES", 50);
  size_t before = portNames();
  for (int i = 0; i < cycles; i++) {
    Opened o = openWithSink();
    if (!o.transport) {
    CHECK(false);
    return;
  }
    Requested a = request(*o.transport, 1, kNoSuchKext, "cycle");
    Requested b = request(*o.transport, 2, kNoSuchKext, "cycle");
    uint32_t osReturn = 0;
    if (a.osReturn == RC_kOSReturnSuccess) cancel(*o.transport, a.tag, &osReturn);
    (void)b;  // left pending: the close cancels it
    o.transport->close();
  }
  // The receive right of each notification port goes when its dispatch source's cancel
  // handler has run on the transport's queue, shortly after close().
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  size_t after = portNames();
  printf("  port names: %zu before, %zu after %d cycles\n", before, after, cycles);
  CHECK(after <= before + 2);
}

} // namespace

int main() {
  if (geteuid() != 0) {
    fprintf(stderr,
            "iokit_async_smoke: not run: needs root (requestResource is for administrators)\n");
    return 2;
  }
  {
    uint32_t kr = 0;
    std::string why;
    if (!openIOKitTransport(&kr, &why)) {
      fprintf(stderr, "iokit_async_smoke: not run: %s\n", why.c_str());
      return 2;
    }
  }
  return unit::runAll();
}
