// kb::Transport over IOKit: IOServiceGetMatchingService + IOServiceOpen to reach the sample
// kext's user client, IOConnectCallMethod per call, IOServiceClose once, and
// KextManagerCopyLoadedKextInfo for the loaded-kext table. macOS only.
#include "iokit_transport.h"

#include <CoreFoundation/CoreFoundation.h>
#include <IOKit/IOKitLib.h>
#include <mach/mach_init.h>
#include <mach/message.h>
#include <stdio.h>

#include <algorithm>
#include <mutex>
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
    kern_return_t kr = MACH_SEND_INVALID_DEST;  // closed: the name is gone, do not use it
    if (connect_ != IO_OBJECT_NULL)
      kr = IOConnectCallMethod(connect_, selector, input, inputCnt, inStruct, inStructCnt,
                               output, outputCnt, outStruct, outStructCnt);
    if (kr != KERN_SUCCESS) {
      // MIG copies no output back on failure; say so instead of leaving the caller's counts.
      if (outputCnt) *outputCnt = 0;
      if (outStructCnt) *outStructCnt = 0;
    }
    return (uint32_t)kr;
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
  // again; afterwards the name may already denote another right and is not touched.
  uint32_t close() override {
    if (connect_ == IO_OBJECT_NULL) return RC_MACH_SEND_INVALID_DEST;
    kern_return_t kr = IOServiceClose(connect_);
    connect_ = IO_OBJECT_NULL;
    return (uint32_t)kr;
  }

 private:
  io_connect_t connect_ = IO_OBJECT_NULL;
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
