// Sanitizer stress harness (issue 5): the user-client core, SimTransport and SimKernel driven
// from many threads at once, built by scripts/sanitize.sh under ASan+UBSan and under TSan.
//
// What runs (defaults; see --help):
//   * 8 worker threads × 100,000 calls each. Every worker calls every client, so each client
//     is shared by all 8 threads (most of a worker's calls go to its "home" client):
//       T0, T1  two privileged SimTransports (IOConnectCallMethod as the addon sees it);
//       K0      a privileged UserClientCore called directly (externalMethod, as the kext's
//               IOUserClient calls it), with its own SampleKextApi and MutexLock;
//       C       a privileged UserClientCore that the events thread closes (clientClose)
//               halfway through, while workers are still calling it;
//       U       an unprivileged SimTransport.
//     The mix: retain, release, held, getInfo, and bad calls (selector out of range, wrong
//     scalar or struct counts, a tag above 32 bits, more than 16 scalars, an async or
//     out-of-line call, kOSKextInvalidLoadTag, a tag no kext has). Every answer is checked.
//   * 2 events threads: "machine" loads and unloads other kexts (some depending on the
//     targets), advances virtual time so autounload scans run, reads loadedKexts() and checks
//     the table, and makes balanced KPI retain/release pairs like another kext would;
//     "clients" opens short-lived connections that retain, check held and close, and closes C.
//   * At the end: each client's ledger (held selector / heldCount) equals what its callers
//     counted; for every tag, retainCount == 2 + the ledgers + the kexts depending on it;
//     then everything is closed and every count is back at its baseline.
//
// --transport-close-race: threads calling one SimTransport while another closes it (the
// addon's Connection serialises its transport, but the transport must not depend on it).
// scripts/sanitize.sh runs it under TSan after the default runs.
//
// --request-race: resource-request completions (on threads advancing the simulated clock)
// racing cancels and closes on worker threads; see requestRace(). Run under ASan and TSan.
//
// The last line is "N passed, M failed"; the exit status is 0 only when M is 0.
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "protocol.gen.h"
#include "sim_kernel.h"
#include "sim_transport.h"
#include "user_client_core.h"

using namespace kb;
using SimKext = kb::sim::KextRecord;

namespace {

struct Options {
  unsigned threads = 8;
  unsigned long calls = 100000;  // per worker thread
  uint64_t seed = 0x6b62737472657373ull;
  bool transportCloseRace = false;
  bool unloadRace = false;
  bool requestRace = false;
};

// ---- checks: per-thread tallies, merged after the threads are joined ----

std::mutex gPrintMu;
std::atomic<unsigned> gPrinted{0};
const unsigned kMaxPrinted = 40;

struct Tally {
  uint64_t passed = 0;
  uint64_t failed = 0;
  void fail(const char *file, int line, const char *what, const char *fmt, ...)
      __attribute__((format(printf, 5, 6)));
};

void Tally::fail(const char *file, int line, const char *what, const char *fmt, ...) {
  failed++;
  if (gPrinted.fetch_add(1) >= kMaxPrinted) return;
  char detail[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  std::lock_guard<std::mutex> g(gPrintMu);
  fprintf(stderr, "FAIL %s:%d: %s (%s)\n", file, line, what, detail);
}

#define EXPECT(t, cond, ...)                                  \
  do {                                                        \
    if (cond)                                                 \
      (t).passed++;                                           \
    else                                                      \
      (t).fail(__FILE__, __LINE__, #cond, __VA_ARGS__);       \
  } while (0)

// xorshift64*: a small, fast, per-thread generator; runs are reproducible from --seed.
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed ? seed : 1) {}
  uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1Dull;
  }
  uint32_t below(uint32_t n) { return (uint32_t)((next() >> 32) % n); }
};

// ---- clients: a SimTransport or a bare UserClientCore, called the same way ----

// A bare user client as the kext holds one: the core, its KernelApi and its lock.
struct CoreParts {
  sim::SampleKextApi api;
  sim::MutexLock lock;
  UserClientCore core;
  explicit CoreParts(std::shared_ptr<sim::SimKernel> kernel) : api(std::move(kernel)), core(api, lock, true) {}
};

struct Client {
  std::string name;
  bool privileged = true;
  bool closedMidRun = false;  // C: clientClose races the workers' calls
  std::unique_ptr<Transport> transport;
  std::unique_ptr<CoreParts> parts;
  UserClientCore *core = nullptr;  // &parts->core
  std::shared_ptr<sim::SimKernel> kernel;  // for a bare core's openUserClient/closeUserClient

  bool isCore() const { return core != nullptr; }

  // One call; outputs are written only on success, as MIG does.
  uint32_t call(uint32_t selector, const uint64_t *in, uint32_t inCnt, uint64_t *out,
                uint32_t *outCnt, void *structOut, size_t *structCnt, bool async = false,
                bool outOfLine = false) {
    if (transport)
      return transport->callMethod(selector, in, inCnt, nullptr, 0, out, outCnt, structOut,
                                   structCnt);
    MethodArgs a;
    a.scalarInput = in;
    a.scalarInputCount = inCnt;
    a.scalarOutput = out;
    a.scalarOutputCount = *outCnt;
    a.structureOutput = outOfLine ? nullptr : structOut;
    a.structureOutputSize = outOfLine ? 0 : (uint32_t)*structCnt;
    a.outOfLine = outOfLine;
    a.async = async;
    uint32_t kr = core->externalMethod(selector, a);
    *outCnt = kr == RC_kIOReturnSuccess ? a.scalarOutputCount : 0;
    *structCnt = kr == RC_kIOReturnSuccess ? a.structureOutputSize : 0;
    return kr;
  }

  // The held selector as (tag → count); false if the call did not succeed.
  bool held(std::map<uint32_t, uint32_t> &out, uint32_t *krOut = nullptr) {
    uint8_t buf[2048];
    uint32_t outCnt = 0;
    size_t structCnt = sizeof buf;
    uint32_t kr = call(kSelectorHeld, nullptr, 0, nullptr, &outCnt, buf, &structCnt);
    if (krOut) *krOut = kr;
    out.clear();
    if (kr != RC_kIOReturnSuccess) return false;
    for (size_t off = 0; off + 8 <= structCnt; off += 8) {
      uint32_t tag, count;
      memcpy(&tag, buf + off, 4);  // little-endian wire format; this harness runs on x86/arm
      memcpy(&count, buf + off + 4, 4);
      out[tag] += count;
    }
    return true;
  }

  uint32_t close() {
    if (transport) return transport->close();
    core->close();
    kernel->closeUserClient();
    return RC_kIOReturnSuccess;
  }
};

std::unique_ptr<Client> transportClient(const std::shared_ptr<sim::SimKernel> &kernel,
                                        const char *name, bool privileged, Tally &t) {
  std::unique_ptr<Client> c(new Client());
  c->name = name;
  c->privileged = privileged;
  uint32_t kr = 0;
  c->transport = SimTransport::open(kernel, privileged, &kr);
  EXPECT(t, kr == RC_kIOReturnSuccess && c->transport, "open %s: 0x%08X", name, kr);
  return c;
}

