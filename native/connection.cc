#include "connection.h"

#include "addon.h"
#include "js_values.h"
#include "protocol.gen.h"

#include <cmath>
#include <new>

namespace kb {

namespace {
const napi_type_tag kTransportTag = {0x6b65787462726964ull, 0x6765747261707274ull};
const napi_type_tag kConnectionTag = {0x6b62636f6e6e6563ull, 0x74696f6e77726170ull};
}  // namespace

Napi::Function Connection::Define(Napi::Env env) {
  return DefineClass(env, "Connection",
                     {InstanceMethod<&Connection::Call>("call"),
                      InstanceMethod<&Connection::CallSync>("callSync"),
                      InstanceMethod<&Connection::BindSync>("bindSync"),
                      InstanceMethod<&Connection::CallBatch>("callMany"),
                      InstanceMethod<&Connection::CallBatchSync>("callManySync"),
                      InstanceMethod<&Connection::LoadedKexts>("loadedKexts"),
                      InstanceMethod<&Connection::LoadedKextsSync>("loadedKextsSync"),
                      InstanceMethod<&Connection::UserClients>("userClients"),
                      InstanceMethod<&Connection::Close>("close"),
                      InstanceMethod<&Connection::CallAsync>("callAsync"),
                      InstanceMethod<&Connection::ForgetAsync>("forgetAsync"),
                      InstanceMethod<&Connection::FetchResource>("fetchResource"),
                      InstanceAccessor<&Connection::AsyncPending>("_asyncPending"),
                      InstanceAccessor<&Connection::Closing>("closing"),
                      InstanceAccessor<&Connection::UserClientCalls>("_userClientCalls"),
                      InstanceAccessor<&Connection::NativeCalls>("_nativeCalls")});
}

Napi::Object Connection::Wrap(Napi::Env env, std::unique_ptr<Transport> transport) {
  Napi::External<Transport> ext = Napi::External<Transport>::New(env, transport.release());
  ext.TypeTag(&kTransportTag);
  return env.GetInstanceData<AddonData>()->connection.New({ext});
}

// ---- lifetime ----

Connection::Connection(const Napi::CallbackInfo &info) : Napi::ObjectWrap<Connection>(info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsExternal() ||
      !info[0].As<Napi::Object>().CheckTypeTag(&kTransportTag))
    throw Napi::TypeError::New(env, "Connection cannot be constructed directly; use open()");
  info.This().As<Napi::Object>().TypeTag(&kConnectionTag);
  transport_.reset(info[0].As<Napi::External<Transport>>().Data());
  queue_.reset(new SerialQueue([this](Job &job) { Execute(job); },
                               [this](Job *job) {
                                 return delivery_.NonBlockingCall(static_cast<PendingJob *>(job)) == napi_ok;
                               }));
  delivery_ = Delivery::New(env, "kextbridge.connection", 0, 1, this);
  delivery_.Unref(env);  // no handle keeps the process alive while nothing is in flight
  std::string why;
  if (!queue_->start(&why)) {
    shutdown_ = closing_ = deliveryReleased_ = true;
    delivery_.Release();
    transport_.reset();  // closes it: nothing was queued
    throw Napi::Error::New(env, std::string(kNoWorkerThread) + ": " + why);
  }
  napi_add_env_cleanup_hook(env, &Connection::OnEnvCleanup, this);
}

Connection *Connection::Unwrap(Napi::Object wrapper) {
  Napi::Env env = wrapper.Env();
  if (!wrapper.IsObject() || !wrapper.CheckTypeTag(&kConnectionTag))
    throw Napi::TypeError::New(env, "this is not a kextbridge Connection (a method was called on another object)");
  return Napi::ObjectWrap<Connection>::Unwrap(wrapper);
}

Connection::~Connection() {
  *alive_ = nullptr;  // bindSync's functions now throw instead of reaching a freed connection
  if (!shutdown_) napi_remove_env_cleanup_hook(Env(), &Connection::OnEnvCleanup, this);
  Shutdown();  // a forgotten connection: close it, releasing what it still holds
}

void Connection::OnEnvCleanup(void *self) { static_cast<Connection *>(self)->Shutdown(); }

void Connection::Shutdown() {
  if (shutdown_) return;
  shutdown_ = closing_ = true;
  queue_->stop();       // the environment is going away; nobody awaits the dropped jobs
  transport_.reset();   // closes the connection if still open
  ReleaseCompletions();  // closed: no completion runs or will arrive
  if (!deliveryReleased_) {
    deliveryReleased_ = true;
    delivery_.Release();
  }
}

// ---- running jobs ----

void Connection::Execute(Job &job) {
  kb::Execute(*transport_, job);
  userClientCalls_ += job.userClientCalls;
}

