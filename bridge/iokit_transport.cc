// kb::Transport over IOKit: IOServiceGetMatchingService + IOServiceOpen to reach the sample
// kext's user client, IOConnectCallMethod per call, IOConnectCallAsyncMethod with a wake port
// (an IONotificationPort delivered on a private serial dispatch queue) for asynchronous calls,
// IOServiceClose once, and KextManagerCopyLoadedKextInfo for the loaded-kext table. macOS only.
#include "iokit_transport.h"

#include <CoreFoundation/CoreFoundation.h>
#include <IOKit/IOKitLib.h>
#include <dispatch/dispatch.h>
#include <mach/mach_init.h>
#include <mach/message.h>
#include <stdio.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "open_limit.h"
#include "protocol.gen.h"
#include "protocol_names.gen.h"
#include "user_client_info.h"

// KextManager.h sits in the SDK's IOKit.framework (kext/ subdirectory); the Linux
// type-check tree has no copy. The one function used is declared here as well, as IOKitUser's
// kext.subproj/KextManager.h declares it (macOS 10.7 on): where the header exists, a
// mismatch is a compile error, and where it does not, this is the declaration.
#if __has_include(<IOKit/kext/KextManager.h>)
#include <IOKit/kext/KextManager.h>
#endif
extern "C" CFDictionaryRef KextManagerCopyLoadedKextInfo(CFArrayRef kextIdentifiers,
                                                         CFArrayRef infoKeys);