std::unique_ptr<Client> coreClient(const std::shared_ptr<sim::SimKernel> &kernel,
                                   const char *name, Tally &t) {
  std::unique_ptr<Client> c(new Client());
  c->name = name;
  c->kernel = kernel;
  uint32_t kr = kernel->openUserClient();  // what IOServiceOpen counts
  EXPECT(t, kr == RC_kIOReturnSuccess, "openUserClient %s: 0x%08X", name, kr);
  c->parts.reset(new CoreParts(kernel));
  c->core = &c->parts->core;
  return c;
}

// ---- the shared world ----

struct World {
  std::shared_ptr<sim::SimKernel> kernel;
  uint32_t sample = 0;
  std::vector<uint32_t> targets;  // kexts with a live instance: never autounload
  uint32_t dependent = 0;         // permanently depends on targets[0]
  std::vector<uint32_t> tags;     // sample + targets: what workers retain and release
  // Ephemeral kexts the machine thread loads; workers sometimes retain one of these.
  static const unsigned kEphemeralSlots = 8;
  std::atomic<uint32_t> ephemeral[kEphemeralSlots];
  std::atomic<uint64_t> progress{0};  // calls made by all workers
  std::atomic<bool> go{false};  // released once every thread exists, so they all overlap
  std::atomic<bool> workersDone{false};
  std::atomic<bool> cClosed{false};
  std::atomic<uint64_t> cClosedAt{0};  // workers' progress when C was closed
};

sim::KextSpec kextSpec(const std::string &id, bool liveInstance,
                       std::vector<std::string> deps = {}) {
  sim::KextSpec s;
  s.bundleId = id;
  s.version = "1.0";
  s.dependencies = std::move(deps);
  if (liveInstance) {
    sim::ClassSpec c;
    c.name = id + ".Service";
    c.superclass = "IOService";
    c.instances = 1;
    s.classes.push_back(c);
  } else {
    s.autounload = true;
  }
  return s;
}

const uint32_t kBogusTag = 0x7FFFFF00u;  // no kext will ever have it in this run

// ---- worker: one thread's calls ----

struct WorkerResult {
  Tally t;
  // Net successful retains per (client, tag), as this thread saw them answered.
  std::map<std::pair<unsigned, uint32_t>, int64_t> net;
  uint64_t calls = 0;
  uint64_t retainsOk = 0, releasesOk = 0, noResources = 0, notPermitted = 0, notOpen = 0,
           badArgs = 0, notPrivileged = 0;
};