void Connection::Deliver(Napi::Env env, Napi::Function, Connection *self, PendingJob *job) {
  std::unique_ptr<PendingJob> owned(job);
  if (env == nullptr) return;  // torn down before delivery: only free the job
  bool close = job->kind == Job::Kind::Close;
  // A worker thread being terminated still dispatches queued results, but its JS can no
  // longer run: napi calls fail, and a Napi::Error escaping this callback aborts the process
  // (node-addon-api rethrows when it cannot throw into JS). Settle the promise if JS can take
  // it, else drop the answer (nobody can await it); the bookkeeping below runs either way.
  // An async call the transport did not take gets no completion.
  if (job->kind == Job::Kind::AsyncCall && job->kr != 0) self->Forget(env, job->refcon);
  try {
    job->deferred->Resolve(JobResult(env, *job));
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
    self->queue_->join();  // the worker returned after posting this
    self->ReleaseCompletions();  // the transport is closed: no completion arrives any more
    if (!self->deliveryReleased_) {
      self->deliveryReleased_ = true;
      self->delivery_.Release();
    }
  }
}

Napi::Value Connection::Enqueue(Napi::Env env, std::unique_ptr<PendingJob> job) {
  job->deferred = new Napi::Promise::Deferred(Napi::Promise::Deferred::New(env));
  Napi::Promise promise = job->deferred->Promise();
  if (closing_) {
    job->kr = RC_MACH_SEND_INVALID_DEST;  // what a call on a closed connection answers
    job->deferred->Resolve(JobResult(env, *job));
    return promise;
  }
  if (pending_++ == 0) {
    delivery_.Ref(env);
    Ref();  // the JS object stays alive while a call is in flight
  }
  bool last = job->kind == Job::Kind::Close;
  if (last) closing_ = true;
  queue_->post(std::move(job), last);
  return promise;
}

Napi::Value Connection::RunSync(Napi::Env env, Job &job) {
  if (closing_)
    job.kr = RC_MACH_SEND_INVALID_DEST;
  else
    Exclusive([&] { Execute(job); });
  return JobResult(env, job);
}

// ---- the JS methods ----

namespace {
static_assert((uint32_t)RetainOut::fieldCount == (uint32_t)ReleaseOut::fieldCount &&
                  (uint32_t)RetainOut::osReturn == (uint32_t)ReleaseOut::osReturn &&
                  (uint32_t)RetainOut::heldAfter == (uint32_t)ReleaseOut::heldAfter,
              "retain and release share the sync output layout");
const double kMaxSafeInteger = 9007199254740991.0;
// The packed answer's held field (connection.h): any held count, and held + 1 on a refusal.
const double kHeldSpan = (double)(1u << kSyncHeldBits);
static_assert(kLedgerCapacity + 1 < (1u << kSyncHeldBits), "a held count fits the packed answer");

struct FastSync {
  std::shared_ptr<Connection *> conn;
  uint32_t selector;
};

// A safe-integer Number, the common case, read with one N-API call.
bool FastTag(napi_env env, napi_value v, uint64_t *tag) {
  double d = 0;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0 && d <= kMaxSafeInteger) || d != (double)(uint64_t)d)
    return false;
  *tag = (uint64_t)d;
  return true;
}
}  // namespace

Napi::Value Connection::BindSync(const Napi::CallbackInfo &info) {
  nativeCalls_++;
  Napi::Env env = info.Env();
  Napi::Object r = Napi::Object::New(env);
  r.Set("heldSpan", Napi::Number::New(env, kHeldSpan));
  const struct {
    const char *name;
    uint32_t selector;
  } ops[] = {{"retain", kSelectorRetain}, {"release", kSelectorRelease}};
  for (const auto &op : ops) {
    FastSync *data = new FastSync{alive_, op.selector};
    napi_value fn;
    if (napi_create_function(env, op.name, NAPI_AUTO_LENGTH, &Connection::FastScalarSync, data, &fn) != napi_ok) {
      delete data;
      throw Napi::Error::New(env, "kextbridge: could not make the sync functions");
    }
    Napi::Function f(env, fn);
    f.AddFinalizer([](Napi::Env, FastSync *d) { delete d; }, data);
    r.Set(op.name, f);
  }
  return r;
}

// A plain napi_callback, not node-addon-api's wrapper: the common call (a live connection, one
// safe-integer tag) makes three N-API calls in all. Everything else takes SlowScalarSync, whose
// C++ exceptions become JS ones there.
napi_value Connection::FastScalarSync(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg = nullptr;
  void *data = nullptr;
  if (napi_get_cb_info(env, info, &argc, &arg, nullptr, &data) != napi_ok) return nullptr;
  const FastSync *f = static_cast<const FastSync *>(data);
  Connection *self = *f->conn;
  uint64_t tag;
  if (self == nullptr || argc < 1 || !FastTag(env, arg, &tag)) return SlowScalarSync(env, info);
  self->nativeCalls_++;
  const double r = self->ScalarSync(f->selector, tag);
  napi_value out = nullptr;
  if (r >= -2147483648.0 && r <= 2147483647.0)
    napi_create_int32(env, (int32_t)r, &out);  // a Smi: nothing allocated
  else
    napi_create_double(env, r, &out);
  return out;
}

