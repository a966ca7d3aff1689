// libFuzzer harness for the user-client core, driven through SimTransport (the MIG edges) and
// directly (raw UserClientCore), on one SimKernel per input. Build and run: scripts/fuzz.sh.
//
// The input is a byte program read front to back (fuzz/gen-corpus.js writes seeds in the same
// format; see the "Input format" comment below). Each operation is checked against an
// independent model built from the protocol in DESIGN.md:
//   - the exact IOReturn every call must answer (MIG edges, selector/shape checks, privilege,
//     64-bit tags, ledger policy) and, on success, the exact outputs;
//   - on anything but success: no outputs reported (counts 0) and output buffers untouched;
//   - output counts never above what the caller asked for; output buffers are allocated at
//     exactly the requested size so ASan catches any overrun;
//   - after every step: the sim never panicked, and for every loaded kext
//       retainCount(tag) == 2 + Σ(live clients' ledger counts for tag) + #loaded dependents,
//     which also proves a closed or dead client holds nothing; every tag a live client holds
//     is still loaded; the model's ledgers agree with the core's (held selector, heldCount).
// A violation prints what went wrong and the step, then aborts (libFuzzer records the crash).
// KB_FUZZ_TRACE=1 in the environment prints every decoded step (for reproducers).
//
// Modelling choices:
//   - a transport client "dies" by being destroyed without close (~SimTransport = clientDied);
//     a raw core has no owner to do that, so its "die" is close() (what the kext's clientDied
//     calls) and then destruction; raw cores are not counted as user-client instances;
//   - where DESIGN.md leaves the order of two refusals open, the model follows the core:
//     shape before privilege before the 64-bit tag check; the closed check comes last;
//   - injected KPI faults answer failure codes only, and are cleared before any close (the
//     real KPI never refuses releasing a held tag, and close() cannot report it per tag);
//   - the user-client class's instance count is never set directly (only open/close move it);
//   - single-threaded: the lock is exercised but not contended (the jest concurrency suite
//     covers threads).

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
//   then operations until the input ends or kMaxSteps:
//     op byte % kOpCount, then the operands listed at each case in runOp() / the enum below.
// A "value" operand (tags, scalars) is a mode byte % 8 followed by the mode's bytes:
//   0 +idx  loaded kext tag (index into loadedKexts())   1       the sample kext's tag
//   2       0xFFFFFFFF (kOSKextInvalidLoadTag)            3 +idx  any tag ever issued (maybe gone)
//   4 +idx+hi  a loaded tag with bits above 32 set         5 +u64  raw 64-bit value
//   6 +d    a tag never issued yet (next + d)              7 +idx  a tag some client holds
// A "size" operand is a mode byte % 4: 0 → 0; 1 +u8 → small; 2 +idx → one of the interesting
// sizes {0, 2, 4, 8, 127, 128, 129, 2047, 2048, 2049, 4095, 4096, 4097, 8192, 65535, 16};
// 3 +u16 → raw.
// ---------------------------------------------------------------------------------------------

enum Op : uint8_t {
  kOpOpen = 0,          // slot, flags (bit0 unprivileged, bit1 raw core)
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
  kOpFault = 14,        // kpi bit (0 retain, 1 release), code index, times (% 4)
  kOpCount = 15
};

const int kMaxClients = 4;
const int kMaxSteps = 600;
const uint32_t kMaxRepeat = 300;
const uint32_t kInvalid = 0xFFFFFFFFu;
const uint32_t kInbandMax = 4096;
const char *const kBundleIds[] = {"com.fuzz.a", "com.fuzz.b", "com.fuzz.c", "com.fuzz.d",
                                  "com.fuzz.e", "com.fuzz.f", "com.fuzz.g", "com.fuzz.h"};
const int kBundleCount = 8;

bool gTrace = false;
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
  uint8_t u8() { return pos_ < n_ ? d_[pos_++] : 0; }
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
};

// A raw core the way the kext's IOUserClient holds one: its own lock and kernel API.
struct RawCore {
  explicit RawCore(std::shared_ptr<SimKernel> k, bool privileged)
      : api(std::move(k)), core(api, lock, privileged) {}
  kb::sim::SampleKextApi api;
  kb::sim::MutexLock lock;
  UserClientCore core;
};

struct Client {
  bool present = false;
  bool raw = false;
  bool privileged = false;
  bool closed = false;  // closed but not destroyed: calls must fail, holds nothing
  bool stopped = false;  // its service was terminated: ledger released, calls reach a closed core
  std::unique_ptr<Transport> transport;
  std::unique_ptr<RawCore> rawCore;
  std::map<uint32_t, uint32_t> held;  // the model ledger, from observed outputs

  uint32_t outstanding() const {
    uint32_t n = 0;
    for (auto &e : held) n += e.second;
    return n;
  }
  uint32_t count(uint32_t tag) const {
    auto it = held.find(tag);
    return it == held.end() ? 0 : it->second;
  }
  bool live() const { return present && !closed; }
};

