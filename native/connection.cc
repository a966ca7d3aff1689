#include "connection.h"

#include <chrono>
#ifdef __linux__
#include <sched.h>
#endif

#include "addon.h"
#include "js_values.h"
#include "protocol.gen.h"

namespace kb {

namespace {
const size_t kMaxStructSize = 1 << 20;  // a sanity bound; above 4096 goes out of line anyway
const uint32_t kMaxScalarArgs = 256;    // MIG refuses > 16; accept enough to be refused
const napi_type_tag kTransportTag = {0x6b65787462726964ull, 0x6765747261707274ull};
// After a job the worker polls for the next one this long before parking (see WorkerLoop).
const std::chrono::microseconds kPollAfterJob(50);

// Polling pays only if another core can run the JS thread meanwhile (taskset, a 1-CPU box).
bool SeveralCpus() {
#ifdef __linux__
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set) > 1;
#endif
  return std::thread::hardware_concurrency() != 1;
}
}  // namespace

struct Connection::Job {
  enum class Kind { Call, CallMany, LoadedKexts, Close } kind;
  explicit Job(Kind k) : kind(k) {}
  // in
  uint32_t selector = 0;
  std::vector<uint64_t> in;
  std::vector<uint8_t> structIn;
  uint32_t outCount = 0;
  size_t outStructSize = 0;
  std::vector<uint32_t> tags;  // CallMany
  // out
  uint32_t kr = 0;
  std::vector<uint64_t> out;
  std::vector<uint8_t> structOut;
  std::vector<double> many;  // CallMany: per tag [kr, out0, out1]
  std::vector<KextInfo> kexts;
  Napi::Promise::Deferred *deferred = nullptr;

  ~Job() { delete deferred; }
  Napi::Value Result(Napi::Env env) const;
};

Napi::Value Connection::Job::Result(Napi::Env env) const {
  Napi::Object r = Napi::Object::New(env);
  r.Set("kr", Napi::Number::New(env, kr));
  switch (kind) {
    case Kind::Call: {
      Napi::Array scalars = Napi::Array::New(env, out.size());
      for (size_t i = 0; i < out.size(); i++) scalars.Set((uint32_t)i, FromUint64(env, out[i]));
      r.Set("scalars", scalars);
      r.Set("struct", Napi::Buffer<uint8_t>::Copy(env, structOut.data(), structOut.size()));
      break;
    }
    case Kind::CallMany: {
      Napi::Float64Array a = Napi::Float64Array::New(env, many.size());
      for (size_t i = 0; i < many.size(); i++) a[i] = many[i];
      r.Set("results", a);
      break;
    }
    case Kind::LoadedKexts:
      r.Set("kexts", KextsToJs(env, kexts));
      break;
    case Kind::Close:
      break;
  }
  return r;
}

Napi::Function Connection::Define(Napi::Env env) {
  return DefineClass(env, "Connection",
                     {InstanceMethod<&Connection::Call>("call"),
                      InstanceMethod<&Connection::CallSync>("callSync"),
                      InstanceMethod<&Connection::CallScalarSync>("callScalarSync"),
                      InstanceMethod<&Connection::CallMany>("callMany"),
                      InstanceMethod<&Connection::CallManySync>("callManySync"),
                      InstanceMethod<&Connection::LoadedKexts>("loadedKexts"),
                      InstanceMethod<&Connection::LoadedKextsSync>("loadedKextsSync"),
                      InstanceMethod<&Connection::Close>("close"),
                      InstanceAccessor<&Connection::Closed>("closed")});
}

Napi::Object Connection::Wrap(Napi::Env env, std::unique_ptr<Transport> transport) {
  Napi::External<Transport> ext = Napi::External<Transport>::New(env, transport.release());
  ext.TypeTag(&kTransportTag);
  return env.GetInstanceData<AddonData>()->connection.New({ext});
}

