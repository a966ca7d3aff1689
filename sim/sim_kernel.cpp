// SimKernel: the libkern kext registry, modelled on docs/kernel-facts.md §3. See sim_kernel.h.
//
// Storage: kexts_ holds the loaded kexts in load order. Load tags come from a counter that
// only grows, so load order is also tag order and a tag is found by binary search. A kext
// being unloaded is first marked `removed` (so a scan can unload many in one pass) and then
// compacted out in one linear sweep.
// Bundle-id lookups go through byId_.
#include "sim_kernel.h"

#include <stdio.h>

#include <algorithm>
#include <new>
#include <unordered_map>
#include <utility>

#include "protocol.gen.h"

namespace kb {
namespace sim {

const uint32_t SimKernel::kBaselineRetainCount;
const uint64_t SimKernel::kConsiderUnloadDelayMs;
const size_t SimKernel::kEventRing;

namespace {

const char *const kKernelVersion = "24.5.0";
const int64_t kBaseline = SimKernel::kBaselineRetainCount;

uint64_t fnv1a64(const std::string &s, uint32_t tag, uint64_t basis) {
  uint64_t h = basis;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001B3ull;
  }
  for (int i = 0; i < 4; i++) {
    h ^= (tag >> (8 * i)) & 0xFF;
    h *= 0x100000001B3ull;
  }
  // A final avalanche so ids that differ only at the end still differ everywhere.
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCDull;
  h ^= h >> 33;
  h *= 0xC4CEB9FE1A85EC53ull;
  h ^= h >> 33;
  return h;
}

// A stable UUID for a kext loaded without one: a function of bundle id and load tag only.
std::string deriveUuid(const std::string &bundleId, uint32_t tag) {
  uint64_t hi = fnv1a64(bundleId, tag, 0xCBF29CE484222325ull);
  uint64_t lo = fnv1a64(bundleId, tag, 0x84222325CBF29CE4ull);
  char buf[40];
  snprintf(buf, sizeof buf, "%08X-%04X-%04X-%04X-%012llX", (unsigned)(hi >> 32),
           (unsigned)((hi >> 16) & 0xFFFF), (unsigned)(hi & 0xFFFF),
           (unsigned)(lo >> 48), (unsigned long long)(lo & 0xFFFFFFFFFFFFull));
  return buf;
}

// The sample's user-client class name as a string, built once: every open and close reports
// its instance count.
const std::string &userClientClassName() {
  static const std::string name(KB_USER_CLIENT_CLASS_NAME);
  return name;
}

}  // namespace

struct SimKernel::Kext {
  uint32_t tag = 0;
  std::string bundleId;
  std::string version;
  std::string uuid;
  int64_t count = kBaseline;        // OSObject retain count, baseline included
  std::vector<uint32_t> deps;       // load tags of direct dependencies, descending
  std::vector<ClassSpec> classes;
  bool autounload = false;          // per-kext flag (flags.autounloadEnabled)
  bool unloadUnsupported = false;
  bool kernelComponent = false;
  bool isInterface = false;
  bool started = true;
  bool stopping = false;            // its stop routine is running (a test control)
  bool removed = false;             // unloaded, waiting to be compacted out of kexts_