struct World {
  std::shared_ptr<SimKernel> kernel;
  Client clients[kMaxClients];
  uint32_t issuedTagsEnd = 0;    // every tag below this has been handed out at some point
  uint32_t ucInstances = 0;      // expected live instances of the user-client class
  std::map<std::string, bool> unloadUnsupported;  // bundle ids we loaded that way
  bool unloadEnabled = true;
  // Injected KPI faults (SimKernel::injectFault), [0] retain, [1] release: the next `times`
  // calls answer `code` and change nothing. Only failure codes: a fault answering success
  // would be a kernel that lies, which no ledger can survive.
  uint32_t faultCode[2] = {0, 0};
  uint32_t faultTimes[2] = {0, 0};
};

// ---- helpers over the kernel ----

std::vector<KextInfo> loaded(World &w) { return w.kernel->loadedKexts(); }

bool isLoaded(const std::vector<KextInfo> &ks, uint32_t tag) {
  for (auto &k : ks)
    if (k.loadTag == tag) return true;
  return false;
}

const KextInfo *findInfo(const std::vector<KextInfo> &ks, uint32_t tag) {
  for (auto &k : ks)
    if (k.loadTag == tag) return &k;
  return nullptr;
}

void refreshIssued(World &w, const std::vector<KextInfo> &ks) {
  for (auto &k : ks)
    if (k.loadTag != kInvalid && k.loadTag + 1 > w.issuedTagsEnd) w.issuedTagsEnd = k.loadTag + 1;
}

// What OSKextRetain/ReleaseKextWithLoadTag answer (xnu-facts §3.1/§3.2): found or not.
// (retainCount is -1 exactly when no loaded kext has the tag; checkInvariants cross-checks
// it against loadedKexts() after every step.)
uint32_t kernelAnswer(World &w, int kpi, uint32_t tag) {
  if (w.faultTimes[kpi]) return w.faultCode[kpi];
  if (tag == kInvalid) return kb::RC_kOSKextReturnInvalidArgument;
  return w.kernel->retainCount(tag) >= 0 ? kb::RC_kOSReturnSuccess : kb::RC_kOSKextReturnNotFound;
}

uint64_t readValue(Reader &r, World &w) {
  uint8_t mode = r.u8() % 8;
  std::vector<KextInfo> ks;
  if (mode == 0 || mode == 4) ks = loaded(w);
  switch (mode) {
    case 0:
      return ks.empty() ? 0 : ks[r.u8() % ks.size()].loadTag;
    case 1:
      return w.kernel->sampleLoadTag();
    case 2:
      return kInvalid;
    case 3:
      return w.issuedTagsEnd ? r.u8() % w.issuedTagsEnd : 0;
    case 4: {
      uint64_t low = ks.empty() ? 0 : ks[r.u8() % ks.size()].loadTag;
      uint8_t hi = r.u8();
      return low | ((uint64_t)(hi ? hi : 1) << 32) | (hi == 0xFF ? 0xFFFFFFFF00000000ull : 0);
    }
    case 5:
      return r.u64();
    case 6:
      return (uint64_t)w.issuedTagsEnd + r.u8();
    case 7: {
      std::vector<uint32_t> tags;
      for (auto &c : w.clients)
        if (c.live())
          for (auto &e : c.held) tags.push_back(e.first);
      uint8_t i = r.u8();
      return tags.empty() ? w.kernel->sampleLoadTag() : tags[i % tags.size()];
    }
  }
  return 0;
}

uint32_t readSize(Reader &r) {
  static const uint32_t kSizes[] = {0,    2,    4,    8,    127,  128,  129,   2047,
                                    2048, 2049, 4095, 4096, 4097, 8192, 65535, 16};
  switch (r.u8() % 4) {
    case 0:
      return 0;
    case 1:
      return r.u8();
    case 2:
      return kSizes[r.u8() % 16];
    default:
      return r.u16();
  }
}

// ---- invariants, checked after every step ----