void worker(unsigned id, const Options &o, World &w, std::vector<std::unique_ptr<Client>> &clients,
            WorkerResult &r) {
  Rng rng(o.seed ^ (0x9E3779B97F4A7C15ull * (id + 1)));
  Tally &t = r.t;
  while (!w.go.load()) std::this_thread::yield();
  // clients: 0 T0, 1 T1, 2 K0, 3 C, 4 U
  const unsigned home = id % 3;
  for (unsigned long i = 0; i < o.calls; i++) {
    unsigned ci;
    uint32_t pick = rng.below(100);
    if (pick < 60) ci = home;
    else if (pick < 80) ci = rng.below(3);
    else if (pick < 92) ci = 3;
    else ci = 4;
    Client &c = *clients[ci];
    // C answers kIOReturnNotOpen once closed; before that, like any privileged client.
    const bool mayBeClosed = c.closedMidRun;

    uint32_t tag;
    uint32_t tp = rng.below(100);
    if (tp < 96) tag = w.tags[rng.below((uint32_t)w.tags.size())];
    else if (tp < 99) tag = w.ephemeral[rng.below(World::kEphemeralSlots)].load(std::memory_order_relaxed);
    else tag = kBogusTag;

    uint64_t in[20] = {tag};
    uint64_t out[16];
    uint8_t structOut[4096];
    uint32_t outCnt;
    size_t structCnt;
    uint32_t op = rng.below(100);
    r.calls++;
    w.progress.fetch_add(1, std::memory_order_relaxed);

    if (op < 36) {
      // ---- retain ----
      outCnt = 2;
      structCnt = 0;
      uint32_t kr = c.call(kSelectorRetain, in, 1, out, &outCnt, nullptr, &structCnt);
      if (!c.privileged) {
        EXPECT(t, kr == RC_kIOReturnNotPrivileged && outCnt == 0, "%s retain: 0x%08X", c.name.c_str(), kr);
        r.notPrivileged++;
      } else if (kr == RC_kIOReturnSuccess) {
        EXPECT(t, outCnt == 2, "%s retain outCnt %u", c.name.c_str(), outCnt);
        if (out[0] == RC_kOSReturnSuccess) {
          EXPECT(t, out[1] >= 1 && out[1] <= kLedgerCapacity, "%s retain heldAfter %" PRIu64, c.name.c_str(), out[1]);
          r.net[{ci, tag}]++;
          r.retainsOk++;
        } else {
          // Only a tag without a kext fails in the kernel: never a target or the sample.
          bool known = std::find(w.tags.begin(), w.tags.end(), tag) != w.tags.end();
          EXPECT(t, !known && out[0] == RC_kOSKextReturnNotFound,
                 "%s retain(%u): kernel 0x%08" PRIX64, c.name.c_str(), tag, out[0]);
        }
      } else if (kr == RC_kIOReturnNoResources) {
        EXPECT(t, outCnt == 0, "%s NoResources with outputs", c.name.c_str());
        r.noResources++;
      } else {
        EXPECT(t, mayBeClosed && kr == RC_kIOReturnNotOpen && outCnt == 0,
               "%s retain(%u): 0x%08X", c.name.c_str(), tag, kr);
        r.notOpen++;
      }
    } else if (op < 72) {
      // ---- release ----
      outCnt = 2;
      structCnt = 0;
      uint32_t kr = c.call(kSelectorRelease, in, 1, out, &outCnt, nullptr, &structCnt);
      if (!c.privileged) {
        EXPECT(t, kr == RC_kIOReturnNotPrivileged && outCnt == 0, "%s release: 0x%08X", c.name.c_str(), kr);
        r.notPrivileged++;
      } else if (kr == RC_kIOReturnSuccess) {
        // Held by this client (by some thread): the kernel must accept it.
        EXPECT(t, outCnt == 2 && out[0] == RC_kOSReturnSuccess && out[1] < kLedgerCapacity,
               "%s release(%u): kernel 0x%08" PRIX64 " heldAfter %" PRIu64, c.name.c_str(), tag, out[0], out[1]);
        r.net[{ci, tag}]--;
        r.releasesOk++;
      } else if (kr == RC_kIOReturnNotPermitted) {
        EXPECT(t, outCnt == 0, "%s NotPermitted with outputs", c.name.c_str());
        r.notPermitted++;
      } else {
        EXPECT(t, mayBeClosed && kr == RC_kIOReturnNotOpen && outCnt == 0,
               "%s release(%u): 0x%08X", c.name.c_str(), tag, kr);
        r.notOpen++;
      }
    } else if (op < 82) {
      // ---- held ----
      outCnt = 0;
      structCnt = 2048;  // the held selector's struct size
      uint32_t kr = c.call(kSelectorHeld, nullptr, 0, nullptr, &outCnt, structOut, &structCnt);
      if (kr == RC_kIOReturnSuccess) {
        bool ok = structCnt % 8 == 0 && structCnt <= 2048 && outCnt == 0;
        uint64_t total = 0;
        std::vector<uint32_t> seen;
        for (size_t off = 0; ok && off + 8 <= structCnt; off += 8) {
          uint32_t tg, n;
          memcpy(&tg, structOut + off, 4);
          memcpy(&n, structOut + off + 4, 4);
          ok = n >= 1 && std::find(seen.begin(), seen.end(), tg) == seen.end();
          seen.push_back(tg);
          total += n;
        }
        EXPECT(t, ok && total <= kLedgerCapacity && (c.privileged || structCnt == 0),
               "%s held: %zu bytes, %" PRIu64 " retains", c.name.c_str(), structCnt, total);
      } else {
        EXPECT(t, mayBeClosed && kr == RC_kIOReturnNotOpen && structCnt == 0, "%s held: 0x%08X", c.name.c_str(), kr);
        r.notOpen++;
      }
    } else if (op < 90) {
      // ---- getInfo ----
      outCnt = 4;
      structCnt = 128;
      uint32_t kr = c.call(kSelectorGetInfo, nullptr, 0, out, &outCnt, structOut, &structCnt);
      if (kr == RC_kIOReturnSuccess) {
        EXPECT(t, outCnt == 4 && structCnt == 128 && out[0] == kProtocolVersion && out[1] == w.sample &&
                      out[2] == (c.privileged ? 1u : 0u) && out[3] == kLedgerCapacity &&
                      strcmp((const char *)structOut, KB_SAMPLE_BUNDLE_ID) == 0 &&
                      strcmp((const char *)structOut + kInfoStringSize, KB_SAMPLE_VERSION) == 0,
               "%s getInfo", c.name.c_str());
      } else {
        EXPECT(t, mayBeClosed && kr == RC_kIOReturnNotOpen, "%s getInfo: 0x%08X", c.name.c_str(), kr);
        r.notOpen++;
      }
    } else {
      // ---- bad calls: refused before any work, no outputs ----
      uint32_t kind = rng.below(10);
      uint32_t selector = kSelectorRetain;
      uint32_t inCnt = 1;
      bool async = false, outOfLine = false;
      outCnt = 2;
      structCnt = 0;
      uint32_t expect = RC_kIOReturnBadArgument;
      switch (kind) {
        case 0: selector = kSelectorCount + rng.below(1000); break;  // out of range
        case 1: selector = 0xFFFFFFFFu; break;
        case 2: inCnt = 0; break;                                    // retain without a tag
        case 3: inCnt = 2; in[1] = tag; break;                       // two tags
        case 4: outCnt = 1; break;                                   // too few outputs
        case 5:  // above 32 bits: checked after privilege
          in[0] = 0x100000000ull + tag;
          if (!c.privileged) expect = RC_kIOReturnNotPrivileged;
          break;
        case 6:                                                      // more than MIG allows
          inCnt = 17;
          for (unsigned k = 1; k < 17; k++) in[k] = tag;
          if (!c.isCore()) expect = RC_MIG_ARRAY_TOO_LARGE;
          break;
        case 7:  // an async call (IOConnectCallAsyncMethod) or an out-of-line struct: core only
          selector = kSelectorHeld;
          inCnt = 0;
          outCnt = 0;
          structCnt = 2048;
          if (c.isCore()) (rng.below(2) ? async : outOfLine) = true;
          else structCnt = 2049;  // not the held size (2048): a wrong struct size
          break;
        case 8: {  // kOSKextInvalidLoadTag: passed to the kernel, which refuses it
          in[0] = kInvalidLoadTag;
          selector = rng.below(2) ? kSelectorRetain : kSelectorRelease;
          uint32_t kr = c.call(selector, in, 1, out, &outCnt, nullptr, &structCnt);
          if (!c.privileged) {
            EXPECT(t, kr == RC_kIOReturnNotPrivileged, "%s invalid tag: 0x%08X", c.name.c_str(), kr);
          } else if (kr == RC_kIOReturnSuccess) {
            EXPECT(t, outCnt == 2 && out[0] == RC_kOSKextReturnInvalidArgument && out[1] == 0,
                   "%s invalid tag: kernel 0x%08" PRIX64, c.name.c_str(), out[0]);
          } else {
            EXPECT(t, (kr == RC_kIOReturnNoResources && selector == kSelectorRetain) ||
                          (mayBeClosed && kr == RC_kIOReturnNotOpen),
                   "%s invalid tag: 0x%08X", c.name.c_str(), kr);
          }
          continue;
        }
        default:  // held with scalar outputs it does not have
          selector = kSelectorHeld;
          inCnt = 0;
          outCnt = 3;
          structCnt = 2048;
          break;
      }
      uint32_t kr = c.call(selector, in, inCnt, out, &outCnt, kind == 7 || kind >= 9 ? structOut : nullptr,
                           &structCnt, async, outOfLine);
      EXPECT(t, kr == expect && outCnt == 0 && structCnt == 0, "%s bad call %u (selector %u): 0x%08X",
             c.name.c_str(), kind, selector, kr);
      r.badArgs++;
    }
  }
}

// ---- events: the rest of the machine moving while the workers call ----

