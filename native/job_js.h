// Jobs as JS sees them: arguments read from JS into a Job, answers turned into JS values,
// and the promise an async job settles.
#ifndef KEXTBRIDGE_JOB_JS_H
#define KEXTBRIDGE_JOB_JS_H

#include <napi.h>

#include <memory>

#include "job.h"

namespace kb {

struct PendingJob : Job {
  using Job::Job;
  ~PendingJob() override { delete deferred; }
  Napi::Promise::Deferred *deferred = nullptr;
};

// call(selector, scalars, structIn, outScalars, outStructSize); callAsync parses the same
// arguments into an AsyncCall job.
std::unique_ptr<PendingJob> ParseCall(const Napi::CallbackInfo &info, Job::Kind kind = Job::Kind::Call);
// callBatch(selector, loadTags: Uint32Array)
std::unique_ptr<PendingJob> ParseBatch(const Napi::CallbackInfo &info);
// { kr, scalars, struct } | { kr, results } | { kr, kexts } | { kr }
Napi::Value JobResult(Napi::Env env, const Job &job);

} // namespace kb

#endif