namespace kb {

namespace {

// ---- CoreFoundation helpers ----

// Owns one CF reference (Create/Copy rule) and releases it on every path.
struct CFReleaser {
  void operator()(CFTypeRef object) const {
    if (object) CFRelease(object);
  }
};
using CFHolder = std::unique_ptr<const void, CFReleaser>;

// The value under key when it has the expected CF type, else null (Get rule: not owned).
CFTypeRef typedValue(CFDictionaryRef dict, CFStringRef key, CFTypeID type) {
  CFTypeRef v = CFDictionaryGetValue(dict, key);
  return v && CFGetTypeID(v) == type ? v : nullptr;
}

bool stringOf(CFTypeRef value, std::string *out) {
  if (!value || CFGetTypeID(value) != CFStringGetTypeID()) return false;
  CFStringRef s = (CFStringRef)value;
  if (const char *fast = CFStringGetCStringPtr(s, kCFStringEncodingUTF8)) {
    *out = fast;
    return true;
  }
  CFIndex max =
      CFStringGetMaximumSizeForEncoding(CFStringGetLength(s), kCFStringEncodingUTF8) + 1;
  std::vector<char> buffer((size_t)max);
  if (!CFStringGetCString(s, buffer.data(), max, kCFStringEncodingUTF8)) return false;
  *out = buffer.data();
  return true;
}

// An integral CFNumber within [min, max]; false for floats, missing or out-of-range values.
bool integerOf(CFTypeRef value, int64_t min, int64_t max, int64_t *out) {
  if (!value || CFGetTypeID(value) != CFNumberGetTypeID()) return false;
  CFNumberRef n = (CFNumberRef)value;
  if (CFNumberIsFloatType(n)) return false;
  int64_t v = 0;
  if (!CFNumberGetValue(n, kCFNumberSInt64Type, &v) || v < min || v > max) return false;
  *out = v;
  return true;
}

bool uint32Of(CFTypeRef value, uint32_t *out) {
  int64_t v = 0;
  if (!integerOf(value, 0, UINT32_MAX, &v)) return false;
  *out = (uint32_t)v;
  return true;
}

// OSBundleUUID arrives as 16 bytes of data; tolerate a string too.
bool uuidOf(CFTypeRef value, std::string *out) {
  if (!value) return false;
  if (CFGetTypeID(value) == CFStringGetTypeID()) return stringOf(value, out);
  if (CFGetTypeID(value) != CFDataGetTypeID() || CFDataGetLength((CFDataRef)value) != 16)
    return false;
  const UInt8 *b = CFDataGetBytePtr((CFDataRef)value);
  char text[37];
  snprintf(text, sizeof text,
           "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X", b[0], b[1],
           b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
           b[15]);
  *out = text;
  return true;
}

// The keys of KextManagerCopyLoadedKextInfo that KextInfo carries, asked for by name so the
// kernel builds nothing else. Literal strings (CFSTR constants, never released): their
// macros live in the private OSKextLibPrivate.h.
CFHolder infoKeyArray() {
  const void *keys[] = {
      CFSTR("CFBundleIdentifier"),  CFSTR("CFBundleVersion"),     CFSTR("OSBundleUUID"),
      CFSTR("OSBundleLoadTag"),     CFSTR("OSBundleRetainCount"), CFSTR("OSBundleStarted"),
      CFSTR("OSBundleDependencies"), CFSTR("OSBundleClasses"),
  };
  return CFHolder(CFArrayCreate(kCFAllocatorDefault, keys, sizeof keys / sizeof keys[0],
                                &kCFTypeArrayCallBacks));
}

void classesOf(CFTypeRef value, std::vector<KextInfo::ClassInfo> *out) {
  if (!value || CFGetTypeID(value) != CFArrayGetTypeID()) return;
  CFArrayRef list = (CFArrayRef)value;
  for (CFIndex i = 0, n = CFArrayGetCount(list); i < n; i++) {
    CFTypeRef item = CFArrayGetValueAtIndex(list, i);
    if (!item || CFGetTypeID(item) != CFDictionaryGetTypeID()) continue;
    CFDictionaryRef d = (CFDictionaryRef)item;
    KextInfo::ClassInfo c;
    if (!stringOf(typedValue(d, CFSTR("OSMetaClassName"), CFStringGetTypeID()), &c.name))
      continue;
    stringOf(typedValue(d, CFSTR("OSMetaClassSuperclassName"), CFStringGetTypeID()),
             &c.superclass);
    uint32Of(typedValue(d, CFSTR("OSMetaClassTrackingCount"), CFNumberGetTypeID()),
             &c.instances);
    out->push_back(c);
  }
}

void dependenciesOf(CFTypeRef value, std::vector<uint32_t> *out) {
  if (!value || CFGetTypeID(value) != CFArrayGetTypeID()) return;
  CFArrayRef list = (CFArrayRef)value;
  for (CFIndex i = 0, n = CFArrayGetCount(list); i < n; i++) {
    uint32_t tag = 0;
    if (uint32Of(CFArrayGetValueAtIndex(list, i), &tag)) out->push_back(tag);
  }
}

// One per-kext dictionary. Missing or mistyped keys leave the field at its default.
KextInfo kextInfoOf(CFStringRef bundleKey, CFDictionaryRef d) {
  KextInfo info;
  if (!stringOf(typedValue(d, CFSTR("CFBundleIdentifier"), CFStringGetTypeID()),
                &info.bundleId))
    stringOf(bundleKey, &info.bundleId);  // the outer dictionary is keyed by bundle id
  stringOf(typedValue(d, CFSTR("CFBundleVersion"), CFStringGetTypeID()), &info.version);
  uuidOf(CFDictionaryGetValue(d, CFSTR("OSBundleUUID")), &info.uuid);
  uint32Of(typedValue(d, CFSTR("OSBundleLoadTag"), CFNumberGetTypeID()), &info.loadTag);
  int64_t retain = 0;
  if (integerOf(typedValue(d, CFSTR("OSBundleRetainCount"), CFNumberGetTypeID()), INT32_MIN,
                INT32_MAX, &retain))
    info.retainCount = (int32_t)retain;
  CFTypeRef started = typedValue(d, CFSTR("OSBundleStarted"), CFBooleanGetTypeID());
  info.started = started && CFBooleanGetValue((CFBooleanRef)started);
  dependenciesOf(typedValue(d, CFSTR("OSBundleDependencies"), CFArrayGetTypeID()),
                 &info.dependencies);
  classesOf(typedValue(d, CFSTR("OSBundleClasses"), CFArrayGetTypeID()), &info.classes);
  return info;
}

// ---- one caller at a time into IOKitUser's kext library ----

// KextManagerCopyLoadedKextInfo is IOKitUser's public face of OSKextCopyLoadedKextInfo
// (kext.subproj/KextManager.c hands the request straight on and then strips two private
// keys). That function belongs to IOKitUser's OSKext library, whose header
// (kext.subproj/OSKext.h, the notice in its @header block) warns that the library is not
// thread-safe and leaves locking to callers that share it between threads; on the way it
// reads the library's process-wide logging settings and log callback. Each connection's
// worker (and the sync path) may ask for the table at the same time, so every call in this
// process goes through this one lock. Held for the call only: parsing the copy it returns
// touches nothing shared. Function-local, so it is built on first use, before any thread
// can race for it (C++11 static initialisation is thread-safe).
std::mutex &kextLibraryMutex() {
  static std::mutex mutex;
  return mutex;
}

// ---- codes in words ----

std::string codeText(uint32_t kr) {
  char hex[16];
  snprintf(hex, sizeof hex, "0x%08X", kr);
  for (const CodeInfo &c : kCodeTable)
    if (c.value == kr) return std::string(c.name) + " " + hex;
  return std::string("code ") + hex;
}

std::string describeOpenFailure(uint32_t kr) {
  std::string what;
  switch (kr) {
    case RC_kIOReturnNotPrivileged:
      what = "IOServiceOpen was refused as not privileged. The sample kext lets every user open "
             "it, so an entitlement or sandbox rule of the kernel refused this process; run node "
             "from an ordinary (unsandboxed) shell";
      break;
    case RC_kIOReturnNotPermitted:
      what = "IOServiceOpen was denied by a kernel security policy (MAC/sandbox). Run node from an "
             "ordinary (unsandboxed) shell";
      break;
    case RC_kIOReturnBadArgument:
      what = "the sample kext's user client refused to initialise (initWithTask failed, usually "
             "no memory for its state). Check the kernel log: log show --last 5m --predicate "
             "'sender == \"" KB_SAMPLE_EXECUTABLE "\"'";
      break;
    case RC_kIOReturnNoMemory:
      what = "the kernel could not create the user client " KB_USER_CLIENT_CLASS_NAME ": the "
             "loaded kext does not contain the class its Info.plist names, or memory ran out. "
             "Rebuild (npm run build:kext), unload and load it again (kext-sample/scripts)";
      break;
    case RC_kIOReturnUnsupported:
      what = "the service " KB_SERVICE_CLASS_NAME " offers no user client, or the user client "
             "failed to attach or start. Rebuild (npm run build:kext), unload and load the sample "
             "kext again (kext-sample/scripts)";
      break;
    case RC_kIOReturnNoResources:
      what = "the sample kext refused another connection: this process already has its limit "
             "of " + std::to_string(OpenLimit::kPerProcess) + " open, or " +
             std::to_string(OpenLimit::kProcesses) + " other processes hold connections (the "
             "kext's per-process open limit). Close connections this process no longer needs "
             "(kb.close())";
      break;
    case RC_kIOReturnNotFound:
      what = "no " KB_SERVICE_CLASS_NAME " service is registered: the sample kext ("
             KB_SAMPLE_BUNDLE_ID ") is not loaded, or it is loaded without its service (an "
             "unload while connections were open leaves it so: close them, then unload it with "
             "sudo kext-sample/scripts/unload.sh or wait about 60 s). Load it with: sudo "
             "kext-sample/scripts/load.sh, which tells the two apart (see docs/mac.md), or use "
             "the simulated backend";
      break;
    default:
      what = "IOServiceOpen on the sample kext's service failed";
      break;
  }
  return what + " (" + codeText(kr) + ").";
}

// ---- asynchronous completions (kernel-facts §8.6-§8.8) ----

static_assert(kAsyncRefWords == (uint32_t)kOSAsyncRef64Count,
              "the protocol's async reference is not IOKit's OSAsyncReference64");

// Where a connection's completions arrive: one IONotificationPort whose receive right is the
// wake port of every asynchronous call on the connection, served by a private serial dispatch
// queue (IONotificationPortSetDispatchQueue), so IOKitUser's dispatcher runs onCompletion on
// that queue, one message at a time. No CFRunLoop anywhere, and nothing runs on the JS thread.
//
// The reference IOKit hands back carries the caller's refcon (word 2) and the callback
// (word 1) but nothing else reaches the callback, so the port is found through the queue
// instead: the queue's specific value under kPortKey is this object, and dispatch_get_specific
// from the dispatch source's handler (a queue targeting ours) finds it.
//
// Teardown (destroy()): IONotificationPortDestroy cancels the source, after which its handler
// is never entered again; a dispatch_sync_f on the serial queue then waits out a handler that
// is running. Only after that is this object freed. The receive right itself goes later, when
// the source's cancel handler has run on the queue (IOKitUser's own reference counting).
class AsyncPort {
 public:
  // Null when the queue or the notification port could not be made.
  static AsyncPort *create(AsyncSink *sink) {
    AsyncPort *port = new (std::nothrow) AsyncPort(sink);
    if (!port) return nullptr;
    port->queue_ = dispatch_queue_create("org.kextbridge.iokit-async", DISPATCH_QUEUE_SERIAL);
    if (port->queue_) {
      dispatch_queue_set_specific(port->queue_, &kPortKey, port, nullptr);
      port->notify_ = IONotificationPortCreate(MACH_PORT_NULL);  // the default main port
    }
    if (!port->queue_ || !port->notify_) {
      port->destroy();
      return nullptr;
    }
    IONotificationPortSetDispatchQueue(port->notify_, port->queue_);
    return port;
  }

