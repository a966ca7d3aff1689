// A JS handle on one user-client connection: the N-API surface over a Transport and its
// SerialQueue (bridge/). Calls run on the queue's worker in order; answers come back through a
// thread-safe function. The sync path runs a call on the JS thread after everything queued.
#ifndef KEXTBRIDGE_CONNECTION_H
#define KEXTBRIDGE_CONNECTION_H

#include <napi.h>

#include <atomic>
#include <map>
#include <memory>
#include <vector>

#include "job_js.h"
#include "serial_queue.h"
#include "transport.h"

namespace kb {

// How the constructor's error starts when no worker thread could be started for it.
constexpr const char *kNoWorkerThread = "kextbridge: could not start a worker thread for the connection";

// The held field of the sync fast path's packed answer (Connection::BindSync).
constexpr uint32_t kSyncHeldBits = 21;

class Connection : public Napi::ObjectWrap<Connection> {
 public:
  static Napi::Function Define(Napi::Env env);
  // Wraps an open transport; the Connection owns it from here on.
  static Napi::Object Wrap(Napi::Env env, std::unique_ptr<Transport> transport);

  explicit Connection(const Napi::CallbackInfo &info);
  ~Connection() override;
  // Hides ObjectWrap::Unwrap, which node-addon-api's method trampolines call as T::Unwrap: the
  // object must carry this class's type tag (set by the constructor), so a SimKernel wrap, an
  // object whose prototype was swapped or Object.create(Connection.prototype) is a TypeError,
  // never another class's pointer.
  static Connection *Unwrap(Napi::Object wrapper);

 private:
  static void Deliver(Napi::Env env, Napi::Function, Connection *self, PendingJob *job);
  using Delivery = Napi::TypedThreadSafeFunction<Connection, PendingJob, &Connection::Deliver>;

  // JS: call(selector, scalars, structIn, outScalars, outStructSize) → Promise<CallResult>
  Napi::Value Call(const Napi::CallbackInfo &info);
  Napi::Value CallSync(const Napi::CallbackInfo &info);
  // JS: bindSync() → { retain(tag), release(tag), heldSpan }: the sync retain/release fast
  // path. The functions carry the connection in their data, so a call does no unwrap and no
  // brand check; once the connection is collected they throw. Each answers one Number, packed
  // so that nothing is written or allocated (a Smi in the common case); heldSpan = 2^kSyncHeldBits:
  //   r >= 0   the user client answered: held = r % heldSpan, osReturn = (r - held) / heldSpan
  //   r <  0   it refused (MIG drops outputs): -1 - r = kr * heldSpan + h, where h is the held
  //            count asked right after plus 1, or 0 when none could be asked
  Napi::Value BindSync(const Napi::CallbackInfo &info);
  static napi_value FastScalarSync(napi_env env, napi_callback_info info);
  static napi_value SlowScalarSync(napi_env env, napi_callback_info info);
  double ScalarSync(uint32_t selector, uint64_t scalar);
  // Runs sync work on the JS thread after everything queued and never beside the worker.
  // pending_ counts async jobs posted and not yet delivered; only this (JS) thread posts, and a
  // job is delivered only after the worker finished running it (the thread-safe function's
  // queue orders the two). So pending_ == 0 means nothing is queued or running: the work runs
  // at once, with no queue lock. Otherwise it waits on the queue (runExclusive).
  template <class F>
  void Exclusive(F &&work) {
    if (pending_ == 0)
      work();
    else
      queue_->runExclusive(work);
  }
  // JS: callMany(selector: a batch selector, loadTags: Uint32Array)
  //     → Promise<{kr, results: Float64Array}>, per tag [kr, osReturn, heldAfter]
  Napi::Value CallBatch(const Napi::CallbackInfo &info);
  Napi::Value CallBatchSync(const Napi::CallbackInfo &info);
  Napi::Value LoadedKexts(const Napi::CallbackInfo &info);
  Napi::Value LoadedKextsSync(const Napi::CallbackInfo &info);
  // JS: userClients() → Promise<{kr, clients: [{pid, process}]}>
  Napi::Value UserClients(const Napi::CallbackInfo &info);
  Napi::Value Close(const Napi::CallbackInfo &info);
  Napi::Value Closing(const Napi::CallbackInfo &info);  // close() accepted (queued or done)
  // Test seam: user-client calls (IOConnectCallMethod) this connection has made.
  Napi::Value UserClientCalls(const Napi::CallbackInfo &info);
  // Test seam: calls to this object's methods from JS, so a test can prove nothing reached it.
  Napi::Value NativeCalls(const Napi::CallbackInfo &info);