void machineEvents(World &w, Tally &t, uint64_t seed) {
  Rng rng(seed ^ 0xE7E7E7E7ull);
  sim::SimKernel &k = *w.kernel;
  unsigned n = 0;
  while (!w.go.load()) std::this_thread::yield();
  while (!w.workersDone.load()) {
    // Load another kext, sometimes linked against a target (a dependent holds a reference).
    std::vector<std::string> deps;
    if (rng.below(3) == 0) deps.push_back("com.example.stress.target" + std::to_string(rng.below(4)));
    uint32_t tag = kInvalidLoadTag;
    uint32_t kr = k.loadKext(kextSpec("com.example.stress.eph" + std::to_string(n++), false, deps), &tag);
    EXPECT(t, kr == RC_kOSReturnSuccess && tag != kInvalidLoadTag, "loadKext: 0x%08X", kr);
    w.ephemeral[n % World::kEphemeralSlots].store(tag, std::memory_order_relaxed);

    // Explicit unload of some ephemeral kext: gone, in use (a worker holds it), or already gone.
    uint32_t victim = w.ephemeral[rng.below(World::kEphemeralSlots)].load(std::memory_order_relaxed);
    kr = k.unloadKext(victim);
    EXPECT(t, kr == RC_kOSReturnSuccess || kr == RC_kOSKextReturnInUse || kr == RC_kOSKextReturnNotFound,
           "unloadKext(%u): 0x%08X", victim, kr);
    // Targets are instantiated (and maybe retained): never unloadable. (Unloading the sample
    // terminates its service and stops every client: the --unload-race run covers that.)
    uint32_t pinned = w.targets[rng.below((uint32_t)w.targets.size())];
    kr = k.unloadKext(pinned);
    EXPECT(t, kr == RC_kOSKextReturnInUse, "unloadKext(pinned %u): 0x%08X", pinned, kr);

    // Another kext retaining and releasing a target through the KPIs, balanced.
    uint32_t target = w.targets[rng.below((uint32_t)w.targets.size())];
    EXPECT(t, k.retainKextWithLoadTag(target) == RC_kOSReturnSuccess, "kpi retain %u", target);
    EXPECT(t, k.releaseKextWithLoadTag(target) == RC_kOSReturnSuccess, "kpi release %u", target);

    if (n % 4 == 0) k.advance(61000);  // autounload scans run
    if (n % 8 == 0) {
      std::vector<SimKext> table = k.loadedKexts();
      bool sorted = true, counts = true, deps = true, pinnedThere = true;
      for (size_t i = 0; i < table.size(); i++) {
        if (i && table[i - 1].loadTag >= table[i].loadTag) sorted = false;
        if (table[i].retainCount < 0) counts = false;
        for (uint32_t d : table[i].dependencies) {
          bool found = false;
          for (const SimKext &o : table) found = found || o.loadTag == d;
          deps = deps && found;
        }
      }
      for (uint32_t p : w.tags) {
        bool found = false;
        for (const SimKext &o : table) found = found || o.loadTag == p;
        pinnedThere = pinnedThere && found;
      }
      EXPECT(t, sorted && counts && deps && pinnedThere, "loadedKexts table (%zu kexts)", table.size());
      EXPECT(t, k.retainCount(w.targets[0]) >= 3, "target0 below its dependent's reference");
    }
    EXPECT(t, !k.panicked(), "panicked: %s", k.panicRecord().message.c_str());
    std::this_thread::yield();
  }
}

void clientEvents(const Options &o, World &w, std::vector<std::unique_ptr<Client>> &clients, Tally &t) {
  Rng rng(o.seed ^ 0xC1C1C1C1ull);
  (void)clients;
  while (!w.go.load()) std::this_thread::yield();
  while (!w.workersDone.load()) {
    // A short-lived connection: retains, its ledger, close (which releases), closed answers.
    std::unique_ptr<Client> c = transportClient(w.kernel, "S", rng.below(4) != 0, t);
    if (!c->transport) continue;
    std::map<uint32_t, uint32_t> want;
    unsigned n = 1 + rng.below(20);
    for (unsigned i = 0; i < n; i++) {
      uint64_t in = w.tags[rng.below((uint32_t)w.tags.size())];
      uint64_t out[2];
      uint32_t outCnt = 2;
      size_t structCnt = 0;
      uint32_t kr = c->call(kSelectorRetain, &in, 1, out, &outCnt, nullptr, &structCnt);
      if (c->privileged) {
        EXPECT(t, kr == RC_kIOReturnSuccess && out[0] == RC_kOSReturnSuccess && out[1] == want[(uint32_t)in] + 1,
               "S retain: 0x%08X", kr);
        want[(uint32_t)in]++;
      } else {
        EXPECT(t, kr == RC_kIOReturnNotPrivileged, "S unprivileged retain: 0x%08X", kr);
      }
    }
    std::map<uint32_t, uint32_t> held;
    EXPECT(t, c->held(held) && held == want, "S held: %zu tags, want %zu", held.size(), want.size());
    EXPECT(t, c->close() == RC_kIOReturnSuccess, "S close");
    EXPECT(t, c->close() == RC_MACH_SEND_INVALID_DEST, "S second close");
    uint32_t kr = 0;
    EXPECT(t, !c->held(held, &kr) && kr == RC_MACH_SEND_INVALID_DEST, "S call after close: 0x%08X", kr);
    std::this_thread::yield();
  }
}

// C: clientClose once the workers are halfway, while they are still calling it.
void closeC(const Options &o, World &w, Client &c, Tally &t) {
  const uint64_t half = (uint64_t)o.threads * o.calls / 2;
  while (w.progress.load(std::memory_order_relaxed) < half) std::this_thread::yield();
  c.close();
  w.cClosedAt.store(w.progress.load());
  w.cClosed.store(true);
  std::map<uint32_t, uint32_t> held;
  uint32_t kr = 0;
  EXPECT(t, !c.held(held, &kr) && kr == RC_kIOReturnNotOpen, "C held after close: 0x%08X", kr);
  EXPECT(t, c.core->outstanding() == 0 && c.core->closed(), "C ledger after close");
}

// --transport-close-race: threads calling one SimTransport while another closes it.
int transportCloseRace(const Options &o) {
  auto kernel = std::make_shared<sim::SimKernel>();
  Tally t;
  std::unique_ptr<Client> c = transportClient(kernel, "R", true, t);
  uint32_t sample = kernel->sampleLoadTag();
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  std::vector<Tally> tallies(o.threads);
  for (unsigned i = 0; i < o.threads; i++)
    threads.emplace_back([&, i] {
      while (!go.load()) std::this_thread::yield();
      for (unsigned long n = 0; n < o.calls; n++) {
        uint64_t out[4];
        uint8_t info[128];
        uint32_t outCnt = 4;
        size_t structCnt = sizeof info;
        uint32_t kr = c->call(kSelectorGetInfo, nullptr, 0, out, &outCnt, info, &structCnt);
        // A call that got past the transport just before the close meets the closed core
        // (kIOReturnNotOpen), as a call racing clientClose does in the kext.
        EXPECT(tallies[i], (kr == RC_kIOReturnSuccess && out[1] == sample) ||
                               kr == RC_MACH_SEND_INVALID_DEST || kr == RC_kIOReturnNotOpen,
               "R: 0x%08X", kr);
      }
    });
  go.store(true);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  c->close();  // races the calls above
  for (std::thread &th : threads) th.join();
  for (Tally &x : tallies) {
    t.passed += x.passed;
    t.failed += x.failed;
  }
  printf("transport close race: %u threads x %lu calls\n", o.threads, o.calls);
  printf("%" PRIu64 " passed, %" PRIu64 " failed\n", t.passed, t.failed);
  return t.failed ? 1 : 0;
}