Connection::Connection(const Napi::CallbackInfo &info) : Napi::ObjectWrap<Connection>(info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsExternal() ||
      !info[0].As<Napi::Object>().CheckTypeTag(&kTransportTag))
    throw Napi::TypeError::New(env, "Connection cannot be constructed directly; use open()");
  transport_.reset(info[0].As<Napi::External<Transport>>().Data());
  delivery_ = Delivery::New(env, "kextbridge.connection", 0, 1, this);
  delivery_.Unref(env);  // no handle keeps the process alive while nothing is in flight
  napi_add_env_cleanup_hook(env, &Connection::OnEnvCleanup, this);
  worker_ = std::thread(&Connection::WorkerLoop, this);
}

Connection::~Connection() {
  if (!shutdown_) napi_remove_env_cleanup_hook(Env(), &Connection::OnEnvCleanup, this);
  Shutdown();  // a forgotten connection: close it, releasing what it still holds
}

void Connection::OnEnvCleanup(void *self) { static_cast<Connection *>(self)->Shutdown(); }

void Connection::Shutdown() {
  if (shutdown_) return;
  shutdown_ = closing_ = true;
  std::deque<Job *> dropped;
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
    dropped.swap(queue_);
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  for (Job *job : dropped) delete job;  // the environment is going away; nobody awaits them
  transport_.reset();                   // closes the connection if still open
  if (!deliveryReleased_) {
    deliveryReleased_ = true;
    delivery_.Release();
  }
}

void Connection::WorkerLoop() {
  const bool poll = SeveralCpus();
  bool worked = false;
  for (;;) {
    Job *job;
    // The next call often arrives microseconds after the answer it awaited (or, for a batch,
    // after JS has decoded it). Parking the thread and waking it again costs more than that
    // wherever the other core has gone idle (a 2-vCPU VM: ~50 us per awaited call parked,
    // ~5-10 us polling), so poll briefly first, yielding the CPU each time so a JS thread
    // sharing this core still runs. At most kPollAfterJob of CPU per job; idle, it parks.
    if (worked && poll) {
      const auto until = std::chrono::steady_clock::now() + kPollAfterJob;
      for (;;) {
        {
          std::lock_guard<std::mutex> lk(mu_);
          if (stop_ || !queue_.empty()) break;
        }
        if (std::chrono::steady_clock::now() >= until) break;
        std::this_thread::yield();
      }
    }
    worked = true;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [this] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      job = queue_.front();
      queue_.pop_front();
      busy_ = true;
    }
    Execute(*job);
    bool last = job->kind == Job::Kind::Close;
    {
      std::lock_guard<std::mutex> lk(mu_);
      busy_ = false;
    }
    cv_.notify_all();
    if (delivery_.NonBlockingCall(job) != napi_ok) delete job;  // environment closing
    if (last) return;
  }
}

void Connection::Execute(Job &job) {
  switch (job.kind) {
    case Job::Kind::Call: {
      job.out.assign(job.outCount, 0);
      job.structOut.assign(job.outStructSize, 0);
      uint32_t outCount = job.outCount;
      size_t outStruct = job.outStructSize;
      job.kr = transport_->callMethod(job.selector, job.in.data(), (uint32_t)job.in.size(),
                                      job.structIn.data(), job.structIn.size(), job.out.data(),
                                      &outCount, job.structOut.data(), &outStruct);
      job.out.resize(outCount);
      job.structOut.resize(outStruct);
      break;
    }
    case Job::Kind::CallMany: {
      // One hop, many kernel calls: each tag is a full user-client call with its own answer.
      job.many.assign(job.tags.size() * 3, 0);
      for (size_t i = 0; i < job.tags.size(); i++) {
        uint64_t in = job.tags[i];
        uint64_t out[2] = {0, 0};
        uint32_t outCount = 2;
        size_t outStruct = 0;
        uint32_t kr = transport_->callMethod(job.selector, &in, 1, nullptr, 0, out, &outCount,
                                             nullptr, &outStruct);
        job.many[i * 3] = kr;
        job.many[i * 3 + 1] = outCount > 0 ? (double)out[0] : 0;
        job.many[i * 3 + 2] = outCount > 1 ? (double)out[1] : 0;
      }
      break;
    }
    case Job::Kind::LoadedKexts:
      job.kr = transport_->loadedKexts(job.kexts);
      break;
    case Job::Kind::Close:
      job.kr = transport_->close();
      break;
  }
}

