#include "job_js.h"

#include "js_values.h"

#include <cmath>
#include <string>

namespace kb {

namespace {
const size_t kMaxStructSize = 1 << 20;  // a sanity bound; above 4096 goes out of line anyway
const uint32_t kMaxScalarArgs = 256;    // MIG refuses > 16; accept enough to be refused
const size_t kMaxBatchTags = 65536;     // MAX_BATCH_TAGS in lib/validate.ts
}  // namespace

std::unique_ptr<PendingJob> ParseCall(const Napi::CallbackInfo &info, Job::Kind kind) {
  Napi::Env env = info.Env();
  std::unique_ptr<PendingJob> job(new PendingJob(kind));
  job->selector = (uint32_t)ToUint(info[0], "selector", 0xFFFFFFFFull);
  if (!info[1].IsArray()) throw Napi::TypeError::New(env, "scalars must be an array");
  Napi::Array scalars = info[1].As<Napi::Array>();
  // The length is read once and fixed: an element getter that grows or shrinks the array
  // cannot make the call carry slots the caller did not pass.
  const uint32_t count = scalars.Length();
  if (count > kMaxScalarArgs)
    throw Napi::RangeError::New(env, "scalars: at most 256 entries");
  job->in.reserve(count);
  for (uint32_t i = 0; i < count; i++) {
    std::string what = "scalars[" + std::to_string(i) + "]";
    if (!scalars.Has(i)) throw Napi::TypeError::New(env, what + " is a hole (a sparse array)");
    job->in.push_back(ToUint(scalars.Get(i), what.c_str(), UINT64_MAX, true));
  }
  if (!info[2].IsUndefined() && !info[2].IsNull()) {
    if (!info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      throw Napi::TypeError::New(env, "structIn must be a Uint8Array or Buffer");
    Napi::Uint8Array bytes = info[2].As<Napi::Uint8Array>();
    bool detached = false;  // it would read as zero bytes: an error, never an empty struct
    if (napi_is_detached_arraybuffer(env, bytes.ArrayBuffer(), &detached) != napi_ok || detached)
      throw Napi::TypeError::New(env, "structIn is a Uint8Array whose buffer was detached (transferred)");
    if (bytes.ByteLength() > kMaxStructSize)
      throw Napi::RangeError::New(env, "structIn: at most 1 MiB");
    job->structIn.assign(bytes.Data(), bytes.Data() + bytes.ByteLength());
  }
  job->outCount = (uint32_t)ToUint(info[3], "outScalars", kMaxScalarArgs);
  job->outStructSize = (size_t)ToUint(info[4], "outStructSize", kMaxStructSize);
  return job;
}

std::unique_ptr<PendingJob> ParseBatch(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::unique_ptr<PendingJob> job(new PendingJob(Job::Kind::Batch));
  job->selector = (uint32_t)ToUint(info[0], "selector", 0xFFFFFFFFull);
  if (!info[1].IsTypedArray() ||
      info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array)
    throw Napi::TypeError::New(env, "loadTags must be a Uint32Array");
  Napi::Uint32Array tags = info[1].As<Napi::Uint32Array>();
  // A detached buffer reads as zero elements: an error, never an empty batch.
  bool detached = false;
  if (napi_is_detached_arraybuffer(env, tags.ArrayBuffer(), &detached) != napi_ok || detached)
    throw Napi::TypeError::New(env, "loadTags is a Uint32Array whose buffer was detached (transferred)");
  if (tags.ElementLength() > kMaxBatchTags)
    throw Napi::RangeError::New(env, "loadTags: at most 65536 load tags per call");
  job->tags.assign(tags.Data(), tags.Data() + tags.ElementLength());
  return job;
}

Napi::Value JobResult(Napi::Env env, const Job &job) {
  Napi::Object r = Napi::Object::New(env);
  r.Set("kr", Napi::Number::New(env, job.kr));
  switch (job.kind) {
    case Job::Kind::Call: {
      Napi::Array scalars = Napi::Array::New(env, job.out.size());
      for (size_t i = 0; i < job.out.size(); i++)
        scalars.Set((uint32_t)i, FromUint64(env, job.out[i]));
      r.Set("scalars", scalars);
      r.Set("struct", Napi::Buffer<uint8_t>::Copy(env, job.structOut.data(), job.structOut.size()));
      if (!std::isnan(job.refusedHeld)) r.Set("held", Napi::Number::New(env, job.refusedHeld));
      break;
    }
    case Job::Kind::Batch: {
      Napi::Float64Array a = Napi::Float64Array::New(env, job.batch.size());
      for (size_t i = 0; i < job.batch.size(); i++) a[i] = job.batch[i];
      r.Set("results", a);
      break;
    }
    case Job::Kind::LoadedKexts:
      r.Set("kexts", KextsToJs(env, job.kexts));
      break;
    case Job::Kind::UserClients:
      r.Set("clients", UserClientsToJs(env, job.clients));
      break;
    case Job::Kind::Close:
      r.Set("unreleased", Napi::Number::New(env, job.unreleased));
      break;
    case Job::Kind::AsyncCall: {
      Napi::Array scalars = Napi::Array::New(env, job.out.size());
      for (size_t i = 0; i < job.out.size(); i++)
        scalars.Set((uint32_t)i, FromUint64(env, job.out[i]));
      r.Set("scalars", scalars);
      r.Set("struct", Napi::Buffer<uint8_t>::Copy(env, job.structOut.data(), job.structOut.size()));
      r.Set("refcon", Napi::Number::New(env, (double)job.refcon));
      break;
    }
    case Job::Kind::FetchResource:
      r.Set("length", Napi::Number::New(env, (double)(job.out.empty() ? 0 : job.out[0])));
      r.Set("data", Napi::Buffer<uint8_t>::Copy(env, job.structOut.data(), job.structOut.size()));
      break;
  }
  return r;
}

} // namespace kb