napi_value Connection::SlowScalarSync(napi_env env, napi_callback_info info) {
  try {
    Napi::CallbackInfo ci(env, info);
    const FastSync *f = static_cast<const FastSync *>(ci.Data());
    Connection *self = *f->conn;
    if (self == nullptr) throw Napi::Error::New(env, "kextbridge: this sync function's connection is gone");
    self->nativeCalls_++;
    const uint64_t tag = ToUint(ci[0], "loadTag", UINT64_MAX, true);  // BigInt, or a clear error
    return Napi::Number::New(env, self->ScalarSync(f->selector, tag));
  } catch (const Napi::Error &e) {
    e.ThrowAsJavaScriptException();
    return nullptr;
  }
}

double Connection::ScalarSync(uint32_t selector, uint64_t scalar) {
  uint32_t kr = RC_MACH_SEND_INVALID_DEST;
  uint64_t scalars[RetainOut::fieldCount] = {0, 0};
  uint32_t outCount = 0;
  double refusedHeld = NAN;
  if (!closing_) {
    uint32_t calls = 0;
    Exclusive([&] {
      outCount = RetainOut::fieldCount;
      size_t outStruct = 0;
      calls++;
      kr = transport_->callMethod(selector, &scalar, 1, nullptr, 0, scalars, &outCount, nullptr, &outStruct);
      if (kr != RC_kIOReturnSuccess && scalar <= 0xFFFFFFFFull && selectorMayRefuse(selector, kr))
        refusedHeld = HeldAfterRefusal(*transport_, (uint32_t)scalar, &calls);
    });
    userClientCalls_ += calls;
  }
  if (kr != RC_kIOReturnSuccess) {
    const bool known = !std::isnan(refusedHeld) && refusedHeld + 1 < kHeldSpan;
    return -1 - ((double)kr * kHeldSpan + (known ? refusedHeld + 1 : 0));
  }
  const uint64_t osReturn = outCount > RetainOut::osReturn ? scalars[RetainOut::osReturn] : 0;
  const uint64_t held = outCount > RetainOut::heldAfter ? scalars[RetainOut::heldAfter] : 0;
  // An answer that cannot be true (an OSReturn above 32 bits, more held than any ledger holds)
  // is the user client's bug: shown as kIOReturnInternalError, never as a wrong count.
  if (osReturn > 0xFFFFFFFFull || (double)held + 1 >= kHeldSpan) return -1 - (double)RC_kIOReturnInternalError * kHeldSpan;
  return (double)osReturn * kHeldSpan + (double)held;
}

Napi::Value Connection::Call(const Napi::CallbackInfo &info) {
  nativeCalls_++;
  return Enqueue(info.Env(), ParseCall(info));
}

Napi::Value Connection::CallSync(const Napi::CallbackInfo &info) {
  nativeCalls_++;
  std::unique_ptr<PendingJob> job = ParseCall(info);
  return RunSync(info.Env(), *job);
}

Napi::Value Connection::CallBatch(const Napi::CallbackInfo &info) {
  nativeCalls_++;
  return Enqueue(info.Env(), ParseBatch(info));
}

Napi::Value Connection::CallBatchSync(const Napi::CallbackInfo &info) {
  nativeCalls_++;
  std::unique_ptr<PendingJob> job = ParseBatch(info);
  return RunSync(info.Env(), *job);
}

Napi::Value Connection::LoadedKexts(const Napi::CallbackInfo &info) {
  nativeCalls_++;
  return Enqueue(info.Env(), std::unique_ptr<PendingJob>(new PendingJob(Job::Kind::LoadedKexts)));
}

Napi::Value Connection::LoadedKextsSync(const Napi::CallbackInfo &info) {
  nativeCalls_++;
  Job job(Job::Kind::LoadedKexts);
  return RunSync(info.Env(), job);
}

// The user clients open on the sample kext's service (explain's userClients blocker).
Napi::Value Connection::UserClients(const Napi::CallbackInfo &info) {
  nativeCalls_++;
  return Enqueue(info.Env(), std::unique_ptr<PendingJob>(new PendingJob(Job::Kind::UserClients)));
}

// Waits for everything queued, then closes. A second close answers MACH_SEND_INVALID_DEST.
Napi::Value Connection::Close(const Napi::CallbackInfo &info) {
  nativeCalls_++;
  return Enqueue(info.Env(), std::unique_ptr<PendingJob>(new PendingJob(Job::Kind::Close)));
}