void Connection::Deliver(Napi::Env env, Napi::Function, Connection *self, Job *job) {
  std::unique_ptr<Job> owned(job);
  if (env == nullptr) return;  // torn down before delivery: only free the job
  bool close = job->kind == Job::Kind::Close;
  // A worker thread being terminated still dispatches queued results, but its JS can no
  // longer run: napi calls fail, and a Napi::Error escaping this callback aborts the process
  // (node-addon-api rethrows when it cannot throw into JS). Settle the promise if JS can take
  // it, else drop the answer (nobody can await it); the bookkeeping below runs either way.
  try {
    job->deferred->Resolve(job->Result(env));
  } catch (const Napi::Error &e) {
    try {
      job->deferred->Reject(e.Value());
    } catch (const Napi::Error &) {
    }
  }
  if (--self->pending_ == 0) {
    self->delivery_.Unref(env);
    self->Unref();
  }
  if (close) {
    if (self->worker_.joinable()) self->worker_.join();  // it returned after posting this
    if (!self->deliveryReleased_) {
      self->deliveryReleased_ = true;
      self->delivery_.Release();
    }
  }
}

Napi::Value Connection::Enqueue(Napi::Env env, std::unique_ptr<Job> job) {
  job->deferred = new Napi::Promise::Deferred(Napi::Promise::Deferred::New(env));
  Napi::Promise promise = job->deferred->Promise();
  if (closing_) {
    job->kr = RC_MACH_SEND_INVALID_DEST;  // what a call on a closed connection answers
    job->deferred->Resolve(job->Result(env));
    return promise;
  }
  if (pending_++ == 0) {
    delivery_.Ref(env);
    Ref();  // the JS object stays alive while a call is in flight
  }
  if (job->kind == Job::Kind::Close) closing_ = true;
  {
    std::lock_guard<std::mutex> lk(mu_);
    queue_.push_back(job.release());
  }
  cv_.notify_all();
  return promise;
}

template <typename F>
void Connection::RunExclusive(F &&run) {
  {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [this] { return queue_.empty() && !busy_; });
    busy_ = true;
  }
  run();
  {
    std::lock_guard<std::mutex> lk(mu_);
    busy_ = false;
  }
  // No notify: only the worker waits on cv_, and for work, not for busy_ (sync calls come
  // from this one JS thread). Waking it here cost a context switch per sync call.
}

Napi::Value Connection::RunSync(Napi::Env env, Job &job) {
  if (closing_)
    job.kr = RC_MACH_SEND_INVALID_DEST;
  else
    RunExclusive([&] { Execute(job); });
  return job.Result(env);
}

