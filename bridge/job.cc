#include "job.h"

#include "protocol.gen.h"

namespace kb {

namespace {

void storeU32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

uint32_t loadU32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void runCall(Transport &t, Job &job) {
  job.out.assign(job.outCount, 0);
  job.structOut.assign(job.outStructSize, 0);
  uint32_t outCount = job.outCount;
  size_t outStruct = job.outStructSize;
  job.userClientCalls++;
  job.kr = job.kind == Job::Kind::AsyncCall  // IOConnectCallAsyncMethod: the same, with a refcon
               ? t.callAsyncMethod(job.selector, job.refcon, job.in.data(), (uint32_t)job.in.size(),
                                   job.structIn.data(), job.structIn.size(), job.out.data(),
                                   &outCount, job.structOut.data(), &outStruct)
               : t.callMethod(job.selector, job.in.data(), (uint32_t)job.in.size(),
                              job.structIn.data(), job.structIn.size(), job.out.data(), &outCount,
                              job.structOut.data(), &outStruct);
  job.out.resize(outCount);
  job.structOut.resize(outStruct);
  if ((job.selector == kSelectorRetain || job.selector == kSelectorRelease) && job.in.size() == 1 &&
      job.in[0] <= 0xFFFFFFFFull && selectorMayRefuse(job.selector, job.kr))
    job.refusedHeld = HeldAfterRefusal(t, (uint32_t)job.in[0], &job.userClientCalls);
}

// The count a held selector's answer gives the tag (0 when it has no entry).
double countIn(const uint8_t *held, size_t size, uint32_t loadTag) {
  for (size_t off = 0; off + kHeldEntrySize <= size; off += kHeldEntrySize)
    if (loadU32(held + off + 4 * HeldEntry::loadTag) == loadTag) return loadU32(held + off + 4 * HeldEntry::count);
  return 0;
}

// Each chunk is one user-client call: tags in as little-endian uint32s, one entry per tag out.
void runBatch(Transport &t, Job &job) {
  const size_t n = job.tags.size();
  job.batch.assign(n * BatchResult::fieldCount, 0);
  uint8_t in[kBatchMaxTags * 4];
  uint8_t out[kBatchMaxTags * kBatchEntrySize];
  for (size_t start = 0; start < n; start += kBatchMaxTags) {
    const size_t count = n - start < kBatchMaxTags ? n - start : kBatchMaxTags;
    for (size_t i = 0; i < count; i++) storeU32(in + 4 * i, job.tags[start + i]);
    uint32_t outCount = 0;
    size_t outStruct = count * kBatchEntrySize;
    job.userClientCalls++;
    uint32_t kr = t.callMethod(job.selector, nullptr, 0, in, count * 4, nullptr, &outCount, out,
                               &outStruct);
    // A short answer (the user client stopped mid-batch) leaves the rest refused as not open.
    const size_t answered = kr == RC_kIOReturnSuccess ? outStruct / kBatchEntrySize : 0;
    // The whole call refused (e.g. kIOReturnNotPrivileged): MIG dropped the entries, so each
    // tag's count comes from one held query right after, as for a single call.
    uint8_t held[kLedgerCapacity * kHeldEntrySize];
    size_t heldSize = 0;
    bool heldKnown = false;
    if (kr != RC_kIOReturnSuccess && kr != RC_kIOReturnNotOpen && selectorMayRefuse(job.selector, kr)) {
      uint32_t heldOut = 0;
      heldSize = sizeof held;
      job.userClientCalls++;
      heldKnown = t.callMethod(kSelectorHeld, nullptr, 0, nullptr, 0, nullptr, &heldOut, held, &heldSize) == RC_kIOReturnSuccess;
    }
    for (size_t i = 0; i < count; i++) {
      double *r = &job.batch[(start + i) * BatchResult::fieldCount];
      if (i >= answered) {
        // Never reached the user client's ledger or the kernel: the held count is unknown
        // here (NaN), not 0 (the lib reports these tags as not run).
        r[BatchResult::kr] = kr == RC_kIOReturnSuccess ? RC_kIOReturnNotOpen : kr;
        r[BatchResult::heldAfter] = heldKnown ? countIn(held, heldSize, job.tags[start + i]) : NAN;
        continue;
      }
      const uint8_t *e = out + i * kBatchEntrySize;
      const uint32_t code = loadU32(e + BatchEntry::code * 4);
      // The entry holds either the kernel's OSReturn or the user client's refusal of this
      // one tag; the protocol's refusal table tells them apart. A refusal's entry still
      // carries the ledger's real count on the tag (a batch answer is a success, so MIG
      // keeps it): a refused retain of a held tag reports what is held, never 0.
      if (selectorMayRefuse(job.selector, code)) {
        r[BatchResult::kr] = code;
        r[BatchResult::heldAfter] = loadU32(e + BatchEntry::heldAfter * 4);
        continue;
      }
      r[BatchResult::osReturn] = code;
      r[BatchResult::heldAfter] = loadU32(e + BatchEntry::heldAfter * 4);
    }
  }
}

}  // namespace

double HeldAfterRefusal(Transport &t, uint32_t loadTag, uint32_t *calls) {
  uint8_t out[kLedgerCapacity * kHeldEntrySize];
  uint32_t outCount = 0;
  size_t outStruct = sizeof out;
  (*calls)++;
  if (t.callMethod(kSelectorHeld, nullptr, 0, nullptr, 0, nullptr, &outCount, out, &outStruct) != RC_kIOReturnSuccess)
    return NAN;
  return countIn(out, outStruct, loadTag);
}

void Execute(Transport &transport, Job &job) {
  switch (job.kind) {
    case Job::Kind::Call:
    case Job::Kind::AsyncCall:
      runCall(transport, job);
      break;
    case Job::Kind::Batch:
      runBatch(transport, job);
      break;
    case Job::Kind::LoadedKexts:
      job.kr = transport.loadedKexts(job.kexts);
      break;
    case Job::Kind::UserClients:
      job.kr = transport.userClients(job.clients);
      break;
    case Job::Kind::FetchResource:
      ExecuteFetchResource(transport, job);
      break;
    case Job::Kind::Close:
      job.kr = transport.close();
      job.unreleased = transport.unreleasedAtClose();
      break;
  }
}

} // namespace kb
