// SimKernel: a model of the libkern kext registry as xnu implements it (see
// docs/kernel-facts.md): load tags from a counter, OSObject-style retain counts
// with the kernel's baseline of 2, retain/release by load tag exactly as OSKextLib.cpp does
// (including the over-release that panics a Mac), the 60 s autounload scan on virtual time,
// explicit unload, dependencies, class instances and the loaded-kext info table.
//
// One SimKernel is one machine: every connection opened on it shares it. Thread-safe.
#ifndef KEXTBRIDGE_SIM_KERNEL_H
#define KEXTBRIDGE_SIM_KERNEL_H

#include <stdint.h>

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernel_api.h"
#include "open_limit.h"

namespace kb {
namespace sim {

struct ClassSpec {
  std::string name;
  std::string superclass;  // "" for a root class
  uint32_t instances = 0;  // live instances (OSMetaClassTrackingCount)
};

struct KextSpec {
  std::string bundleId;
  std::string version = "1.0.0";
  std::string uuid;                       // "" → derived from bundle id and tag
  std::vector<std::string> dependencies;  // bundle ids of loaded kexts; each is retained
  std::vector<ClassSpec> classes;
  // Per-kext autounload flag at load. xnu turns it on when the kext registers an IOService
  // subclass and on every OSKextRetainKextWithLoadTag (unless unloadUnsupported).
  bool autounload = false;
  bool unloadUnsupported = false;  // some kext-collection layouts: never unloads
  bool kernelComponent = false;    // __kernel__ and the com.apple.kpi.* interfaces
  bool isInterface = false;
  bool started = true;
};

// One row of the loaded-kext table as this kernel reports it: what
// KextManagerCopyLoadedKextInfo carries on a Mac (OSBundleLoadTag, OSBundleRetainCount, ...).
struct KextRecord {
  std::string bundleId;                // CFBundleIdentifier
  std::string version;                 // CFBundleVersion
  std::string uuid;                    // OSBundleUUID
  uint32_t loadTag = 0;                // OSBundleLoadTag
  int32_t retainCount = 0;             // OSBundleRetainCount: the count less the kernel's own 2
  bool started = false;                // OSBundleStarted
  std::vector<uint32_t> dependencies;  // OSBundleDependencies: load tags, descending
  std::vector<ClassSpec> classes;      // OSBundleClasses (instances: OSMetaClassTrackingCount)
};

// What would have panicked the Mac, and the call that did it.
struct PanicRecord {
  std::string call;     // e.g. "OSKextReleaseKextWithLoadTag"
  uint32_t loadTag = 0;
  std::string bundleId;
  int32_t retainCountAfter = 0;  // the OSObject count the call left behind
  uint64_t timeMs = 0;           // virtual time
  std::string message;           // one line a human can read
};

// Something that happened to the machine, stamped with its virtual time. Every change a
// watcher can see is one: loads, unloads (and why), retain-count and instance changes, panics.
// Request events (kernelmanagerd): LoadRequested (an unknown id was queued to user space:
// bundleId), RequestQueued / RequestDelivered / RequestTimedOut / RequestCancelled for a
// resource request (requestTag, bundleId + resourceName requested, loadTag = the requesting
// kext; Delivered: code = the OSReturn delivered, length = bytes).
enum class EventType {
  Loaded, Unloaded, RetainCount, Instances, Panic,
  LoadRequested, RequestQueued, RequestDelivered, RequestTimedOut, RequestCancelled
};
enum class UnloadCause { Explicit, Autounload };

struct Event {
  uint64_t seq = 0;     // position in the kernel's event stream, from 0 at boot
  uint64_t timeMs = 0;  // virtual time
  EventType type = EventType::Loaded;
  uint32_t loadTag = 0;
  std::string bundleId;
  UnloadCause cause = UnloadCause::Explicit;  // Unloaded
  int64_t from = 0, to = 0;  // RetainCount: OSBundleRetainCount before/after; Instances: count
  std::string className;     // Instances
  std::string message;       // Panic: PanicRecord::message
  uint32_t requestTag = 0;   // Request*
  std::string resourceName;  // Request*
  uint32_t code = 0;         // RequestDelivered: the OSReturn delivered
  uint64_t length = 0;       // RequestDelivered: bytes delivered
};

// The resources an installed kext's bundle carries: name → bytes.
typedef std::map<std::string, std::vector<uint8_t>> Resources;

// A resource request the kernel holds (a callback record), as pendingRequests() lists it.
struct RequestRecord {
  uint32_t requestTag = 0;
  uint32_t callerTag = 0;        // the kext whose callback it is (it cannot unload meanwhile)
  std::string callerBundleId;
  std::string bundleId;          // the kext bundle the resource is asked from
  std::string resourceName;
  uint64_t requestedMs = 0;
  bool withheld = false;         // kernelmanagerd will not answer it (times out at the scans)
  uint64_t dueMs = 0;            // when kernelmanagerd answers (meaningful unless withheld)
  bool stale = false;            // one autounload scan has seen it: the next one times it out
};

// A kext's flags that the loaded-kext table does not carry, for explaining an unload.
struct KextFlags {
  bool autounload = false;         // per-kext autounload flag (flags.autounloadEnabled)
  bool unloadUnsupported = false;
  bool kernelComponent = false;
  uint32_t pendingRequests = 0;    // resource requests with its callback: unload is refused
  bool stopping = false;
};

// An open user client as the kernel sees it. Terminating the sample kext's service stops
// every client on it (IOUserClient::stop), on the terminating thread, with the kernel's kext
// lock held: serviceTerminated() must not block or call a KPI.
class UserClientHandle {
 public:
  virtual void serviceTerminated() = 0;