// --unload-race: kmutil unload of the sample kext while its clients are mid-call. The unload
// terminates the service and stops every client on the unloading thread with the kernel's
// kext lock held (as xnu does); workers meanwhile open clients, retain and release (each KPI
// takes the kext lock), close them or drop them (clientDied). A client lock held across a
// KPI, or a stop() that takes it, is a lock-order inversion TSan reports. At the end every
// retain count is back at the kernel's baseline: nothing leaked, nothing over-released.
int unloadRace(const Options &o) {
  auto kernel = std::make_shared<sim::SimKernel>();
  Tally t;
  const uint32_t sample = kernel->sampleLoadTag();
  std::vector<uint32_t> tags = {sample};
  for (int i = 0; i < 3; i++) {
    uint32_t tag = kInvalidLoadTag;
    EXPECT(t, kernel->loadKext(kextSpec("com.example.unload.target" + std::to_string(i), true), &tag) ==
                  RC_kOSReturnSuccess, "load target %d", i);
    tags.push_back(tag);
  }
  // Held open throughout, so the sample kext itself never unloads: each unload terminates
  // the service and answers kOSKextReturnInUse (the open user client is a live instance).
  uint32_t kr = 0;
  std::unique_ptr<Transport> anchor = SimTransport::open(kernel, true, &kr);
  EXPECT(t, anchor != nullptr, "open the anchor client: 0x%08X", kr);
  // First, one after the other: a retain on the anchor (its lock, then the kext lock inside
  // the KPI) of a target kext, then an unload of the sample (the kext lock, then the anchor's
  // stop()). With the old bug this
  // alone is a lock-order cycle TSan reports, deterministically and without hanging; the
  // fixed core takes no lock in stop(), so there is no second edge.
  {
    uint64_t in = tags[1], out[2] = {0, 0};  // not the sample: a retained kext is not even terminated
    uint32_t outCnt = 2;
    size_t structCnt = 0;
    EXPECT(t, anchor->callMethod(kSelectorRetain, &in, 1, nullptr, 0, out, &outCnt, nullptr, &structCnt) ==
                  RC_kIOReturnSuccess && out[0] == RC_kOSReturnSuccess, "anchor retain");
    EXPECT(t, kernel->unloadKext(sample) == RC_kOSKextReturnInUse, "unload with the anchor open");
    EXPECT(t, kernel->setInstances(sample, KB_SERVICE_CLASS_NAME, 1) == RC_kOSReturnSuccess, "restart the service");
  }

  std::atomic<bool> stop{false};
  std::vector<Tally> tallies(o.threads);
  std::vector<std::thread> workers;
  for (unsigned i = 0; i < o.threads; i++)
    workers.emplace_back([&, i] {
      Rng rng(o.seed + i);
      Tally &tt = tallies[i];
      for (unsigned long n = 0; n < o.calls;) {
        uint32_t okr = 0;
        std::unique_ptr<Transport> c = SimTransport::open(kernel, true, &okr);
        if (!c) {  // the service is down between an unload and its restart
          EXPECT(tt, okr == RC_kIOReturnNotFound, "open: 0x%08X", okr);
          std::this_thread::yield();
          continue;
        }
        for (unsigned calls = 1 + rng.below(8); calls > 0 && n < o.calls; calls--, n++) {
          // Targets only: a retained sample kext would refuse the unload before terminating.
          uint64_t in = tags[1 + rng.below((uint32_t)tags.size() - 1)], out[2] = {0, 0};
          uint32_t outCnt = 2;
          size_t structCnt = 0;
          uint32_t sel = rng.below(2) ? kSelectorRetain : kSelectorRelease;
          uint32_t ckr = c->callMethod(sel, &in, 1, nullptr, 0, out, &outCnt, nullptr, &structCnt);
          EXPECT(tt, (ckr == RC_kIOReturnSuccess && out[0] == RC_kOSReturnSuccess) ||
                         ckr == RC_kIOReturnNotOpen || ckr == RC_kIOReturnNotPermitted,
                 "%s(%u): 0x%08X / 0x%08X", sel == kSelectorRetain ? "retain" : "release",
                 (unsigned)in, ckr, (unsigned)out[0]);
        }
        if (rng.below(2)) c->close();  // else dropped: the destructor is clientDied
      }
    });
  std::thread unloader([&] {
    Rng rng(o.seed ^ 0x756e6c6f6164ull);
    Tally &tt = t;
    while (!stop.load()) {
      uint32_t ukr = kernel->unloadKext(sample);
      EXPECT(tt, ukr == RC_kOSKextReturnInUse, "unload sample with clients open: 0x%08X", ukr);
      if (rng.below(4) == 0) std::this_thread::yield();
      // The service starts again (re-matching), so clients can open once more.
      EXPECT(tt, kernel->setInstances(sample, KB_SERVICE_CLASS_NAME, 1) == RC_kOSReturnSuccess,
             "restart the service");
    }
  });
  for (std::thread &w : workers) w.join();
  stop.store(true);
  unloader.join();
  anchor->close();
  for (Tally &x : tallies) {
    t.passed += x.passed;
    t.failed += x.failed;
  }
  for (uint32_t tag : tags)
    EXPECT(t, kernel->retainCount(tag) == (int64_t)sim::SimKernel::kBaselineRetainCount,
           "tag %u: retain count %lld after every client closed", tag,
           (long long)kernel->retainCount(tag));
  EXPECT(t, !kernel->panicked(), "no panic: %s", kernel->panicRecord().message.c_str());
  printf("unload race: %u threads x %lu calls against repeated unloads of the sample kext\n",
         o.threads, o.calls);
  printf("%" PRIu64 " passed, %" PRIu64 " failed\n", t.passed, t.failed);
  return t.failed ? 1 : 0;
}

// --request-race: resource requests whose completions race cancels and closes. "Clock"
// threads advance the simulated clock, so deliveries (and timeouts) run on them holding the
// kernel's lock and then each client's lock, as xnu's dispatchResource runs the callback
// under sKextLock; worker threads meanwhile request, cancel, fetch, close and drop their
// connections. Checked: at most one completion per accepted request; none for a request whose
// cancel the kernel answered kOSReturnSuccess; exactly one (already arrived) when it answered
// kOSKextReturnNotFound; none after close() returned; the bytes fetched are the resource's;
// a client's table never exceeds the cap; at the end no request is pending in the kernel,
// every async reference was released, and the sample kext is back at its baseline.
struct RaceSink : AsyncSink {
  std::mutex mu;
  std::map<uint32_t, unsigned> completions;  // by request tag
  std::map<uint32_t, uint32_t> osReturns;
  std::atomic<bool> closeReturned{false};
  std::atomic<unsigned> afterClose{0};
  void asyncCompleted(uint64_t, uint32_t, const uint64_t *args, uint32_t n) override {
    if (closeReturned.load()) afterClose++;
    if (n != Completion::fieldCount) return;
    std::lock_guard<std::mutex> g(mu);
    completions[(uint32_t)args[Completion::requestTag]]++;
    osReturns[(uint32_t)args[Completion::requestTag]] = (uint32_t)args[Completion::osReturn];
  }
  unsigned count(uint32_t tag) {
    std::lock_guard<std::mutex> g(mu);
    auto it = completions.find(tag);
    return it == completions.end() ? 0 : it->second;
  }
};

