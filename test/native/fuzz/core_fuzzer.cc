// libFuzzer harness for the user-client core (kext-sample/core/) on the simulated kernel (sim/),
// driven through SimTransport (the MIG edges) and directly (raw UserClientCore), up to 4 clients
// on one SimKernel per input. Build and run: scripts/fuzz.sh (README.md next to this file).
//
// The input is a byte program read front to back (gen-corpus.js writes seeds in the same format;
// see "Input format" below). Every operation is checked against a model written from
// docs/design.md (§2 the protocol, §2.3 the ledger, §2.5 lock discipline) and
// docs/kernel-facts.md, not from the core:
//   - the exact IOReturn of every call (MIG edges, selector/shape checks, privilege, 64-bit tags,
//     ledger policy, closed/terminated clients) and, on success, the exact outputs: getInfo
//     fields, {OSReturn, heldAfter}, the held pairs, and every batch entry in order;
//   - on anything but success: no outputs reported and output buffers untouched; on success
//     nothing written past what the call reports (buffers are exact-size heap blocks filled with
//     a sentinel, so ASan catches overruns and the sentinel catches over-long answers);
//   - raw cores run on a KernelApi decorator (Probe) that checks every KPI call as it happens:
//     the model says which call the design requires next (which KPI, which tag; for close, any
//     unit still held) and what the kernel must answer (injected faults are consumed one per KPI
//     call, in order); no KPI is ever called with the client lock held; stop() (terminate())
//     takes no lock and calls no KPI. The Probe can run a fuzz-chosen action *during* a KPI call,
//     before or after forwarding it (a "mid-call hook"): close or terminate the same client,
//     close or destroy another, terminate the sample's service, unload the sample kext, or run
//     the autounload scan, as another thread of the real kernel could at that moment;
//   - between steps: the sim never panicked, and for every kext
//       retainCount(tag) == 2 + Σ(units every present client's ledger holds, open, stopped or
//                                closed with a refused release) + leaked(tag) + #dependents,
//     where leaked counts the give-back releases the kernel refused (see "Modelling choices");
//     the model's ledgers equal the core's (the held selector, heldCount, outstanding); the
//     user-client instance count equals the clients registered with the kernel; the service and
//     the sample kext are up exactly when the model says so.
//     Speed (issue 15): after each step only the tags and clients the step touched are checked
//     (every tag of a KPI call, model or core, every kext loaded or unloaded and its
//     dependencies); the full scan, against the kernel's own table, runs every kFullCheckEvery
//     steps and at the end of every input. The model keeps its own kext table, so no step reads
//     the kernel's.
// A violation prints what went wrong and the step, then aborts (libFuzzer records the input).
// KB_FUZZ_TRACE=1 prints every decoded step; KB_FUZZ_SEEDCHECK=1 also fails an input that reads
// past its end or stops before it (how the seed corpus is checked to still parse);
// KB_FUZZ_STRICT=1 fails on the two product weaknesses the default model tolerates (below);
// KB_FUZZ_PROFILE=1 prints thread CPU time per operation kind at exit.
//
// Modelling choices:
//   - a transport client "dies" by being destroyed without close (~SimTransport: clientDied);
//     a raw core's "die" is close() (what the kext's clientDied ends in) and then destruction;
//   - raw cores register with the kernel as user clients of the sample's service (so they count
//     as instances and the service's termination stops them), unless opened "detached" (then
//     the kernel does not know them: they model a core whose kext object the sim cannot see);
//   - where the design leaves the order of two refusals open, the model follows the protocol
//     table's order: shape before privilege before the 64-bit tag check before the closed check;
//   - injected KPI faults answer failure codes only. They stay in force for raw-core closes
//     (a refused release is put back and close stops; a later close retries) and for a retain's
//     give-back release (a refused give-back stays retained with no ledger entry: counted in
//     leaked). They are cleared before a transport's close and before any "die": SimTransport
//     closes once, so nothing would retry (the kext's free() does), and the real KPI never
//     refuses the release of a held tag;
//   - the user-client class's instance count is never set directly (only open/close move it);
//   - single-threaded: the other threads of the real kernel are the mid-call hooks.

// Coverage feedback comes from the product (core, sim, transport) only: the harness, and the
// standard-library templates it instantiates, carry no coverage instrumentation (ASan and UBSan
// stay). The model mirrors the product's paths, so its edges told libFuzzer nothing new, while
// each run fed it ~2,000 more features to rank (issue 15: a third of the time went there).
#pragma clang attribute push(__attribute__((no_sanitize("coverage"))), apply_to = function)

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "protocol.gen.h"
#include "sim_kernel.h"
#include "sim_transport.h"
#include "user_client_core.h"

using KextInfo = kb::sim::KextRecord;
using kb::MethodArgs;
using kb::SimTransport;
using kb::Transport;
using kb::UserClientCore;
using kb::sim::ClassSpec;
using kb::sim::KextSpec;
using kb::sim::SimKernel;

namespace {

// ---------------------------------------------------------------------------------------------
// Input format (all multi-byte integers little-endian; a read past the end yields zeros):
//   byte 0           kernel options: bit0 = global autounload off, bit1 = explicit unload off
//   then operations until the input ends, kMaxSteps, or the work budget (kWorkBudget calls +
//   batch tags) is spent: op byte % kOpCount, then the operands listed in the enum below.
// A "value" operand (tags, scalars) is a mode byte % 8 followed by the mode's bytes:
//   0 +idx  loaded kext tag (index into the loaded kexts, load order)   1  the sample kext's tag
//   2       0xFFFFFFFF (kOSKextInvalidLoadTag)            3 +idx  any tag ever issued (maybe gone)
//   4 +idx+hi  a loaded tag with bits above 32 set         5 +u64  raw 64-bit value
//   6 +d    a tag never issued yet (next + d)              7 +idx  a tag some open client holds
// Batch tags are values cut to their low 32 bits.
// A "size" operand is a mode byte % 4: 0 → 0; 1 +u8 → small; 2 +idx → kSizes[idx % 32];
// 3 +u16 → raw.
// ---------------------------------------------------------------------------------------------

enum Op : uint8_t {
  kOpFault = 0,         // kpi bit (0 retain, 1 release), code index, times (% 4); all-zero
                        // operands clear the retain faults: runs of zero bytes stay cheap
  kOpCall = 1,          // slot, generic call (see doCall)
  kOpClose = 2,         // slot
  kOpDie = 3,           // slot
  kOpAdvance = 4,       // mode, [u32]
  kOpLoad = 5,          // see doLoad
  kOpUnload = 6,        // value
  kOpSetInstances = 7,  // value, class choice, count
  kOpRetain = 8,        // slot, value     (a well-formed retain)
  kOpRelease = 9,       // slot, value     (a well-formed release)
  kOpHeld = 10,         // slot
  kOpGetInfo = 11,      // slot
  kOpRepeat = 12,       // slot, retain(0)/release(1), value, u16 count (% 300)
  kOpLoadedKexts = 13,  // slot
  kOpOpen = 14,         // slot, flags (bit0 unprivileged, bit1 raw core, bit2 raw core detached)
  kOpBatch = 15,        // slot, flags, u16 count, u8 distinct, values (see doBatch)
  kOpTerminate = 16,    // slot: IOUserClient::stop of that one client
  kOpHooked = 17,       // hook (see doHooked), then one more operation run with it armed
  // Issue 13 (selectors 6-9; completions arrive during kOpAdvance and the scan hook):
  kOpRequest = 18,      // slot, resource (% kResCount), flags (1 empty id, 2 name without NUL)
  kOpCancelReq = 19,    // slot, pick (bit7: a u32 tag follows; else the pick-th model request)
  kOpFetch = 20,        // slot, pick (as kOpCancelReq), flags (1 a wrong offset)
  kOpLoadId = 21,       // slot, mode (% 4: unknown id, the sample's, a loaded kext's, bad id)
  kOpResCtl = 22,       // control (% 6: withhold on, off, fail next 1-2, delay 0, 10, 70 s)
  kOpCount = 23
};

const int kMaxClients = 4;
const int kMaxSteps = 600;
const uint32_t kMaxRepeat = 300;
const int kFullCheckEvery = 64;
const uint64_t kWorkBudget = 40000;  // calls + batch tags per input: bounds one execution's time
const uint32_t kInvalid = 0xFFFFFFFFu;
const uint32_t kInbandMax = 4096;
const char *const kBundleIds[] = {"com.fuzz.a", "com.fuzz.b", "com.fuzz.c", "com.fuzz.d",
                                  "com.fuzz.e", "com.fuzz.f", "com.fuzz.g", "com.fuzz.h"};
const int kBundleCount = 8;
const int kKpiRetain = 0, kKpiRelease = 1;

bool gTrace = false;
bool gSeedCheck = false;
// KB_FUZZ_STRICT=1: fail on the two product weaknesses the default model tolerates (README):
// a retain given back after its client closed whose release the kernel refuses stays retained
// with no ledger (core), and a transport close whose release the kernel refuses is never retried
// (SimTransport; the kext's free() retries). Both need an injected fault.
bool gStrict = false;
bool gProfile = false;  // KB_FUZZ_PROFILE=1: thread CPU time per operation kind, printed at exit

// Profile slots: the operations, then the fixed per-input parts.
enum { kProfKernel = kOpCount, kProfStepCheck, kProfEnd, kProfWhole, kProfSlots };
struct ProfSlot {
  uint64_t ns = 0, count = 0;
};
ProfSlot gProf[kProfSlots];

uint64_t cpuNs() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

struct ProfScope {
  explicit ProfScope(int slot) : slot_(slot), t0_(gProfile ? cpuNs() : 0) {}
  ~ProfScope() {
    if (!gProfile) return;
    gProf[slot_].ns += cpuNs() - t0_;
    gProf[slot_].count++;
  }
  int slot_;
  uint64_t t0_;
};

void printProfile() {
  static const char *const names[kProfSlots] = {
      "fault", "call", "close", "die", "advance", "load", "unload", "setInstances", "retain",
      "release", "held", "getInfo", "repeat", "loadedKexts", "open", "batch", "terminate",
      "hooked", "request", "cancelRequest", "fetch", "loadById", "resourceControl",
      "(new kernel + world)", "(step checks)", "(end: dies + full check)",
      "(whole inputs)"};
  const uint64_t total = gProf[kProfWhole].ns;
  fprintf(stderr, "\nKB_FUZZ_PROFILE: thread CPU time by operation (hooked: the hook op's own "
          "time, its operation counted separately)\n");
  for (int i = 0; i < kProfSlots; i++)
    if (gProf[i].count)
      fprintf(stderr, "  %-26s %9llu x %8.2f us = %5.1f%%\n", names[i],
              (unsigned long long)gProf[i].count, gProf[i].ns / 1000.0 / gProf[i].count,
              100.0 * gProf[i].ns / (total ? total : 1));
}
int gStep = 0;

#define TRACE(...)                         \
  do {                                     \
    if (gTrace) {                          \
      fprintf(stderr, "[%d] ", gStep);     \
      fprintf(stderr, __VA_ARGS__);        \
      fprintf(stderr, "\n");               \
    }                                      \
  } while (0)

[[noreturn]] void fail(const char *file, int line, const char *cond, const std::string &msg) {
  fprintf(stderr, "\n==== kextbridge core_fuzzer: INVARIANT VIOLATED at step %d ====\n", gStep);
  fprintf(stderr, "%s:%d: %s\n%s\n", file, line, cond, msg.c_str());
  fprintf(stderr, "(rerun the crash input with KB_FUZZ_TRACE=1 to see every step)\n");
  abort();
}

std::string fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char *f, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, f);
  vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