 protected:
  ~UserClientHandle() {}
};

// Test-only fault: the next `times` calls of a KPI answer `code` and change nothing.
enum class Kpi { Retain, Release };

// A kb::Lock over a plain mutex (the sanitizers see it): the user-client lock in the
// simulator (an IOLock in the kext), and the sim's open-limit lock.
class MutexLock : public Lock {
 public:
  void lock() override { mu_.lock(); }
  void unlock() override { mu_.unlock(); }

 private:
  std::mutex mu_;
};

class SimKernel {
 public:
  static const uint32_t kBaselineRetainCount = 2;  // kOSKextMinLoadedRetainCount
  static const uint64_t kConsiderUnloadDelayMs = 60000;

  struct Options {
    bool autounloadEnabled = true;  // global autounload (sAutounloadEnabled)
    bool unloadEnabled = true;      // unloading allowed at all, explicit or auto (sUnloadEnabled)
  };

  // The default world: __kernel__ (tag 0), the com.apple.kpi.* interfaces, and the sample
  // kext (protocol.gen.h) with one live instance of its service class.
  SimKernel();
  explicit SimKernel(const Options &options);
  ~SimKernel();  // defined in sim_kernel.cpp, where Kext is a complete type

  // Back to exactly the state `SimKernel(options)` starts in (the default world, clock 0, the
  // boot events, no faults, no delay, no panic), keeping the containers' capacity: what the
  // fuzzer does per input instead of building a new kernel. Only with no user client open
  // (nothing may hold on to the old machine): otherwise false, and nothing changes. Every
  // member is reset in one place, SimKernel::reset in sim_kernel.cpp; test/native/
  // sim_kernel_test.cc checks a reset kernel against a new one.
  bool reset(const Options &options);

  // ---- the KPIs, exactly as OSKextLib.cpp behaves (OSReturn, unsigned) ----
  uint32_t retainKextWithLoadTag(uint32_t loadTag);
  uint32_t releaseKextWithLoadTag(uint32_t loadTag);

  // ---- kernelmanagerd KPIs (OSKextLib.cpp / OSKext.cpp, docs/kernel-facts.md) ----
  // OSKextLoadKextWithIdentifier: a loaded id → kOSReturnSuccess (same tag); an installed,
  // unloaded one → loaded now (kOSReturnSuccess, a new tag, or the load's error); an unknown
  // one → kOSKextReturnDeferred: a load request is queued for user space once per id until
  // kernelmanagerd picks the queue up (loadReplyDelay later), which then loads the id if it
  // is installed by then. Null or empty → kOSKextReturnInvalidArgument.
  uint32_t loadKextWithIdentifier(const char *bundleId);
  // OSKextRequestResource on behalf of the kext callerTag (whose code the callback is), with
  // xnu's checks in order: null args → kOSKextReturnInvalidArgument; caller not loaded or
  // neither starting nor started → kOSKextReturnInvalidArgument; caller stopping →
  // kOSKextReturnStopping; tags exhausted → kOSKextReturnNoResources. On success the
  // record is queued (tags from 0 up) and kernelmanagerd answers it resourceDelay ms later on
  // the clock: the bytes of the installed kext bundleId's resource, or kOSKextReturnNotFound
  // with no data. The callback runs on the thread advancing the clock, holding mu_ (as
  // dispatchResource runs under sKextLock). Unanswered records time out
  // (kOSKextReturnTimeout) at the second autounload scan that sees them. A request
  // reschedules an armed scan (considerUnloads(rescheduleOnly)), never arms one.
  uint32_t requestResource(uint32_t callerTag, const char *bundleId, const char *resourceName,
                           ResourceCallback callback, void *context, uint32_t *requestTagOut);
  // OSKextCancelRequest: kOSReturnSuccess and *contextOut (the callback never runs), or
  // kOSKextReturnNotFound; kOSReturnError (nothing dequeued) while failCancels is in force.
  uint32_t cancelRequest(uint32_t requestTag, void **contextOut);

