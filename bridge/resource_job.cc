// The fetch of a whole resource delivery (selector 8) in fetchChunkSize pieces: one job, so JS
// gets one Buffer. (The async call of selector 7 is an ordinary call job: bridge/job.cc.) Plain C++.
#include "job.h"
#include "protocol.gen.h"

namespace kb {

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