void checkInvariants(World &w) {
  CHECK(!w.kernel->panicked(), "the sim panicked: %s", w.kernel->panicRecord().message.c_str());
  std::vector<KextInfo> ks = loaded(w);
  refreshIssued(w, ks);

  std::map<uint32_t, uint32_t> dependents;
  for (auto &k : ks)
    for (uint32_t d : k.dependencies) dependents[d]++;

  std::map<uint32_t, uint64_t> heldByClients;
  for (int i = 0; i < kMaxClients; i++) {
    Client &c = w.clients[i];
    if (!c.present) continue;
    if (c.closed) CHECK(c.held.empty(), "closed client %d still has a model ledger", i);
    for (auto &e : c.held) {
      CHECK(e.second > 0, "model ledger of client %d has a zero entry for tag %u", i, e.first);
      CHECK(isLoaded(ks, e.first),
            "client %d holds %u retain(s) on tag %u, but that kext is no longer loaded", i,
            e.second, e.first);
      heldByClients[e.first] += e.second;
    }
    if (c.raw) {
      UserClientCore &core = c.rawCore->core;
      CHECK(core.closed() == c.closed, "raw client %d: closed()=%d, model %d", i, core.closed(),
            c.closed);
      CHECK(core.outstanding() == c.outstanding(),
            "raw client %d: core outstanding %u, model %u", i, core.outstanding(),
            c.outstanding());
      for (auto &e : c.held)
        CHECK(core.heldCount(e.first) == e.second, "raw client %d: core heldCount(%u)=%u, model %u",
              i, e.first, core.heldCount(e.first), e.second);
    }
  }

  for (auto &k : ks) {
    int64_t expected = SimKernel::kBaselineRetainCount + (int64_t)heldByClients[k.loadTag] +
                       dependents[k.loadTag];
    int64_t rc = w.kernel->retainCount(k.loadTag);
    CHECK(rc == expected,
          "kext %s (tag %u): retainCount %lld, expected 2 + %llu held by live clients + %u "
          "dependents = %lld",
          k.bundleId.c_str(), k.loadTag, (long long)rc, (unsigned long long)heldByClients[k.loadTag],
          dependents[k.loadTag], (long long)expected);
    CHECK(k.retainCount == expected - 2, "kext %s: OSBundleRetainCount %d, expected %lld",
          k.bundleId.c_str(), k.retainCount, (long long)(expected - 2));
  }

  // Tags not in the table are unknown to the kernel (the model's "is it loaded" relies on it).
  std::vector<bool> listed(w.issuedTagsEnd + 2, false);
  for (auto &k : ks)
    if (k.loadTag < listed.size()) listed[k.loadTag] = true;
  for (uint32_t t = 0; t < w.issuedTagsEnd + 2; t++)
    if (!listed[t])
      CHECK(w.kernel->retainCount(t) == -1, "tag %u is not listed but has retainCount %lld", t,
            (long long)w.kernel->retainCount(t));

  // The sample kext's user-client instance count follows the open transports.
  const KextInfo *sample = findInfo(ks, w.kernel->sampleLoadTag());
  if (sample) {
    for (auto &cl : sample->classes)
      if (cl.name == KB_USER_CLIENT_CLASS_NAME)
        CHECK(cl.instances == w.ucInstances, "user-client instances %u, expected %u",
              cl.instances, w.ucInstances);
  }
}

// ---- calls ----

struct CallSpec {
  uint32_t selector = 0;
  std::vector<uint64_t> scalars;
  bool nullScalarIn = false;  // pass nullptr for the scalar input when there are none
  uint32_t inStructSize = 0;
  uint8_t inFill = 0;
  uint32_t reqOut = 0;
  uint32_t reqStruct = 0;
  bool nullOuts = false;   // pass nullptr for zero-sized outputs (else a 0-byte allocation)
  // raw core only:
  bool outOfLine = false;
  bool nullScalarOut = false;  // nullptr scalar output even with a nonzero count
  bool nullStructOut = false;  // nullptr struct output even with a nonzero size
};

// What the call must answer, decided from DESIGN.md + xnu-facts, not from the core.
struct Expect {
  uint32_t kr = 0;
  uint32_t outCnt = 0;       // on success
  uint64_t out[2] = {0, 0};  // retain/release
  int kpiCalled = -1;        // 0 retain, 1 release: the call reaches the KPI
};