Napi::Value Connection::Closing(const Napi::CallbackInfo &info) {
  return Napi::Boolean::New(info.Env(), closing_);
}

Napi::Value Connection::UserClientCalls(const Napi::CallbackInfo &info) {
  return Napi::Number::New(info.Env(), (double)userClientCalls_.load());
}

} // namespace kb

namespace kb {

Napi::Value Connection::NativeCalls(const Napi::CallbackInfo &info) {
  return Napi::Number::New(info.Env(), (double)nativeCalls_);
}

} // namespace kb

// ---- asynchronous calls ----

namespace kb {

void Connection::Sink::asyncCompleted(uint64_t refcon, uint32_t result, const uint64_t *args,
                                      uint32_t numArgs) {
  Completion *c = new (std::nothrow) Completion();
  if (c == nullptr) return;  // out of memory on the clock thread: the completion is lost
  c->refcon = refcon;
  c->result = result;
  c->args.assign(args, args + (numArgs > kMaxScalars ? kMaxScalars : numArgs));
  // Non-blocking: an unbounded queue; napi_closing once the connection released it.
  if (napi_call_threadsafe_function(tsfn_, c, napi_tsfn_nonblocking) != napi_ok) delete c;
}

void Connection::DeliverCompletion(Napi::Env env, Napi::Function, Connection *self, Completion *c) {
  std::unique_ptr<Completion> owned(c);
  if (env == nullptr) return;
  auto it = self->awaiting_.find(c->refcon);
  if (it == self->awaiting_.end()) return;  // forgotten (closed, or never expected): dropped
  Napi::FunctionReference callback = std::move(it->second);
  self->Forget(env, c->refcon);
  Napi::Array args = Napi::Array::New(env, c->args.size());
  for (size_t i = 0; i < c->args.size(); i++) args.Set((uint32_t)i, FromUint64(env, c->args[i]));
  try {
    callback.Call({Napi::Number::New(env, c->result), args});
  } catch (const Napi::Error &e) {
    // The library's own callback does not throw; if it did, it is that code's uncaught error.
    try {
      e.ThrowAsJavaScriptException();
    } catch (const Napi::Error &) {
    }
  }
}

void Connection::Forget(Napi::Env env, uint64_t refcon) {
  if (awaiting_.erase(refcon) == 1 && awaiting_.empty() && completionsMade_ && !completionsReleased_)
    completions_.Unref(env);
}

void Connection::ReleaseCompletions() {
  awaiting_.clear();  // JS settles what it still waited for (see KextBridge.close)
  if (completionsMade_ && !completionsReleased_) {
    completionsReleased_ = true;
    completions_.Release();
  }
}

Napi::Value Connection::CallAsync(const Napi::CallbackInfo &info) {
  nativeCalls_++;
  Napi::Env env = info.Env();
  std::unique_ptr<PendingJob> job = ParseCall(info, Job::Kind::AsyncCall);  // read once, checked
  if (!info[5].IsFunction()) throw Napi::TypeError::New(env, "onCompletion must be a function");
  if (!closing_) {
    if (!completionsMade_) {
      // Made on the first async call, not per connection: most connections never make one.
      completions_ = Completions::New(env, "kextbridge.completions", 0, 1, this);
      completions_.Unref(env);
      completionsMade_ = true;
      sink_.reset(new Sink(completions_));
      transport_->setAsyncSink(sink_.get());
    }
    // Registered before the call is queued: its completion may come before its reply.
    job->refcon = ++nextRefcon_;
    if (awaiting_.empty()) completions_.Ref(env);
    awaiting_[job->refcon] = Napi::Persistent(info[5].As<Napi::Function>());
  }
  return Enqueue(env, std::move(job));
}

Napi::Value Connection::ForgetAsync(const Napi::CallbackInfo &info) {
  nativeCalls_++;
  uint64_t refcon = ToUint(info[0], "refcon", 9007199254740991ull);
  bool was = awaiting_.count(refcon) == 1;
  Forget(info.Env(), refcon);
  return Napi::Boolean::New(info.Env(), was);
}

Napi::Value Connection::FetchResource(const Napi::CallbackInfo &info) {
  nativeCalls_++;
  std::unique_ptr<PendingJob> job(new PendingJob(Job::Kind::FetchResource));
  job->in.push_back(ToUint(info[0], "requestTag", 0xFFFFFFFFull));
  return Enqueue(info.Env(), std::move(job));
}

Napi::Value Connection::AsyncPending(const Napi::CallbackInfo &info) {
  return Napi::Number::New(info.Env(), (double)awaiting_.size());
}

} // namespace kb