  // ---- kernelmanagerd: the installed kexts and test controls ----
  // Installs (or reinstalls) a kext bundle on "disk": loadable by identifier, not loaded.
  // kOSKextReturnInvalidArgument for an empty bundle id. The default world installs the
  // loaded kexts' bundles (no resources).
  uint32_t installKext(const KextSpec &spec, const Resources &resources = Resources());
  bool uninstallKext(const std::string &bundleId);
  bool installed(const std::string &bundleId) const;
  // Virtual delay before kernelmanagerd answers a resource request (default 10 ms) / picks up
  // queued load requests (default 10 ms).
  void setResourceDelay(uint64_t ms);
  void setLoadReplyDelay(uint64_t ms);
  // While on, kernelmanagerd answers no resource request (new or pending): they time out.
  void withholdResources(bool on);
  // The next `times` answers deliver `code` with no data instead of the resource.
  void failResources(uint32_t code, uint32_t times);
  // The next `times` cancels answer kOSReturnError and dequeue nothing, as xnu's
  // OSKextCancelRequest does when it cannot build its lookup key (the record stays queued:
  // delivered or timed out later, its callback still runs).
  void failCancels(uint32_t times);
  // The next `times` records kernelmanagerd answers are dequeued and dropped without their
  // callback, as dispatchResource drops a record it cannot call (the requesting kext not
  // started, a wrapper without context, no callback). A cancel then answers NotFound.
  void dropResources(uint32_t times);
  // Marks a kext as stopping (its stop routine running): kOSKextReturnNotFound if none.
  uint32_t setStopping(uint32_t loadTag, bool stopping);
  // Arms the autounload scan (what a release does), for tests that wait for a timeout.
  void armAutounloadScan();
  std::vector<RequestRecord> pendingRequests() const;
  uint32_t pendingRequestCount(uint32_t callerTag) const;

  // ---- the machine ----
  // Loads a kext: kOSReturnSuccess and *tagOut, or kOSKextReturnDependencies (a dependency
  // is not loaded), kOSKextReturnLoadedVersionDiffers (same id, other version/UUID loaded;
  // the same version answers success with the existing tag), kOSKextReturnNoResources (tags
  // exhausted), kOSKextReturnInvalidArgument (empty bundle id).
  uint32_t loadKext(const KextSpec &spec, uint32_t *tagOut);
  // Explicit unload (kmutil unload, docs/kernel-facts.md §3.3): refused at once with
  // kOSKextReturnInUse while the kext is retained or depended on; otherwise, with the kext
  // lock held, its services are terminated (the sample's: each open user client is stopped
  // on this thread) and then the unload is refused with kOSKextReturnInUse while live
  // instances remain (open user clients too).
  uint32_t unloadKext(uint32_t loadTag);
  // Sets the live-instance count of one of a kext's declared classes: kOSKextReturnNotFound
  // (no such kext), kOSKextReturnInvalidArgument (a class it does not declare, or the sample's
  // user-client class, whose instances are the open connections). Setting the sample's
  // service class to 0 terminates the service: every registered user client is stopped,
  // on this thread with the kext lock held, as IOService termination does.
  uint32_t setInstances(uint32_t loadTag, const std::string &className, uint32_t count);
  // Advances virtual time; runs the autounload scan when it falls due.
  void advance(uint64_t ms);
  uint64_t now() const;
  bool autounloadArmed() const;
  uint64_t autounloadDeadline() const;  // meaningful while armed
  // The virtual time of the next thing the clock would make happen (the armed autounload
  // scan, a due resource answer, kernelmanagerd's pickup of queued load requests), or false
  // when nothing is due. Waits jump the clock there. advance() runs due things in time order.
  bool nextDueMs(uint64_t *out) const;

  // ---- events ----
  // The stream is kept in a ring of kEventRing entries; it never blocks and never grows.
  // eventsSince appends every event with seq >= cursor still in the ring, and returns the
  // cursor to pass next time (one past the last event). A reader that fell more than the
  // ring behind gets *dropped = how many it missed (else 0).
  static const size_t kEventRing = 4096;
  uint64_t eventsSince(uint64_t cursor, std::vector<Event> &out, uint64_t *dropped) const;
  uint64_t eventCursor() const;  // the seq the next event will have