  mach_port_t wakePort() const { return IONotificationPortGetMachPort(notify_); }

  // The callback word of every reference (kIOAsyncCalloutFuncIndex).
  static uint64_t callbackWord() { return (uint64_t)(uintptr_t)&AsyncPort::onCompletion; }

  // From now on no completion reaches the sink; one that is running is waited for (the sink
  // runs under mutex_). The sink must not call back into the transport (transport.h), so
  // this cannot wait for itself unless called from the sink.
  void stopDelivery() {
    if (onQueue()) {  // inside a completion: mutex_ is this thread's already
      sink_.store(nullptr);
      return;
    }
    std::lock_guard<std::mutex> guard(mutex_);
    sink_.store(nullptr);
  }

  // Stops deliveries and frees this object. When it returns, no completion is running and
  // none will run, except when called from a completion itself (on the queue: the sink
  // must not), where the free is left to the queue, after that completion.
  void destroy() {
    stopDelivery();
    if (notify_) {
      IONotificationPortDestroy(notify_);  // cancels the dispatch source
      notify_ = nullptr;
    }
    if (!queue_) {
      delete this;
      return;
    }
    dispatch_queue_t queue = queue_;
    if (onQueue()) {
      dispatch_async_f(queue, this, &AsyncPort::deleteOnQueue);
    } else {
      dispatch_sync_f(queue, nullptr, &AsyncPort::nothing);  // waits out a running handler
      delete this;
    }
    dispatch_release(queue);  // the source and a pending block keep what they need
  }