#define CHECK(cond, ...) \
  do {                   \
    if (!(cond)) fail(__FILE__, __LINE__, #cond, fmt(__VA_ARGS__)); \
  } while (0)

class Reader {
 public:
  Reader(const uint8_t *d, size_t n) : d_(d), n_(n) {}
  bool done() const { return pos_ >= n_; }
  bool overran() const { return overran_; }
  uint8_t u8() {
    if (pos_ < n_) return d_[pos_++];
    overran_ = true;
    return 0;
  }
  // Little-endian; the low part is read first (sequenced explicitly, not left to the
  // unspecified order of operands).
  uint16_t u16() {
    uint16_t lo = u8();
    return (uint16_t)(lo | (u8() << 8));
  }
  uint32_t u32() {
    uint32_t lo = u16();
    return lo | ((uint32_t)u16() << 16);
  }
  uint64_t u64() {
    uint64_t lo = u32();
    return lo | ((uint64_t)u32() << 32);
  }

 private:
  const uint8_t *d_;
  size_t n_;
  size_t pos_ = 0;
  bool overran_ = false;
};

const char *kpiName(int kpi) {
  return kpi == kKpiRetain ? "OSKextRetainKextWithLoadTag" : "OSKextReleaseKextWithLoadTag";
}

const char *selName(uint32_t s) {
  static const char *const n[] = {"getInfo", "retain", "release", "held", "retainBatch",
                                  "releaseBatch", "loadKextWithIdentifier", "requestResource",
                                  "fetchResource", "cancelRequest"};
  return s < 10 ? n[s] : "?";
}

// The resources the sample's bundle carries in every input (installed on the first request).
const char *const kResNames[] = {"empty", "one", "page", "max", "over", "absent"};
const int kResCount = 6;
const uint32_t kResSizes[] = {0, 1, 5000, kb::kMaxResourceSize, kb::kMaxResourceSize + 1, 0};
uint8_t resByte(int res, uint32_t i) { return (uint8_t)(i * 13 + res * 7 + (i >> 9)); }

uint32_t readU32LE(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

void writeU32LE(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

// The client lock of a raw core. Single-threaded, so "held" means held by this thread: taking
// it again would deadlock a real IOLock, and the Probe refuses any KPI call while it is held.
class FuzzLock final : public kb::Lock {
 public:
  void lock() override {
    CHECK(!held_, "the client lock was taken while this thread already held it (a deadlock)");
    held_ = true;
    acquisitions_++;
  }
  void unlock() override {
    CHECK(held_, "the client lock was released while not held");
    held_ = false;
  }
  bool held() const { return held_; }
  uint64_t acquisitions() const { return acquisitions_; }

 private:
  bool held_ = false;
  uint64_t acquisitions_ = 0;
};

struct World;

// The raw core's KernelApi: forwards to the sim's, checking each KPI call against the model
// as it happens, and runs the armed mid-call hook.
class Probe final : public kb::KernelApi {
 public:
  Probe(World &w, int slot, kb::KernelApi &inner, FuzzLock &lock)
      : w_(w), slot_(slot), inner_(inner), lock_(lock) {}
  uint32_t retainKext(uint32_t tag) override { return kpi(kKpiRetain, tag); }
  uint32_t releaseKext(uint32_t tag) override { return kpi(kKpiRelease, tag); }
  uint32_t ownLoadTag() override { return inner_.ownLoadTag(); }
  const char *ownIdentifier() override { return inner_.ownIdentifier(); }
  const char *ownVersion() override { return inner_.ownVersion(); }
  // The request KPIs: checked for the lock discipline (not modelled call by call: the request
  // model checks their effects); no hook fires inside them.
  uint32_t loadKextWithIdentifier(const char *id) override {
    noLock("OSKextLoadKextWithIdentifier");
    return inner_.loadKextWithIdentifier(id);
  }
  uint32_t requestResource(const char *id, const char *name, kb::ResourceCallback cb, void *ctx,
                           uint32_t *tag) override {
    noLock("OSKextRequestResource");
    return inner_.requestResource(id, name, cb, ctx, tag);
  }
  uint32_t cancelRequest(uint32_t tag, void **ctx) override {
    noLock("OSKextCancelRequest");
    return inner_.cancelRequest(tag, ctx);
  }
  void *allocBuffer(uint32_t n) override {
    noLock("allocBuffer");
    return inner_.allocBuffer(n);
  }
  void freeBuffer(void *b, uint32_t n) override { inner_.freeBuffer(b, n); }
  bool inTerminate = false;  // terminate() is running: it must call no KPI

 private:
  uint32_t kpi(int kpi, uint32_t tag);
  void noLock(const char *what) {
    CHECK(!inTerminate, "client %d: terminate() called %s", slot_, what);
    CHECK(!lock_.held(), "client %d: %s called with the client lock held", slot_, what);
  }
  World &w_;
  int slot_;
  kb::KernelApi &inner_;
  FuzzLock &lock_;
};

// A raw core the way the kext's IOUserClient holds one: its own lock and kernel API, and (when
// registered) known to the kernel as an open user client of the sample's service.
struct RawCore final : public kb::sim::UserClientHandle, public kb::AsyncNotifier {
  RawCore(World &w, int slot, bool privileged);
  ~RawCore();
  void serviceTerminated() override;  // IOUserClient::stop, from the sim, kext lock held
  // sendAsyncResult64 / releaseAsyncReference64 (under the core's lock, from the callback).
  void sendAsyncResult(const kb::AsyncRef &ref, uint32_t result, const uint64_t *args,
                       uint32_t count) override;
  void releaseAsyncReference(const kb::AsyncRef &ref) override;
  int32_t refs = 0;  // async references the core owns (+1 per accepted call, -1 per release)
  void terminateChecked();            // core.terminate(), checked to take no lock, call no KPI

  World &w;
  int slot;
  kb::sim::SampleKextApi api;
  FuzzLock lock;
  Probe probe;
  UserClientCore core;
  bool registered = false;  // in the kernel's list of user clients
  uint32_t stopCalls = 0;   // serviceTerminated() calls so far
};

// A fixed-capacity vector: no allocation (under ASan every malloc/free pair costs ~2 µs).
template <class T, uint32_t N>
class Small {
 public:
  void push_back(const T &v) {
    CHECK(n_ < N, "Small<%u> overflow", N);
    v_[n_++] = v;
  }
  uint32_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  T &operator[](uint32_t i) { return v_[i]; }
  const T &operator[](uint32_t i) const { return v_[i]; }
  const T *data() const { return v_; }

 private:
  T v_[N];
  uint32_t n_ = 0;
};

// The model ledger of one client: units held per load tag. Only a tag the kernel answered a
// retain of with success is ever added, so every tag is below the model's table size.
class Held {
 public:
  uint32_t count(uint32_t t) const { return t < n_.size() ? n_[t] : 0; }
  void add(uint32_t t) {
    CHECK(t < (1u << 20), "the model ledger was asked to hold tag %u", t);
    if (t >= n_.size()) n_.resize(t + 1, 0);
    if (n_[t]++ == 0) distinct_++;
    units_++;
  }
  void take(uint32_t t) {
    if (!count(t)) return;
    if (--n_[t] == 0) distinct_--;
    units_--;
  }
  void clear() {  // keeps the capacity
    std::fill(n_.begin(), n_.end(), 0);
    distinct_ = units_ = 0;
  }
  bool empty() const { return units_ == 0; }
  uint32_t units() const { return units_; }
  uint32_t distinct() const { return distinct_; }
  uint32_t first() const { return nth(0); }
  uint32_t nth(uint32_t i) const {  // the i-th distinct held tag, in tag order
    for (uint32_t t = 0; t < n_.size(); t++)
      if (n_[t] && i-- == 0) return t;
    return 0;
  }
  template <class F>
  void each(F f) const {
    for (uint32_t t = 0; t < n_.size(); t++)
      if (n_[t]) f(t, n_[t]);
  }

 private:
  std::vector<uint32_t> n_;
  uint32_t distinct_ = 0;
  uint32_t units_ = 0;
};

struct Client {
  bool present = false;
  bool raw = false;
  bool registered = false;  // counted as a user-client instance of the sample's service
  bool privileged = false;
  bool closed = false;   // clientClose ran (transport: its port is gone)
  bool stopped = false;  // IOUserClient::stop ran: calls answer kIOReturnNotOpen, ledger kept
  std::unique_ptr<Transport> transport;
  std::unique_ptr<RawCore> rawCore;
  Held held;  // the model ledger: units the core holds per tag
  // The model request table: each accepted request until it is cancelled, completed without
  // bytes kept, or fully fetched. stopped: a stopped client's requests may be dequeued by the
  // kernel without a completion (the core delivers nothing to it), so they are "unknown".
  struct MReq {
    uint32_t tag;
    int res;
    bool ready;       // completed with bytes kept
    uint32_t length;  // ready: the delivery's length
    uint32_t fetched;
  };
  std::vector<MReq> reqs;
  MReq *findReq(uint32_t tag) {
    for (MReq &q : reqs)
      if (q.tag == tag) return &q;
    return nullptr;
  }
  uint32_t pendingReqs() const {
    uint32_t n = 0;
    for (const MReq &q : reqs) n += !q.ready;
    return n;
  }

  uint32_t count(uint32_t tag) const { return held.count(tag); }
  void add(uint32_t tag) { held.add(tag); }
  void take(uint32_t tag) { held.take(tag); }
  bool open() const { return present && !closed && !stopped; }
  bool live() const { return present && !closed; }
  void reset() {  // an empty slot, keeping the ledger's capacity
    present = raw = registered = privileged = closed = stopped = false;
    transport.reset();
    rawCore.reset();
    held.clear();
    reqs.clear();
  }
};

// A mid-call hook: when the at-th KPI call of the current operation (through any raw core's
// Probe, nested calls included) arrives, run `action` before or after forwarding it.
struct Hook {
  bool armed = false;
  uint32_t at = 0;
  bool after = false;
  uint8_t action = 0;
  uint8_t arg = 0;
};

// The model of one core operation in progress: a retain or release (single or batch, tag by
// tag with the ledger rule) or a close (one release per held unit, any order). ctxNeed() runs
// the model to the next KPI call the design requires; the Probe (raw cores, as the call
// happens) or ctxRunModelOnly() (transports, before the call) feeds each KPI answer back.
struct CtxEntry {
  uint32_t code;
  uint32_t heldAfter;
  bool refusal;  // the user client's own refusal of the tag, not the kernel's answer
};

std::vector<CtxEntry> &takeEntries(World &w);
void returnEntries(World &w);

struct Ctx {
  enum Kind { kNone, kRetain, kRelease, kClose };
  enum Stage { kIdle, kAwait, kAfter, kDone };
  typedef CtxEntry Entry;
  Ctx(World &world, Kind k, int s) : w(world), kind(k), slot(s), entries(takeEntries(world)) {}
  ~Ctx() { returnEntries(w); }
  Ctx(const Ctx &) = delete;
  Ctx &operator=(const Ctx &) = delete;

  World &w;

  Kind kind;
  int slot;
  const uint32_t *tags = nullptr;
  uint32_t n = 0;
  uint32_t next = 0;  // index of the tag in progress
  Stage stage = kIdle;
  int wantKpi = 0;        // the KPI awaited (kAwait)
  uint32_t tag = 0;       // ... and its tag
  bool anyHeld = false;   // close: any tag with a held unit
  bool tookUnit = false;  // release: a unit was taken out of the ledger for this call
  bool giveBack = false;  // the awaited release gives back a retain whose client closed
  uint32_t kr = 0;        // the KPI's answer (kAfter)
  std::vector<Entry> &entries;  // pooled (World::entryPool)
  uint32_t released = 0;  // close: releases the kernel accepted
};

// The model's own kext table: every kext ever loaded, indexed by load tag (tags come from a
// counter and are never reused). Plain data (names are static strings), so copying the default
// world into each input allocates once.
struct MKext {
  struct Cls {
    const char *name;
    uint32_t instances;  // the sample's user-client class: World::ucInstances instead
  };
  uint32_t tag = 0;
  const char *bundleId = "";
  const char *version = "";
  uint32_t deps[4] = {0, 0, 0, 0};  // each dependency, once, holds a reference on it
  uint32_t ndeps = 0;
  Cls classes[2] = {};
  uint32_t nclasses = 0;
  bool component = false;          // __kernel__ and the com.apple.kpi.* interfaces
  bool unloadUnsupported = false;
  bool loaded = true;
  Cls *findClass(const char *name) {
    for (uint32_t i = 0; i < nclasses; i++)
      if (strcmp(classes[i].name, name) == 0) return &classes[i];
    return nullptr;
  }
};

struct World {
  std::shared_ptr<SimKernel> kernel;
  Client clients[kMaxClients];
  uint32_t sampleTag = 0;
  uint32_t issuedTagsEnd = 0;  // every tag below this has been handed out at some point
  uint32_t ucInstances = 0;    // clients registered with the kernel
  bool unloadEnabled = true;
  bool autounloadEnabled = true;
  std::vector<MKext> kexts;          // the model's kext table, index == tag
  std::vector<uint32_t> dependents;  // tag → loaded kexts that depend on it
  std::vector<uint32_t> loadedTags;  // the loaded ones, in load (= tag) order
  // Injected KPI faults (SimKernel::injectFault), [0] retain, [1] release: the next `times`
  // calls answer `code` and change nothing. Only failure codes: a fault answering success
  // would be a kernel that lies, which no ledger can survive.
  uint32_t faultCode[2] = {0, 0};
  uint32_t faultTimes[2] = {0, 0};
  std::map<uint32_t, uint32_t> leaked;  // retains no ledger records (a refused give-back)
  // What the current step touched (the incremental check).
  std::vector<uint32_t> touched;
  uint32_t touchedClients = 0;  // bit per slot
  // Mid-call machinery.
  std::vector<Ctx *> ctx;  // operations in progress, innermost last
  Hook hook;
  uint32_t opKpiCalls = 0;  // KPI calls through any Probe during the current operation
  uint64_t work = 0;
  uint32_t tableReads = 0;  // loadedKexts operations so far
  // Scratch, kept between calls (allocation is what costs under ASan).
  std::vector<uint32_t> batchTags;    // doBatch's tags
  std::vector<uint32_t> decodedTags;  // the batch input as the core reads it
  std::vector<CtxEntry> entryPool[8];  // Ctx::entries, by nesting depth
  uint32_t liveCtx = 0;
  // The request model (issue 13), reset per input by resetRequestModel().
  bool resourcesInstalled = false;
  uint32_t nextReqTag = 0;       // the kernel's request tags, from 0 up
  uint32_t resFaultTimes = 0;    // failResources: at most this many completions fail
  uint64_t completions = 0;
  struct Sink;
  Sink *sinks = nullptr;         // one per slot, for transports
};

void onCompletion(World &w, int slot, uint32_t result, const uint64_t *args, uint32_t n);

struct World::Sink final : public kb::AsyncSink {
  World *w = nullptr;
  int slot = 0;
  void asyncCompleted(uint64_t refcon, uint32_t result, const uint64_t *args, uint32_t n) override {
    CHECK(refcon == 0xC0DE0000u + (uint32_t)slot, "transport %d: completion with refcon 0x%llx", slot,
          (unsigned long long)refcon);
    onCompletion(*w, slot, result, args, n);
  }
};

const uint32_t kResFaultCode = kb::RC_kOSKextReturnNoMemory;

void resetRequestModel(World &w) {
  static World::Sink sinks[kMaxClients];
  for (int i = 0; i < kMaxClients; i++) {
    sinks[i].w = &w;
    sinks[i].slot = i;
  }
  w.sinks = sinks;
  w.resourcesInstalled = false;
  w.nextReqTag = 0;
  w.resFaultTimes = 0;
}

// One user-client call as the caller makes it.
struct CallSpec {
  uint32_t selector = 0;
  Small<uint64_t, 20> scalars;
  bool nullScalarIn = false;  // pass nullptr for the scalar input when there are none
  uint32_t inStructSize = 0;
  uint8_t inFill = 0;
  const uint32_t *inTags = nullptr;  // when set, the struct input is these tags, repeated
  uint32_t nInTags = 0;
  uint32_t reqOut = 0;
  uint32_t reqStruct = 0;
  bool nullOuts = false;   // pass nullptr for zero-sized outputs (else a 0-byte allocation)
  // raw core only:
  bool outOfLine = false;
  bool nullScalarOut = false;  // nullptr scalar output even with a nonzero count
  bool nullStructOut = false;  // nullptr struct output even with a nonzero size
  bool nullIns = false;        // nullptr scalar and struct inputs even with nonzero counts
  bool async = false;          // IOConnectCallAsyncMethod (no selector is asynchronous)
};

void touch(World &w, uint32_t tag) { w.touched.push_back(tag); }

std::vector<CtxEntry> &takeEntries(World &w) {
  CHECK(w.liveCtx < 8, "operation contexts nested too deep");
  std::vector<CtxEntry> &e = w.entryPool[w.liveCtx++];
  e.clear();
  return e;
}

void returnEntries(World &w) { w.liveCtx--; }

// ---- the model's kext table ----

MKext *modelKext(World &w, uint32_t tag) {  // a loaded kext, or null
  return tag < w.kexts.size() && w.kexts[tag].loaded ? &w.kexts[tag] : nullptr;
}

bool serviceUp(World &w) {  // IOServiceOpen finds the sample's service
  MKext *k = modelKext(w, w.sampleTag);
  MKext::Cls *c = k ? k->findClass(KB_SERVICE_CLASS_NAME) : nullptr;
  return c && c->instances > 0;
}

uint32_t dependentsOf(World &w, uint32_t tag) {
  return tag < w.dependents.size() ? w.dependents[tag] : 0;
}

bool hasInstances(World &w, MKext &k, bool exceptService) {
  if (k.tag == w.sampleTag && w.ucInstances) return true;  // open user clients are instances
  for (uint32_t i = 0; i < k.nclasses; i++)
    if (k.classes[i].instances &&
        !(exceptService && k.tag == w.sampleTag && !strcmp(k.classes[i].name, KB_SERVICE_CLASS_NAME)))
      return true;
  return false;
}

void rebuildLoadedTags(World &w) {
  w.loadedTags.clear();
  for (MKext &k : w.kexts)
    if (k.loaded) w.loadedTags.push_back(k.tag);
  w.issuedTagsEnd = (uint32_t)w.kexts.size();
  w.dependents.resize(w.kexts.size(), 0);
}

// Unloaded: its dependencies lose the reference it held.
void markUnloaded(World &w, MKext &k) {
  k.loaded = false;
  touch(w, k.tag);
  for (uint32_t i = 0; i < k.ndeps; i++) {
    w.dependents[k.deps[i]]--;
    touch(w, k.deps[i]);
  }
  rebuildLoadedTags(w);
}

// The default world (design §3): __kernel__ at tag 0, the com.apple.kpi.* interfaces, and the
// sample kext with one live service instance and no user clients. Read from the first kernel of
// the process and checked against the design, then copied into every input (each input's final
// full scan compares the model with the kernel's table again).
std::vector<MKext> gDefaultWorld;
std::deque<std::string> gNames;  // storage for the default world's names

const char *intern(const std::string &n) {
  for (const std::string &have : gNames)
    if (have == n) return have.c_str();
  gNames.push_back(n);
  return gNames.back().c_str();
}

void buildDefaultWorld(SimKernel &kernel) {
  const std::vector<KextInfo> ks = kernel.loadedKexts();
  const uint32_t sample = kernel.sampleLoadTag();
  for (const KextInfo &r : ks) {
    MKext m;
    m.tag = r.loadTag;
    CHECK(m.tag == gDefaultWorld.size(), "default world: tag %u at position %zu", m.tag,
          gDefaultWorld.size());
    m.bundleId = intern(r.bundleId);
    m.version = intern(r.version);
    CHECK(r.dependencies.size() <= 4 && r.classes.size() <= 2, "default world: %s is too big "
          "for the model's table", m.bundleId);
    for (uint32_t d : r.dependencies) m.deps[m.ndeps++] = d;
    for (const ClassSpec &c : r.classes) m.classes[m.nclasses++] = {intern(c.name), c.instances};
    m.component = m.tag == 0 || r.bundleId.compare(0, 14, "com.apple.kpi.") == 0;
    if (m.tag == 0) CHECK(r.bundleId == "__kernel__", "default world: tag 0 is %s", m.bundleId);
    if (m.tag == sample) {
      CHECK(r.bundleId == KB_SAMPLE_BUNDLE_ID, "default world: the sample is %s", m.bundleId);
      MKext::Cls *svc = m.findClass(KB_SERVICE_CLASS_NAME), *uc = m.findClass(KB_USER_CLIENT_CLASS_NAME);
      CHECK(svc && svc->instances == 1 && uc && uc->instances == 0,
            "default world: the sample's service or user-client class is not as designed");
    } else {
      CHECK(m.component, "default world: unexpected kext %s", m.bundleId);
    }
    gDefaultWorld.push_back(m);
  }
  // Nothing is retained: each count is the kernel's own plus one per dependent.
  for (const KextInfo &r : ks) {
    int32_t dependents = 0;
    for (const MKext &m : gDefaultWorld)
      dependents += (int32_t)std::count(m.deps, m.deps + m.ndeps, r.loadTag);
    CHECK(r.retainCount == dependents, "default world: %s has OSBundleRetainCount %d, %d "
          "dependents", r.bundleId.c_str(), r.retainCount, dependents);
  }
}

// ---- the kernel's answer (kernel-facts §3.1/§3.2) ----

// What OSKextRetain/ReleaseKextWithLoadTag answer right now: an injected fault first (one per
// call, in order), then the invalid tag, then found or not. (retainCount is -1 exactly when no
// loaded kext has the tag; the full check cross-checks it against loadedKexts().)
uint32_t kernelAnswer(World &w, int kpi, uint32_t tag) {
  if (w.faultTimes[kpi]) {
    w.faultTimes[kpi]--;
    return w.faultCode[kpi];
  }
  if (tag == kInvalid) return kb::RC_kOSKextReturnInvalidArgument;
  return w.kernel->retainCount(tag) >= 0 ? kb::RC_kOSReturnSuccess : kb::RC_kOSKextReturnNotFound;
}

// ---- the per-tag model (design §2.3, §2.5) ----

void entry(Ctx &x, uint32_t code, uint32_t heldAfter, bool refusal) {
  x.entries.push_back({code, heldAfter, refusal});
  x.next++;
  x.stage = Ctx::kIdle;
}

void ctxStart(Ctx &x, Client &c) {
  x.giveBack = x.anyHeld = x.tookUnit = false;
  switch (x.kind) {
    case Ctx::kNone:
      x.stage = Ctx::kDone;
      return;
    case Ctx::kClose:
      // Everything still held is released, one KPI call per unit.
      if (c.held.empty()) {
        x.stage = Ctx::kDone;
        return;
      }
      x.wantKpi = kKpiRelease;
      x.anyHeld = true;
      x.stage = Ctx::kAwait;
      return;
    case Ctx::kRetain:
    case Ctx::kRelease: {
      // A closed or terminated client answers no more tags: the entries so far are the answer.
      if (x.next == x.n || !c.open()) {
        x.stage = Ctx::kDone;
        return;
      }
      const uint32_t t = x.tags[x.next];
      x.tag = t;
      if (x.kind == Ctx::kRetain) {
        // The per-client cap on outstanding retains (limits.ledgerCapacity).
        if (c.held.units() >= kb::kLedgerCapacity)
          return entry(x, kb::RC_kIOReturnNoResources, c.count(t), true);
        x.wantKpi = kKpiRetain;
      } else {
        // Only what this client retained may be released; kOSKextInvalidLoadTag goes to the
        // kernel so the caller sees the kernel's own answer.
        x.tookUnit = c.count(t) > 0;
        if (!x.tookUnit && t != kInvalid) return entry(x, kb::RC_kIOReturnNotPermitted, 0, true);
        x.wantKpi = kKpiRelease;
      }
      x.stage = Ctx::kAwait;
      return;
    }
  }
}

void ctxAfter(World &w, Ctx &x, Client &c) {
  const uint32_t t = x.tag, kr = x.kr;
  const bool ok = kr == kb::RC_kOSReturnSuccess;
  if (x.giveBack) {
    // The retain's client closed during the call: what it got was given back. If the kernel
    // refused that, the retain stays with no ledger to release it.
    if (!ok) {
      CHECK(!gStrict, "KB_FUZZ_STRICT: the give-back release of tag %u was refused (0x%08X): the "
            "retain stays in the kernel and no ledger records it (nothing will ever release it)",
            t, kr);
      w.leaked[t]++;
      TRACE("  give-back release of tag %u refused (0x%08X): leaked", t, kr);
    }
    x.stage = Ctx::kDone;
    return;
  }
  switch (x.kind) {
    case Ctx::kRetain:
      if (c.open()) {
        if (ok) c.add(t);
        return entry(x, kr, c.count(t), false);
      }
      // Closed or terminated meanwhile: kIOReturnNotOpen, and a success is given back.
      if (ok) {
        x.giveBack = true;
        x.wantKpi = kKpiRelease;
        x.stage = Ctx::kAwait;
        return;
      }
      x.stage = Ctx::kDone;
      return;
    case Ctx::kRelease:
      // A refused release restores the unit (into a closed ledger too: a later close retries).
      if (x.tookUnit && !ok) c.add(t);
      return entry(x, kr, x.tookUnit ? c.count(t) : 0, false);
    case Ctx::kClose:
      if (ok) {
        x.released++;
        x.stage = Ctx::kIdle;
        return;
      }
      c.add(t);  // refused: put back, and this close stops
      x.stage = Ctx::kDone;
      return;
    case Ctx::kNone:
      x.stage = Ctx::kDone;
      return;
  }
}

// Runs the model to the next KPI call the design requires (true), or to the end (false).
bool ctxNeed(World &w, Ctx &x) {
  Client &c = w.clients[x.slot];
  for (;;) {
    switch (x.stage) {
      case Ctx::kDone:
        return false;
      case Ctx::kAwait:
        return true;
      case Ctx::kAfter:
        ctxAfter(w, x, c);
        break;
      case Ctx::kIdle:
        ctxStart(x, c);
        break;
    }
  }
}

bool ctxMatches(World &w, const Ctx &x, int kpi, uint32_t tag) {
  if (kpi != x.wantKpi) return false;
  return x.anyHeld ? w.clients[x.slot].count(tag) > 0 : tag == x.tag;
}

// The core made the awaited call: what it took out of its ledger first.
void ctxTake(World &w, Ctx &x, uint32_t tag) {
  Client &c = w.clients[x.slot];
  if (x.anyHeld) {
    x.tag = tag;
    c.take(tag);
  } else if (x.kind == Ctx::kRelease && x.tookUnit && !x.giveBack) {
    c.take(tag);
  }
}

void ctxResult(Ctx &x, uint32_t kr) {
  x.kr = kr;
  x.stage = Ctx::kAfter;
}

// Transports: no Probe sees their KPI calls, and nothing can happen mid-call, so the model runs
// ahead of the call against the kernel as it is now.
void ctxRunModelOnly(World &w, Ctx &x) {
  while (ctxNeed(w, x)) {
    const uint32_t tag = x.anyHeld ? w.clients[x.slot].held.first() : x.tag;
    ctxTake(w, x, tag);
    touch(w, tag);
    ctxResult(x, kernelAnswer(w, x.wantKpi, tag));
  }
}

std::string ctxExpectation(World &w, Ctx &x) {
  if (!ctxNeed(w, x)) return "no further KPI call";
  if (x.anyHeld) return fmt("%s(any of the %u held units)", kpiName(x.wantKpi), w.clients[x.slot].held.units());
  return fmt("%s(%u)%s", kpiName(x.wantKpi), x.tag, x.giveBack ? " (give-back)" : "");
}

// ---- helpers over the kernel ----

void clearFaults(World &w) {
  w.kernel->injectFault(kb::sim::Kpi::Retain, 0, 0);
  w.kernel->injectFault(kb::sim::Kpi::Release, 0, 0);
  w.faultTimes[0] = w.faultTimes[1] = 0;
}

bool onStack(World &w, int slot) {
  for (Ctx *x : w.ctx)
    if (x->slot == slot) return true;
  return false;
}

void fireHook(World &w, int slot);

uint32_t Probe::kpi(int kpi, uint32_t tag) {
  World &w = w_;
  CHECK(!inTerminate, "client %d: terminate() (IOUserClient::stop) called %s(%u): stop runs "
        "with the kernel's kext lock held and must call no KPI", slot_, kpiName(kpi), tag);
  CHECK(!lock_.held(), "client %d: %s(%u) called with the client lock held (design §2.5: no "
        "KPI under the client lock, or an unload hangs the kernel)", slot_, kpiName(kpi), tag);
  CHECK(!w.ctx.empty() && w.ctx.back()->slot == slot_,
        "client %d: unexpected %s(%u): no retain, release or close of this client is in progress",
        slot_, kpiName(kpi), tag);
  Ctx &x = *w.ctx.back();
  CHECK(ctxNeed(w, x) && ctxMatches(w, x, kpi, tag),
        "client %d: the core called %s(%u), the model expected %s", slot_, kpiName(kpi), tag,
        ctxExpectation(w, x).c_str());
  ctxTake(w, x, tag);
  touch(w, tag);
  const uint32_t n = ++w.opKpiCalls;
  const bool fire = w.hook.armed && n == w.hook.at, after = w.hook.after;
  if (fire && !after) fireHook(w, slot_);
  const uint32_t want = kernelAnswer(w, kpi, tag);
  const uint32_t got = kpi == kKpiRetain ? inner_.retainKext(tag) : inner_.releaseKext(tag);
  TRACE("  client %d KPI #%u %s(%u) -> 0x%08X", slot_, n, kpiName(kpi), tag, got);
  CHECK(got == want, "client %d: %s(%u) answered 0x%08X, the model expected 0x%08X%s%s", slot_,
        kpiName(kpi), tag, got, want, w.kernel->panicked() ? "; the sim panicked: " : "",
        w.kernel->panicked() ? w.kernel->panicRecord().message.c_str() : "");
  ctxResult(x, got);
  if (fire && after) fireHook(w, slot_);
  return got;
}

RawCore::RawCore(World &world, int s, bool privileged)
    : w(world), slot(s), api(world.kernel), probe(world, s, api, lock),
      core(probe, lock, privileged, this) {}

void RawCore::sendAsyncResult(const kb::AsyncRef &ref, uint32_t result, const uint64_t *args,
                              uint32_t count) {
  CHECK(lock.held(), "raw client %d: a completion sent without the client lock", slot);
  CHECK(ref.words[0] == 0xB0A7u + (uint32_t)slot && ref.words[2] == 0xC0DE0000u + (uint32_t)slot,
        "raw client %d: completion with a reference that is not its own", slot);
  onCompletion(w, slot, result, args, count);
}

void RawCore::releaseAsyncReference(const kb::AsyncRef &ref) {
  CHECK(ref.words[0] == 0xB0A7u + (uint32_t)slot, "raw client %d: released a foreign reference", slot);
  refs--;
  CHECK(refs >= 0, "raw client %d: an async reference released twice", slot);
}

RawCore::~RawCore() {
  if (registered) w.kernel->closeUserClient(this);
}

void RawCore::terminateChecked() {
  const uint64_t before = lock.acquisitions();
  probe.inTerminate = true;
  core.terminate();
  probe.inTerminate = false;
  CHECK(lock.acquisitions() == before, "client %d: terminate() (IOUserClient::stop) took the "
        "client lock; it runs with the kernel's kext lock held and must not block", slot);
}

void RawCore::serviceTerminated() {
  stopCalls++;
  terminateChecked();
}

// ---- values and sizes ----

uint64_t readValue(Reader &r, World &w) {
  uint8_t mode = r.u8() % 8;
  const std::vector<uint32_t> &ks = w.loadedTags;
  switch (mode) {
    case 0:
      return ks.empty() ? 0 : ks[r.u8() % ks.size()];
    case 1:
      return w.sampleTag;
    case 2:
      return kInvalid;
    case 3:
      return w.issuedTagsEnd ? r.u8() % w.issuedTagsEnd : 0;
    case 4: {
      uint64_t low = ks.empty() ? 0 : ks[r.u8() % ks.size()];
      uint8_t hi = r.u8();
      return low | ((uint64_t)(hi ? hi : 1) << 32) | (hi == 0xFF ? 0xFFFFFFFF00000000ull : 0);
    }
    case 5:
      return r.u64();
    case 6:
      return (uint64_t)w.issuedTagsEnd + r.u8();
    case 7: {
      uint32_t i = r.u8();
      uint32_t total = 0;
      for (auto &c : w.clients)
        if (c.live()) total += c.held.distinct();
      if (!total) return w.sampleTag;
      i %= total;
      for (auto &c : w.clients)
        if (c.live()) {
          if (i < c.held.distinct()) return c.held.nth(i);
          i -= c.held.distinct();
        }
      return w.sampleTag;
    }
  }
  return 0;
}

uint32_t readSize(Reader &r) {
  // The first 16 are the historical table (seeds index it); the rest are batch edges.
  static const uint32_t kSizes[32] = {
      0,    2,    4,    8,    127,  128,  129,  2047, 2048, 2049, 4095, 4096, 4097, 8192, 65535, 16,
      12,   20,   24,   1024, 2044, 2052, 4088, 4092, 4104, 64,   256,  512,  1536, 3000, 6,    1};
  switch (r.u8() % 4) {
    case 0:
      return 0;
    case 1:
      return r.u8();
    case 2:
      return kSizes[r.u8() % 32];
    default:
      return r.u16();
  }
}

// A count below `big` (repeat, batch length): a u16 whose top two bits are both set gives the
// whole range (low 14 bits % big), anything else a short one (% kShortCount). Long runs of
// identical calls cost the most and find the least, so most are short.
const uint32_t kShortCount = 16;
uint32_t readCount(Reader &r, uint32_t big) {
  const uint16_t c = r.u16();
  return (c >> 14) == 3 ? (c & 0x3FFF) % big : (c & 0x3FFF) % kShortCount;
}

// ---- invariants ----

uint64_t heldEverywhere(World &w, uint32_t tag) {
  uint64_t n = 0;
  for (auto &c : w.clients)
    if (c.present) n += c.count(tag);
  auto it = w.leaked.find(tag);
  return n + (it == w.leaked.end() ? 0 : it->second);
}

void checkTag(World &w, uint32_t tag) {
  const int64_t rc = w.kernel->retainCount(tag);
  const uint64_t held = heldEverywhere(w, tag);
  if (rc < 0) {
    CHECK(held == 0, "tag %u is not loaded, but the model says %llu retain(s) on it are held", tag,
          (unsigned long long)held);
    return;
  }
  const uint32_t deps = dependentsOf(w, tag);
  const int64_t expected = SimKernel::kBaselineRetainCount + (int64_t)held + deps;
  CHECK(rc == expected, "tag %u: retainCount %lld, expected 2 + %llu held (present clients' "
        "ledgers + leaked) + %u dependents = %lld", tag, (long long)rc, (unsigned long long)held,
        deps, (long long)expected);
}

void checkRawCore(int slot, Client &c, const std::vector<uint32_t> *tags) {
  UserClientCore &core = c.rawCore->core;
  CHECK(core.closed() == c.closed, "raw client %d: closed()=%d, model %d", slot, core.closed(),
        c.closed);
  CHECK(core.outstanding() == c.held.units(), "raw client %d: core outstanding %u, model %u", slot,
        core.outstanding(), c.held.units());
  if (tags) {
    for (uint32_t t : *tags)
      CHECK(core.heldCount(t) == c.count(t), "raw client %d: core heldCount(%u)=%u, model %u",
            slot, t, core.heldCount(t), c.count(t));
  } else {
    c.held.each([&](uint32_t t, uint32_t n) {
      CHECK(core.heldCount(t) == n, "raw client %d: core heldCount(%u)=%u, model %u", slot, t,
            core.heldCount(t), n);
    });
  }
}

void doCallSpec(World &w, int slot, const CallSpec &s);
CallSpec wellFormed(uint32_t selector, uint64_t tag);

// Everything, against the kernel's own table: every kFullCheckEvery steps and at the end of each
// input.
void fullCheck(World &w) {
  CHECK(!w.kernel->panicked(), "the sim panicked: %s", w.kernel->panicRecord().message.c_str());
  const std::vector<KextInfo> ks = w.kernel->loadedKexts();
  CHECK(ks.size() == w.loadedTags.size(), "the kernel lists %zu kexts, the model %zu", ks.size(),
        w.loadedTags.size());
  for (size_t i = 0; i < ks.size(); i++) {
    const KextInfo &r = ks[i];
    MKext *m = modelKext(w, w.loadedTags[i]);
    CHECK(r.loadTag == m->tag, "row %zu of the kernel's table is tag %u, the model's %u", i,
          r.loadTag, m->tag);
    CHECK(r.bundleId == m->bundleId && r.version == m->version, "tag %u is %s %s, the model "
          "says %s %s", r.loadTag, r.bundleId.c_str(), r.version.c_str(), m->bundleId, m->version);
    // OSBundleDependencies: load tags, descending, each once.
    std::vector<uint32_t> deps(m->deps, m->deps + m->ndeps);
    std::sort(deps.begin(), deps.end(), [](uint32_t a, uint32_t b) { return a > b; });
    CHECK(r.dependencies == deps, "tag %u: OSBundleDependencies differ from the model (%zu vs %u)",
          r.loadTag, r.dependencies.size(), m->ndeps);
    for (const ClassSpec &c : r.classes) {
      if (r.loadTag == w.sampleTag && c.name == KB_USER_CLIENT_CLASS_NAME) {
        CHECK(c.instances == w.ucInstances, "user-client instances %u, expected %u", c.instances,
              w.ucInstances);
        continue;
      }
      MKext::Cls *mc = m->findClass(c.name.c_str());
      CHECK(mc && mc->instances == c.instances, "tag %u class %s: %u instances, the model %d",
            r.loadTag, c.name.c_str(), c.instances, mc ? (int)mc->instances : -1);
    }
    CHECK(r.classes.size() == m->nclasses, "tag %u lists %zu classes, the model %u", r.loadTag,
          r.classes.size(), m->nclasses);
    const int64_t rc = w.kernel->retainCount(r.loadTag);
    CHECK(r.retainCount == rc - 2, "kext %s: OSBundleRetainCount %d, retainCount %lld",
          r.bundleId.c_str(), r.retainCount, (long long)rc);
    checkTag(w, r.loadTag);
  }
  // Every held or leaked tag is loaded (checkTag refuses held units on a tag not loaded).
  for (int i = 0; i < kMaxClients; i++) {
    Client &c = w.clients[i];
    if (!c.present) continue;
    uint32_t units = 0;
    c.held.each([&](uint32_t t, uint32_t n) {
      units += n;
      checkTag(w, t);
    });
    CHECK(units == c.held.units(), "model ledger of client %d: %u units, counter %u", i, units,
          c.held.units());
    if (c.raw) checkRawCore(i, c, nullptr);
  }
  for (auto &e : w.leaked) checkTag(w, e.first);
  // Tags not in the table are unknown to the kernel (the model's "is it loaded" relies on it).
  for (uint32_t t = 0; t < w.issuedTagsEnd + 2; t++)
    if (!modelKext(w, t))
      CHECK(w.kernel->retainCount(t) == -1, "tag %u is not loaded but has retainCount %lld", t,
            (long long)w.kernel->retainCount(t));
  if (!modelKext(w, w.sampleTag))
    CHECK(w.ucInstances == 0, "the sample kext is gone with %u user clients registered",
          w.ucInstances);

  // Each open transport's ledger, through the held selector (no side effects).
  bool trace = gTrace;
  gTrace = false;
  for (int i = 0; i < kMaxClients; i++)
    if (w.clients[i].open() && !w.clients[i].raw) doCallSpec(w, i, wellFormed(kb::kSelectorHeld, 0));
  gTrace = trace;
}

// After every step: the tags and clients it touched, or everything when it may have changed
// what is loaded (or every kFullCheckEvery steps).
void checkRequests(World &w);

void stepCheck(World &w) {
  CHECK(!w.kernel->panicked(), "the sim panicked: %s", w.kernel->panicRecord().message.c_str());
  CHECK(w.ctx.empty(), "an operation context was left on the stack");
  checkRequests(w);
  if (gStep % kFullCheckEvery == 0) {
    fullCheck(w);
  } else {
    // Only what the step touched: the tags of every KPI call it made (model or core), the kexts
    // it loaded or unloaded and their dependencies, and the clients it called, closed or stopped.
    std::sort(w.touched.begin(), w.touched.end());
    w.touched.erase(std::unique(w.touched.begin(), w.touched.end()), w.touched.end());
    for (uint32_t t : w.touched) checkTag(w, t);
    for (int i = 0; i < kMaxClients; i++)
      if ((w.touchedClients >> i & 1) && w.clients[i].present && w.clients[i].raw)
        checkRawCore(i, w.clients[i], &w.touched);
  }
  w.touched.clear();
  w.touchedClients = 0;
}

// ---- calls ----


bool isBatch(uint32_t sel) { return sel == kb::kSelectorRetainBatch || sel == kb::kSelectorReleaseBatch; }
bool isRetainRelease(uint32_t sel) {
  return sel == kb::kSelectorRetain || sel == kb::kSelectorRelease || isBatch(sel);
}

// The refusals made before a handler runs (design §2.1, §2.2, §2.4; kernel-facts §5.3).
// Returns true when the call reaches its handler, else sets *kr.
bool reachesHandler(const Client &c, const CallSpec &s, uint32_t *kr, const uint8_t *inBytes) {
  if (!c.raw) {
    if (c.closed) return *kr = kb::RC_MACH_SEND_INVALID_DEST, false;
    if (s.scalars.size() > kb::kMaxScalars) return *kr = kb::RC_MIG_ARRAY_TOO_LARGE, false;
  }
  *kr = kb::RC_kIOReturnBadArgument;
  if (s.selector >= kb::kSelectorCount) return false;
  // requestResource takes an async reference, which a generic call never carries (raw: the
  // async flag without one); every other selector refuses one.
  if (s.selector == kb::kSelectorRequestResource) return false;
  const kb::SelectorShape &shape = kb::kSelectorShapes[s.selector];
  bool outOfLine, nullScalarOut, nullStructOut;
  uint32_t scalarOutCount;
  if (c.raw) {
    outOfLine = s.outOfLine || s.async;  // both are refused before anything else
    nullScalarOut = s.nullScalarOut || (s.reqOut == 0 && s.nullOuts);
    nullStructOut = s.nullStructOut || (s.reqStruct == 0 && s.nullOuts);
    scalarOutCount = s.reqOut;
  } else {
    // Structures above 4096 bytes travel out of line, which this protocol never accepts.
    outOfLine = s.inStructSize > kInbandMax || s.reqStruct > kInbandMax;
    nullScalarOut = false;
    nullStructOut = false;
    scalarOutCount = s.reqOut < kb::kMaxScalars ? s.reqOut : kb::kMaxScalars;
  }
  bool nullScalarIn = (s.scalars.empty() && s.nullScalarIn) || (c.raw && s.nullIns);
  bool nullStructIn = (s.inStructSize == 0 && s.nullOuts) || (c.raw && s.nullIns);
  bool sizes;
  if (isBatch(s.selector)) {
    // 1..kBatchMaxTags whole uint32 tags in; room for an 8-byte entry per tag out, inband.
    const uint32_t tags = s.inStructSize / 4;
    sizes = s.inStructSize % 4 == 0 && tags >= 1 && tags <= kb::kBatchMaxTags &&
            s.reqStruct >= tags * kb::kBatchEntrySize && s.reqStruct <= kInbandMax;
  } else if (shape.structInputVariable) {
    sizes = s.inStructSize >= 1 && s.inStructSize <= shape.structInputSize &&
            s.reqStruct == shape.structOutputSize;
  } else {
    sizes = s.inStructSize == shape.structInputSize && s.reqStruct == shape.structOutputSize;
  }
  if (outOfLine || s.scalars.size() != shape.scalarInputs || scalarOutCount != shape.scalarOutputs ||
      !sizes || (shape.scalarInputs && nullScalarIn) || (shape.scalarOutputs && nullScalarOut) ||
      (shape.structOutputSize && nullStructOut) || (shape.structInputSize && nullStructIn))
    return false;
  if (shape.admin && !c.privileged) return *kr = kb::RC_kIOReturnNotPrivileged, false;
  if ((s.selector == kb::kSelectorRetain || s.selector == kb::kSelectorRelease ||
       s.selector == kb::kSelectorCancelRequest || s.selector == kb::kSelectorFetchResource) &&
      s.scalars[0] > 0xFFFFFFFFull)
    return false;
  if (s.selector == kb::kSelectorFetchResource && s.scalars[1] > 0xFFFFFFFFull) return false;
  // A bundle id: not empty and NUL-terminated within the bytes passed (kIOReturnBadArgument).
  if (s.selector == kb::kSelectorLoadKextWithIdentifier &&
      (!inBytes || (c.raw && s.nullIns) || inBytes[0] == 0 ||
       !memchr(inBytes, 0, s.inStructSize)))
    return false;
  *kr = kb::RC_kIOReturnSuccess;
  return true;
}

// ---- the request model (issue 13) ----

// What fetchResource(tag, offset) must answer for an open client, and the piece it hands over.
uint32_t expectFetch(Client &c, uint32_t tag, uint64_t offset, uint32_t *copied) {
  Client::MReq *q = c.findReq(tag);
  if (!q || !q->ready) return kb::RC_kIOReturnNotFound;
  if (offset != q->fetched) return kb::RC_kIOReturnBadArgument;
  const uint32_t left = q->length - q->fetched;
  *copied = left < kb::kFetchChunkSize ? left : kb::kFetchChunkSize;
  return kb::RC_kIOReturnSuccess;
}

// After a successful fetch: the bytes are the resource's, the model moves on.
void fetched(World &w, Client &c, uint32_t tag, const uint64_t *out, const uint8_t *bytes,
             uint32_t copied) {
  Client::MReq *q = c.findReq(tag);
  CHECK(out[kb::FetchResourceOut::length] == q->length && out[kb::FetchResourceOut::copied] == copied,
        "fetch of tag %u: length %llu copied %llu, expected %u, %u", tag,
        (unsigned long long)out[0], (unsigned long long)out[1], q->length, copied);
  for (uint32_t i = 0; i < copied; i++)
    if (bytes[i] != resByte(q->res, q->fetched + i)) {
      CHECK(false, "fetch of tag %u (%s): byte %u differs", tag, kResNames[q->res], q->fetched + i);
      break;
    }
  q->fetched += copied;
  if (q->fetched == q->length) c.reqs.erase(c.reqs.begin() + (q - c.reqs.data()));
  (void)w;
}

// A completion reaching client `slot` (a raw core's notifier or a transport's sink), checked
// against the model: only an open client, only a tag it has pending, exactly once, the
// kernel's code with the resource's bytes, an oversize delivery refused.
void onCompletion(World &w, int slot, uint32_t result, const uint64_t *args, uint32_t n) {
  Client &c = w.clients[slot];
  w.completions++;
  CHECK(n == kb::Completion::fieldCount, "client %d: completion with %u args", slot, n);
  const uint32_t tag = (uint32_t)args[kb::Completion::requestTag];
  const uint32_t osr = (uint32_t)args[kb::Completion::osReturn];
  const uint32_t len = (uint32_t)args[kb::Completion::length];
  TRACE("  completion to client %d: tag %u result 0x%08X osReturn 0x%08X length %u", slot, tag,
        result, osr, len);
  CHECK(c.present && !c.closed && !c.stopped,
        "client %d: a completion (tag %u) reached a client that is %s", slot, tag,
        !c.present ? "gone" : c.closed ? "closed (or closing)" : "stopped");
  Client::MReq *q = c.findReq(tag);
  CHECK(q && !q->ready, "client %d: completion for tag %u, which it has %s", slot, tag,
        !q ? "no request for (cancelled, completed or never made)" : "already completed");
  const uint32_t size = kResSizes[q->res];
  const bool exists = q->res != kResCount - 1;
  bool ok;
  if (osr == kb::RC_kOSReturnSuccess) ok = exists && len == size;
  else if (osr == kb::RC_kOSKextReturnNotFound) ok = !exists && len == 0;
  else if (osr == kb::RC_kOSKextReturnTimeout) ok = len == 0;
  else if (osr == kResFaultCode && w.resFaultTimes > 0) ok = len == 0, w.resFaultTimes--;
  else ok = false;
  CHECK(ok, "client %d: tag %u (%s) completed with 0x%08X, length %u", slot, tag,
        kResNames[q->res], osr, len);
  const bool over = osr == kb::RC_kOSReturnSuccess && len > kb::kMaxResourceSize;
  CHECK(result == (over ? kb::RC_kIOReturnNoSpace : kb::RC_kIOReturnSuccess),
        "client %d: tag %u completed with result 0x%08X", slot, tag, result);
  if (osr == kb::RC_kOSReturnSuccess && !over && len > 0) {
    q->ready = true;
    q->length = len;
    q->fetched = 0;
  } else {
    c.reqs.erase(c.reqs.begin() + (q - c.reqs.data()));
  }
  w.touchedClients |= 1u << slot;
}

uint32_t coreRequests(Client &c) {
  return c.raw ? c.rawCore->core.requestsInUse()
               : static_cast<SimTransport *>(c.transport.get())->core().requestsInUse();
}

// Between steps: each client's table is the model's (an open one exactly; any one within the
// cap), and the kernel holds exactly the open clients' pending requests unless a stopped client
// may still have some (the kernel may have dequeued those without a completion).
void checkRequests(World &w) {
  uint32_t pending = 0;
  bool unknown = false;
  for (int i = 0; i < kMaxClients; i++) {
    Client &c = w.clients[i];
    if (!c.present) continue;
    const uint32_t inUse = coreRequests(c);
    CHECK(inUse <= kb::kRequestCapacity, "client %d: %u requests, over the cap", i, inUse);
    if (c.stopped && !c.closed) {
      unknown |= c.pendingReqs() > 0;
      CHECK(inUse <= c.reqs.size(), "client %d (stopped): %u requests, model %zu", i, inUse, c.reqs.size());
      continue;
    }
    CHECK(inUse == c.reqs.size(), "client %d: the core has %u requests, the model %zu", i, inUse,
          c.reqs.size());
    pending += c.pendingReqs();
    if (c.closed) {
      CHECK(c.reqs.empty(), "client %d closed with requests in the model", i);
      const int32_t refs = c.raw ? c.rawCore->refs : static_cast<SimTransport *>(c.transport.get())->asyncRefsHeld();
      CHECK(refs == 0, "client %d closed still owning %d async reference(s)", i, refs);
    }
  }
  const uint32_t kernelPending = w.kernel->pendingRequestCount(w.sampleTag);
  if (!unknown)
    CHECK(kernelPending == pending, "the kernel holds %u requests of the sample kext, the model %u",
          kernelPending, pending);
}

void checkStructString(const uint8_t *field, const char *want, const char *what) {
  size_t n = strnlen((const char *)field, kb::kInfoStringSize);
  CHECK(n < kb::kInfoStringSize, "getInfo %s is not NUL-terminated within %u bytes", what,
        kb::kInfoStringSize);
  CHECK(strcmp((const char *)field, want) == 0, "getInfo %s is \"%s\", expected \"%s\"", what,
        (const char *)field, want);
}

const uint8_t kSentinel = 0xA5;
uint8_t gSentinelBlock[65536];

// Still all sentinel bytes? (memcmp, not a byte loop: keeps the comparison out of the
// coverage feedback.)
bool untouched(const void *p, size_t n) {
  if (gSentinelBlock[0] != kSentinel) memset(gSentinelBlock, kSentinel, sizeof gSentinelBlock);
  const uint8_t *b = (const uint8_t *)p;
  for (size_t off = 0; off < n; off += sizeof gSentinelBlock) {
    size_t len = n - off < sizeof gSentinelBlock ? n - off : sizeof gSentinelBlock;
    if (memcmp(b + off, gSentinelBlock, len) != 0) return false;
  }
  return true;
}

// Exact-size heap blocks for the call buffers, kept for reuse between calls: the block is still
// exactly the requested size (ASan's redzone starts right after it), but a malloc/free pair under
// ASan costs ~2 µs. All zero-size buffers share one malloc(0) block (any access is a report).
class BufferPool {
 public:
  void *get(size_t n) {
    if (n == 0) {
      if (!zero_) zero_ = malloc(0);
      return zero_;
    }
    for (uint32_t i = 0; i < used_; i++)
      if (size_[i] == n) {
        void *p = ptr_[i];
        used_--;
        ptr_[i] = ptr_[used_];
        size_[i] = size_[used_];
        return p;
      }
    return malloc(n);
  }
  void put(void *p, size_t n) {
    if (!p || p == zero_) return;
    if (used_ == kSlots) {  // full: drop one
      free(ptr_[0]);
      used_--;
      ptr_[0] = ptr_[used_];
      size_[0] = size_[used_];
    }
    ptr_[used_] = p;
    size_[used_++] = n;
  }

 private:
  static const uint32_t kSlots = 24;
  void *ptr_[kSlots];
  size_t size_[kSlots];
  uint32_t used_ = 0;
  void *zero_ = nullptr;
};
BufferPool gPool;

struct Buffers {
  uint64_t *in = nullptr;
  uint8_t *inStruct = nullptr;
  uint64_t *out = nullptr;
  uint8_t *outStruct = nullptr;
  size_t inN = 0, inStructN = 0, outN = 0, outStructN = 0;
  ~Buffers() {
    gPool.put(in, inN);
    gPool.put(inStruct, inStructN);
    gPool.put(out, outN);
    gPool.put(outStruct, outStructN);
  }
};

// Performs one call with exactly-sized buffers and checks it against the model.
void doCallSpec(World &w, int slot, const CallSpec &s) {
  Client &c = w.clients[slot];
  if (!c.present) return;
  w.touchedClients |= 1u << slot;
  w.work += 1 + s.inStructSize / 4;

  // Exactly-sized heap buffers: any access past them is an ASan report.
  Buffers b;
  if (!s.scalars.empty() || !s.nullScalarIn) {
    b.inN = s.scalars.size() * sizeof(uint64_t);
    b.in = (uint64_t *)gPool.get(b.inN);
    if (!s.scalars.empty()) memcpy(b.in, s.scalars.data(), b.inN);
  }
  if (s.inStructSize || !s.nullOuts) {
    b.inStructN = s.inStructSize;
    b.inStruct = (uint8_t *)gPool.get(s.inStructSize);
    memset(b.inStruct, s.inFill, s.inStructSize);
    if (s.nInTags)
      for (uint32_t i = 0; i + 4 <= s.inStructSize; i += 4)
        writeU32LE(b.inStruct + i, s.inTags[(i / 4) % s.nInTags]);
  }
  const size_t outBytes = (size_t)s.reqOut * sizeof(uint64_t);
  if ((s.reqOut || !s.nullOuts) && !(c.raw && s.nullScalarOut)) {
    b.outN = outBytes;
    b.out = (uint64_t *)gPool.get(outBytes);
    memset(b.out, kSentinel, outBytes);
  }
  if ((s.reqStruct || !s.nullOuts) && !(c.raw && s.nullStructOut)) {
    b.outStructN = s.reqStruct;
    b.outStruct = (uint8_t *)gPool.get(s.reqStruct);
    memset(b.outStruct, kSentinel, s.reqStruct);
  }

  // The model: refusals before the handler, then (retain/release) the per-tag run.
  uint32_t want = 0;
  const bool reached = reachesHandler(c, s, &want, b.inStruct);
  const bool perTag = reached && isRetainRelease(s.selector);
  const bool retain = s.selector == kb::kSelectorRetain || s.selector == kb::kSelectorRetainBatch;
  uint32_t single = 0;
  std::vector<uint32_t> &batchTags = w.decodedTags;
  Ctx x(w, perTag ? (retain ? Ctx::kRetain : Ctx::kRelease) : Ctx::kNone, slot);
  if (perTag) {
    if (isBatch(s.selector)) {
      batchTags.resize(s.inStructSize / 4);
      for (size_t i = 0; i < batchTags.size(); i++) batchTags[i] = readU32LE(b.inStruct + 4 * i);
      x.tags = batchTags.data();
      x.n = (uint32_t)batchTags.size();
    } else {
      single = (uint32_t)s.scalars[0];
      x.tags = &single;
      x.n = 1;
    }
  }
  const bool openBefore = c.open();
  if (!c.raw) ctxRunModelOnly(w, x);

  TRACE("client %d (%s%s%s%s) call sel=%u(%s) nIn=%u in0=0x%llx inStruct=%u%s reqOut=%u "
        "reqStruct=%u%s",
        slot, c.raw ? "raw" : "transport", c.privileged ? ",admin" : "", c.closed ? ",closed" : "",
        c.stopped ? ",stopped" : "", s.selector, selName(s.selector), s.scalars.size(),
        (unsigned long long)(s.scalars.empty() ? 0 : s.scalars[0]), s.inStructSize,
        x.n > 1 ? fmt(" (%u tags)", x.n).c_str() : "", s.reqOut, s.reqStruct,
        c.raw && s.outOfLine ? " outOfLine" : c.raw && s.async ? " async" : "");

  uint32_t kr, gotOut;
  size_t gotStruct;
  if (c.raw) {
    MethodArgs a;
    a.scalarInput = s.nullIns ? nullptr : b.in;
    a.scalarInputCount = (uint32_t)s.scalars.size();
    a.structureInput = s.nullIns ? nullptr : b.inStruct;
    a.structureInputSize = s.inStructSize;
    a.scalarOutput = b.out;
    a.scalarOutputCount = s.reqOut;
    a.structureOutput = b.outStruct;
    a.structureOutputSize = s.reqStruct;
    a.outOfLine = s.outOfLine;
    a.async = s.async;
    w.ctx.push_back(&x);
    kr = c.rawCore->core.externalMethod(s.selector, a);
    CHECK(w.ctx.back() == &x, "operation contexts unbalanced");
    w.ctx.pop_back();
    CHECK(!ctxNeed(w, x), "client %d: %s returned, but the core never made the KPI call the "
          "model expected next: %s", slot, selName(s.selector), ctxExpectation(w, x).c_str());
    CHECK(a.scalarInputCount == s.scalars.size() && a.structureInputSize == s.inStructSize,
          "the core changed the input counts");
    gotOut = a.scalarOutputCount;
    gotStruct = a.structureOutputSize;
    if (kr != kb::RC_kIOReturnSuccess) {
      // The kext returns the error to IOUserClient; MIG then sends nothing back. The core
      // must not have claimed outputs either.
      CHECK(gotOut == s.reqOut && gotStruct == s.reqStruct,
            "raw core changed output counts on failure 0x%08X (%u, %zu)", kr, gotOut, gotStruct);
      gotOut = 0;
      gotStruct = 0;
    }
  } else {
    gotOut = s.reqOut;
    gotStruct = s.reqStruct;
    kr = c.transport->callMethod(s.selector, b.in, (uint32_t)s.scalars.size(), b.inStruct,
                                 s.inStructSize, b.out, &gotOut, b.outStruct, &gotStruct);
    if (kr != kb::RC_kIOReturnSuccess)
      CHECK(gotOut == 0 && gotStruct == 0,
            "transport reported outputs (%u scalars, %zu bytes) with error 0x%08X", gotOut,
            gotStruct, kr);
  }

  // What the call must answer.
  uint32_t outCnt = 0;
  const Ctx::Entry *single1 = nullptr;
  uint32_t fetchCopied = 0;
  if (reached) {
    const kb::SelectorShape &shape = kb::kSelectorShapes[s.selector];
    outCnt = shape.scalarOutputs;
    if (!perTag) {
      want = openBefore ? kb::RC_kIOReturnSuccess : kb::RC_kIOReturnNotOpen;
      if (openBefore && s.selector == kb::kSelectorFetchResource)
        want = expectFetch(c, (uint32_t)s.scalars[0], s.scalars[1], &fetchCopied);
      if (openBefore && s.selector == kb::kSelectorCancelRequest) {
        Client::MReq *q = c.findReq((uint32_t)s.scalars[0]);
        want = q && !q->ready ? kb::RC_kIOReturnSuccess : kb::RC_kIOReturnNotFound;
      }
    } else if (x.entries.empty()) {
      want = kb::RC_kIOReturnNotOpen;  // closed or terminated before the first tag finished
    } else if (!isBatch(s.selector)) {
      single1 = &x.entries[0];
      // A single call's refusal is the IOReturn itself (then MIG drops the outputs).
      want = single1->refusal ? single1->code : kb::RC_kIOReturnSuccess;
    }
  }
  TRACE("  -> 0x%08X (expected 0x%08X)%s", kr, want,
        perTag && isBatch(s.selector) ? fmt(", %zu entries expected", x.entries.size()).c_str() : "");

  CHECK(kr == want, "client %d sel %u(%s): IOReturn 0x%08X, expected 0x%08X", slot, s.selector,
        selName(s.selector), kr, want);
  if (c.raw || (kr != kb::RC_MACH_SEND_INVALID_DEST && kr != kb::RC_MIG_ARRAY_TOO_LARGE))
    CHECK(kr == kb::RC_kIOReturnSuccess || kb::selectorMayRefuse(s.selector, kr),
          "sel %u answered 0x%08X, which the protocol file does not list for it", s.selector, kr);
  CHECK(gotOut <= s.reqOut, "output scalar count %u > requested %u", gotOut, s.reqOut);
  CHECK(gotStruct <= s.reqStruct, "output struct size %zu > requested %u", gotStruct,
        s.reqStruct);

  if (kr != kb::RC_kIOReturnSuccess) {
    CHECK(!b.out || untouched(b.out, outBytes), "scalar outputs written on error 0x%08X", kr);
    CHECK(!b.outStruct || untouched(b.outStruct, s.reqStruct),
          "struct output written on error 0x%08X", kr);
    return;
  }
  CHECK(gotOut == outCnt, "sel %u: %u output scalars, expected %u", s.selector, gotOut, outCnt);
  // Nothing written past what the call reports.
  CHECK(!b.out || untouched(b.out + gotOut, outBytes - gotOut * sizeof(uint64_t)),
        "sel %u wrote scalar outputs past the %u it reports", s.selector, gotOut);
  CHECK(!b.outStruct || untouched(b.outStruct + gotStruct, s.reqStruct - gotStruct),
        "sel %u(%s) wrote struct output past the %zu bytes it reports", s.selector,
        selName(s.selector), gotStruct);
  switch (s.selector) {
    case kb::kSelectorGetInfo:
      CHECK(gotStruct == 2 * kb::kInfoStringSize, "getInfo struct size %zu", gotStruct);
      CHECK(b.out[0] == kb::kProtocolVersion, "getInfo protocolVersion %llu",
            (unsigned long long)b.out[0]);
      CHECK(b.out[1] == w.sampleTag, "getInfo ownLoadTag %llu, sample is %u",
            (unsigned long long)b.out[1], w.sampleTag);
      CHECK(b.out[2] == (c.privileged ? 1u : 0u), "getInfo privileged %llu",
            (unsigned long long)b.out[2]);
      CHECK(b.out[3] == kb::kLedgerCapacity, "getInfo ledgerCap %llu", (unsigned long long)b.out[3]);
      checkStructString(b.outStruct, KB_SAMPLE_BUNDLE_ID, "identifier");
      checkStructString(b.outStruct + kb::kInfoStringSize, KB_SAMPLE_VERSION, "version");
      break;
    case kb::kSelectorRetain:
    case kb::kSelectorRelease:
      CHECK(gotStruct == 0, "%s returned %zu struct bytes", selName(s.selector), gotStruct);
      CHECK(b.out[0] == single1->code && b.out[1] == single1->heldAfter,
            "client %d %s(%llu): outputs {0x%08llX, %llu}, expected {0x%08X, %u}", slot,
            selName(s.selector), (unsigned long long)s.scalars[0], (unsigned long long)b.out[0],
            (unsigned long long)b.out[1], single1->code, single1->heldAfter);
      break;
    case kb::kSelectorHeld: {
      CHECK(gotStruct % 8 == 0, "held struct size %zu is not a multiple of 8", gotStruct);
      CHECK(gotStruct / 8 == c.held.distinct(), "held reports %zu entries, model has %u",
            gotStruct / 8, c.held.distinct());
      // Distinct tags, each with the model's count: with the sizes equal, the sets are equal.
      std::vector<uint32_t> seen;
      for (size_t i = 0; i < gotStruct; i += 8) {
        uint32_t tag = readU32LE(b.outStruct + i), n = readU32LE(b.outStruct + i + 4);
        seen.push_back(tag);
        CHECK(c.count(tag) == n, "held says tag %u count %u, model %u", tag, n, c.count(tag));
      }
      std::sort(seen.begin(), seen.end());
      CHECK(std::adjacent_find(seen.begin(), seen.end()) == seen.end(), "held lists a tag twice");
      break;
    }
    case kb::kSelectorLoadKextWithIdentifier: {
      // A loaded kext's id: success; anything else is unknown (no fuzz bundle is installed;
      // the sample's is, but only its unloaded id would load it, which no generic call spells).
      bool loaded = false;
      for (uint32_t t : w.loadedTags) loaded |= strcmp(w.kexts[t].bundleId, (const char *)b.inStruct) == 0;
      const uint32_t wantOsr = loaded ? kb::RC_kOSReturnSuccess : kb::RC_kOSKextReturnDeferred;
      CHECK(b.out[0] == wantOsr, "loadKextWithIdentifier: kernel 0x%08llX, expected 0x%08X",
            (unsigned long long)b.out[0], wantOsr);
      break;
    }
    case kb::kSelectorFetchResource:
      CHECK(gotStruct == fetchCopied, "fetch: %zu bytes, expected %u", gotStruct, fetchCopied);
      fetched(w, c, (uint32_t)s.scalars[0], b.out, b.outStruct, fetchCopied);
      break;
    case kb::kSelectorCancelRequest: {
      CHECK(b.out[0] == kb::RC_kOSReturnSuccess, "cancel of pending tag %llu: kernel 0x%08llX",
            (unsigned long long)s.scalars[0], (unsigned long long)b.out[0]);
      Client::MReq *q = c.findReq((uint32_t)s.scalars[0]);
      c.reqs.erase(c.reqs.begin() + (q - c.reqs.data()));
      break;
    }
    case kb::kSelectorRetainBatch:
    case kb::kSelectorReleaseBatch: {
      CHECK(gotStruct == x.entries.size() * kb::kBatchEntrySize,
            "client %d %s of %u tags: %zu bytes of entries, the model expected %zu entries", slot,
            selName(s.selector), x.n, gotStruct, x.entries.size());
      for (size_t i = 0; i < x.entries.size(); i++) {
        const uint8_t *e = b.outStruct + i * kb::kBatchEntrySize;
        const uint32_t code = readU32LE(e + 4 * kb::BatchEntry::code);
        const uint32_t heldAfter = readU32LE(e + 4 * kb::BatchEntry::heldAfter);
        CHECK(code == x.entries[i].code && heldAfter == x.entries[i].heldAfter,
              "client %d %s entry %zu (tag %u): {0x%08X, %u}, expected {0x%08X, %u}", slot,
              selName(s.selector), i, x.tags[i], code, heldAfter, x.entries[i].code,
              x.entries[i].heldAfter);
      }
      break;
    }
  }
}

CallSpec wellFormed(uint32_t selector, uint64_t tag) {
  CallSpec s;
  s.selector = selector;
  const kb::SelectorShape &shape = kb::kSelectorShapes[selector];
  if (shape.scalarInputs) s.scalars.push_back(tag);
  s.reqOut = shape.scalarOutputs;
  s.reqStruct = shape.structOutputSize;
  return s;
}

// ---- clients ----

// clientClose on a raw core: closed at once, then every held unit released, each checked by
// the Probe as it happens (exactly once, any order; a refused one is put back and ends it).
void closeRaw(World &w, int slot) {
  Client &c = w.clients[slot];
  RawCore &rc = *c.rawCore;
  Ctx x(w, Ctx::kClose, slot);
  c.closed = true;
  w.ctx.push_back(&x);
  const uint32_t released = rc.core.close();
  CHECK(w.ctx.back() == &x, "operation contexts unbalanced");
  w.ctx.pop_back();
  CHECK(!ctxNeed(w, x), "raw client %d: close() returned, but the model expected %s", slot,
        ctxExpectation(w, x).c_str());
  CHECK(released == x.released, "raw client %d: close() reports %u releases, the kernel took %u",
        slot, released, x.released);
  TRACE("  client %d close released %u, %u unit(s) left", slot, released, c.held.units());
  if (c.registered) {  // the kext's clientClose ends in terminate(): the kernel forgets it
    w.kernel->closeUserClient(&rc);
    rc.registered = false;
    c.registered = false;
    w.ucInstances--;
  }
}

void closeClient(World &w, int slot, bool dying) {
  Client &c = w.clients[slot];
  if (!c.present) return;
  w.touchedClients |= 1u << slot;
  // See "Modelling choices": faults stay only for a raw core's close (and, strict, a transport's
  // close; before a destruction, as before the kext's free(), they are cleared).
  if (dying || (!c.raw && !gStrict)) clearFaults(w);
  if (c.raw) {
    closeRaw(w, slot);
  } else {
    const uint32_t want = c.closed ? kb::RC_MACH_SEND_INVALID_DEST : kb::RC_kIOReturnSuccess;
    if (!c.closed) {
      Ctx x(w, Ctx::kClose, slot);
      c.closed = true;
      ctxRunModelOnly(w, x);
      c.registered = false;
      w.ucInstances--;
    }
    if (dying && gStrict && !c.held.empty()) {
      // What the kext's free() does with what clientClose could not release: try again.
      Ctx x(w, Ctx::kClose, slot);
      ctxRunModelOnly(w, x);
    }
    if (dying) {
      c.transport.reset();  // ~SimTransport: clientDied
    } else {
      uint32_t kr = c.transport->close();
      CHECK(kr == want, "transport %d close: 0x%08X, expected 0x%08X", slot, kr, want);
    }
  }
  c.reqs.clear();  // close cancelled every pending request and dropped what was unfetched
  if (dying) {
    CHECK(c.held.empty(), "client %d destroyed while its ledger still holds %u unit(s)", slot,
          c.held.units());
    c.reset();
  }
}

void terminateClient(World &w, int slot) {
  Client &c = w.clients[slot];
  if (!c.present) return;
  w.touchedClients |= 1u << slot;
  if (c.raw) {
    c.rawCore->terminateChecked();
  } else {
    if (c.closed) return;  // the kernel stops only connections that are open
    static_cast<SimTransport *>(c.transport.get())->serviceTerminated();
  }
  c.stopped = true;
}

void doOpen(World &w, Reader &r) {
  int slot = r.u8() % kMaxClients;
  uint8_t flags = r.u8();
  bool privileged = !(flags & 1), raw = (flags & 2) != 0, detached = raw && (flags & 4);
  closeClient(w, slot, true);
  Client &c = w.clients[slot];
  TRACE("open client %d %s %s", slot, raw ? (detached ? "raw core (detached)" : "raw core") : "transport",
        privileged ? "privileged" : "unprivileged");
  // IOServiceOpen finds the service only while the sample kext is loaded with its service.
  const uint32_t want = serviceUp(w) ? kb::RC_kIOReturnSuccess : kb::RC_kIOReturnNotFound;
  if (raw) {
    c.rawCore.reset(new RawCore(w, slot, privileged));
    if (!detached) {
      uint32_t kr = w.kernel->openUserClient(c.rawCore.get());
      CHECK(kr == want, "openUserClient (raw core): 0x%08X, expected 0x%08X", kr, want);
      if (kr != kb::RC_kIOReturnSuccess) {
        c.rawCore.reset();
        return;
      }
      c.rawCore->registered = true;
      c.registered = true;
      w.ucInstances++;
    }
  } else {
    uint32_t kr = 0xDEADBEEF;
    c.transport = SimTransport::open(w.kernel, privileged, &kr);
    TRACE("  IOServiceOpen -> 0x%08X", kr);
    CHECK(kr == want, "SimTransport::open: 0x%08X, expected 0x%08X", kr, want);
    CHECK((c.transport != nullptr) == (kr == kb::RC_kIOReturnSuccess),
          "SimTransport::open returned %s with 0x%08X", c.transport ? "a transport" : "null", kr);
    if (!c.transport) return;
    c.transport->setAsyncSink(&w.sinks[slot]);
    c.registered = true;
    w.ucInstances++;
  }
  c.present = true;
  c.raw = raw;
  c.privileged = privileged;
  w.touchedClients |= 1u << slot;
}

void doCall(World &w, Reader &r) {
  int slot = r.u8() % kMaxClients;
  CallSpec s;
  uint8_t sb = r.u8();
  s.selector = sb >= 0xF0 ? r.u32() : sb % 12;  // 10, 11: just past the table
  uint32_t n = r.u8() % 21;
  for (uint32_t i = 0; i < n; i++) s.scalars.push_back(readValue(r, w));
  s.inStructSize = readSize(r);
  s.inFill = r.u8();
  s.reqOut = r.u8() % 21;
  s.reqStruct = readSize(r);
  uint8_t f = r.u8();
  s.nullScalarIn = f & 1;
  s.nullOuts = f & 2;
  s.outOfLine = f & 4;
  s.nullScalarOut = f & 8;
  s.nullStructOut = f & 16;
  s.async = f & 64;
  s.nullIns = f & 128;
  uint32_t tags[4];
  if (f & 32) {  // the struct input carries tags (1..4 values, repeated)
    s.nInTags = r.u8() % 4 + 1;
    for (uint32_t i = 0; i < s.nInTags; i++) tags[i] = (uint32_t)readValue(r, w);
    s.inTags = tags;
  }
  doCallSpec(w, slot, s);
}

// A well-formed batch: n tags (1..kBatchMaxTags) made of 1..8 values, cycled or in blocks,
// with an output buffer of exactly 8 bytes per tag, the 4096 maximum, or one entry more.
void doBatch(World &w, Reader &r) {
  int slot = r.u8() % kMaxClients;
  uint8_t flags = r.u8();
  uint32_t n = readCount(r, kb::kBatchMaxTags) + 1;
  uint32_t m = r.u8() % 8 + 1;
  uint32_t vals[8];
  for (uint32_t i = 0; i < m; i++) vals[i] = (uint32_t)readValue(r, w);
  CallSpec s;
  s.selector = flags & 1 ? kb::kSelectorReleaseBatch : kb::kSelectorRetainBatch;
  s.inStructSize = 4 * n;
  std::vector<uint32_t> &tags = w.batchTags;
  tags.resize(n);
  for (uint32_t i = 0; i < n; i++) tags[i] = vals[flags & 8 ? (uint64_t)i * m / n : i % m];
  s.inTags = tags.data();
  s.nInTags = n;
  const uint32_t exact = n * kb::kBatchEntrySize;
  switch ((flags >> 1) & 3) {
    case 1:
      s.reqStruct = kInbandMax;
      break;
    case 2:
      s.reqStruct = std::min(exact + kb::kBatchEntrySize, kInbandMax);
      break;
    default:
      s.reqStruct = exact;
  }
  TRACE("batch %s of %u tags (%u distinct values%s) on client %d", selName(s.selector), n, m,
        flags & 8 ? ", in blocks" : "", slot);
  doCallSpec(w, slot, s);
}

// ---- the machine ----

// The sample's service terminated: IOUserClient::stop for every client registered on it.
void stopRegistered(World &w) {
  w.kexts[w.sampleTag].findClass(KB_SERVICE_CLASS_NAME)->instances = 0;
  for (int i = 0; i < kMaxClients; i++) {
    Client &c = w.clients[i];
    if (c.present && c.registered) {
      c.stopped = true;
      w.touchedClients |= 1u << i;
    }
  }
}

struct StopCalls {
  uint32_t before[kMaxClients] = {0, 0, 0, 0};
  bool registered[kMaxClients] = {false, false, false, false};
  explicit StopCalls(World &w) {
    for (int i = 0; i < kMaxClients; i++)
      if (w.clients[i].present && w.clients[i].raw) {
        before[i] = w.clients[i].rawCore->stopCalls;
        registered[i] = w.clients[i].registered;
      }
  }
  // Each registered raw core was stopped exactly once if the service terminated, else never.
  void check(World &w, bool terminated) {
    for (int i = 0; i < kMaxClients; i++)
      if (w.clients[i].present && w.clients[i].raw) {
        uint32_t calls = w.clients[i].rawCore->stopCalls - before[i];
        uint32_t want = terminated && registered[i] ? 1 : 0;
        CHECK(calls == want, "raw client %d was stopped %u time(s), expected %u", i, calls, want);
      }
  }
};

void advanceChecked(World &w, uint64_t ms) {
  TRACE("advance %llu ms (now %llu, armed %d, deadline %llu)", (unsigned long long)ms,
        (unsigned long long)w.kernel->now(), w.kernel->autounloadArmed(),
        (unsigned long long)w.kernel->autounloadDeadline());
  uint64_t before = w.kernel->now();
  w.kernel->advance(ms);
  CHECK(w.kernel->now() == before + ms, "clock moved to %llu, expected %llu",
        (unsigned long long)w.kernel->now(), (unsigned long long)(before + ms));
  // What the autounload scan took. Only a kext nothing holds, depends on or instantiates, that
  // is no kernel component and may unload, with autounload and unloading on, may go (§3.3).
  // Dependents come after their libraries, so going backwards frees a library in the same scan.
  for (size_t i = w.kexts.size(); i-- > 0;) {
    MKext &k = w.kexts[i];
    if (!k.loaded || w.kernel->retainCount(k.tag) >= 0) continue;
    TRACE("  autounload scan unloaded tag %u (%s)", k.tag, k.bundleId);
    CHECK(w.kernel->pendingRequestCount(k.tag) == 0, "tag %u unloaded with requests pending", k.tag);
    CHECK(w.autounloadEnabled && w.unloadEnabled && !k.component && !k.unloadUnsupported &&
              heldEverywhere(w, k.tag) == 0 && dependentsOf(w, k.tag) == 0 &&
              !hasInstances(w, k, false),
          "the autounload scan unloaded tag %u (%s): held %llu, dependents %u, instances %d, "
          "component %d, unloadUnsupported %d, autounload %s, unload %s", k.tag, k.bundleId,
          (unsigned long long)heldEverywhere(w, k.tag), dependentsOf(w, k.tag),
          hasInstances(w, k, false), k.component, k.unloadUnsupported,
          w.autounloadEnabled ? "on" : "off", w.unloadEnabled ? "on" : "off");
    markUnloaded(w, k);
  }
}

void doAdvance(World &w, Reader &r) {
  static const uint64_t kSteps[] = {0, 1, 59999, 60000, 60001, 120000, 30000, 1000};
  uint8_t m = r.u8();
  advanceChecked(w, m & 0x80 ? r.u32() % 120001 : kSteps[m % 8]);
}

void doLoad(World &w, Reader &r) {
  static const char *const kClassNames[kBundleCount] = {
      "com_fuzz_a_Class", "com_fuzz_b_Class", "com_fuzz_c_Class", "com_fuzz_d_Class",
      "com_fuzz_e_Class", "com_fuzz_f_Class", "com_fuzz_g_Class", "com_fuzz_h_Class"};
  // id, version bit + flags, deps count + deps
  uint8_t idb = r.u8(), flags = r.u8(), ndeps = r.u8() % 4;
  const int id = idb % kBundleCount;
  const char *version = (flags & 1) ? "2.0" : "1.0";
  KextSpec spec;
  spec.bundleId = kBundleIds[id];
  spec.version = version;
  spec.autounload = flags & 2;
  spec.unloadUnsupported = flags & 4;
  bool service = flags & 8, liveInstance = flags & 16;
  bool missingDep = false;
  uint32_t deps[4];
  uint32_t nd = 0;
  for (int i = 0; i < ndeps; i++) {
    uint8_t d = r.u8();
    if (d == 0xFF) {
      spec.dependencies.push_back("com.fuzz.not.loaded");
      missingDep = true;
    } else if (!w.loadedTags.empty()) {
      const uint32_t dep = w.loadedTags[d % w.loadedTags.size()];
      spec.dependencies.push_back(w.kexts[dep].bundleId);
      // OSBundleLibraries is a dictionary: a library named twice is linked (and retained) once.
      if (std::find(deps, deps + nd, dep) == deps + nd) deps[nd++] = dep;
    }
  }
  if (service || liveInstance) {
    ClassSpec cl;
    cl.name = kClassNames[id];
    cl.superclass = service ? "IOService" : "OSObject";
    cl.instances = liveInstance ? 1 : 0;
    spec.classes.push_back(cl);
  }
  uint32_t tag = 0;
  uint32_t kr = w.kernel->loadKext(spec, &tag);
  TRACE("load %s v%s deps=%zu autounload=%d unloadUnsupported=%d class=%d/%d -> 0x%08X tag %u",
        spec.bundleId.c_str(), spec.version.c_str(), spec.dependencies.size(), spec.autounload,
        spec.unloadUnsupported, service, liveInstance, kr, tag);
  MKext *existing = nullptr;
  for (uint32_t t : w.loadedTags)
    if (!strcmp(w.kexts[t].bundleId, kBundleIds[id])) existing = &w.kexts[t];
  if (existing) {
    uint32_t want = !strcmp(existing->version, version) ? kb::RC_kOSReturnSuccess
                                                         : kb::RC_kOSKextReturnLoadedVersionDiffers;
    CHECK(kr == want, "reload of %s: 0x%08X, expected 0x%08X", spec.bundleId.c_str(), kr, want);
    if (kr == kb::RC_kOSReturnSuccess)
      CHECK(tag == existing->tag, "reload of %s gave tag %u, loaded as %u",
            spec.bundleId.c_str(), tag, existing->tag);
  } else if (missingDep) {
    CHECK(kr == kb::RC_kOSKextReturnDependencies, "load with a missing dependency: 0x%08X", kr);
  } else {
    CHECK(kr == kb::RC_kOSReturnSuccess, "load of %s: 0x%08X", spec.bundleId.c_str(), kr);
    CHECK(tag == w.kexts.size(), "new kext got tag %u, expected the next tag %zu (no reuse)",
          tag, w.kexts.size());
    MKext m;
    m.tag = tag;
    m.bundleId = kBundleIds[id];
    m.version = version;
    for (uint32_t i = 0; i < nd; i++) m.deps[m.ndeps++] = deps[i];
    if (service || liveInstance) m.classes[m.nclasses++] = {kClassNames[id], liveInstance ? 1u : 0u};
    m.unloadUnsupported = spec.unloadUnsupported;
    w.kexts.push_back(m);
    rebuildLoadedTags(w);
    touch(w, tag);
    for (uint32_t i = 0; i < nd; i++) {
      w.dependents[deps[i]]++;
      touch(w, deps[i]);
    }
  }
}

// Explicit unload (kernel-facts §3.3, §3.10): refused at once, nothing terminated, while the
// kext is retained or depended on; otherwise the sample's service is terminated first, on this
// thread (each registered client stopped), then the unload is refused while the kext is
// instantiated (open user clients too), unloadable never, or unloading is off; kernel
// components never go.
void unloadChecked(World &w, uint32_t tag) {
  MKext *k = modelKext(w, tag);
  const bool serviceWasUp = serviceUp(w);
  // The kernel's count, not the model's: mid-call, a retain may be in flight.
  const int64_t count = w.kernel->retainCount(tag);
  // Pending resource requests (their callbacks are the kext's code) refuse the unload before
  // anything is terminated (removeKext). From the kernel: checkRequests holds it to the model.
  const uint32_t pending = w.kernel->pendingRequestCount(tag);
  StopCalls stops(w);
  uint32_t kr = w.kernel->unloadKext(tag);
  TRACE("unload tag %u -> 0x%08X", tag, kr);
  if (!k) {
    CHECK(kr == kb::RC_kOSKextReturnNotFound, "unload of unknown tag %u: 0x%08X", tag, kr);
    stops.check(w, false);
    return;
  }
  const bool sample = tag == w.sampleTag;
  const bool retainedNow = count > SimKernel::kBaselineRetainCount;
  const bool terminates =
      sample && serviceWasUp && !retainedNow && !k->unloadUnsupported && pending == 0;
  stops.check(w, terminates);
  if (terminates) stopRegistered(w);
  const bool instances = hasInstances(w, *k, true);
  const bool retained = count > SimKernel::kBaselineRetainCount;
  if (!retained && !instances && !k->component && !k->unloadUnsupported && w.unloadEnabled &&
      pending == 0) {
    CHECK(kr == kb::RC_kOSReturnSuccess, "unload of idle tag %u (%s) refused: 0x%08X", tag,
          k->bundleId, kr);
    markUnloaded(w, *k);
    return;
  }
  // The safety property: nothing retained, depended on or instantiated is ever unloaded.
  bool why = (kr == kb::RC_kOSKextReturnInUse &&
              (retained || instances || k->unloadUnsupported || pending > 0)) ||
             (kr == kb::RC_kOSKextReturnDisabled && !w.unloadEnabled) ||
             (kr == kb::RC_kOSKextReturnInvalidArgument && k->component);
  CHECK(why, "unload of tag %u (%s, retainCount %lld, instances %d, component %d, unsupported %d, "
        "unload %s): 0x%08X", tag, k->bundleId, (long long)count, instances, k->component,
        k->unloadUnsupported, w.unloadEnabled ? "on" : "off", kr);
}

void doUnload(World &w, Reader &r) { unloadChecked(w, (uint32_t)readValue(r, w)); }

void setInstancesChecked(World &w, uint32_t tag, const char *cls, uint32_t count) {
  MKext *k = modelKext(w, tag);
  const bool sample = tag == w.sampleTag;
  const bool terminates = sample && k && serviceUp(w) && !strcmp(cls, KB_SERVICE_CLASS_NAME) &&
                          count == 0;
  StopCalls stops(w);
  uint32_t kr = w.kernel->setInstances(tag, cls, count);
  TRACE("setInstances tag %u %s = %u -> 0x%08X", tag, cls, count, kr);
  // Only a class the kext declared (com_fuzz_Extra never is); never the sample's user-client
  // class, whose instances are the open connections.
  MKext::Cls *c = k ? k->findClass(cls) : nullptr;
  const bool allowed = c && !(sample && !strcmp(cls, KB_USER_CLIENT_CLASS_NAME));
  uint32_t want = !k ? kb::RC_kOSKextReturnNotFound
                     : allowed ? kb::RC_kOSReturnSuccess : kb::RC_kOSKextReturnInvalidArgument;
  CHECK(kr == want, "setInstances(%u, %s): 0x%08X, expected 0x%08X", tag, cls, kr, want);
  // The service terminated: every client registered on it was stopped. They keep their
  // ledgers until they close (design §2.5).
  stops.check(w, terminates);
  if (terminates) stopRegistered(w);
  if (kr == kb::RC_kOSReturnSuccess) c->instances = count;
}

void doSetInstances(World &w, Reader &r) {
  uint64_t v = readValue(r, w);
  uint8_t which = r.u8(), count = r.u8() % 3;
  uint32_t tag = (uint32_t)v;
  const char *cls = "com_fuzz_Extra";
  if (!(which & 1)) {
    MKext *k = modelKext(w, tag);
    if (tag == w.sampleTag) {
      cls = KB_SERVICE_CLASS_NAME;  // terminate / re-register the sample's service
    } else if (k && k->nclasses) {
      cls = k->classes[0].name;
    }
  }
  // Never the user-client class: its count is the open connections', which nothing else sets.
  setInstancesChecked(w, tag, cls, count);
}

void doRepeat(World &w, Reader &r) {
  int slot = r.u8() % kMaxClients;
  uint32_t sel = (r.u8() & 1) ? kb::kSelectorRelease : kb::kSelectorRetain;
  uint64_t tag = readValue(r, w);
  uint32_t times = readCount(r, kMaxRepeat);
  TRACE("repeat %s(%llu) x%u on client %d", selName(sel), (unsigned long long)tag, times, slot);
  bool trace = gTrace;
  gTrace = false;
  const CallSpec s = wellFormed(sel, tag);
  for (uint32_t i = 0; i < times; i++) doCallSpec(w, slot, s);
  gTrace = trace;
}

// At most kMaxTableReads per input: the table is copied twice (sim, then transport) with all
// its strings, and rereading it found nothing new while costing a fifth of the time.
const uint32_t kMaxTableReads = 2;

void doLoadedKexts(World &w, Reader &r) {
  int slot = r.u8() % kMaxClients;
  Client &c = w.clients[slot];
  if (!c.present || c.raw) return;
  if (w.tableReads >= kMaxTableReads) {
    TRACE("loadedKexts via client %d: skipped (%u per input)", slot, kMaxTableReads);
    return;
  }
  w.tableReads++;
  std::vector<kb::KextInfo> out;
  uint32_t kr = c.transport->loadedKexts(out);
  TRACE("loadedKexts via client %d -> 0x%08X, %zu kexts", slot, kr, out.size());
  CHECK(kr == kb::RC_kOSReturnSuccess, "loadedKexts: 0x%08X", kr);
  // What KextManagerCopyLoadedKextInfo shows: the loaded kexts in tag order, OSBundleRetainCount
  // without the kernel's own 2, dependencies descending.
  CHECK(out.size() == w.loadedTags.size(), "transport lists %zu kexts, the model %zu", out.size(),
        w.loadedTags.size());
  for (size_t i = 0; i < out.size(); i++) {
    const uint32_t t = w.loadedTags[i];
    const int64_t want = (int64_t)heldEverywhere(w, t) + dependentsOf(w, t);
    CHECK(out[i].loadTag == t && out[i].retainCount == want && out[i].bundleId == w.kexts[t].bundleId,
          "transport row %zu: tag %u %s retainCount %d, the model: tag %u %s retainCount %lld", i,
          out[i].loadTag, out[i].bundleId.c_str(), out[i].retainCount, t, w.kexts[t].bundleId,
          (long long)want);
    for (size_t j = 1; j < out[i].dependencies.size(); j++)
      CHECK(out[i].dependencies[j - 1] > out[i].dependencies[j], "dependencies of %s not descending",
            out[i].bundleId.c_str());
  }
}

void doFault(World &w, Reader &r) {
  static const uint32_t kCodes[] = {kb::RC_kOSReturnError, kb::RC_kOSKextReturnNotFound,
                                    kb::RC_kOSKextReturnInvalidArgument,
                                    kb::RC_kOSKextReturnStopping};
  int kpi = r.u8() & 1;
  uint32_t code = kCodes[r.u8() % 4], times = r.u8() % 4;
  TRACE("inject fault: next %u %s call(s) answer 0x%08X", times, kpi ? "release" : "retain", code);
  w.kernel->injectFault(kpi ? kb::sim::Kpi::Release : kb::sim::Kpi::Retain, code, times);
  w.faultCode[kpi] = code;
  w.faultTimes[kpi] = times;
}

// ---- mid-call hooks ----

const char *const kHookNames[8] = {
    "close this client", "terminate this client", "terminate the sample's service",
    "unload the sample kext", "run the autounload scan", "close another client",
    "destroy another client", "terminate then close this client"};

// Runs the armed hook's action from inside a KPI call of `slot`'s core: what another thread of
// the real kernel may do at that moment. Never a call into the same core's externalMethod.
void fireHook(World &w, int slot) {
  const Hook h = w.hook;
  w.hook.armed = false;
  const int other = (slot + 1 + h.arg % (kMaxClients - 1)) % kMaxClients;
  TRACE("  mid-call, %s KPI call #%u of this operation: %s%s", h.after ? "after" : "before", h.at,
        kHookNames[h.action % 8], h.action % 8 >= 5 && h.action % 8 <= 6 ? fmt(" (%d)", other).c_str() : "");
  switch (h.action % 8) {
    case 0:
      closeClient(w, slot, false);
      break;
    case 1:
      terminateClient(w, slot);
      break;
    case 2:
      setInstancesChecked(w, w.sampleTag, KB_SERVICE_CLASS_NAME, 0);
      break;
    case 3:
      unloadChecked(w, w.sampleTag);
      break;
    case 4:
      advanceChecked(w, h.arg & 1 ? 120000 : 60000);
      break;
    case 5:
      closeClient(w, other, false);
      break;
    case 6:
      // A client with a call in progress is kept alive by IOKit: it can only be closed.
      closeClient(w, other, !onStack(w, other));
      break;
    case 7:
      terminateClient(w, slot);
      closeClient(w, slot, false);
      break;
  }
}

// ---- issue 13: requests, cancels, fetches, loads by identifier ----

void installResources(World &w) {
  if (w.resourcesInstalled) return;
  static kb::sim::Resources *res = nullptr;
  if (!res) {
    res = new kb::sim::Resources;
    for (int i = 0; i < kResCount - 1; i++) {
      std::vector<uint8_t> &v = (*res)[kResNames[i]];
      v.resize(kResSizes[i]);
      for (uint32_t j = 0; j < kResSizes[i]; j++) v[j] = resByte(i, j);
    }
  }
  KextSpec bundle;
  bundle.bundleId = KB_SAMPLE_BUNDLE_ID;
  CHECK(w.kernel->installKext(bundle, *res) == kb::RC_kOSReturnSuccess, "install the resources");
  w.resourcesInstalled = true;
}

// The IOReturn every request-family call gets before its handler's own answer: the MIG edge
// of a closed transport, then (after the shape) privilege, the content check, the closed check.
uint32_t reqPrefix(Client &c, bool admin, bool badContent) {
  if (!c.raw && c.closed) return kb::RC_MACH_SEND_INVALID_DEST;
  if (admin && !c.privileged) return kb::RC_kIOReturnNotPrivileged;
  if (badContent) return kb::RC_kIOReturnBadArgument;
  if (!c.open()) return kb::RC_kIOReturnNotOpen;
  return kb::RC_kIOReturnSuccess;
}

uint32_t callClient(World &w, int slot, uint32_t sel, bool async, const uint64_t *in, uint32_t nIn,
                    const void *inStruct, uint32_t inStructSize, uint64_t *out, uint32_t nOut,
                    void *outStruct, uint32_t *outStructSize) {
  Client &c = w.clients[slot];
  if (c.raw) {
    uint64_t ref[kb::kAsyncRefWords] = {0xB0A7u + (uint32_t)slot, 0, 0xC0DE0000u + (uint32_t)slot};
    MethodArgs a;
    a.scalarInput = in;
    a.scalarInputCount = nIn;
    a.structureInput = inStruct;
    a.structureInputSize = inStructSize;
    a.scalarOutput = out;
    a.scalarOutputCount = nOut;
    a.structureOutput = outStruct;
    a.structureOutputSize = *outStructSize;
    a.async = async;
    a.asyncReference = async ? ref : nullptr;
    a.asyncReferenceCount = async ? kb::kAsyncRefWords : 0;
    // Counted before the call: a success reply hands the reference over, and the core may
    // release it (the kernel refused the request) before the reply is out.
    if (async) c.rawCore->refs++;
    uint32_t kr = c.rawCore->core.externalMethod(sel, a);
    if (kr != kb::RC_kIOReturnSuccess && async) c.rawCore->refs--;  // MIG gives it back
    *outStructSize = kr == kb::RC_kIOReturnSuccess ? a.structureOutputSize : 0;
    return kr;
  }
  uint32_t oc = nOut;
  size_t os = *outStructSize;
  uint32_t kr = async ? c.transport->callAsyncMethod(sel, 0xC0DE0000u + (uint32_t)slot, in, nIn, inStruct,
                                                     inStructSize, out, &oc, outStruct, &os)
                      : c.transport->callMethod(sel, in, nIn, inStruct, inStructSize, out, &oc,
                                                outStruct, &os);
  *outStructSize = (uint32_t)os;
  return kr;
}

void doRequest(World &w, Reader &r) {
  const int slot = r.u8() % kMaxClients;
  const int res = r.u8() % kResCount;
  const uint8_t flags = r.u8();
  Client &c = w.clients[slot];
  if (!c.present) return;
  installResources(w);
  w.touchedClients |= 1u << slot;
  w.work++;
  uint8_t in[kb::kBundleIdSize + kb::kResourceNameSize];
  memset(in, 0, sizeof in);
  if (!(flags & 1)) strcpy((char *)in, KB_SAMPLE_BUNDLE_ID);
  strcpy((char *)in + kb::kBundleIdSize, kResNames[res]);
  if (flags & 2) memset(in + kb::kBundleIdSize, 'n', kb::kResourceNameSize);
  uint32_t want = reqPrefix(c, true, (flags & 3) != 0);
  if (want == kb::RC_kIOReturnSuccess && c.reqs.size() == kb::kRequestCapacity)
    want = kb::RC_kIOReturnNoResources;
  uint64_t out[2] = {0xA5A5, 0xA5A5};
  uint32_t os = 0;
  uint32_t kr = callClient(w, slot, kb::kSelectorRequestResource, true, nullptr, 0, in, sizeof in,
                           out, 2, nullptr, &os);
  TRACE("client %d requestResource(%s) flags %u -> 0x%08X {0x%08llX, %llu}", slot, kResNames[res],
        flags, kr, (unsigned long long)out[0], (unsigned long long)out[1]);
  CHECK(kr == want, "client %d requestResource: 0x%08X, expected 0x%08X", slot, kr, want);
  if (kr != kb::RC_kIOReturnSuccess) return;
  // The requester is the sample kext: while it is loaded the kernel takes the request.
  const bool sampleUp = w.kexts[w.sampleTag].loaded;
  const uint32_t wantOsr = sampleUp ? kb::RC_kOSReturnSuccess : kb::RC_kOSKextReturnInvalidArgument;
  CHECK(out[0] == wantOsr, "client %d requestResource: kernel 0x%08llX, expected 0x%08X", slot,
        (unsigned long long)out[0], wantOsr);
  if (out[0] != kb::RC_kOSReturnSuccess) {
    CHECK(out[1] == kb::kInvalidRequestTag, "a refused request has tag %llu", (unsigned long long)out[1]);
    return;
  }
  CHECK(out[1] == w.nextReqTag, "request tag %llu, expected %u (from 0 up)", (unsigned long long)out[1],
        w.nextReqTag);
  w.nextReqTag = (uint32_t)out[1] + 1;
  c.reqs.push_back({(uint32_t)out[1], res, false, 0, 0});
}

// A tag to cancel or fetch: one of the client's model requests, or any u32.
uint32_t pickTag(Reader &r, Client &c) {
  const uint8_t p = r.u8();
  if (p & 0x80) return r.u32();
  if (c.reqs.empty()) return p;
  return c.reqs[p % c.reqs.size()].tag;
}

void doCancelReq(World &w, Reader &r) {
  const int slot = r.u8() % kMaxClients;
  Client &c = w.clients[slot];
  const uint32_t tag = pickTag(r, c);
  if (!c.present) return;
  w.touchedClients |= 1u << slot;
  w.work++;
  uint32_t want = reqPrefix(c, false, false);
  Client::MReq *q = c.findReq(tag);
  if (want == kb::RC_kIOReturnSuccess && !(q && !q->ready)) want = kb::RC_kIOReturnNotFound;
  uint64_t in[1] = {tag}, out[1] = {0xA5A5};
  uint32_t os = 0;
  uint32_t kr = callClient(w, slot, kb::kSelectorCancelRequest, false, in, 1, nullptr, 0, out, 1, nullptr, &os);
  TRACE("client %d cancelRequest(%u) -> 0x%08X {0x%08llX}", slot, tag, kr, (unsigned long long)out[0]);
  CHECK(kr == want, "client %d cancelRequest(%u): 0x%08X, expected 0x%08X", slot, tag, kr, want);
  if (kr != kb::RC_kIOReturnSuccess) return;
  // Single-threaded, a pending request is still in the kernel: the cancel wins.
  CHECK(out[0] == kb::RC_kOSReturnSuccess, "cancel of pending tag %u: kernel 0x%08llX", tag,
        (unsigned long long)out[0]);
  c.reqs.erase(c.reqs.begin() + (c.findReq(tag) - c.reqs.data()));
}

void doFetch(World &w, Reader &r) {
  const int slot = r.u8() % kMaxClients;
  Client &c = w.clients[slot];
  const uint32_t tag = pickTag(r, c);
  const uint8_t flags = r.u8();
  if (!c.present) return;
  w.touchedClients |= 1u << slot;
  w.work++;
  Client::MReq *q = c.findReq(tag);
  const uint64_t offset = (q ? q->fetched : 0) + (flags & 1 ? 1 + (flags >> 1) : 0);
  uint32_t copied = 0;
  uint32_t want = reqPrefix(c, false, false);
  if (want == kb::RC_kIOReturnSuccess) want = expectFetch(c, tag, offset, &copied);
  uint64_t in[2] = {tag, offset}, out[2] = {0, 0};
  static uint8_t chunk[kb::kFetchChunkSize];
  uint32_t os = sizeof chunk;
  uint32_t kr = callClient(w, slot, kb::kSelectorFetchResource, false, in, 2, nullptr, 0, out, 2, chunk, &os);
  TRACE("client %d fetchResource(%u, %llu) -> 0x%08X, %u bytes", slot, tag, (unsigned long long)offset, kr, os);
  CHECK(kr == want, "client %d fetchResource(%u, %llu): 0x%08X, expected 0x%08X", slot, tag,
        (unsigned long long)offset, kr, want);
  if (kr != kb::RC_kIOReturnSuccess) return;
  CHECK(os == copied, "fetch: %u bytes, expected %u", os, copied);
  fetched(w, c, tag, out, chunk, copied);
}

void doLoadId(World &w, Reader &r) {
  const int slot = r.u8() % kMaxClients;
  const uint8_t mode = r.u8() % 4;
  Client &c = w.clients[slot];
  if (!c.present) return;
  w.touchedClients |= 1u << slot;
  w.work++;
  // Never an installed, unloaded id: the model's kext table stays the kernel's.
  char id[kb::kBundleIdSize];
  memset(id, 0, sizeof id);
  uint32_t size = 0;
  uint32_t wantOsr = kb::RC_kOSKextReturnDeferred;
  bool bad = false;
  if (mode == 0) {
    snprintf(id, sizeof id, "com.fuzz.unknown.%u", (unsigned)(w.work % 5));
  } else if (mode == 1 && w.kexts[w.sampleTag].loaded) {
    snprintf(id, sizeof id, "%s", KB_SAMPLE_BUNDLE_ID);
    wantOsr = kb::RC_kOSReturnSuccess;
  } else if (mode == 2 && !w.loadedTags.empty()) {
    snprintf(id, sizeof id, "%s", w.kexts[w.loadedTags.back()].bundleId);
    wantOsr = kb::RC_kOSReturnSuccess;
  } else {
    memset(id, 'x', sizeof id);  // no NUL within 64 bytes
    bad = true;
  }
  size = bad ? (uint32_t)sizeof id : (uint32_t)strlen(id) + 1;
  const uint32_t want = reqPrefix(c, true, bad);
  uint64_t out[1] = {0xA5A5};
  uint32_t os = 0;
  uint32_t kr = callClient(w, slot, kb::kSelectorLoadKextWithIdentifier, false, nullptr, 0, id, size,
                           out, 1, nullptr, &os);
  TRACE("client %d loadKextWithIdentifier(mode %u) -> 0x%08X {0x%08llX}", slot, mode, kr,
        (unsigned long long)out[0]);
  CHECK(kr == want, "client %d loadKextWithIdentifier: 0x%08X, expected 0x%08X", slot, kr, want);
  if (kr == kb::RC_kIOReturnSuccess)
    CHECK(out[0] == wantOsr, "loadKextWithIdentifier: kernel 0x%08llX, expected 0x%08X",
          (unsigned long long)out[0], wantOsr);
}

void doResCtl(World &w, Reader &r) {
  const uint8_t m = r.u8() % 6;
  static const char *const names[] = {"withhold on", "withhold off", "fail next", "delay 0",
                                      "delay 10", "delay 70 s"};
  TRACE("kernelmanagerd: %s", names[m]);
  switch (m) {
    case 0: w.kernel->withholdResources(true); break;
    case 1: w.kernel->withholdResources(false); break;
    case 2:
      w.resFaultTimes = 1 + (uint32_t)(w.work & 1);
      w.kernel->failResources(kResFaultCode, w.resFaultTimes);
      break;
    case 3: w.kernel->setResourceDelay(0); break;
    case 4: w.kernel->setResourceDelay(10); break;
    case 5: w.kernel->setResourceDelay(70000); break;
  }
}

void runOp(World &w, Reader &r, bool allowHook);

// hook: at byte (bit7: a u16 follows, at = u16 % 1024 + 1; else at = (byte & 7) + 1;
// bit3: after forwarding), action byte (% 8, kHookNames), arg byte; then the operation.
void doHooked(World &w, Reader &r) {
  uint8_t b = r.u8();
  Hook h;
  h.armed = true;
  h.at = b & 0x80 ? r.u16() % 1024 + 1 : (b & 7) + 1;
  h.after = b & 0x08;
  h.action = r.u8();
  h.arg = r.u8();
  TRACE("arm hook: %s KPI call #%u of the next operation: %s", h.after ? "after" : "before", h.at,
        kHookNames[h.action % 8]);
  w.hook = h;
  runOp(w, r, false);
  if (w.hook.armed) TRACE("  (the hook did not fire: %u KPI call(s) through raw cores)", w.opKpiCalls);
  w.hook.armed = false;
}

void runOp(World &w, Reader &r, bool allowHook) {
  uint8_t op = r.u8() % kOpCount;
  ProfScope prof(op);
  w.opKpiCalls = 0;
  switch (op) {
    case kOpOpen:
      doOpen(w, r);
      break;
    case kOpCall:
      doCall(w, r);
      break;
    case kOpClose: {
      int slot = r.u8() % kMaxClients;
      TRACE("close client %d", slot);
      closeClient(w, slot, false);
      break;
    }
    case kOpDie: {
      int slot = r.u8() % kMaxClients;
      TRACE("client %d dies (destroyed without close)", slot);
      closeClient(w, slot, true);
      break;
    }
    case kOpAdvance:
      doAdvance(w, r);
      break;
    case kOpLoad:
      doLoad(w, r);
      break;
    case kOpUnload:
      doUnload(w, r);
      break;
    case kOpSetInstances:
      doSetInstances(w, r);
      break;
    case kOpRetain:
    case kOpRelease: {
      int slot = r.u8() % kMaxClients;
      uint64_t tag = readValue(r, w);
      doCallSpec(w, slot,
                 wellFormed(op == kOpRetain ? kb::kSelectorRetain : kb::kSelectorRelease, tag));
      break;
    }
    case kOpHeld:
    case kOpGetInfo: {
      int slot = r.u8() % kMaxClients;
      doCallSpec(w, slot, wellFormed(op == kOpHeld ? kb::kSelectorHeld : kb::kSelectorGetInfo, 0));
      break;
    }
    case kOpRepeat:
      doRepeat(w, r);
      break;
    case kOpLoadedKexts:
      doLoadedKexts(w, r);
      break;
    case kOpFault:
      doFault(w, r);
      break;
    case kOpBatch:
      doBatch(w, r);
      break;
    case kOpTerminate: {
      int slot = r.u8() % kMaxClients;
      TRACE("terminate client %d (IOUserClient::stop)", slot);
      terminateClient(w, slot);
      break;
    }
    case kOpRequest:
      doRequest(w, r);
      break;
    case kOpCancelReq:
      doCancelReq(w, r);
      break;
    case kOpFetch:
      doFetch(w, r);
      break;
    case kOpLoadId:
      doLoadId(w, r);
      break;
    case kOpResCtl:
      doResCtl(w, r);
      break;
    case kOpHooked:
      if (allowHook) {
        doHooked(w, r);
      } else {
        TRACE("(hooked inside hooked: ignored)");
      }
      break;
  }
}

// ASan defaults for this harness (ASAN_OPTIONS still overrides them). A 16 MB quarantine still
// keeps a freed block poisoned for hundreds of inputs (each frees well under 100 KB), so a
// use-after-free within an input is still reported; 10 frames of allocation/free stack still
// name the allocating code. Both cut the cost of every malloc/free (issue 15).
extern "C" const char *__asan_default_options() {
  return "quarantine_size_mb=16:malloc_context_size=10";
}

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  const char *t = getenv("KB_FUZZ_TRACE");
  gTrace = t && *t && strcmp(t, "0") != 0;
  const char *s = getenv("KB_FUZZ_SEEDCHECK");
  gSeedCheck = s && *s && strcmp(s, "0") != 0;
  const char *st = getenv("KB_FUZZ_STRICT");
  gStrict = st && *st && strcmp(st, "0") != 0;
  const char *p = getenv("KB_FUZZ_PROFILE");
  gProfile = p && *p && strcmp(p, "0") != 0;
  if (gProfile) atexit(printProfile);
  return 0;
}

}  // namespace

namespace {

void runInput(const uint8_t *data, size_t size) {
  Reader r(data, size);
  uint8_t opts = r.u8();
  SimKernel::Options o;
  o.autounloadEnabled = !(opts & 1);
  o.unloadEnabled = !(opts & 2);
  // One World for the process, reset per input: its vectors keep their capacity.
  static World *world = new World;
  World &w = *world;
  ProfScope *profKernel = new ProfScope(kProfKernel);
  w.kernel = std::make_shared<SimKernel>(o);
  w.sampleTag = w.kernel->sampleLoadTag();
  w.unloadEnabled = o.unloadEnabled;
  w.autounloadEnabled = o.autounloadEnabled;
  if (gDefaultWorld.empty()) buildDefaultWorld(*w.kernel);
  w.kexts = gDefaultWorld;
  w.dependents.assign(w.kexts.size(), 0);
  rebuildLoadedTags(w);
  for (MKext &k : w.kexts)
    for (uint32_t i = 0; i < k.ndeps; i++) w.dependents[k.deps[i]]++;
  w.ucInstances = 0;
  w.faultCode[0] = w.faultCode[1] = w.faultTimes[0] = w.faultTimes[1] = 0;
  w.leaked.clear();
  w.touched.clear();
  w.touchedClients = 0;
  w.hook = Hook();
  w.opKpiCalls = 0;
  w.work = 0;
  w.tableReads = 0;
  resetRequestModel(w);
  for (Client &c : w.clients) CHECK(!c.present, "a client survived the previous input");
  gStep = 0;
  TRACE("kernel: autounload %s, explicit unload %s", o.autounloadEnabled ? "on" : "off",
        o.unloadEnabled ? "on" : "off");
  delete profKernel;
  static bool checkedDefaultWorld = false;  // the model starts equal to the kernel: once suffices
  if (!checkedDefaultWorld || gTrace) fullCheck(w);
  checkedDefaultWorld = true;
  while (!r.done() && gStep < kMaxSteps && w.work < kWorkBudget) {
    gStep++;
    runOp(w, r, true);
    ProfScope prof(kProfStepCheck);
    stepCheck(w);
  }
  if (gSeedCheck) {
    CHECK(!r.overran(), "the input ends inside an operation (a read past its end)");
    CHECK(r.done(), "the input was not read to its end (step or work limit reached)");
  }
  ProfScope prof(kProfEnd);
  // Every client dies with the process; the kernel must return to its own references.
  for (int i = 0; i < kMaxClients; i++) closeClient(w, i, true);
  gStep++;
  fullCheck(w);
  CHECK(w.ucInstances == 0, "user-client instances left: %u", w.ucInstances);
  for (auto &e : w.leaked) TRACE("end: tag %u keeps %u leaked retain(s)", e.first, e.second);
  w.kernel.reset();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ProfScope whole(kProfWhole);
  runInput(data, size);
  return 0;
}

#pragma clang attribute pop