  // False when no kext has the tag.
  bool kextFlags(uint32_t loadTag, KextFlags *out) const;
  bool unloadEnabled() const { return options_.unloadEnabled; }
  bool autounloadGloballyEnabled() const { return options_.autounloadEnabled; }
  // The pid of each open user client of the sample kext (IOUserClientCreator on a Mac), in
  // the order they opened.
  std::vector<int32_t> userClientPids() const;

  std::vector<KextRecord> loadedKexts() const;
  // The OSObject retain count (baseline included), or -1 when no kext has the tag.
  int64_t retainCount(uint32_t loadTag) const;
  uint32_t lookupLoadTag(const std::string &bundleId) const;  // kInvalidLoadTag if none
  uint32_t sampleLoadTag() const;

  bool panicked() const;
  PanicRecord panicRecord() const;

  void injectFault(Kpi kpi, uint32_t code, uint32_t times);

  // A slow Mac: each of the next `count` user-client calls (on any connection) takes `us`
  // microseconds longer, spent before the call reaches the user client, holding no lock.
  void delayCalls(uint32_t us, uint32_t count);
  uint32_t takeCallDelay();  // the delay for the call starting now (0 when none)

  // ---- the sample kext's service, as IOServiceOpen/IOServiceClose see it ----
  // kIOReturnSuccess, or kIOReturnNotFound when the sample kext or its service is gone
  // (no matching service); counts a live instance of the user-client class. A non-null
  // client is registered to be stopped if the service terminates; closeUserClient
  // unregisters it (under the kext lock, so a termination in progress finishes first).
  // pid: the opening process, counted against the sample kext's per-process cap on open
  // user clients (the kext's OpenLimit): kIOReturnNoResources beyond it. closeUserClient
  // gives the slot back (the kext does in the client's free()).
  uint32_t openUserClient(UserClientHandle *client = nullptr, int32_t pid = 1);
  void closeUserClient(UserClientHandle *client = nullptr, int32_t pid = 1);

 private:
  struct Kext;
  Kext *findRecord(uint32_t loadTag) const;
  Kext *find(uint32_t loadTag);
  const Kext *find(uint32_t loadTag) const;
  Kext *findById(const std::string &bundleId);
  uint32_t lookupForKpi(Kpi kpi, uint32_t loadTag, Kext **out);
  uint32_t loadLocked(const KextSpec &spec, uint32_t *tagOut);
  void considerUnloads();                 // (re)arm the scan 60 s ahead
  void runAutounloadScan();               // repeat passes until one unloads nothing
  bool eligibleForAutounload(const Kext &k) const;
  // Marks it unloaded, drops its dependency references.
  void removeLocked(uint32_t loadTag, UnloadCause cause);
  void compactLocked();                   // sweeps marked kexts out of kexts_ and byId_
  void recordPanic(const char *call, const Kext &k);
  void terminateSampleServiceLocked();    // IOService termination of the sample's service
  // One event as the ring keeps it (under mu_): its numbers in one cache line, no strings.
  // Most of the stream (every retain and release) needs none: the bundle id of a kext's event
  // is looked up by its tag when the event is read (load tags are never reused). Events with
  // text, or a bundle id of their own (kernelmanagerd's), keep it in ringText_ beside the slot.
  struct Slot {
    uint64_t timeMs = 0;
    int64_t from = 0, to = 0;
    uint64_t length = 0;
    uint32_t loadTag = 0;
    uint32_t requestTag = 0;
    uint32_t code = 0;
    EventType type = EventType::Loaded;
    UnloadCause cause = UnloadCause::Explicit;
    bool hasText = false;  // ringText_ at this index holds the event's text
    bool ownId = false;    // ... and its bundle id (else: the bundle id of loadTag's kext)
  };
  struct SlotText {
    std::string bundleId, className, message, resourceName;
  };
  Slot &emit(EventType type, const Kext &k);  // the next event's slot, filled for k (under mu_)
  void emit(Event e);                         // a whole event (kernelmanagerd's), stamped
  Slot &nextSlot(EventType type);             // the next slot, every field cleared
  SlotText &textOf(Slot &slot);               // the slot's strings, from now on its own
  Event eventAt(uint64_t seq) const;          // the public event, bundle id resolved
  const std::string &bundleIdOfTag(uint32_t loadTag) const;
  void emitRetainCount(const Kext &k, int64_t fromCount);
  void emitInstances(const Kext &k, const std::string &cls, uint32_t from, uint32_t to);