 private:
  explicit AsyncPort(AsyncSink *sink) : sink_(sink) {}
  ~AsyncPort() = default;
  AsyncPort(const AsyncPort &) = delete;
  AsyncPort &operator=(const AsyncPort &) = delete;

  bool onQueue() const { return dispatch_get_specific(&kPortKey) == this; }
  static void nothing(void *) {}
  static void deleteOnQueue(void *self) { delete static_cast<AsyncPort *>(self); }

  // IOAsyncCallback: the kext completes requestResource with three argument words
  // (protocol.gen.h Completion), which IOKitUser passes as an array. With fewer than three
  // it would call this through a narrower function type: the kext never sends fewer.
  static void onCompletion(void *refcon, IOReturn result, void **args, uint32_t numArgs) {
    AsyncPort *port = static_cast<AsyncPort *>(dispatch_get_specific(&kPortKey));
    if (!port) return;
    uint64_t words[kMaxWords] = {};
    uint32_t n = numArgs < kMaxWords ? numArgs : kMaxWords;
    for (uint32_t i = 0; i < n; i++) words[i] = (uint64_t)(uintptr_t)args[i];
    std::lock_guard<std::mutex> guard(port->mutex_);
    AsyncSink *sink = port->sink_.load();
    if (sink) sink->asyncCompleted((uint64_t)(uintptr_t)refcon, (uint32_t)result, words, n);
  }