Expect predict(World &w, Client &c, const CallSpec &s) {
  Expect e;
  if (!c.raw) {
    if (c.closed) return e.kr = kb::RC_MACH_SEND_INVALID_DEST, e;
    if (s.scalars.size() > kb::kMaxScalars) return e.kr = kb::RC_MIG_ARRAY_TOO_LARGE, e;
  }
  if (s.selector >= kb::kSelectorCount) return e.kr = kb::RC_kIOReturnBadArgument, e;
  const kb::SelectorShape &shape = kb::kSelectorShapes[s.selector];
  bool outOfLine, nullScalarOut, nullStructOut;
  uint32_t scalarOutCount;
  if (c.raw) {
    outOfLine = s.outOfLine;
    nullScalarOut = s.nullScalarOut || (s.reqOut == 0 && s.nullOuts);
    nullStructOut = s.nullStructOut || (s.reqStruct == 0 && s.nullOuts);
    scalarOutCount = s.reqOut;
  } else {
    outOfLine = s.inStructSize > kInbandMax || s.reqStruct > kInbandMax;
    nullScalarOut = false;
    nullStructOut = false;
    scalarOutCount = s.reqOut < kb::kMaxScalars ? s.reqOut : kb::kMaxScalars;
  }
  bool nullScalarIn = s.scalars.empty() && s.nullScalarIn;
  if (outOfLine || s.scalars.size() != shape.scalarInputs ||
      s.inStructSize != shape.structInputSize || scalarOutCount != shape.scalarOutputs ||
      s.reqStruct != shape.structOutputSize || (shape.scalarInputs && nullScalarIn) ||
      (shape.scalarOutputs && nullScalarOut) || (shape.structOutputSize && nullStructOut))
    return e.kr = kb::RC_kIOReturnBadArgument, e;
  if (shape.admin && !c.privileged) return e.kr = kb::RC_kIOReturnNotPrivileged, e;
  uint64_t tag64 = s.scalars.empty() ? 0 : s.scalars[0];
  if ((s.selector == kb::kSelectorRetain || s.selector == kb::kSelectorRelease) &&
      tag64 > 0xFFFFFFFFull)
    return e.kr = kb::RC_kIOReturnBadArgument, e;
  // A closed raw core, or a transport whose service was terminated under it.
  if (c.closed || c.stopped) return e.kr = kb::RC_kIOReturnNotOpen, e;

  uint32_t tag = (uint32_t)tag64;
  e.kr = kb::RC_kIOReturnSuccess;
  e.outCnt = shape.scalarOutputs;
  switch (s.selector) {
    case kb::kSelectorRetain: {
      if (c.outstanding() >= kb::kLedgerCapacity) return e.kr = kb::RC_kIOReturnNoResources, e;
      e.out[0] = kernelAnswer(w, 0, tag);
      e.kpiCalled = 0;
      e.out[1] = c.count(tag) + (e.out[0] == kb::RC_kOSReturnSuccess ? 1 : 0);
      break;
    }
    case kb::kSelectorRelease: {
      uint32_t held = c.count(tag);
      if (held == 0 && tag != kInvalid) return e.kr = kb::RC_kIOReturnNotPermitted, e;
      e.out[0] = kernelAnswer(w, 1, tag);
      e.kpiCalled = 1;
      e.out[1] = held - (held > 0 && e.out[0] == kb::RC_kOSReturnSuccess ? 1 : 0);
      break;
    }
    default:
      break;
  }
  return e;
}

void applySuccess(Client &c, const CallSpec &s, const Expect &e) {
  if (s.selector != kb::kSelectorRetain && s.selector != kb::kSelectorRelease) return;
  if (e.kr != kb::RC_kIOReturnSuccess || e.out[0] != kb::RC_kOSReturnSuccess) return;
  uint32_t tag = (uint32_t)s.scalars[0];
  if (s.selector == kb::kSelectorRetain) c.held[tag]++;
  if (s.selector == kb::kSelectorRelease && c.count(tag) > 0 && --c.held[tag] == 0)
    c.held.erase(tag);
}

const char *selName(uint32_t s) {
  static const char *const n[] = {"getInfo", "retain", "release", "held"};
  return s < 4 ? n[s] : "?";
}