  // ---- asynchronous calls (requestResource) and their completions ----
  // A completion as the transport's sink copied it, on its way to the JS thread.
  struct Completion {
    uint64_t refcon = 0;
    uint32_t result = 0;
    std::vector<uint64_t> args;
  };
  static void DeliverCompletion(Napi::Env env, Napi::Function, Connection *self, Completion *c);
  using Completions = Napi::TypedThreadSafeFunction<Connection, Completion, &Connection::DeliverCompletion>;
  // The transport's AsyncSink: copies each completion and queues it on the thread-safe
  // function without blocking (it runs on the sim's clock thread with the kernel's locks held,
  // or IOKit's dispatch queue); never calls back into the transport or JS.
  class Sink final : public AsyncSink {
   public:
    explicit Sink(napi_threadsafe_function tsfn) : tsfn_(tsfn) {}
    void asyncCompleted(uint64_t refcon, uint32_t result, const uint64_t *args, uint32_t numArgs) override;

   private:
    const napi_threadsafe_function tsfn_;
  };
  // JS: callAsync(selector, scalars, structIn, outScalars, outStructSize, onCompletion)
  //     → Promise<{ kr, scalars, struct, refcon }>. onCompletion(result, args) runs on the JS
  //     thread at most once, possibly before the promise settles; never after close.
  Napi::Value CallAsync(const Napi::CallbackInfo &info);
  // JS: forgetAsync(refcon) → whether it was pending. For a call whose reply says no
  //     completion will come (the kernel refused it, or cancelRequest succeeded).
  Napi::Value ForgetAsync(const Napi::CallbackInfo &info);
  // JS: fetchResource(requestTag) → Promise<{ kr, length, data: Buffer }>: the whole delivery.
  Napi::Value FetchResource(const Napi::CallbackInfo &info);
  // Test seam: async calls awaiting their completion (the event loop is kept alive while > 0).
  Napi::Value AsyncPending(const Napi::CallbackInfo &info);
  void Forget(Napi::Env env, uint64_t refcon);
  void ReleaseCompletions();  // after the transport closed: no completion can arrive any more

  Napi::Value Enqueue(Napi::Env env, std::unique_ptr<PendingJob> job);
  Napi::Value RunSync(Napi::Env env, Job &job);
  void Execute(Job &job);  // on the worker, or on the JS thread for the sync path
  void Shutdown();         // finalizer or environment teardown: stop, join, close the transport
  static void OnEnvCleanup(void *self);

  std::unique_ptr<Sink> sink_;  // outlives transport_ (closed first): it may call into it
  std::unique_ptr<Transport> transport_;
  Delivery delivery_;
  bool deliveryReleased_ = false;
  std::unique_ptr<SerialQueue> queue_;
  std::atomic<uint64_t> userClientCalls_{0};
  uint64_t nativeCalls_ = 0;  // JS thread only

  // JS-thread only.
  bool closing_ = false;  // close() accepted: later calls answer MACH_SEND_INVALID_DEST
  bool shutdown_ = false;
  uint32_t pending_ = 0;  // queued or executing async jobs; while > 0 the handle is ref'd
  // What bindSync's functions hold: this connection, nulled by the destructor.
  std::shared_ptr<Connection *> alive_ = std::make_shared<Connection *>(this);
  // Async calls awaiting a completion, by refcon; while non-empty completions_ is ref'd.
  std::map<uint64_t, Napi::FunctionReference> awaiting_;
  uint64_t nextRefcon_ = 0;
  Completions completions_;
  bool completionsMade_ = false, completionsReleased_ = false;
};

} // namespace kb

#endif