  static const uint32_t kMaxWords = 16;  // kMaxAsyncArgs: the most a completion carries
  static const char kPortKey;            // its address is the queue-specific key

  std::mutex mutex_;              // held while the sink runs, so stopDelivery() can wait it out
  std::atomic<AsyncSink *> sink_;  // null once delivery has stopped
  dispatch_queue_t queue_ = nullptr;
  IONotificationPortRef notify_ = nullptr;
};

const char AsyncPort::kPortKey = 0;

// ---- the transport ----

class IOKitTransport final : public Transport {
 public:
  IOKitTransport() = default;
  ~IOKitTransport() override { close(); }
  IOKitTransport(const IOKitTransport &) = delete;
  IOKitTransport &operator=(const IOKitTransport &) = delete;

  // IOServiceOpen into this transport; the service reference stays the caller's.
  uint32_t open(io_service_t service) {
    io_connect_t connect = IO_OBJECT_NULL;
    kern_return_t kr = IOServiceOpen(service, mach_task_self(), 0, &connect);
    if (kr == KERN_SUCCESS)
      connect_ = connect;
    else if (connect != IO_OBJECT_NULL)
      IOServiceClose(connect);  // the kernel sends no connection with an error; never kept
    return (uint32_t)kr;
  }

  uint32_t callMethod(uint32_t selector, const uint64_t *input, uint32_t inputCnt,
                      const void *inStruct, size_t inStructCnt, uint64_t *output,
                      uint32_t *outputCnt, void *outStruct, size_t *outStructCnt) override {
    io_connect_t connect = IO_OBJECT_NULL;
    uint32_t kr = enter(&connect, nullptr);
    if (kr == RC_kIOReturnSuccess) {
      kr = (uint32_t)IOConnectCallMethod(connect, selector, input, inputCnt, inStruct,
                                         inStructCnt, output, outputCnt, outStruct,
                                         outStructCnt);
      leave();
    }
    return finish(kr, outputCnt, outStructCnt);
  }

  void setAsyncSink(AsyncSink *sink) override {
    std::lock_guard<std::mutex> guard(mutex_);
    if (sink && !sink_) sink_ = sink;  // once; again or null is ignored (transport.h)
  }

  // The wake port is made on the first asynchronous call, so connections that never make one
  // cost no port or queue. Reference: word 0 is the kernel's (it writes the wake port there),
  // word 1 the callback, word 2 the caller's refcon, the rest 0 (kernel-facts §8.6).
  uint32_t callAsyncMethod(uint32_t selector, uint64_t refcon, const uint64_t *input,
                           uint32_t inputCnt, const void *inStruct, size_t inStructCnt,
                           uint64_t *output, uint32_t *outputCnt, void *outStruct,
                           size_t *outStructCnt) override {
    io_connect_t connect = IO_OBJECT_NULL;
    mach_port_t wake = MACH_PORT_NULL;
    uint32_t kr = enter(&connect, &wake);
    if (kr == RC_kIOReturnSuccess) {
      uint64_t reference[kAsyncRefWords] = {};
      reference[kIOAsyncCalloutFuncIndex] = AsyncPort::callbackWord();
      reference[kIOAsyncCalloutRefconIndex] = refcon;
      kr = (uint32_t)IOConnectCallAsyncMethod(connect, selector, wake, reference,
                                              kAsyncRefWords, input, inputCnt, inStruct,
                                              inStructCnt, output, outputCnt, outStruct,
                                              outStructCnt);
      leave();
    }
    return finish(kr, outputCnt, outStructCnt);
  }

