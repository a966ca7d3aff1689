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
  job.kr = t.callMethod(job.selector, job.in.data(), (uint32_t)job.in.size(), job.structIn.data(),
                        job.structIn.size(), job.out.data(), &outCount, job.structOut.data(),
                        &outStruct);
  job.out.resize(outCount);
  job.structOut.resize(outStruct);
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
    for (size_t i = 0; i < count; i++) {
      double *r = &job.batch[(start + i) * BatchResult::fieldCount];
      if (i >= answered) {
        r[BatchResult::kr] = kr == RC_kIOReturnSuccess ? RC_kIOReturnNotOpen : kr;
        continue;
      }
      const uint8_t *e = out + i * kBatchEntrySize;
      const uint32_t code = loadU32(e + BatchEntry::code * 4);
      // The entry holds either the kernel's OSReturn or the user client's refusal of this
      // one tag; the protocol's refusal table tells them apart.
      if (selectorMayRefuse(job.selector, code)) {
        r[BatchResult::kr] = code;
        continue;
      }
      r[BatchResult::osReturn] = code;
      r[BatchResult::heldAfter] = loadU32(e + BatchEntry::heldAfter * 4);
    }
  }
}

}  // namespace

void Execute(Transport &transport, Job &job) {
  switch (job.kind) {
    case Job::Kind::Call:
      runCall(transport, job);
      break;
    case Job::Kind::Batch:
      runBatch(transport, job);
      break;
    case Job::Kind::LoadedKexts:
      job.kr = transport.loadedKexts(job.kexts);
      break;
    case Job::Kind::AsyncCall:
      ExecuteAsyncCall(transport, job);
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