uint32_t readU32LE(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
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

// Performs one call with exactly-sized buffers and checks it against the model.
void doCallSpec(World &w, int slot, const CallSpec &s) {
  Client &c = w.clients[slot];
  if (!c.present) return;
  Expect e = predict(w, c, s);
  TRACE("client %d (%s%s%s) call sel=%u(%s) nIn=%zu in0=0x%llx inStruct=%u reqOut=%u "
        "reqStruct=%u%s -> expect 0x%08X",
        slot, c.raw ? "raw" : "transport", c.privileged ? ",admin" : "",
        c.closed ? ",closed" : "", s.selector, selName(s.selector), s.scalars.size(),
        (unsigned long long)(s.scalars.empty() ? 0 : s.scalars[0]), s.inStructSize, s.reqOut,
        s.reqStruct, s.outOfLine && c.raw ? " outOfLine" : "", e.kr);

  // Exactly-sized heap buffers: any access past them is an ASan report.
  uint64_t *in = nullptr;
  if (!s.scalars.empty() || !s.nullScalarIn) {
    in = (uint64_t *)malloc(s.scalars.size() * sizeof(uint64_t));
    if (!s.scalars.empty()) memcpy(in, s.scalars.data(), s.scalars.size() * sizeof(uint64_t));
  }
  uint8_t *inStruct = nullptr;
  if (s.inStructSize || !s.nullOuts) {
    inStruct = (uint8_t *)malloc(s.inStructSize);
    memset(inStruct, s.inFill, s.inStructSize);
  }
  size_t outBytes = (size_t)s.reqOut * sizeof(uint64_t);
  uint64_t *out = nullptr;
  if ((s.reqOut || !s.nullOuts) && !(c.raw && s.nullScalarOut)) {
    out = (uint64_t *)malloc(outBytes);
    memset(out, kSentinel, outBytes);
  }
  uint8_t *outStruct = nullptr;
  if ((s.reqStruct || !s.nullOuts) && !(c.raw && s.nullStructOut)) {
    outStruct = (uint8_t *)malloc(s.reqStruct);
    memset(outStruct, kSentinel, s.reqStruct);
  }
  // A zero-size buffer is malloc(0): non-null under ASan, and any access to it is reported.
  uint32_t kr, gotOut;
  size_t gotStruct;
  if (c.raw) {
    MethodArgs a;
    a.scalarInput = in;
    a.scalarInputCount = (uint32_t)s.scalars.size();
    a.structureInput = inStruct;
    a.structureInputSize = s.inStructSize;
    a.scalarOutput = out;
    a.scalarOutputCount = s.reqOut;
    a.structureOutput = outStruct;
    a.structureOutputSize = s.reqStruct;
    a.outOfLine = s.outOfLine;
    kr = c.rawCore->core.externalMethod(s.selector, a);
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
    kr = c.transport->callMethod(s.selector, in, (uint32_t)s.scalars.size(), inStruct,
                                 s.inStructSize, out, &gotOut, outStruct, &gotStruct);
    if (kr != kb::RC_kIOReturnSuccess)
      CHECK(gotOut == 0 && gotStruct == 0,
            "transport reported outputs (%u scalars, %zu bytes) with error 0x%08X", gotOut,
            gotStruct, kr);
  }

  CHECK(kr == e.kr, "client %d sel %u(%s): IOReturn 0x%08X, expected 0x%08X", slot, s.selector,
        selName(s.selector), kr, e.kr);
  CHECK(gotOut <= s.reqOut, "output scalar count %u > requested %u", gotOut, s.reqOut);
  CHECK(gotStruct <= s.reqStruct, "output struct size %zu > requested %u", gotStruct,
        s.reqStruct);

  if (kr != kb::RC_kIOReturnSuccess) {
    CHECK(!out || untouched(out, outBytes), "scalar outputs written on error 0x%08X", kr);
    CHECK(!outStruct || untouched(outStruct, s.reqStruct), "struct output written on error 0x%08X",
          kr);
  } else {
    CHECK(gotOut == e.outCnt, "sel %u: %u output scalars, expected %u", s.selector, gotOut,
          e.outCnt);
    switch (s.selector) {
      case kb::kSelectorGetInfo:
        CHECK(gotStruct == 2 * kb::kInfoStringSize, "getInfo struct size %zu", gotStruct);
        CHECK(out[0] == kb::kProtocolVersion, "getInfo protocolVersion %llu",
              (unsigned long long)out[0]);
        CHECK(out[1] == w.kernel->sampleLoadTag(), "getInfo ownLoadTag %llu, sample is %u",
              (unsigned long long)out[1], w.kernel->sampleLoadTag());
        CHECK(out[2] == (c.privileged ? 1u : 0u), "getInfo privileged %llu",
              (unsigned long long)out[2]);
        CHECK(out[3] == kb::kLedgerCapacity, "getInfo ledgerCap %llu", (unsigned long long)out[3]);
        checkStructString(outStruct, KB_SAMPLE_BUNDLE_ID, "identifier");
        checkStructString(outStruct + kb::kInfoStringSize, KB_SAMPLE_VERSION, "version");
        break;
      case kb::kSelectorRetain:
      case kb::kSelectorRelease:
        CHECK(gotStruct == 0, "%s returned %zu struct bytes", selName(s.selector), gotStruct);
        CHECK(out[0] == e.out[0] && out[1] == e.out[1],
              "client %d %s(%llu): outputs {0x%08llX, %llu}, expected {0x%08llX, %llu}", slot,
              selName(s.selector), (unsigned long long)s.scalars[0], (unsigned long long)out[0],
              (unsigned long long)out[1], (unsigned long long)e.out[0],
              (unsigned long long)e.out[1]);
        break;
      case kb::kSelectorHeld: {
        CHECK(gotStruct % 8 == 0, "held struct size %zu is not a multiple of 8", gotStruct);
        CHECK(gotStruct / 8 == c.held.size(), "held reports %zu entries, model has %zu",
              gotStruct / 8, c.held.size());
        std::map<uint32_t, uint32_t> seen;
        for (size_t i = 0; i < gotStruct; i += 8) {
          uint32_t tag = readU32LE(outStruct + i), n = readU32LE(outStruct + i + 4);
          CHECK(!seen.count(tag), "held lists tag %u twice", tag);
          seen[tag] = n;
          CHECK(c.count(tag) == n, "held says tag %u count %u, model %u", tag, n, c.count(tag));
        }
        break;
      }
    }
  }
  applySuccess(c, s, e);
  if (e.kpiCalled >= 0 && w.faultTimes[e.kpiCalled]) w.faultTimes[e.kpiCalled]--;
  free(in);
  free(inStruct);
  free(out);
  free(outStruct);
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

// ---- operations ----

void clearFaults(World &w) {
  w.kernel->injectFault(kb::sim::Kpi::Retain, 0, 0);
  w.kernel->injectFault(kb::sim::Kpi::Release, 0, 0);
  w.faultTimes[0] = w.faultTimes[1] = 0;
}

void closeClient(World &w, int slot, bool dying) {
  Client &c = w.clients[slot];
  if (!c.present) return;
  // close() releases through the KPI and cannot report a refused release per tag; the real
  // KPI never refuses the release of a tag that is held (it stays loaded while retained),
  // so closes run without injected faults.
  clearFaults(w);
  if (c.raw) {
    // clientClose / clientDied both end in close(); it releases exactly what was held.
    uint32_t expected = c.closed ? 0 : c.outstanding();
    uint32_t released = c.rawCore->core.close();
    CHECK(released == expected, "raw client %d close released %u, model held %u", slot,
          released, expected);
  } else if (dying) {
    c.transport.reset();  // ~SimTransport: clientDied
    if (!c.closed && w.ucInstances) w.ucInstances--;
  } else {
    uint32_t kr = c.transport->close();
    uint32_t want = c.closed ? kb::RC_MACH_SEND_INVALID_DEST : kb::RC_kIOReturnSuccess;
    CHECK(kr == want, "transport %d close: 0x%08X, expected 0x%08X", slot, kr, want);
    if (!c.closed && w.ucInstances) w.ucInstances--;
  }
  c.closed = true;
  c.held.clear();
  if (dying) {
    c.rawCore.reset();
    c.transport.reset();
    c.present = false;
  }
}

void doOpen(World &w, Reader &r) {
  int slot = r.u8() % kMaxClients;
  uint8_t flags = r.u8();
  bool privileged = !(flags & 1), raw = (flags & 2) != 0;
  closeClient(w, slot, true);
  Client &c = w.clients[slot];
  c = Client();
  TRACE("open client %d %s %s", slot, raw ? "raw core" : "transport",
        privileged ? "privileged" : "unprivileged");
  if (raw) {
    c.rawCore.reset(new RawCore(w.kernel, privileged));
  } else {
    // IOServiceOpen finds the service only while the sample kext is loaded with its service.
    std::vector<KextInfo> ks = loaded(w);
    const KextInfo *sample = findInfo(ks, w.kernel->sampleLoadTag());
    bool serviceUp = false;
    if (sample)
      for (auto &cl : sample->classes)
        if (cl.name == KB_SERVICE_CLASS_NAME && cl.instances > 0) serviceUp = true;
    uint32_t kr = 0xDEADBEEF;
    c.transport = SimTransport::open(w.kernel, privileged, &kr);
    TRACE("  IOServiceOpen -> 0x%08X", kr);
    uint32_t want = serviceUp ? kb::RC_kIOReturnSuccess : kb::RC_kIOReturnNotFound;
    CHECK(kr == want, "SimTransport::open: 0x%08X, expected 0x%08X", kr, want);
    CHECK((c.transport != nullptr) == (kr == kb::RC_kIOReturnSuccess),
          "SimTransport::open returned %s with 0x%08X", c.transport ? "a transport" : "null", kr);
    if (!c.transport) return;
    w.ucInstances++;
  }
  c.present = true;
  c.raw = raw;
  c.privileged = privileged;
}

void doCall(World &w, Reader &r) {
  int slot = r.u8() % kMaxClients;
  CallSpec s;
  uint8_t sb = r.u8();
  s.selector = sb >= 0xF0 ? r.u32() : sb % 6;  // 4, 5: just past the table
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
  doCallSpec(w, slot, s);
}

void doAdvance(World &w, Reader &r) {
  static const uint64_t kSteps[] = {0, 1, 59999, 60000, 60001, 120000, 30000, 1000};
  uint8_t m = r.u8();
  uint64_t ms = m & 0x80 ? r.u32() % 120001 : kSteps[m % 8];
  TRACE("advance %llu ms (now %llu, armed %d, deadline %llu)", (unsigned long long)ms,
        (unsigned long long)w.kernel->now(), w.kernel->autounloadArmed(),
        (unsigned long long)w.kernel->autounloadDeadline());
  uint64_t before = w.kernel->now();
  w.kernel->advance(ms);
  CHECK(w.kernel->now() == before + ms, "clock moved to %llu, expected %llu",
        (unsigned long long)w.kernel->now(), (unsigned long long)(before + ms));
}

void doLoad(World &w, Reader &r) {
  // id, version bit + flags, deps count + deps
  uint8_t idb = r.u8(), flags = r.u8(), ndeps = r.u8() % 4;
  KextSpec spec;
  spec.bundleId = kBundleIds[idb % kBundleCount];
  spec.version = (flags & 1) ? "2.0" : "1.0";
  spec.autounload = flags & 2;
  spec.unloadUnsupported = flags & 4;
  bool service = flags & 8, liveInstance = flags & 16;
  std::vector<KextInfo> ks = loaded(w);
  bool missingDep = false;
  for (int i = 0; i < ndeps; i++) {
    uint8_t d = r.u8();
    if (d == 0xFF) {
      spec.dependencies.push_back("com.fuzz.not.loaded");
      missingDep = true;
    } else if (!ks.empty()) {
      spec.dependencies.push_back(ks[d % ks.size()].bundleId);
    }
  }
  if (service || liveInstance) {
    ClassSpec cl;
    cl.name = spec.bundleId + "_Class";
    for (auto &ch : cl.name)
      if (ch == '.') ch = '_';
    cl.superclass = service ? "IOService" : "OSObject";
    cl.instances = liveInstance ? 1 : 0;
    spec.classes.push_back(cl);
  }
  uint32_t tag = 0;
  uint32_t kr = w.kernel->loadKext(spec, &tag);
  TRACE("load %s v%s deps=%zu autounload=%d unloadUnsupported=%d class=%d/%d -> 0x%08X tag %u",
        spec.bundleId.c_str(), spec.version.c_str(), spec.dependencies.size(), spec.autounload,
        spec.unloadUnsupported, service, liveInstance, kr, tag);
  const KextInfo *existing = nullptr;
  for (auto &k : ks)
    if (k.bundleId == spec.bundleId) existing = &k;
  if (existing) {
    uint32_t want = existing->version == spec.version ? kb::RC_kOSReturnSuccess
                                                      : kb::RC_kOSKextReturnLoadedVersionDiffers;
    CHECK(kr == want, "reload of %s: 0x%08X, expected 0x%08X", spec.bundleId.c_str(), kr, want);
    if (kr == kb::RC_kOSReturnSuccess)
      CHECK(tag == existing->loadTag, "reload of %s gave tag %u, loaded as %u",
            spec.bundleId.c_str(), tag, existing->loadTag);
  } else if (missingDep) {
    CHECK(kr == kb::RC_kOSKextReturnDependencies, "load with a missing dependency: 0x%08X", kr);
  } else {
    CHECK(kr == kb::RC_kOSReturnSuccess, "load of %s: 0x%08X", spec.bundleId.c_str(), kr);
    CHECK(tag == w.issuedTagsEnd, "new kext got tag %u, expected the next tag %u (no reuse)",
          tag, w.issuedTagsEnd);
    w.unloadUnsupported[spec.bundleId] = spec.unloadUnsupported;
  }
}

void doUnload(World &w, Reader &r) {
  uint64_t v = readValue(r, w);
  uint32_t tag = (uint32_t)v;
  std::vector<KextInfo> ks = loaded(w);
  const KextInfo *k = findInfo(ks, tag);
  uint32_t kr = w.kernel->unloadKext(tag);
  TRACE("unload tag %u -> 0x%08X", tag, kr);
  if (!k) {
    CHECK(kr == kb::RC_kOSKextReturnNotFound, "unload of unknown tag %u: 0x%08X", tag, kr);
    return;
  }
  // The safety property: nothing retained, depended on or instantiated is ever unloaded.
  bool instances = false;
  for (auto &cl : k->classes)
    if (cl.instances) instances = true;
  if (kr == kb::RC_kOSReturnSuccess) {
    CHECK(k->retainCount == 0 && !instances, "unloaded tag %u with retainCount %d, instances %d",
          tag, k->retainCount, instances);
    CHECK(w.unloadEnabled, "explicit unload succeeded with unloading disabled");
    CHECK(tag != 0 && k->bundleId.compare(0, 10, "com.apple.") != 0, "unloaded kernel component %s",
          k->bundleId.c_str());
    CHECK(!w.unloadUnsupported[k->bundleId], "unloaded an unloadUnsupported kext");
  } else {
    bool why = k->retainCount > 0 || instances || !w.unloadEnabled || tag == 0 ||
               k->bundleId.compare(0, 10, "com.apple.") == 0 || w.unloadUnsupported[k->bundleId];
    CHECK(why, "unload of idle tag %u (%s) refused: 0x%08X", tag, k->bundleId.c_str(), kr);
  }
}

void doSetInstances(World &w, Reader &r) {
  uint64_t v = readValue(r, w);
  uint8_t which = r.u8(), count = r.u8() % 3;
  uint32_t tag = (uint32_t)v;
  std::vector<KextInfo> ks = loaded(w);
  const KextInfo *k = findInfo(ks, tag);
  std::string cls;
  if (which & 1) {
    cls = "com_fuzz_Extra";
  } else if (tag == w.kernel->sampleLoadTag()) {
    cls = KB_SERVICE_CLASS_NAME;  // terminate / re-register the sample's service
  } else if (k && !k->classes.empty()) {
    cls = k->classes[0].name;
  } else {
    cls = "com_fuzz_Extra";
  }
  // Never the user-client class: its count is the open connections', which nothing else sets.
  bool serviceUp = false;
  if (k && tag == w.kernel->sampleLoadTag())
    for (auto &cl : k->classes)
      if (cl.name == KB_SERVICE_CLASS_NAME && cl.instances > 0) serviceUp = true;
  bool terminates = serviceUp && cls == KB_SERVICE_CLASS_NAME && count == 0;
  // Stopping releases through the KPI, which never refuses the release of a held tag:
  // no injected faults, as for close.
  if (terminates) clearFaults(w);
  uint32_t kr = w.kernel->setInstances(tag, cls, count);
  if (terminates) {
    // The service terminated: every transport client on it was stopped (raw cores are not
    // attached to the kernel's service and carry on).
    for (Client &c : w.clients)
      if (c.present && !c.raw && !c.closed) {
        c.stopped = true;
        c.held.clear();
      }
  }
  TRACE("setInstances tag %u %s = %u -> 0x%08X", tag, cls.c_str(), count, kr);
  // Only a class the kext declared; com_fuzz_Extra never is (the refusal path).
  bool declared = false;
  if (k)
    for (auto &cl : k->classes)
      if (cl.name == cls) declared = true;
  uint32_t want = !k ? kb::RC_kOSKextReturnNotFound
                     : declared ? kb::RC_kOSReturnSuccess : kb::RC_kOSKextReturnInvalidArgument;
  CHECK(kr == want, "setInstances(%u, %s): 0x%08X, expected 0x%08X", tag, cls.c_str(), kr, want);
}

void doRepeat(World &w, Reader &r) {
  int slot = r.u8() % kMaxClients;
  uint32_t sel = (r.u8() & 1) ? kb::kSelectorRelease : kb::kSelectorRetain;
  uint64_t tag = readValue(r, w);
  uint32_t times = r.u16() % kMaxRepeat;
  TRACE("repeat %s(%llu) x%u on client %d", selName(sel), (unsigned long long)tag, times, slot);
  bool trace = gTrace;
  gTrace = false;
  for (uint32_t i = 0; i < times; i++) {
    doCallSpec(w, slot, wellFormed(sel, tag));
    if (i % 16 == 15 || i + 1 == times) checkInvariants(w);
  }
  gTrace = trace;
}

void doLoadedKexts(World &w, Reader &r) {
  int slot = r.u8() % kMaxClients;
  Client &c = w.clients[slot];
  if (!c.present || c.raw) return;
  std::vector<kb::KextInfo> out;
  uint32_t kr = c.transport->loadedKexts(out);
  TRACE("loadedKexts via client %d -> 0x%08X, %zu kexts", slot, kr, out.size());
  CHECK(kr == kb::RC_kOSReturnSuccess, "loadedKexts: 0x%08X", kr);
  std::vector<KextInfo> ks = loaded(w);
  CHECK(out.size() == ks.size(), "transport lists %zu kexts, kernel %zu", out.size(), ks.size());
  for (size_t i = 1; i < out.size(); i++)
    CHECK(out[i - 1].loadTag < out[i].loadTag, "loadedKexts not ordered by load tag");
  for (auto &k : out)
    for (size_t i = 1; i < k.dependencies.size(); i++)
      CHECK(k.dependencies[i - 1] > k.dependencies[i], "dependencies of %s not descending",
            k.bundleId.c_str());
}

// Cross-check each live transport's ledger with the held selector (no side effects).
void crossCheckHeld(World &w) {
  bool trace = gTrace;
  gTrace = false;
  for (int i = 0; i < kMaxClients; i++)
    if (w.clients[i].live() && !w.clients[i].raw) doCallSpec(w, i, wellFormed(kb::kSelectorHeld, 0));
  gTrace = trace;
}

void runOp(World &w, Reader &r) {
  uint8_t op = r.u8() % kOpCount;
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
    case kOpFault: {
      static const uint32_t kCodes[] = {kb::RC_kOSReturnError, kb::RC_kOSKextReturnNotFound,
                                        kb::RC_kOSKextReturnInvalidArgument,
                                        kb::RC_kOSKextReturnStopping};
      int kpi = r.u8() & 1;
      uint32_t code = kCodes[r.u8() % 4], times = r.u8() % 4;
      TRACE("inject fault: next %u %s call(s) answer 0x%08X", times, kpi ? "release" : "retain",
            code);
      w.kernel->injectFault(kpi ? kb::sim::Kpi::Release : kb::sim::Kpi::Retain, code, times);
      w.faultCode[kpi] = code;
      w.faultTimes[kpi] = times;
      break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  const char *t = getenv("KB_FUZZ_TRACE");
  gTrace = t && *t && strcmp(t, "0") != 0;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  Reader r(data, size);
  uint8_t opts = r.u8();
  SimKernel::Options o;
  o.autounloadEnabled = !(opts & 1);
  o.unloadEnabled = !(opts & 2);
  World w;
  w.kernel = std::make_shared<SimKernel>(o);
  w.unloadEnabled = o.unloadEnabled;
  gStep = 0;
  TRACE("kernel: autounload %s, explicit unload %s", o.autounloadEnabled ? "on" : "off",
        o.unloadEnabled ? "on" : "off");
  checkInvariants(w);
  while (!r.done() && gStep < kMaxSteps) {
    gStep++;
    runOp(w, r);
    crossCheckHeld(w);
    checkInvariants(w);
  }
  // Every client dies with the process; the kernel must return to its own references.
  for (int i = 0; i < kMaxClients; i++) closeClient(w, i, true);
  gStep++;
  checkInvariants(w);
  CHECK(w.ucInstances == 0, "user-client instances left: %u", w.ucInstances);
  return 0;
}
