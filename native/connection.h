// A JS handle on one user-client connection. Calls run on one serial worker thread per
// connection (never the libuv pool), in order; results come back through a thread-safe
// function. The sync path runs a call on the JS thread after everything already queued.
#ifndef KEXTBRIDGE_CONNECTION_H
#define KEXTBRIDGE_CONNECTION_H

#include <napi.h>

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "transport.h"

namespace kb {

class Connection : public Napi::ObjectWrap<Connection> {
 public:
  static Napi::Function Define(Napi::Env env);
  // Wraps an open transport; the Connection owns it from here on.
  static Napi::Object Wrap(Napi::Env env, std::unique_ptr<Transport> transport);

  explicit Connection(const Napi::CallbackInfo &info);
  ~Connection() override;

  struct Job;  // one queued call and, once executed, its answer

 private:
  static void Deliver(Napi::Env env, Napi::Function, Connection *self, Job *job);
  using Delivery = Napi::TypedThreadSafeFunction<Connection, Job, &Connection::Deliver>;

  // JS: call(selector, scalars, structIn, outScalars, outStructSize) → Promise<CallResult>
  Napi::Value Call(const Napi::CallbackInfo &info);
  Napi::Value CallSync(const Napi::CallbackInfo &info);
  // JS: callScalarSync(selector, scalar, out: Float64Array) → kr. One scalar in, out.length
  // scalars out, no result object: the sync path's cost is mostly building JS values.
  Napi::Value CallScalarSync(const Napi::CallbackInfo &info);
  // JS: callMany(selector, loadTags: Uint32Array) → Promise<{kr, results: Float64Array}>
  Napi::Value CallMany(const Napi::CallbackInfo &info);
  Napi::Value CallManySync(const Napi::CallbackInfo &info);
  Napi::Value LoadedKexts(const Napi::CallbackInfo &info);
  Napi::Value LoadedKextsSync(const Napi::CallbackInfo &info);
  Napi::Value Close(const Napi::CallbackInfo &info);
  Napi::Value Closed(const Napi::CallbackInfo &info);

  Napi::Value Enqueue(Napi::Env env, std::unique_ptr<Job> job);
  Napi::Value RunSync(Napi::Env env, Job &job);
  // Runs `run` on the JS thread after everything already queued, never beside the worker.
  template <typename F>
  void RunExclusive(F &&run);
  void Execute(Job &job);  // on the worker, or on the JS thread for the sync path
  void WorkerLoop();
  void Shutdown();  // finalizer or environment teardown: stop, join, close the transport
  static void OnEnvCleanup(void *self);

  std::unique_ptr<Transport> transport_;
  Delivery delivery_;
  bool deliveryReleased_ = false;
  std::thread worker_;

  std::mutex mu_;  // guards the fields below
  std::condition_variable cv_;
  std::deque<Job *> queue_;
  bool busy_ = false;  // a job is executing (worker or sync path)
  bool stop_ = false;

  // JS-thread only.
  bool closing_ = false;  // close() accepted: later calls answer MACH_SEND_INVALID_DEST
  bool shutdown_ = false;
  uint32_t pending_ = 0;  // queued or executing async jobs; while > 0 the handle is ref'd
};

} // namespace kb

#endif