std::vector<uint8_t> raceBytes(size_t n, uint32_t salt) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; i++) v[i] = (uint8_t)(i * 7 + salt);
  return v;
}

int requestRace(const Options &o) {
  auto kernel = std::make_shared<sim::SimKernel>();
  Tally t;
  const uint32_t sample = kernel->sampleLoadTag();
  const char *const names[] = {"empty", "small", "page", "max", "over", "absent"};
  sim::Resources res = {{"empty", {}},
                        {"small", raceBytes(17, 1)},
                        {"page", raceBytes(5000, 2)},
                        {"max", raceBytes(kMaxResourceSize, 3)},
                        {"over", raceBytes(kMaxResourceSize + 1, 4)}};
  sim::KextSpec sampleBundle;
  sampleBundle.bundleId = KB_SAMPLE_BUNDLE_ID;
  EXPECT(t, kernel->installKext(sampleBundle, res) == RC_kOSReturnSuccess, "install");
  kernel->setResourceDelay(1);
  std::atomic<bool> stop{false};
  std::vector<std::thread> clocks;
  for (int c = 0; c < 2; c++)
    clocks.emplace_back([&, c] {
      Rng rng(o.seed ^ (0xC10C + c));
      while (!stop.load()) {
        kernel->advance(rng.below(4));
        if (rng.below(64) == 0) kernel->armAutounloadScan();  // timeouts for withheld ones
        if (rng.below(256) == 0) kernel->withholdResources(rng.below(2) == 0);
        if (rng.below(8) == 0) std::this_thread::yield();
      }
    });
  std::vector<Tally> tallies(o.threads);
  std::atomic<uint64_t> accepted{0}, cancelledOk{0}, cancelLost{0}, fetched{0}, closes{0};
  std::vector<std::thread> workers;
  for (unsigned i = 0; i < o.threads; i++)
    workers.emplace_back([&, i] {
      Rng rng(o.seed + 31 * i);
      Tally &tt = tallies[i];
      for (unsigned long n = 0; n < o.calls;) {
        uint32_t okr = 0;
        RaceSink sink;
        std::unique_ptr<Transport> c = SimTransport::open(kernel, true, &okr);
        EXPECT(tt, c != nullptr, "open: 0x%08X", okr);
        if (!c) return;
        SimTransport *st = static_cast<SimTransport *>(c.get());
        c->setAsyncSink(&sink);
        std::map<uint32_t, int> mine;  // tag → index into names
        std::vector<uint32_t> cancelledTags, lostTags;
        for (unsigned calls = 1 + rng.below(24); calls > 0 && n < o.calls; calls--, n++) {
          const unsigned op = rng.below(10);
          if (rng.below(4) == 0) std::this_thread::yield();  // let the clocks deliver
          if (op < 5) {
            const int which = (int)rng.below(6);
            uint8_t in[kBundleIdSize + kResourceNameSize] = {0};
            strcpy((char *)in, KB_SAMPLE_BUNDLE_ID);
            strcpy((char *)in + kBundleIdSize, names[which]);
            uint64_t out[2] = {0, 0};
            uint32_t oc = 2;
            size_t os = 0;
            uint32_t kr = c->callAsyncMethod(kSelectorRequestResource, n, nullptr, 0, in, sizeof in,
                                             out, &oc, nullptr, &os);
            EXPECT(tt, (kr == RC_kIOReturnSuccess && out[0] == RC_kOSReturnSuccess) ||
                           kr == RC_kIOReturnNoResources,
                   "request: 0x%08X / 0x%08X", kr, (unsigned)out[0]);
            if (kr == RC_kIOReturnSuccess) {
              mine[(uint32_t)out[1]] = which;
              accepted++;
            }
            EXPECT(tt, st->core().requestsInUse() <= kRequestCapacity, "table over the cap");
          } else if (op < 7 && !mine.empty()) {
            auto it = mine.begin();
            std::advance(it, rng.below((uint32_t)mine.size()));
            uint64_t in[1] = {it->first}, out[1] = {0};
            uint32_t oc = 1;
            size_t os = 0;
            uint32_t kr = c->callMethod(kSelectorCancelRequest, in, 1, nullptr, 0, out, &oc, nullptr, &os);
            if (kr == RC_kIOReturnSuccess && out[0] == RC_kOSReturnSuccess) {
              cancelledTags.push_back(it->first);
              cancelledOk++;
              mine.erase(it);
            } else if (kr == RC_kIOReturnSuccess) {
              EXPECT(tt, out[0] == RC_kOSKextReturnNotFound, "cancel: kernel 0x%08X", (unsigned)out[0]);
              // The delivery won: its completion is in before the kernel answered the cancel.
              EXPECT(tt, sink.count(it->first) == 1, "cancel lost but %u completions", sink.count(it->first));
              lostTags.push_back(it->first);
              cancelLost++;
            } else {
              EXPECT(tt, kr == RC_kIOReturnNotFound, "cancel: 0x%08X", kr);  // already delivered
              EXPECT(tt, sink.count(it->first) == 1, "not pending but %u completions", sink.count(it->first));
            }
          } else if (op < 9 && !mine.empty()) {
            auto it = mine.begin();
            std::advance(it, rng.below((uint32_t)mine.size()));
            std::vector<uint8_t> got;
            uint32_t length = 0, kr;
            do {
              uint64_t in[2] = {it->first, got.size()}, out[2] = {0, 0};
              uint32_t oc = 2;
              uint8_t chunk[kFetchChunkSize];
              size_t os = sizeof chunk;
              kr = c->callMethod(kSelectorFetchResource, in, 2, nullptr, 0, out, &oc, chunk, &os);
              if (kr != RC_kIOReturnSuccess) break;
              length = (uint32_t)out[0];
              got.insert(got.end(), chunk, chunk + os);
            } while (got.size() < length);
            if (kr == RC_kIOReturnSuccess) {
              const std::vector<uint8_t> &want = res[names[it->second]];
              EXPECT(tt, got == want, "fetched %zu bytes of %s, want %zu", got.size(), names[it->second], want.size());
              EXPECT(tt, sink.count(it->first) == 1, "fetched without a completion");
              fetched++;
              mine.erase(it);
            } else {
              EXPECT(tt, kr == RC_kIOReturnNotFound, "fetch: 0x%08X", kr);
            }
          } else {
            break;  // close (or drop) now, with whatever is pending
          }
        }
        if (rng.below(2)) c->close();
        else c.reset();  // the destructor: clientDied
        sink.closeReturned.store(true);
        closes++;
        for (uint32_t tag : cancelledTags) EXPECT(tt, sink.count(tag) == 0, "cancelled tag %u completed", tag);
        for (uint32_t tag : lostTags) EXPECT(tt, sink.count(tag) == 1, "tag %u: %u completions", tag, sink.count(tag));
        for (auto &e : mine) EXPECT(tt, sink.count(e.first) <= 1, "tag %u: %u completions", e.first, sink.count(e.first));
        if (c) EXPECT(tt, st->asyncRefsHeld() == 0, "refs held after close: %d", st->asyncRefsHeld());
        // Completions the clocks could still be delivering would be counted here.
        std::this_thread::yield();
        EXPECT(tt, sink.afterClose.load() == 0, "%u completions after close", sink.afterClose.load());
      }
    });
  for (std::thread &w : workers) w.join();
  stop.store(true);
  for (std::thread &c : clocks) c.join();
  for (Tally &x : tallies) {
    t.passed += x.passed;
    t.failed += x.failed;
  }
  EXPECT(t, kernel->pendingRequests().empty(), "%zu requests pending after every client closed",
         kernel->pendingRequests().size());
  EXPECT(t, kernel->retainCount(sample) == (int64_t)sim::SimKernel::kBaselineRetainCount, "sample count");
  EXPECT(t, !kernel->panicked(), "no panic");
  printf("request race: %u threads x %lu ops, 2 clock threads: %" PRIu64 " accepted, %" PRIu64
         " cancelled, %" PRIu64 " cancels lost to the delivery, %" PRIu64 " fetched, %" PRIu64 " closes\n",
         o.threads, o.calls, accepted.load(), cancelledOk.load(), cancelLost.load(), fetched.load(), closes.load());
  printf("%" PRIu64 " passed, %" PRIu64 " failed\n", t.passed, t.failed);
  return t.failed ? 1 : 0;
}