Napi::Value Connection::CallScalarSync(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  uint32_t selector = (uint32_t)ToUint(info[0], "selector", 0xFFFFFFFFull);
  uint64_t scalar = ToUint(info[1], "scalar", UINT64_MAX, true);
  if (!info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    throw Napi::TypeError::New(env, "out must be a Float64Array");
  Napi::Float64Array out = info[2].As<Napi::Float64Array>();
  uint64_t scalars[kMaxScalars] = {0};
  uint32_t outCount = out.ElementLength() < kMaxScalars ? (uint32_t)out.ElementLength() : kMaxScalars;
  uint32_t kr = RC_MACH_SEND_INVALID_DEST;
  if (closing_) {
    outCount = 0;
  } else {
    RunExclusive([&] {
      size_t outStruct = 0;
      kr = transport_->callMethod(selector, &scalar, 1, nullptr, 0, scalars, &outCount, nullptr, &outStruct);
    });
  }
  for (size_t i = 0; i < out.ElementLength(); i++) out[i] = i < outCount ? (double)scalars[i] : 0;
  return Napi::Number::New(env, kr);
}

static std::unique_ptr<Connection::Job> ParseCall(const Napi::CallbackInfo &info);

Napi::Value Connection::Call(const Napi::CallbackInfo &info) {
  return Enqueue(info.Env(), ParseCall(info));
}

Napi::Value Connection::CallSync(const Napi::CallbackInfo &info) {
  std::unique_ptr<Job> job = ParseCall(info);
  return RunSync(info.Env(), *job);
}

static std::unique_ptr<Connection::Job> ParseMany(const Napi::CallbackInfo &info);

Napi::Value Connection::CallMany(const Napi::CallbackInfo &info) {
  return Enqueue(info.Env(), ParseMany(info));
}

Napi::Value Connection::CallManySync(const Napi::CallbackInfo &info) {
  std::unique_ptr<Job> job = ParseMany(info);
  return RunSync(info.Env(), *job);
}

Napi::Value Connection::LoadedKexts(const Napi::CallbackInfo &info) {
  return Enqueue(info.Env(), std::unique_ptr<Job>(new Job(Job::Kind::LoadedKexts)));
}

Napi::Value Connection::LoadedKextsSync(const Napi::CallbackInfo &info) {
  Job job(Job::Kind::LoadedKexts);
  return RunSync(info.Env(), job);
}

// Waits for everything queued, then closes. A second close answers MACH_SEND_INVALID_DEST.
Napi::Value Connection::Close(const Napi::CallbackInfo &info) {
  return Enqueue(info.Env(), std::unique_ptr<Job>(new Job(Job::Kind::Close)));
}

Napi::Value Connection::Closed(const Napi::CallbackInfo &info) {
  return Napi::Boolean::New(info.Env(), closing_);
}

static std::unique_ptr<Connection::Job> ParseCall(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::unique_ptr<Connection::Job> job(new Connection::Job(Connection::Job::Kind::Call));
  job->selector = (uint32_t)ToUint(info[0], "selector", 0xFFFFFFFFull);
  if (!info[1].IsArray()) throw Napi::TypeError::New(env, "scalars must be an array");
  Napi::Array scalars = info[1].As<Napi::Array>();
  if (scalars.Length() > kMaxScalarArgs)
    throw Napi::RangeError::New(env, "scalars: at most 256 entries");
  for (uint32_t i = 0; i < scalars.Length(); i++)
    job->in.push_back(ToUint(scalars.Get(i), "scalars[i]", UINT64_MAX, true));
  if (!info[2].IsUndefined() && !info[2].IsNull()) {
    if (!info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      throw Napi::TypeError::New(env, "structIn must be a Uint8Array or Buffer");
    Napi::Uint8Array bytes = info[2].As<Napi::Uint8Array>();
    if (bytes.ByteLength() > kMaxStructSize)
      throw Napi::RangeError::New(env, "structIn: at most 1 MiB");
    job->structIn.assign(bytes.Data(), bytes.Data() + bytes.ByteLength());
  }
  job->outCount = (uint32_t)ToUint(info[3], "outScalars", kMaxScalarArgs);
  job->outStructSize = (size_t)ToUint(info[4], "outStructSize", kMaxStructSize);
  return job;
}

static std::unique_ptr<Connection::Job> ParseMany(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::unique_ptr<Connection::Job> job(new Connection::Job(Connection::Job::Kind::CallMany));
  job->selector = (uint32_t)ToUint(info[0], "selector", 0xFFFFFFFFull);
  if (!info[1].IsTypedArray() ||
      info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array)
    throw Napi::TypeError::New(env, "loadTags must be a Uint32Array");
  Napi::Uint32Array tags = info[1].As<Napi::Uint32Array>();
  job->tags.assign(tags.Data(), tags.Data() + tags.ElementLength());
  return job;
}

} // namespace kb
