// One call on a connection, in plain C++: what goes in, what came back, and how it runs on a
// Transport. The N-API layer adds the promise (native/connection.cc); nothing here knows JS.
#ifndef KEXTBRIDGE_JOB_H
#define KEXTBRIDGE_JOB_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include <vector>

#include "kext_info.h"
#include "transport.h"

namespace kb {

struct Job {
  // AsyncCall: callAsyncMethod with `refcon` (otherwise as Call). FetchResource: the whole
  // delivery of requestTag in[0], fetched piece by piece (bridge/resource_job.cc).
  enum class Kind { Call, Batch, LoadedKexts, UserClients, Close, AsyncCall, FetchResource };
  explicit Job(Kind k) : kind(k) {}
  virtual ~Job() = default;
  Job(const Job &) = delete;
  Job &operator=(const Job &) = delete;

  const Kind kind;
  // in
  uint32_t selector = 0;
  std::vector<uint64_t> in;
  std::vector<uint8_t> structIn;
  uint32_t outCount = 0;
  size_t outStructSize = 0;
  std::vector<uint32_t> tags;  // Batch
  // out
  uint32_t kr = 0;
  uint32_t userClientCalls = 0;  // IOConnectCallMethod calls the job made
  std::vector<uint64_t> out;
  std::vector<uint8_t> structOut;
  // Call of retain/release that the user client refused: MIG sent no outputs, so the held
  // count comes from a held query made right after it in the same job (HeldAfterRefusal);
  // NaN when there is none (not refused, or the user client did not answer the query).
  double refusedHeld = NAN;
  // Batch: per tag [kr, osReturn, heldAfter], as a single call would answer: kr is the user
  // client's refusal of that tag (or of the whole call that carried it), else 0 and osReturn
  // the kernel's answer.
  std::vector<double> batch;
  std::vector<KextInfo> kexts;
  std::vector<UserClientInfo> clients;  // UserClients
  uint32_t unreleased = 0;  // Close: retains the user client could not release
  uint64_t refcon = 0;      // AsyncCall: the reference word the completion carries back
};

// Runs the job against the transport (on the connection's worker, or the JS thread for the
// sync path). A Batch job carries its tags to the batch selector in chunks of the selector's
// capacity: one user-client call per chunk, not per tag.
void Execute(Transport &transport, Job &job);

// After the user client refused a single retain or release of loadTag (an IOReturn, so MIG
// dropped the outputs): the count this connection's ledger holds on the tag, asked with the
// held selector right away. The caller runs it in the refused call's own turn on the queue
// (the worker's job, or the sync path's exclusive section), so no call of this connection
// comes between; other connections never change this ledger. NaN when the user client does
// not answer the query (stopped, closed). Adds its user-client calls to *calls.
double HeldAfterRefusal(Transport &transport, uint32_t loadTag, uint32_t *calls);
// bridge/resource_job.cc. FetchResource: fetchResource(requestTag = in[0]) from offset 0, one
// user-client call per fetchChunkSize piece, until the whole delivery is in structOut (or a
// call fails: kr, and structOut holds what came before). One job, so JS gets one Buffer.
// (AsyncCall runs as a Call, through callAsyncMethod with job.refcon.)
void ExecuteFetchResource(Transport &transport, Job &job);

} // namespace kb

#endif