void usage() {
  fprintf(stderr,
          "usage: stress [--threads N] [--calls N] [--seed N] [--transport-close-race]\n"
          "  --threads N  worker threads (default 8), each calling every client\n"
          "  --calls N    calls per worker thread (default 100000)\n"
          "  --seed N     generator seed (default fixed; the run is reproducible up to scheduling)\n"
          "  --transport-close-race  only: N threads call one SimTransport while it is closed\n"
          "  --unload-race  only: N threads open, call and close clients while the sample kext\n"
          "                 is unloaded (its service terminated) over and over\n"
          "  --request-race  only: N threads request, cancel, fetch and close while 2 threads\n"
          "                 advance the clock (deliveries race cancels and closes)\n");
}

}  // namespace

int main(int argc, char **argv) {
  Options o;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--threads") && i + 1 < argc) o.threads = (unsigned)strtoul(argv[++i], nullptr, 0);
    else if (!strcmp(argv[i], "--calls") && i + 1 < argc) o.calls = strtoul(argv[++i], nullptr, 0);
    else if (!strcmp(argv[i], "--seed") && i + 1 < argc) o.seed = strtoull(argv[++i], nullptr, 0);
    else if (!strcmp(argv[i], "--transport-close-race")) o.transportCloseRace = true;
    else if (!strcmp(argv[i], "--unload-race")) o.unloadRace = true;
    else if (!strcmp(argv[i], "--request-race")) o.requestRace = true;
    else {
      usage();
      return 2;
    }
  }
  if (o.threads < 1 || o.calls < 1) {
    usage();
    return 2;
  }
  if (o.transportCloseRace) return transportCloseRace(o);
  if (o.unloadRace) return unloadRace(o);
  if (o.requestRace) return requestRace(o);

  auto started = std::chrono::steady_clock::now();
  Tally t;
  World w;
  w.kernel = std::make_shared<sim::SimKernel>();
  sim::SimKernel &k = *w.kernel;
  w.sample = k.sampleLoadTag();
  for (unsigned i = 0; i < 4; i++) {
    uint32_t tag = kInvalidLoadTag;
    uint32_t kr = k.loadKext(kextSpec("com.example.stress.target" + std::to_string(i), true), &tag);
    EXPECT(t, kr == RC_kOSReturnSuccess, "load target %u: 0x%08X", i, kr);
    w.targets.push_back(tag);
  }
  {
    uint32_t kr = k.loadKext(kextSpec("com.example.stress.dependent", true, {"com.example.stress.target0"}),
                             &w.dependent);
    EXPECT(t, kr == RC_kOSReturnSuccess, "load dependent: 0x%08X", kr);
  }
  w.tags = w.targets;
  w.tags.push_back(w.sample);
  for (unsigned i = 0; i < World::kEphemeralSlots; i++) w.ephemeral[i].store(kBogusTag);

  // Baselines: 2 each, target0 3 (its dependent); the sample kext 2.
  std::map<uint32_t, int64_t> baseline;
  for (uint32_t tag : w.tags) baseline[tag] = k.retainCount(tag);
  EXPECT(t, baseline[w.targets[0]] == 3 && baseline[w.targets[1]] == 2 && baseline[w.sample] == 2,
         "baselines %" PRId64 " %" PRId64 " %" PRId64, baseline[w.targets[0]], baseline[w.targets[1]],
         baseline[w.sample]);

  std::vector<std::unique_ptr<Client>> clients;
  clients.push_back(transportClient(w.kernel, "T0", true, t));
  clients.push_back(transportClient(w.kernel, "T1", true, t));
  clients.push_back(coreClient(w.kernel, "K0", t));
  clients.push_back(coreClient(w.kernel, "C", t));
  clients[3]->closedMidRun = true;
  clients.push_back(transportClient(w.kernel, "U", false, t));
  if (t.failed) {
    printf("%" PRIu64 " passed, %" PRIu64 " failed\n", t.passed, t.failed);
    return 1;
  }

  std::vector<WorkerResult> results(o.threads);
  Tally machineTally, clientTally;
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < o.threads; i++)
    threads.emplace_back(worker, i, std::cref(o), std::ref(w), std::ref(clients), std::ref(results[i]));
  std::thread machine(machineEvents, std::ref(w), std::ref(machineTally), o.seed);
  std::thread opener(clientEvents, std::cref(o), std::ref(w), std::ref(clients), std::ref(clientTally));
  Tally closerTally;
  std::thread closer(closeC, std::cref(o), std::ref(w), std::ref(*clients[3]), std::ref(closerTally));
  auto callsStarted = std::chrono::steady_clock::now();
  w.go.store(true);
  for (std::thread &th : threads) th.join();
  w.workersDone.store(true);
  machine.join();
  opener.join();
  closer.join();
  double callSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - callsStarted).count();

  WorkerResult sum;
  for (WorkerResult &r : results) {
    sum.t.passed += r.t.passed;
    sum.t.failed += r.t.failed;
    sum.calls += r.calls;
    sum.retainsOk += r.retainsOk;
    sum.releasesOk += r.releasesOk;
    sum.noResources += r.noResources;
    sum.notPermitted += r.notPermitted;
    sum.notOpen += r.notOpen;
    sum.badArgs += r.badArgs;
    sum.notPrivileged += r.notPrivileged;
    for (auto &e : r.net) sum.net[e.first] += e.second;
  }
  t.passed += sum.t.passed + machineTally.passed + clientTally.passed + closerTally.passed;
  t.failed += sum.t.failed + machineTally.failed + clientTally.failed + closerTally.failed;
  EXPECT(t, w.cClosed.load(), "C was never closed");

  // ---- the ledgers against what the callers counted, and against the kernel ----
  EXPECT(t, !k.panicked(), "panicked: %s", k.panicRecord().message.c_str());
  std::map<uint32_t, int64_t> ledgerSum;
  for (unsigned ci = 0; ci < clients.size(); ci++) {
    Client &c = *clients[ci];
    std::map<uint32_t, uint32_t> held;
    uint32_t kr = 0;
    bool ok = c.held(held, &kr);
    if (c.closedMidRun) {
      EXPECT(t, !ok && kr == RC_kIOReturnNotOpen, "%s held after close: 0x%08X", c.name.c_str(), kr);
      continue;
    }
    EXPECT(t, ok, "%s held: 0x%08X", c.name.c_str(), kr);
    uint64_t total = 0;
    for (auto &e : held) {
      total += e.second;
      ledgerSum[e.first] += e.second;
      int64_t counted = sum.net.count({ci, e.first}) ? sum.net[{ci, e.first}] : 0;
      EXPECT(t, counted == (int64_t)e.second, "%s holds %u x tag %u, its callers counted %" PRId64,
             c.name.c_str(), e.second, e.first, counted);
      if (c.isCore())
        EXPECT(t, c.core->heldCount(e.first) == e.second, "%s heldCount(%u)", c.name.c_str(), e.first);
    }
    for (auto &e : sum.net)  // nothing counted that the ledger lost
      if (e.first.first == ci && e.second != 0)
        EXPECT(t, held.count(e.first.second) == 1, "%s: callers counted %" PRId64 " x tag %u, ledger has none",
               c.name.c_str(), e.second, e.first.second);
    EXPECT(t, total <= kLedgerCapacity, "%s holds %" PRIu64, c.name.c_str(), total);
    if (c.isCore()) EXPECT(t, c.core->outstanding() == total, "%s outstanding", c.name.c_str());
  }
  auto dependentsOf = [&](std::map<uint32_t, int64_t> &deps) {
    deps.clear();
    for (const SimKext &ki : k.loadedKexts())
      for (uint32_t d : ki.dependencies) deps[d]++;
  };
  std::map<uint32_t, int64_t> deps;
  dependentsOf(deps);
  std::vector<uint32_t> checkTags = w.tags;
  for (auto &e : ledgerSum)
    if (std::find(checkTags.begin(), checkTags.end(), e.first) == checkTags.end()) checkTags.push_back(e.first);
  for (uint32_t tag : checkTags)
    EXPECT(t, k.retainCount(tag) == 2 + ledgerSum[tag] + deps[tag],
           "retainCount(%u) = %" PRId64 ", want 2 + %" PRId64 " held + %" PRId64 " dependents", tag,
           k.retainCount(tag), ledgerSum[tag], deps[tag]);

  // ---- close everything: every count back at its baseline ----
  for (unsigned ci = 0; ci < clients.size(); ci++) {
    Client &c = *clients[ci];
    if (c.closedMidRun) continue;
    EXPECT(t, c.close() == RC_kIOReturnSuccess, "%s close", c.name.c_str());
    if (!c.isCore()) EXPECT(t, c.close() == RC_MACH_SEND_INVALID_DEST, "%s second close", c.name.c_str());
    std::map<uint32_t, uint32_t> held;
    uint32_t kr = 0;
    EXPECT(t, !c.held(held, &kr) && kr == (c.isCore() ? (uint32_t)RC_kIOReturnNotOpen : (uint32_t)RC_MACH_SEND_INVALID_DEST),
           "%s call after close: 0x%08X", c.name.c_str(), kr);
  }
  dependentsOf(deps);
  for (uint32_t tag : checkTags)
    EXPECT(t, k.retainCount(tag) == -1 || k.retainCount(tag) == 2 + deps[tag],
           "after close retainCount(%u) = %" PRId64 ", want 2 + %" PRId64 " dependents", tag, k.retainCount(tag), deps[tag]);
  // The ephemeral kexts go (some by an autounload scan, the rest explicitly), and with them
  // their references on the targets.
  k.advance(61000);
  for (const SimKext &ki : k.loadedKexts())
    if (ki.bundleId.compare(0, 22, "com.example.stress.eph") == 0)
      EXPECT(t, k.unloadKext(ki.loadTag) == RC_kOSReturnSuccess, "unload %s", ki.bundleId.c_str());
  for (uint32_t tag : w.tags)
    EXPECT(t, k.retainCount(tag) == baseline[tag], "retainCount(%u) = %" PRId64 ", baseline %" PRId64, tag,
           k.retainCount(tag), baseline[tag]);
  size_t userClients = 0, loaded = 0;
  for (const SimKext &ki : k.loadedKexts()) {
    loaded++;
    if (ki.loadTag == w.sample)
      for (const sim::ClassSpec &ci : ki.classes)
        if (ci.name == KB_USER_CLIENT_CLASS_NAME) userClients = ci.instances;
  }
  EXPECT(t, userClients == 0, "%zu user-client instances left", userClients);
  EXPECT(t, loaded == 9 + 5, "%zu kexts loaded, want the default 9 + 5 of ours", loaded);
  EXPECT(t, !k.panicked(), "panicked: %s", k.panicRecord().message.c_str());
  clients.clear();

  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  printf("stress: %u worker threads x %lu calls = %" PRIu64 " calls on 5 shared clients (2 SimTransport, "
         "2 UserClientCore, 1 unprivileged SimTransport), plus 2 events threads; seed 0x%" PRIx64 "\n",
         o.threads, o.calls, sum.calls, o.seed);
  printf("  retains ok %" PRIu64 ", releases ok %" PRIu64 ", ledger full %" PRIu64 ", not held %" PRIu64
         ", not open (C after clientClose) %" PRIu64 ", bad arguments %" PRIu64 ", not privileged %" PRIu64 "\n",
         sum.retainsOk, sum.releasesOk, sum.noResources, sum.notPermitted, sum.notOpen, sum.badArgs, sum.notPrivileged);
  printf("  C closed after %" PRIu64 " of %" PRIu64 " calls%s\n", w.cClosedAt.load(), sum.calls,
         w.cClosedAt.load() < sum.calls ? " (while workers were calling it)" : " (the workers had already finished)");
  printf("  events: %" PRIu64 " machine checks, %" PRIu64 " short-lived-connection checks; %.1f s of calls, %.1f s in all\n",
         machineTally.passed + machineTally.failed, clientTally.passed + clientTally.failed, callSeconds, seconds);
  printf("%" PRIu64 " passed, %" PRIu64 " failed\n", t.passed, t.failed);
  return t.failed ? 1 : 0;
}