  uint32_t loadedKexts(std::vector<KextInfo> &out) override {
    out.clear();
    CFHolder keys = infoKeyArray();
    if (!keys) return RC_kIOReturnNoMemory;
    // NULL identifiers: every loaded kext. Returns null when the request fails; the call has
    // no code of its own, so that is reported as kIOReturnError.
    CFHolder all;
    {
      std::lock_guard<std::mutex> guard(kextLibraryMutex());
      all.reset(KextManagerCopyLoadedKextInfo(nullptr, (CFArrayRef)keys.get()));
    }
    if (!all || CFGetTypeID(all.get()) != CFDictionaryGetTypeID()) return RC_kIOReturnError;
    CFDictionaryRef table = (CFDictionaryRef)all.get();
    CFIndex n = CFDictionaryGetCount(table);
    std::vector<const void *> ids((size_t)n), infos((size_t)n);
    CFDictionaryGetKeysAndValues(table, ids.data(), infos.data());
    for (CFIndex i = 0; i < n; i++) {
      if (!infos[i] || CFGetTypeID(infos[i]) != CFDictionaryGetTypeID()) continue;
      CFStringRef id = ids[i] && CFGetTypeID(ids[i]) == CFStringGetTypeID() ? (CFStringRef)ids[i]
                                                                           : nullptr;
      out.push_back(kextInfoOf(id, (CFDictionaryRef)infos[i]));
    }
    std::sort(out.begin(), out.end(),
              [](const KextInfo &a, const KextInfo &b) { return a.loadTag < b.loadTag; });
    return RC_kIOReturnSuccess;
  }

  // Every child of each sample service in the service plane that carries IOUserClientCreator
  // (kernel-facts §4.6): the user clients open on it, whoever opened them. A value that is not
  // a string of the kernel's "pid N, name" form is skipped (ParseUserClientCreator). No
  // service registered: success and an empty list, as nothing can be open on it.
  uint32_t userClients(std::vector<UserClientInfo> &out) override {
    out.clear();
    CFMutableDictionaryRef matching = IOServiceMatching(KB_SERVICE_CLASS_NAME);
    if (!matching) return RC_kIOReturnNoMemory;
    io_iterator_t services = IO_OBJECT_NULL;  // the call consumes the matching dictionary
    kern_return_t kr = IOServiceGetMatchingServices(MACH_PORT_NULL, matching, &services);
    if (kr != KERN_SUCCESS) return (uint32_t)kr;
    for (io_service_t service; (service = IOIteratorNext(services)) != IO_OBJECT_NULL;) {
      io_iterator_t children = IO_OBJECT_NULL;
      kr = IORegistryEntryGetChildIterator(service, kIOServicePlane, &children);
      IOObjectRelease(service);
      if (kr != KERN_SUCCESS) break;
      for (io_registry_entry_t child; (child = IOIteratorNext(children)) != IO_OBJECT_NULL;) {
        CFHolder creator(IORegistryEntryCreateCFProperty(child, CFSTR("IOUserClientCreator"),
                                                         kCFAllocatorDefault, 0));
        IOObjectRelease(child);
        std::string text;
        UserClientInfo client;
        if (stringOf(creator.get(), &text) && ParseUserClientCreator(text, &client))
          out.push_back(client);
      }
      IOObjectRelease(children);
    }
    IOObjectRelease(services);
    if (kr != KERN_SUCCESS) out.clear();
    return (uint32_t)kr;
  }

  // IOServiceClose releases the connection's port name itself, so it is never released
  // again; afterwards the name may already denote another right and is not touched. A call
  // running on another thread is waited for first (it uses the name), and none starts once
  // closing has begun. Then, in order (kernel-facts §8.8): completions stop reaching the sink
  // (a running one is waited for; one already sent by the kernel is dropped, as the sim drops
  // what completes after its close), IOServiceClose (the kext's clientClose cancels what is
  // pending and sends nothing more), and the wake port and its queue go. When this returns
  // no completion is running and none will arrive.
  uint32_t close() override {
    io_connect_t connect;
    AsyncPort *port;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (closing_) return RC_MACH_SEND_INVALID_DEST;
      closing_ = true;
      idle_.wait(lock, [this] { return inFlight_ == 0; });
      connect = connect_;
      connect_ = IO_OBJECT_NULL;
      port = port_;
      port_ = nullptr;
    }
    if (port) port->stopDelivery();
    uint32_t kr = connect == IO_OBJECT_NULL ? (uint32_t)RC_MACH_SEND_INVALID_DEST
                                            : (uint32_t)IOServiceClose(connect);
    if (port) port->destroy();
    return kr;
  }