  // sKextLock: a recursive lock every KPI entry, load, unload and scan takes, as in xnu.
  mutable std::recursive_mutex mu_;
  Options options_;
  std::vector<std::unique_ptr<Kext>> kexts_;  // loaded kexts, in load (= tag) order
  std::unordered_map<std::string, uint32_t> byId_;  // bundle id → load tag
  uint32_t nextLoadTag_ = 0;
  uint32_t sampleTag_ = 0;
  uint64_t nowMs_ = 0;
  bool armed_ = false;
  uint64_t deadlineMs_ = 0;
  std::atomic<bool> panicked_{false};  // written under mu_; read without it on every call
  PanicRecord panic_;
  std::vector<UserClientHandle *> clients_;  // registered open user clients
  std::vector<int32_t> clientPids_;          // one per open user client, in open order
  std::vector<Slot> ring_;                   // events[seq % kEventRing], grows to kEventRing
  std::vector<SlotText> ringText_;           // beside ring_, meaningful where hasText
  uint64_t nextSeq_ = 0;
  // Bundle ids of kexts swept out of kexts_, by tag, while the ring may still hold one of
  // their events: dropped once the ring has moved past the sweep (goneOrder_: the seq the next
  // event had then, and the tag, oldest first). So this never holds more than the ring.
  std::unordered_map<uint32_t, std::string> goneIds_;
  std::deque<std::pair<uint64_t, uint32_t>> goneOrder_;
  // The sample kext's cap on open clients per process, as in the kext (its own leaf lock).
  MutexLock openLimitLock_;
  OpenLimit openLimit_{openLimitLock_};
  std::atomic<uint64_t> callDelay_{0};  // remaining count << 32 | microseconds
  uint32_t faultCode_[2] = {0, 0};
  uint32_t faultTimes_[2] = {0, 0};

  // ---- kernelmanagerd state (all under mu_; a reset clears it with resetKernelmanagerd) ----
  struct Installed {
    KextSpec spec;
    Resources resources;
  };
  struct Request {
    RequestRecord rec;
    ResourceCallback callback = nullptr;
    void *context = nullptr;
  };
  void resetKernelmanagerd();                // the boot state of everything in this group
  static KextSpec sampleKextSpec();
  void answerRequestLocked(size_t index);    // dispatchResource for requests_[index]
  void invokeLocked(const Request &r, uint32_t code, const std::vector<uint8_t> *bytes);
  void pickUpLoadRequestsLocked();           // kernelmanagerd takes the load requests
  void timeoutScanLocked();                  // the scan's stale pass
  bool hasPendingRequests(uint32_t callerTag) const;
  std::map<std::string, Installed> installed_;
  std::vector<Request> requests_;            // sRequestCallbackRecords, in request order
  std::vector<std::string> postedLoads_;     // sPostedKextLoadIdentifiers, in post order
  bool loadPickupArmed_ = false;
  uint64_t loadPickupMs_ = 0;
  uint32_t nextRequestTag_ = 0;              // sNextRequestTag
  uint64_t resourceDelayMs_ = 10;
  uint64_t loadReplyDelayMs_ = 10;
  bool withhold_ = false;
  uint32_t resourceFaultCode_ = 0;
  uint32_t resourceFaultTimes_ = 0;
  uint32_t cancelFaultTimes_ = 0;
  uint32_t dropTimes_ = 0;
};

// The KernelApi the core sees inside the sample kext: KPIs of the shared SimKernel and the
// sample kext's own identity (what libkmod's OSKextGetCurrent* answer from kmod_info).
class SampleKextApi : public KernelApi {
 public:
  explicit SampleKextApi(std::shared_ptr<SimKernel> kernel);
  uint32_t retainKext(uint32_t loadTag) override;
  uint32_t releaseKext(uint32_t loadTag) override;
  uint32_t ownLoadTag() override;
  const char *ownIdentifier() override;
  const char *ownVersion() override;
  uint32_t loadKextWithIdentifier(const char *bundleId) override;
  uint32_t requestResource(const char *bundleId, const char *resourceName,
                           ResourceCallback callback, void *context,
                           uint32_t *requestTag) override;
  uint32_t cancelRequest(uint32_t requestTag, void **context) override;
  void *allocBuffer(uint32_t size) override;
  void freeBuffer(void *block, uint32_t size) override;

 private:
  std::shared_ptr<SimKernel> kernel_;
};


} // namespace sim
} // namespace kb

#endif
