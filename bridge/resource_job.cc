// The resource-request jobs (selectors 7 and 8): the async call that carries a refcon, and
// the fetch of a whole delivery in fetchChunkSize pieces. Plain C++, no JS.
#include "job.h"
#include "protocol.gen.h"

namespace kb {

void ExecuteAsyncCall(Transport &t, Job &job) {
  job.out.assign(job.outCount, 0);
  job.structOut.assign(job.outStructSize, 0);
  uint32_t outCount = job.outCount;
  size_t outStruct = job.outStructSize;
  job.userClientCalls++;
  job.kr = t.callAsyncMethod(job.selector, job.refcon, job.in.data(), (uint32_t)job.in.size(),
                             job.structIn.data(), job.structIn.size(), job.out.data(), &outCount,
                             job.structOut.data(), &outStruct);
  job.out.resize(outCount);
  job.structOut.resize(outStruct);
}

// out: [length, copied so far]. Stops at the first failure (kr), when the offset reaches
// length, or with kIOReturnInternalError for an answer whose sizes do not add up or a piece
// that copies nothing before the end (asking again would loop forever).
void ExecuteFetchResource(Transport &t, Job &job) {
  const uint64_t requestTag = job.in.empty() ? 0 : job.in[0];
  job.structOut.clear();
  job.out.assign(FetchResourceOut::fieldCount, 0);
  job.kr = RC_kIOReturnSuccess;
  uint8_t piece[kFetchChunkSize];
  uint64_t length = 0;
  for (;;) {
    uint64_t in[2] = {requestTag, (uint64_t)job.structOut.size()};
    uint64_t out[FetchResourceOut::fieldCount] = {0, 0};
    uint32_t outCount = FetchResourceOut::fieldCount;
    size_t outStruct = sizeof piece;
    job.userClientCalls++;
    job.kr = t.callMethod(kSelectorFetchResource, in, 2, nullptr, 0, out, &outCount, piece,
                          &outStruct);
    if (job.kr != RC_kIOReturnSuccess) break;
    if (outCount < FetchResourceOut::fieldCount || out[FetchResourceOut::copied] != outStruct ||
        outStruct > sizeof piece || out[FetchResourceOut::length] > kMaxResourceSize ||
        job.structOut.size() + outStruct > out[FetchResourceOut::length]) {
      job.kr = RC_kIOReturnInternalError;  // a malformed answer: never trust its sizes
      break;
    }
    length = out[FetchResourceOut::length];
    job.structOut.insert(job.structOut.end(), piece, piece + outStruct);
    job.out[FetchResourceOut::length] = length;
    job.out[FetchResourceOut::copied] = job.structOut.size();
    if (job.structOut.size() == length) break;
    if (outStruct == 0) {
      job.kr = RC_kIOReturnInternalError;  // no progress before the end
      break;
    }
  }
}

} // namespace kb