 private:
  // Admits one call: *connect is the connection, counted in flight until leave(). With wake
  // (an asynchronous call): also the wake port, made on first use. Anything but success
  // admits nothing: MACH_SEND_INVALID_DEST once closing has begun, kIOReturnNotReady with no
  // sink (transport.h), kIOReturnNoMemory when the port or its queue could not be made.
  uint32_t enter(io_connect_t *connect, mach_port_t *wake) {
    std::lock_guard<std::mutex> guard(mutex_);
    if (closing_ || connect_ == IO_OBJECT_NULL) return RC_MACH_SEND_INVALID_DEST;
    if (wake) {
      if (!sink_) return RC_kIOReturnNotReady;
      if (!port_) port_ = AsyncPort::create(sink_);
      if (!port_) return RC_kIOReturnNoMemory;
      *wake = port_->wakePort();
    }
    inFlight_++;
    *connect = connect_;
    return RC_kIOReturnSuccess;
  }

  void leave() {
    std::lock_guard<std::mutex> guard(mutex_);
    if (--inFlight_ == 0) idle_.notify_all();
  }

  // MIG copies no output back on failure; say so instead of leaving the caller's counts.
  static uint32_t finish(uint32_t kr, uint32_t *outputCnt, size_t *outStructCnt) {
    if (kr != RC_kIOReturnSuccess) {
      if (outputCnt) *outputCnt = 0;
      if (outStructCnt) *outStructCnt = 0;
    }
    return kr;
  }

  std::mutex mutex_;               // everything below
  std::condition_variable idle_;   // inFlight_ reached 0
  io_connect_t connect_ = IO_OBJECT_NULL;
  bool closing_ = false;
  uint32_t inFlight_ = 0;          // calls using connect_ (and port_'s wake port) right now
  AsyncSink *sink_ = nullptr;
  AsyncPort *port_ = nullptr;      // made by the first asynchronous call
};

} // namespace

std::unique_ptr<Transport> openIOKitTransport(uint32_t *kr, std::string *why) {
  uint32_t krLocal = 0;
  std::string whyLocal;
  if (!kr) kr = &krLocal;
  if (!why) why = &whyLocal;
  why->clear();

  // Made first, so nothing allocated afterwards can throw with a connection open.
  std::unique_ptr<IOKitTransport> transport(new IOKitTransport());

  CFMutableDictionaryRef matching = IOServiceMatching(KB_SERVICE_CLASS_NAME);
  if (!matching) {
    *kr = RC_kIOReturnNoMemory;
    *why = "IOServiceMatching could not build a matching dictionary (" + codeText(*kr) + ").";
    return nullptr;
  }
  // MACH_PORT_NULL selects the default main port: it is the value of both kIOMainPortDefault
  // (macOS 12 SDKs on) and kIOMasterPortDefault (deprecated there, the only name before), so
  // this builds without availability or deprecation warnings on every SDK.
  // The call always consumes the matching dictionary.
  io_service_t service = IOServiceGetMatchingService(MACH_PORT_NULL, matching);
  if (service == IO_OBJECT_NULL) {
    *kr = RC_kIOReturnNotFound;
    *why = describeOpenFailure(*kr);
    return nullptr;
  }
  uint32_t opened = transport->open(service);
  IOObjectRelease(service);  // the connection holds what it needs
  if (opened != RC_kIOReturnSuccess) {
    *kr = opened;
    *why = describeOpenFailure(opened);
    return nullptr;
  }
  *kr = RC_kIOReturnSuccess;
  return std::unique_ptr<Transport>(transport.release());
}

} // namespace kb