  bool hasLiveInstances() const {
    for (const ClassSpec &c : classes)
      if (c.instances > 0) return true;
    return false;
  }
  ClassSpec *findClass(const std::string &name) {
    for (ClassSpec &c : classes)
      if (c.name == name) return &c;
    return nullptr;
  }
  ClassSpec *findClass(const char *name) {  // a literal: no temporary string per lookup
    for (ClassSpec &c : classes)
      if (c.name == name) return &c;
    return nullptr;
  }
};

SimKernel::SimKernel() : SimKernel(Options()) {}

SimKernel::SimKernel(const Options &options) : options_(options) {
  std::lock_guard<std::recursive_mutex> g(mu_);
  uint32_t tag = 0;

  KextSpec kernel;
  kernel.bundleId = "__kernel__";
  kernel.version = kKernelVersion;
  kernel.kernelComponent = true;
  loadLocked(kernel, &tag);

  static const char *const kInterfaces[] = {
      "com.apple.kpi.bsd",   "com.apple.kpi.dsep",    "com.apple.kpi.iokit",
      "com.apple.kpi.libkern", "com.apple.kpi.mach",  "com.apple.kpi.private",
      "com.apple.kpi.unsupported"};
  for (const char *id : kInterfaces) {
    KextSpec kpi;
    kpi.bundleId = id;
    kpi.version = kKernelVersion;
    kpi.kernelComponent = true;
    kpi.isInterface = true;
    loadLocked(kpi, &tag);
  }

  loadLocked(sampleKextSpec(), &sampleTag_);
  resetKernelmanagerd();
}

// The sample kext as the default world loads it (and kernelmanagerd has it installed).
KextSpec SimKernel::sampleKextSpec() {
  KextSpec sample;
  sample.bundleId = KB_SAMPLE_BUNDLE_ID;
  sample.version = KB_SAMPLE_VERSION;
  sample.dependencies = {KB_SAMPLE_LIBRARIES};
  ClassSpec service;
  service.name = KB_SERVICE_CLASS_NAME;
  service.superclass = "IOService";
  service.instances = 1;
  ClassSpec client;
  client.name = KB_USER_CLIENT_CLASS_NAME;
  client.superclass = "IOUserClient";
  client.instances = 0;
  sample.classes = {service, client};
  sample.autounload = true;
  return sample;
}

SimKernel::~SimKernel() = default;

// ---- reset ----

namespace {
// A kernel as the constructor leaves it, built once and never changed, handed to no one: what
// reset() copies from. The constructor's world does not depend on Options (only options_ does).
const SimKernel &pristineKernel() {
  static const SimKernel *pristine = new SimKernel();
  return *pristine;
}
}  // namespace

bool SimKernel::reset(const Options &options) {
  const SimKernel &p = pristineKernel();
  std::lock_guard<std::recursive_mutex> g(mu_);
  if (!clients_.empty() || !clientPids_.empty() || openLimit_.processes() != 0) return false;

  // ==== Every member is reset here; a new member must be added here (and compared in
  // ==== reset_is_indistinguishable_from_new, test/native/sim_kernel_test.cc, whose size
  // ==== check fails until it is). Copies reuse the existing storage where they can.
  options_ = options;
  kexts_.resize(p.kexts_.size());  // drops the kexts loaded since; keeps the default ones' objects
  for (size_t i = 0; i < kexts_.size(); i++) {
    if (!kexts_[i]) kexts_[i].reset(new Kext());
    *kexts_[i] = *p.kexts_[i];  // strings and vectors assigned in place
  }
  byId_ = p.byId_;
  nextLoadTag_ = p.nextLoadTag_;
  sampleTag_ = p.sampleTag_;
  nowMs_ = p.nowMs_;
  armed_ = p.armed_;
  deadlineMs_ = p.deadlineMs_;
  panicked_ = p.panicked_.load();
  panic_ = p.panic_;
  clients_.clear();     // empty already (checked above)
  clientPids_.clear();  // empty already
  // The boot events, copied into the first slots; later slots keep their storage (emit).
  if (ring_.size() < p.ring_.size()) {
    ring_.resize(p.ring_.size());
    ringText_.resize(p.ringText_.size());
  }
  std::copy(p.ring_.begin(), p.ring_.end(), ring_.begin());
  std::copy(p.ringText_.begin(), p.ringText_.end(), ringText_.begin());
  nextSeq_ = p.nextSeq_;
  goneIds_ = p.goneIds_;
  goneOrder_ = p.goneOrder_;
  // openLimit_: no client is open, so its table counts nothing (checked above); it has no
  // other state. openLimitLock_: a plain mutex, not held between calls.
  callDelay_ = p.callDelay_.load();
  for (int i = 0; i < 2; i++) {
    faultCode_[i] = p.faultCode_[i];
    faultTimes_[i] = p.faultTimes_[i];
  }
  // kernelmanagerd (installed_, requests_, postedLoads_, the load pickup, the request tag
  // counter, the delays and the resource controls): back to boot, in one place.
  resetKernelmanagerd();
  // mu_: the lock itself, held right now.
  return true;
}

// ---- lookups ----

// Also an unloaded kext not yet swept out of kexts_.
SimKernel::Kext *SimKernel::findRecord(uint32_t loadTag) const {
  auto it = std::lower_bound(
      kexts_.begin(), kexts_.end(), loadTag,
      [](const std::unique_ptr<Kext> &k, uint32_t tag) { return k->tag < tag; });
  return it == kexts_.end() || (*it)->tag != loadTag ? nullptr : it->get();
}

SimKernel::Kext *SimKernel::find(uint32_t loadTag) {
  Kext *k = findRecord(loadTag);
  return k && !k->removed ? k : nullptr;
}

const SimKernel::Kext *SimKernel::find(uint32_t loadTag) const {
  return const_cast<SimKernel *>(this)->find(loadTag);
}

SimKernel::Kext *SimKernel::findById(const std::string &bundleId) {
  auto it = byId_.find(bundleId);
  return it == byId_.end() ? nullptr : find(it->second);
}

// ---- the KPIs ----

// What both KPIs do first: a test's injected fault, the invalid tag, then the lookup.
// Returns kOSReturnSuccess with *out set, or the answer to give.
uint32_t SimKernel::lookupForKpi(Kpi kpi, uint32_t loadTag, Kext **out) {
  if (panicked_) return RC_kOSReturnError;
  const int f = static_cast<int>(kpi);
  if (faultTimes_[f] > 0) {
    faultTimes_[f]--;
    return faultCode_[f];
  }
  if (loadTag == kInvalidLoadTag) return RC_kOSKextReturnInvalidArgument;
  *out = find(loadTag);
  return *out ? RC_kOSReturnSuccess : RC_kOSKextReturnNotFound;
}

uint32_t SimKernel::retainKextWithLoadTag(uint32_t loadTag) {
  std::lock_guard<std::recursive_mutex> g(mu_);
  Kext *k = nullptr;
  uint32_t kr = lookupForKpi(Kpi::Retain, loadTag, &k);
  if (kr != RC_kOSReturnSuccess) return kr;
  k->count++;  // the lookup's reference, kept as the caller's
  k->autounload = !k->unloadUnsupported;
  emitRetainCount(*k, k->count - 1);
  return RC_kOSReturnSuccess;
}

uint32_t SimKernel::releaseKextWithLoadTag(uint32_t loadTag) {
  std::lock_guard<std::recursive_mutex> g(mu_);
  Kext *k = nullptr;
  uint32_t kr = lookupForKpi(Kpi::Release, loadTag, &k);
  if (kr != RC_kOSReturnSuccess) return kr;
  considerUnloads();
  // Lookup +1, then release twice: net −1, with no check against the kernel's own references.
  k->count--;
  emitRetainCount(*k, k->count + 1);
  if (k->count < kBaseline) recordPanic("OSKextReleaseKextWithLoadTag", *k);
  return RC_kOSReturnSuccess;  // what the real kernel answered before using freed memory
}

// ---- the machine ----

uint32_t SimKernel::loadKext(const KextSpec &spec, uint32_t *tagOut) {
  std::lock_guard<std::recursive_mutex> g(mu_);
  if (tagOut) *tagOut = kInvalidLoadTag;
  if (panicked_) return RC_kOSReturnError;
  return loadLocked(spec, tagOut);
}

uint32_t SimKernel::loadLocked(const KextSpec &spec, uint32_t *tagOut) {
  if (spec.bundleId.empty()) return RC_kOSKextReturnInvalidArgument;
  if (Kext *existing = findById(spec.bundleId)) {
    if (existing->version == spec.version && (spec.uuid.empty() || spec.uuid == existing->uuid)) {
      if (tagOut) *tagOut = existing->tag;
      return RC_kOSReturnSuccess;
    }
    return RC_kOSKextReturnLoadedVersionDiffers;
  }

  std::vector<Kext *> libs;
  libs.reserve(spec.dependencies.size());
  for (const std::string &id : spec.dependencies) {
    Kext *lib = findById(id);
    if (!lib) return RC_kOSKextReturnDependencies;
    // OSBundleLibraries is a dictionary: a library is linked (and retained) once.
    if (std::find(libs.begin(), libs.end(), lib) == libs.end()) libs.push_back(lib);
  }
  if (nextLoadTag_ == kInvalidLoadTag) return RC_kOSKextReturnNoResources;

  std::unique_ptr<Kext> k(new Kext());
  k->tag = nextLoadTag_++;
  k->bundleId = spec.bundleId;
  k->version = spec.version;
  k->uuid = spec.uuid.empty() ? deriveUuid(spec.bundleId, k->tag) : spec.uuid;
  k->count = kBaseline;
  for (Kext *lib : libs) {
    lib->count++;  // the dependent's dependencies array retains the library
    emitRetainCount(*lib, lib->count - 1);
    k->deps.push_back(lib->tag);
  }
  std::sort(k->deps.begin(), k->deps.end(), [](uint32_t a, uint32_t b) { return a > b; });
  k->classes = spec.classes;
  k->unloadUnsupported = spec.unloadUnsupported;
  k->kernelComponent = spec.kernelComponent;
  k->isInterface = spec.isInterface;
  k->started = spec.started;
  bool registersService = false;
  for (const ClassSpec &c : spec.classes)
    if (c.superclass == "IOService") registersService = true;
  // addClass turns autounload on for an IOService subclass (unless unload is unsupported).
  k->autounload = registersService ? !spec.unloadUnsupported : spec.autounload;

  Kext *raw = k.get();
  kexts_.push_back(std::move(k));
  byId_[raw->bundleId] = raw->tag;
  if (raw->bundleId == KB_SAMPLE_BUNDLE_ID) sampleTag_ = raw->tag;  // reloaded by id
  if (tagOut) *tagOut = raw->tag;
  emit(EventType::Loaded, *raw);
  return RC_kOSReturnSuccess;
}

uint32_t SimKernel::unloadKext(uint32_t loadTag) {
  std::lock_guard<std::recursive_mutex> g(mu_);
  if (panicked_) return RC_kOSReturnError;
  Kext *k = find(loadTag);
  if (!k) return RC_kOSKextReturnNotFound;
  // The unload request first asks whether the kext could go at all, classes aside
  // (canUnloadKextWithIdentifier): retained or depended on answers at once, nothing touched.
  if (k->count > kBaseline) return RC_kOSKextReturnInUse;
  if (k->unloadUnsupported) return RC_kOSKextReturnInUse;
  // removeKext refuses a kext with resource requests in flight before anything else.
  if (hasPendingRequests(loadTag)) return RC_kOSKextReturnInUse;
  // Then removeKext terminates its services (terminateDriversForModule), synchronously with
  // the kext lock held, before unload() checks what is left.
  if (loadTag == sampleTag_) terminateSampleServiceLocked();
  if (!options_.unloadEnabled) return RC_kOSKextReturnDisabled;
  if (k->kernelComponent) return RC_kOSKextReturnInvalidArgument;
  if (k->hasLiveInstances()) return RC_kOSKextReturnInUse;
  removeLocked(loadTag, UnloadCause::Explicit);
  compactLocked();
  return RC_kOSReturnSuccess;
}

uint32_t SimKernel::setInstances(uint32_t loadTag, const std::string &className,
                                 uint32_t count) {
  std::lock_guard<std::recursive_mutex> g(mu_);
  if (panicked_) return RC_kOSReturnError;
  Kext *k = find(loadTag);
  if (!k) return RC_kOSKextReturnNotFound;
  // Only a class the kext declared; the sample's user-client instances are its open
  // connections, which only IOServiceOpen and IOServiceClose change.
  ClassSpec *c = k->findClass(className);
  if (!c || (loadTag == sampleTag_ && className == KB_USER_CLIENT_CLASS_NAME))
    return RC_kOSKextReturnInvalidArgument;
  if (loadTag == sampleTag_ && className == KB_SERVICE_CLASS_NAME && count == 0)
    terminateSampleServiceLocked();
  const uint32_t from = c->instances;
  c->instances = count;
  emitInstances(*k, className, from, count);
  return RC_kOSReturnSuccess;
}

// The service goes, and each of its user clients is stopped here, with the kext lock held,
// as xnu's synchronous termination does: a client's stop() that waited for its own lock
// while another thread held that lock and waited for this one would hang the kernel.
void SimKernel::terminateSampleServiceLocked() {
  Kext *k = find(sampleTag_);
  ClassSpec *service = k ? k->findClass(KB_SERVICE_CLASS_NAME) : nullptr;
  if (!service || service->instances == 0) return;
  const uint32_t from = service->instances;
  service->instances = 0;
  emitInstances(*k, KB_SERVICE_CLASS_NAME, from, 0);
  for (UserClientHandle *client : clients_) client->serviceTerminated();
}

void SimKernel::advance(uint64_t ms) {
  std::lock_guard<std::recursive_mutex> g(mu_);
  if (panicked_) return;
  uint64_t target = nowMs_ + ms;
  if (target < nowMs_) target = UINT64_MAX;  // saturate rather than wrap
  // Everything due up to the target, in time order: resource answers and kernelmanagerd's
  // pickup of load requests (kernelmanagerd's replies) before a scan due at the same time.
  while (!panicked_) {
    uint64_t when = UINT64_MAX;
    int what = 0;  // 1 a request answer, 2 the load pickup, 3 the scan
    size_t index = 0;
    if (!withhold_)
      for (size_t i = 0; i < requests_.size(); i++)
        if (requests_[i].rec.dueMs < when) {
          when = requests_[i].rec.dueMs;
          what = 1;
          index = i;
        }
    if (loadPickupArmed_ && loadPickupMs_ < when) {
      when = loadPickupMs_;
      what = 2;
    }
    if (armed_ && deadlineMs_ < when) {
      when = deadlineMs_;
      what = 3;
    }
    if (!what || when > target) break;
    if (when > nowMs_) nowMs_ = when;
    if (what == 1) {
      answerRequestLocked(index);
    } else if (what == 2) {
      pickUpLoadRequestsLocked();
    } else {
      armed_ = false;
      timeoutScanLocked();
      runAutounloadScan();
    }
  }
  if (!panicked_) nowMs_ = target;
}

uint64_t SimKernel::now() const {
  std::lock_guard<std::recursive_mutex> g(mu_);
  return nowMs_;
}

bool SimKernel::autounloadArmed() const {
  std::lock_guard<std::recursive_mutex> g(mu_);
  return armed_;
}

uint64_t SimKernel::autounloadDeadline() const {
  std::lock_guard<std::recursive_mutex> g(mu_);
  return deadlineMs_;
}

void SimKernel::considerUnloads() {
  if (!options_.autounloadEnabled) return;
  armed_ = true;
  deadlineMs_ = nowMs_ + kConsiderUnloadDelayMs;  // cancel and re-arm: not cumulative
}

// The scan unloads through OSKext::unload(), which refuses everything while unloading is
// globally disabled.
bool SimKernel::eligibleForAutounload(const Kext &k) const {
  return options_.unloadEnabled && !k.removed && k.count <= kBaseline && k.autounload &&
         !k.kernelComponent && !k.unloadUnsupported && !k.hasLiveInstances() &&
         !hasPendingRequests(k.tag);
}

void SimKernel::runAutounloadScan() {
  bool unloaded = true;
  while (unloaded && !panicked_) {
    unloaded = false;
    // Backwards over load order: a dependent always comes after its libraries, so dropping
    // it can free a library later in the same pass.
    for (size_t i = kexts_.size(); i-- > 0 && !panicked_;) {
      Kext &k = *kexts_[i];
      if (!eligibleForAutounload(k)) continue;
      removeLocked(k.tag, UnloadCause::Autounload);
      unloaded = true;
    }
    compactLocked();
  }
}

// Marks the kext unloaded and drops its references on its libraries. The caller compacts.
void SimKernel::removeLocked(uint32_t loadTag, UnloadCause cause) {
  Kext *k = find(loadTag);
  if (!k) return;
  k->removed = true;
  emit(EventType::Unloaded, *k).cause = cause;
  for (uint32_t depTag : k->deps) {
    Kext *lib = find(depTag);
    if (!lib) continue;  // only reachable after someone released a library's own references
    lib->count--;
    emitRetainCount(*lib, lib->count + 1);
    // A library normally keeps its baseline here. It falls below only if someone released
    // the reference this dependent held: the kernel would free a kext it still lists.
    if (lib->count < kBaseline && !panicked_) recordPanic("OSKext::flushDependencies", *lib);
  }
}

void SimKernel::recordPanic(const char *call, const Kext &k) {
  if (panicked_) return;  // the first panic is the one that stopped the machine
  panicked_ = true;
  panic_.call = call;
  panic_.loadTag = k.tag;
  panic_.bundleId = k.bundleId;
  panic_.retainCountAfter = static_cast<int32_t>(k.count);
  panic_.timeMs = nowMs_;
  panic_.message = "panic: " + panic_.call + "(" + std::to_string(k.tag) + ") dropped " +
                   k.bundleId + " to retain count " + std::to_string(k.count) +
                   ", below the kernel's baseline of " + std::to_string(kBaseline) +
                   " (use-after-free)";
  textOf(emit(EventType::Panic, k)).message = panic_.message;
}

// ---- events ----

// The event for seq lives in ring_[seq % kEventRing], its strings (if any) in ringText_ at the
// same index. A slot is overwritten whole; the strings beside it keep their storage, so once
// the ring has filled (or on a reset kernel) an event costs no allocation. Slots past the
// events the stream holds (after a reset) are never read: eventsSince reads [oldest, nextSeq_).
SimKernel::Slot &SimKernel::nextSlot(EventType type) {
  const size_t i = (size_t)(nextSeq_ % kEventRing);
  if (i == ring_.size()) {  // still filling: slots are taken in order
    ring_.emplace_back();
    ringText_.emplace_back();
  }
  nextSeq_++;
  // The ring has moved past a swept kext's last event: nothing can ask for its id again.
  while (!goneOrder_.empty() && goneOrder_.front().first + kEventRing <= nextSeq_) {
    goneIds_.erase(goneOrder_.front().second);
    goneOrder_.pop_front();
  }
  Slot &e = ring_[i];
  e = Slot();
  e.timeMs = nowMs_;
  e.type = type;
  return e;
}

SimKernel::SlotText &SimKernel::textOf(Slot &slot) {
  SlotText &t = ringText_[(size_t)(&slot - ring_.data())];
  if (!slot.hasText) {
    slot.hasText = true;
    t.bundleId.clear();
    t.className.clear();
    t.message.clear();
    t.resourceName.clear();
  }
  return t;
}

SimKernel::Slot &SimKernel::emit(EventType type, const Kext &k) {
  Slot &e = nextSlot(type);
  e.loadTag = k.tag;
  return e;
}

// kernelmanagerd's events, built whole (they are rare): stamped with the slot's time; their
// bundle id is their own (it need not be loadTag's kext, or any loaded kext).
void SimKernel::emit(Event e) {
  Slot &slot = nextSlot(e.type);
  slot.loadTag = e.loadTag;
  slot.cause = e.cause;
  slot.from = e.from;
  slot.to = e.to;
  slot.requestTag = e.requestTag;
  slot.code = e.code;
  slot.length = e.length;
  SlotText &t = textOf(slot);
  slot.ownId = true;
  t.bundleId = std::move(e.bundleId);
  t.className = std::move(e.className);
  t.message = std::move(e.message);
  t.resourceName = std::move(e.resourceName);
}

// OSBundleRetainCount before and after: the count less the kernel's own references.
void SimKernel::emitRetainCount(const Kext &k, int64_t fromCount) {
  Slot &e = emit(EventType::RetainCount, k);
  e.from = fromCount - kBaseline;
  e.to = k.count - kBaseline;
}

void SimKernel::emitInstances(const Kext &k, const std::string &cls, uint32_t from, uint32_t to) {
  if (from == to) return;
  Slot &e = emit(EventType::Instances, k);
  e.from = from;
  e.to = to;
  textOf(e).className = cls;
}

// A kext's id by its tag: loaded, unloaded but not yet swept, or swept (goneIds_). Every tag
// the ring holds resolves (compactLocked keeps a swept id until the ring has moved past it).
const std::string &SimKernel::bundleIdOfTag(uint32_t loadTag) const {
  static const std::string none;
  if (const Kext *k = findRecord(loadTag)) return k->bundleId;
  auto gone = goneIds_.find(loadTag);
  return gone == goneIds_.end() ? none : gone->second;
}

Event SimKernel::eventAt(uint64_t seq) const {
  const size_t i = (size_t)(seq % kEventRing);
  const Slot &slot = ring_[i];
  Event e;
  e.seq = seq;
  e.timeMs = slot.timeMs;
  e.type = slot.type;
  e.loadTag = slot.loadTag;
  e.cause = slot.cause;
  e.from = slot.from;
  e.to = slot.to;
  e.requestTag = slot.requestTag;
  e.code = slot.code;
  e.length = slot.length;
  if (slot.hasText) {
    const SlotText &t = ringText_[i];
    e.className = t.className;
    e.message = t.message;
    e.resourceName = t.resourceName;
  }
  e.bundleId = slot.ownId ? ringText_[i].bundleId : bundleIdOfTag(slot.loadTag);
  return e;
}

uint64_t SimKernel::eventsSince(uint64_t cursor, std::vector<Event> &out, uint64_t *dropped) const {
  std::lock_guard<std::recursive_mutex> g(mu_);
  const uint64_t oldest = nextSeq_ > kEventRing ? nextSeq_ - kEventRing : 0;
  if (dropped) *dropped = cursor < oldest ? oldest - cursor : 0;
  if (cursor < oldest) cursor = oldest;
  for (uint64_t s = cursor; s < nextSeq_; s++) out.push_back(eventAt(s));
  return nextSeq_;  // also for a cursor from the future: it resumes at the stream's end
}

uint64_t SimKernel::eventCursor() const {
  std::lock_guard<std::recursive_mutex> g(mu_);
  return nextSeq_;
}

bool SimKernel::nextDueMs(uint64_t *out) const {
  std::lock_guard<std::recursive_mutex> g(mu_);
  if (panicked_) return false;
  bool any = false;
  uint64_t when = UINT64_MAX;
  if (armed_) {
    when = deadlineMs_;
    any = true;
  }
  if (loadPickupArmed_ && loadPickupMs_ < when) {
    when = loadPickupMs_;
    any = true;
  }
  if (!withhold_)
    for (const Request &r : requests_)
      if (r.rec.dueMs <= when) {
        when = r.rec.dueMs;
        any = true;
      }
  if (any) *out = when;
  return any;
}

bool SimKernel::kextFlags(uint32_t loadTag, KextFlags *out) const {
  std::lock_guard<std::recursive_mutex> g(mu_);
  const Kext *k = find(loadTag);
  if (!k) return false;
  out->autounload = k->autounload;
  out->unloadUnsupported = k->unloadUnsupported;
  out->kernelComponent = k->kernelComponent;
  out->pendingRequests = 0;
  for (const Request &r : requests_)
    if (r.rec.callerTag == loadTag) out->pendingRequests++;
  out->stopping = k->stopping;
  return true;
}

std::vector<int32_t> SimKernel::userClientPids() const {
  std::lock_guard<std::recursive_mutex> g(mu_);
  return clientPids_;
}

// ---- queries ----

std::vector<KextRecord> SimKernel::loadedKexts() const {
  std::lock_guard<std::recursive_mutex> g(mu_);
  std::vector<KextRecord> out;
  out.reserve(kexts_.size());
  for (const std::unique_ptr<Kext> &p : kexts_) {
    const Kext &k = *p;
    if (k.removed) continue;
    KextRecord r;
    r.bundleId = k.bundleId;
    r.version = k.version;
    r.uuid = k.uuid;
    r.loadTag = k.tag;
    r.retainCount = static_cast<int32_t>(k.count - kBaseline);
    r.started = k.started;
    r.dependencies = k.deps;
    r.classes = k.classes;
    out.push_back(std::move(r));
  }
  return out;
}

int64_t SimKernel::retainCount(uint32_t loadTag) const {
  std::lock_guard<std::recursive_mutex> g(mu_);
  const Kext *k = find(loadTag);
  return k ? k->count : -1;
}

uint32_t SimKernel::lookupLoadTag(const std::string &bundleId) const {
  std::lock_guard<std::recursive_mutex> g(mu_);
  const Kext *k = const_cast<SimKernel *>(this)->findById(bundleId);
  return k ? k->tag : kInvalidLoadTag;
}

uint32_t SimKernel::sampleLoadTag() const {
  std::lock_guard<std::recursive_mutex> g(mu_);
  return sampleTag_;
}

// Lock-free: every simulated call asks. panicRecord() takes the lock, so it sees the record whole.
bool SimKernel::panicked() const { return panicked_.load(); }

PanicRecord SimKernel::panicRecord() const {
  std::lock_guard<std::recursive_mutex> g(mu_);
  return panic_;
}

void SimKernel::injectFault(Kpi kpi, uint32_t code, uint32_t times) {
  std::lock_guard<std::recursive_mutex> g(mu_);
  const int f = static_cast<int>(kpi);
  faultCode_[f] = code;
  faultTimes_[f] = times;
}

void SimKernel::delayCalls(uint32_t us, uint32_t count) {
  callDelay_.store(count && us ? (uint64_t)count << 32 | us : 0);
}

uint32_t SimKernel::takeCallDelay() {
  uint64_t d = callDelay_.load();
  while (d >> 32) {
    const uint64_t next = (d >> 32) == 1 ? 0 : d - (1ull << 32);
    if (callDelay_.compare_exchange_weak(d, next)) return (uint32_t)d;
  }
  return 0;
}

// ---- the sample kext's service ----

uint32_t SimKernel::openUserClient(UserClientHandle *handle, int32_t pid) {
  std::lock_guard<std::recursive_mutex> g(mu_);
  if (panicked_) return RC_MIG_SERVER_DIED;
  Kext *k = find(sampleTag_);
  if (!k) return RC_kIOReturnNotFound;
  ClassSpec *service = k->findClass(KB_SERVICE_CLASS_NAME);
  if (!service || service->instances == 0) return RC_kIOReturnNotFound;
  // The service's newUserClient counts the opener first (kext-sample/kext/sample_service.cpp).
  if (!openLimit_.acquire(pid)) return RC_kIOReturnNoResources;
  ClassSpec *client = k->findClass(KB_USER_CLIENT_CLASS_NAME);
  if (!client) {
    ClassSpec added;
    added.name = KB_USER_CLIENT_CLASS_NAME;
    added.superclass = "IOUserClient";
    k->classes.push_back(added);
    client = &k->classes.back();
  }
  client->instances++;
  emitInstances(*k, userClientClassName(), client->instances - 1, client->instances);
  if (handle) clients_.push_back(handle);
  clientPids_.push_back(pid);
  return RC_kIOReturnSuccess;
}

void SimKernel::closeUserClient(UserClientHandle *handle, int32_t pid) {
  std::lock_guard<std::recursive_mutex> g(mu_);
  if (handle) clients_.erase(std::remove(clients_.begin(), clients_.end(), handle), clients_.end());
  openLimit_.release(pid);
  auto pidAt = std::find(clientPids_.begin(), clientPids_.end(), pid);
  if (pidAt != clientPids_.end()) clientPids_.erase(pidAt);
  if (panicked_) return;
  Kext *k = find(sampleTag_);
  if (!k) return;
  ClassSpec *client = k->findClass(KB_USER_CLIENT_CLASS_NAME);
  if (client && client->instances > 0) {
    client->instances--;
    emitInstances(*k, userClientClassName(), client->instances + 1, client->instances);
  }
}

// ---- kernelmanagerd ----

// kernelmanagerd as at boot: only the sample's bundle installed (loadable by id again after an
// unload), nothing queued, the default delays, no controls. Under mu_ (or in the constructor).
void SimKernel::resetKernelmanagerd() {
  installed_.clear();
  installed_[KB_SAMPLE_BUNDLE_ID].spec = sampleKextSpec();
  requests_.clear();
  postedLoads_.clear();
  loadPickupArmed_ = false;
  loadPickupMs_ = 0;
  nextRequestTag_ = 0;
  resourceDelayMs_ = 10;
  loadReplyDelayMs_ = 10;
  withhold_ = false;
  resourceFaultCode_ = 0;
  resourceFaultTimes_ = 0;
  cancelFaultTimes_ = 0;
  dropTimes_ = 0;
}

bool SimKernel::hasPendingRequests(uint32_t callerTag) const {
  for (const Request &r : requests_)
    if (r.rec.callerTag == callerTag) return true;
  return false;
}

uint32_t SimKernel::loadKextWithIdentifier(const char *bundleId) {
  std::lock_guard<std::recursive_mutex> g(mu_);
  if (panicked_) return RC_kOSReturnError;
  if (!bundleId || !*bundleId) return RC_kOSKextReturnInvalidArgument;
  const std::string id(bundleId);
  if (findById(id)) return RC_kOSReturnSuccess;  // load() of a loaded kext
  auto it = installed_.find(id);
  if (it != installed_.end()) {
    uint32_t tag;
    return loadLocked(it->second.spec, &tag);
  }
  // Unknown: one "Kext Load Request" per id until kernelmanagerd takes the queue.
  if (std::find(postedLoads_.begin(), postedLoads_.end(), id) == postedLoads_.end()) {
    postedLoads_.push_back(id);
    Event e;
    e.type = EventType::LoadRequested;
    e.bundleId = id;
    emit(std::move(e));
  }
  if (!loadPickupArmed_) {  // the ping: kernelmanagerd will come for the queue
    loadPickupArmed_ = true;
    loadPickupMs_ = nowMs_ + loadReplyDelayMs_;
  }
  return RC_kOSKextReturnDeferred;
}

// kernelmanagerd takes the queued load requests (the posted set is flushed) and loads each
// id it has installed by now; an id it does not have is dropped, as kextd logs and moves on.
void SimKernel::pickUpLoadRequestsLocked() {
  loadPickupArmed_ = false;
  std::vector<std::string> ids;
  ids.swap(postedLoads_);
  for (const std::string &id : ids) {
    if (findById(id)) continue;
    auto it = installed_.find(id);
    if (it == installed_.end()) continue;
    uint32_t tag;
    (void)loadLocked(it->second.spec, &tag);
    if (panicked_) return;
  }
}

uint32_t SimKernel::requestResource(uint32_t callerTag, const char *bundleId,
                                    const char *resourceName, ResourceCallback callback,
                                    void *context, uint32_t *requestTagOut) {
  std::lock_guard<std::recursive_mutex> g(mu_);
  if (requestTagOut) *requestTagOut = kInvalidRequestTag;
  if (panicked_) return RC_kOSReturnError;
  uint32_t kr = RC_kOSReturnSuccess;
  Kext *caller = find(callerTag);
  if (!bundleId || !resourceName || !callback) kr = RC_kOSKextReturnInvalidArgument;
  else if (!caller || !caller->started) kr = RC_kOSKextReturnInvalidArgument;
  else if (caller->stopping) kr = RC_kOSKextReturnStopping;
  else if (nextRequestTag_ == kInvalidRequestTag) kr = RC_kOSKextReturnNoResources;
  if (kr == RC_kOSReturnSuccess) {
    Request r;
    r.rec.requestTag = nextRequestTag_++;
    r.rec.callerTag = callerTag;
    r.rec.callerBundleId = caller->bundleId;
    r.rec.bundleId = bundleId;
    r.rec.resourceName = resourceName;
    r.rec.requestedMs = nowMs_;
    r.rec.dueMs = nowMs_ + resourceDelayMs_;
    if (r.rec.dueMs < nowMs_) r.rec.dueMs = UINT64_MAX;
    r.callback = callback;
    r.context = context;
    Event e;
    e.type = EventType::RequestQueued;
    e.loadTag = callerTag;
    e.bundleId = r.rec.bundleId;
    e.resourceName = r.rec.resourceName;
    e.requestTag = r.rec.requestTag;
    emit(std::move(e));
    if (requestTagOut) *requestTagOut = r.rec.requestTag;
    requests_.push_back(std::move(r));
  }
  if (armed_) considerUnloads();  // considerUnloads(rescheduleOnly = true), in every case
  return kr;
}

// dispatchResource for requests_[index]: dequeued, then the callback, all holding mu_.
void SimKernel::answerRequestLocked(size_t index) {
  Request r = std::move(requests_[index]);
  requests_.erase(requests_.begin() + index);
  uint32_t code = RC_kOSReturnSuccess;
  const std::vector<uint8_t> *bytes = nullptr;
  if (resourceFaultTimes_ > 0) {
    resourceFaultTimes_--;
    code = resourceFaultCode_;
  } else {
    auto it = installed_.find(r.rec.bundleId);
    if (it != installed_.end()) {
      auto res = it->second.resources.find(r.rec.resourceName);
      if (res != it->second.resources.end()) bytes = &res->second;
    }
    if (!bytes) code = RC_kOSKextReturnNotFound;
  }
  Event e;
  e.type = EventType::RequestDelivered;
  e.loadTag = r.rec.callerTag;
  e.bundleId = r.rec.bundleId;
  e.resourceName = r.rec.resourceName;
  e.requestTag = r.rec.requestTag;
  e.code = code;
  e.length = bytes ? bytes->size() : 0;
  emit(std::move(e));
  if (dropTimes_ > 0) {  // dequeued, then dropped uncalled
    dropTimes_--;
    return;
  }
  invokeLocked(r, code, bytes);
}

// The callback runs only while its kext is started (dispatchResource checks it again).
void SimKernel::invokeLocked(const Request &r, uint32_t code, const std::vector<uint8_t> *bytes) {
  const Kext *caller = find(r.rec.callerTag);
  if (!caller || !caller->started) return;
  const void *data = bytes && !bytes->empty() ? bytes->data() : nullptr;
  const uint32_t length = bytes ? (uint32_t)bytes->size() : 0;
  r.callback(r.rec.requestTag, (int32_t)code, data, length, r.context);
}

// The scan's first pass (_OSKextConsiderUnloads): a record seen stale by the previous scan
// times out; every other one is marked stale. Backwards, as xnu walks the array.
void SimKernel::timeoutScanLocked() {
  for (size_t i = requests_.size(); i-- > 0;) {
    if (!requests_[i].rec.stale) {
      requests_[i].rec.stale = true;
      continue;
    }
    Request r = std::move(requests_[i]);
    requests_.erase(requests_.begin() + i);
    Event e;
    e.type = EventType::RequestTimedOut;
    e.loadTag = r.rec.callerTag;
    e.bundleId = r.rec.bundleId;
    e.resourceName = r.rec.resourceName;
    e.requestTag = r.rec.requestTag;
    e.code = RC_kOSKextReturnTimeout;
    emit(std::move(e));
    invokeLocked(r, RC_kOSKextReturnTimeout, nullptr);
    if (panicked_) return;
  }
}

uint32_t SimKernel::cancelRequest(uint32_t requestTag, void **contextOut) {
  std::lock_guard<std::recursive_mutex> g(mu_);
  if (cancelFaultTimes_ > 0) {  // before the lookup: nothing dequeued, the record stays
    cancelFaultTimes_--;
    return RC_kOSReturnError;
  }
  for (size_t i = 0; i < requests_.size(); i++) {
    if (requests_[i].rec.requestTag != requestTag) continue;
    Request r = std::move(requests_[i]);
    requests_.erase(requests_.begin() + i);
    if (contextOut) *contextOut = r.context;
    Event e;
    e.type = EventType::RequestCancelled;
    e.loadTag = r.rec.callerTag;
    e.bundleId = r.rec.bundleId;
    e.resourceName = r.rec.resourceName;
    e.requestTag = r.rec.requestTag;
    emit(std::move(e));
    return RC_kOSReturnSuccess;
  }
  return RC_kOSKextReturnNotFound;
}

uint32_t SimKernel::installKext(const KextSpec &spec, const Resources &resources) {
  std::lock_guard<std::recursive_mutex> g(mu_);
  if (spec.bundleId.empty()) return RC_kOSKextReturnInvalidArgument;
  Installed &in = installed_[spec.bundleId];
  in.spec = spec;
  in.resources = resources;
  return RC_kOSReturnSuccess;
}

bool SimKernel::uninstallKext(const std::string &bundleId) {
  std::lock_guard<std::recursive_mutex> g(mu_);
  return installed_.erase(bundleId) > 0;
}

bool SimKernel::installed(const std::string &bundleId) const {
  std::lock_guard<std::recursive_mutex> g(mu_);
  return installed_.count(bundleId) > 0;
}

void SimKernel::setResourceDelay(uint64_t ms) {
  std::lock_guard<std::recursive_mutex> g(mu_);
  resourceDelayMs_ = ms;
}

void SimKernel::setLoadReplyDelay(uint64_t ms) {
  std::lock_guard<std::recursive_mutex> g(mu_);
  loadReplyDelayMs_ = ms;
}

void SimKernel::withholdResources(bool on) {
  std::lock_guard<std::recursive_mutex> g(mu_);
  withhold_ = on;
}

void SimKernel::failResources(uint32_t code, uint32_t times) {
  std::lock_guard<std::recursive_mutex> g(mu_);
  resourceFaultCode_ = code;
  resourceFaultTimes_ = times;
}

void SimKernel::failCancels(uint32_t times) {
  std::lock_guard<std::recursive_mutex> g(mu_);
  cancelFaultTimes_ = times;
}

void SimKernel::dropResources(uint32_t times) {
  std::lock_guard<std::recursive_mutex> g(mu_);
  dropTimes_ = times;
}

uint32_t SimKernel::setStopping(uint32_t loadTag, bool stopping) {
  std::lock_guard<std::recursive_mutex> g(mu_);
  Kext *k = find(loadTag);
  if (!k) return RC_kOSKextReturnNotFound;
  k->stopping = stopping;
  return RC_kOSReturnSuccess;
}

void SimKernel::armAutounloadScan() {
  std::lock_guard<std::recursive_mutex> g(mu_);
  considerUnloads();
}

std::vector<RequestRecord> SimKernel::pendingRequests() const {
  std::lock_guard<std::recursive_mutex> g(mu_);
  std::vector<RequestRecord> out;
  for (const Request &r : requests_) {
    out.push_back(r.rec);
    out.back().withheld = withhold_;
  }
  return out;
}

uint32_t SimKernel::pendingRequestCount(uint32_t callerTag) const {
  std::lock_guard<std::recursive_mutex> g(mu_);
  uint32_t n = 0;
  for (const Request &r : requests_)
    if (r.rec.callerTag == callerTag) n++;
  return n;
}

// ---- SampleKextApi ----

// Drops kexts marked removed, and their bundle ids, in one linear sweep.
void SimKernel::compactLocked() {
  for (const std::unique_ptr<Kext> &k : kexts_) {
    if (!k->removed) continue;
    byId_.erase(k->bundleId);
    // Its events may still be in the ring: keep its id until the ring has moved past them.
    goneIds_[k->tag] = k->bundleId;
    goneOrder_.emplace_back(nextSeq_, k->tag);
  }
  kexts_.erase(std::remove_if(kexts_.begin(), kexts_.end(),
                              [](const std::unique_ptr<Kext> &k) { return k->removed; }),
               kexts_.end());
}

SampleKextApi::SampleKextApi(std::shared_ptr<SimKernel> kernel) : kernel_(std::move(kernel)) {}

uint32_t SampleKextApi::retainKext(uint32_t loadTag) {
  return kernel_->retainKextWithLoadTag(loadTag);
}

uint32_t SampleKextApi::releaseKext(uint32_t loadTag) {
  return kernel_->releaseKextWithLoadTag(loadTag);
}

uint32_t SampleKextApi::ownLoadTag() { return kernel_->sampleLoadTag(); }

const char *SampleKextApi::ownIdentifier() { return KB_SAMPLE_BUNDLE_ID; }

const char *SampleKextApi::ownVersion() { return KB_SAMPLE_VERSION; }

uint32_t SampleKextApi::loadKextWithIdentifier(const char *bundleId) {
  return kernel_->loadKextWithIdentifier(bundleId);
}

// The callback is the sample kext's code: the request is the sample kext's.
uint32_t SampleKextApi::requestResource(const char *bundleId, const char *resourceName,
                                        ResourceCallback callback, void *context,
                                        uint32_t *requestTag) {
  return kernel_->requestResource(kernel_->sampleLoadTag(), bundleId, resourceName, callback,
                                  context, requestTag);
}

uint32_t SampleKextApi::cancelRequest(uint32_t requestTag, void **context) {
  return kernel_->cancelRequest(requestTag, context);
}

void *SampleKextApi::allocBuffer(uint32_t size) { return ::operator new(size, std::nothrow); }

void SampleKextApi::freeBuffer(void *block, uint32_t size) {
  (void)size;
  ::operator delete(block);
}

}  // namespace sim
}  // namespace kb
