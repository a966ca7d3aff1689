// kextbridge's native module: connections (sim or IOKit), the simulated kernel, the code
// table as compiled into C++ (a test checks it against the TypeScript one), and two
// benchmark floors.
#include <napi.h>

#include <mutex>

#include <unistd.h>

#include "addon.h"
#include "connection.h"
#include "js_values.h"
#include "protocol_names.gen.h"
#include "sim_kernel_wrap.h"
#include "sim_transport.h"
#ifdef KB_HAVE_IOKIT
#include "iokit_transport.h"
#endif

namespace kb {

namespace {

// One machine per process: open({ backend: 'sim' }) without a kernel shares this one,
// across worker threads and jest's module resets too (the addon stays loaded). A reset
// replaces it with a fresh machine; connections and wrappers made before keep the old one.
struct ProcessKernelState {
  std::mutex mu;
  std::shared_ptr<sim::SimKernel> kernel;
  uint32_t generation = 0;
};
ProcessKernelState &ProcessKernelSlot() {
  static ProcessKernelState *state = new ProcessKernelState();  // never destroyed: no exit-order race
  return *state;
}
std::shared_ptr<sim::SimKernel> ProcessKernel(bool fresh = false, uint32_t *generation = nullptr) {
  ProcessKernelState &s = ProcessKernelSlot();
  std::lock_guard<std::mutex> g(s.mu);
  if (!s.kernel || fresh) {
    s.kernel = std::make_shared<sim::SimKernel>();
    s.generation++;
  }
  if (generation) *generation = s.generation;
  return s.kernel;
}

Napi::Value CreateSimKernel(const Napi::CallbackInfo &info) {
  sim::SimKernel::Options options;
  if (info[0].IsObject()) {
    Napi::Object o = info[0].As<Napi::Object>();
    Napi::Value autounload = o.Get("autounload");
    if (!autounload.IsUndefined()) {
      if (!autounload.IsBoolean()) throw Napi::TypeError::New(info.Env(), "autounload must be a boolean");
      options.autounloadEnabled = autounload.As<Napi::Boolean>();
    }
    Napi::Value unload = o.Get("unloadEnabled");
    if (!unload.IsUndefined()) {
      if (!unload.IsBoolean()) throw Napi::TypeError::New(info.Env(), "unloadEnabled must be a boolean");
      options.unloadEnabled = unload.As<Napi::Boolean>();
    }
  }
  return SimKernelWrap::Wrap(info.Env(), std::make_shared<sim::SimKernel>(options));
}

Napi::Value DefaultSimKernel(const Napi::CallbackInfo &info) {
  return SimKernelWrap::Wrap(info.Env(), ProcessKernel());
}

// Which default machine is current (changes on every reset), so JS caches can tell.
Napi::Value DefaultSimKernelGeneration(const Napi::CallbackInfo &info) {
  uint32_t generation = 0;
  ProcessKernel(false, &generation);
  return Napi::Number::New(info.Env(), generation);
}

// Test seam: the next n worker-thread starts fail (matters only while the pool has no thread).
Napi::Value FailThreadStarts(const Napi::CallbackInfo &info) {
  SerialQueue::failThreadStartsForTest((int)ToUint(info[0], "n", 1000000));
  return info.Env().Undefined();
}

Napi::Value ResetDefaultSimKernel(const Napi::CallbackInfo &info) {
  ProcessKernel(true);
  return info.Env().Undefined();
}

Napi::Value OpenFailure(Napi::Env env, uint32_t kr, const std::string &why) {
  Napi::Object r = Napi::Object::New(env);
  r.Set("kr", Napi::Number::New(env, kr));
  r.Set("why", why);
  return r;
}

// A Connection over the transport, or (when no worker thread could be started for it) an
// open failure, so JS raises a KextBridgeError with a code rather than a bare Error.
Napi::Value WrapOrFail(Napi::Env env, std::unique_ptr<Transport> t) {
  try {
    return Connection::Wrap(env, std::move(t));
  } catch (const Napi::Error &e) {
    std::string message = e.Message();
    if (message.rfind(kNoWorkerThread, 0) != 0) throw;
    return OpenFailure(env, RC_kIOReturnNoResources, message);
  }
}

// openSim(kernel, privileged) → Connection | { kr, why }
Napi::Value OpenSim(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::shared_ptr<sim::SimKernel> kernel = SimKernelWrap::KernelOf(info[0]);
  if (!kernel) throw Napi::TypeError::New(env, "kernel must be a SimKernel");
  if (!info[1].IsBoolean()) throw Napi::TypeError::New(env, "privileged must be a boolean");
  uint32_t kr = 0;
  // This process, as the kext would see the opener (its cap on open clients is per process).
  std::unique_ptr<Transport> t = SimTransport::open(kernel, info[1].As<Napi::Boolean>(), &kr, (int32_t)getpid());
  if (!t) return OpenFailure(env, kr, "the simulated sample kext's service did not answer");
  return WrapOrFail(env, std::move(t));
}

// openIOKit() → Connection | { kr, why }
Napi::Value OpenIOKit(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
#ifdef KB_HAVE_IOKIT
  uint32_t kr = 0;
  std::string why;
  std::unique_ptr<Transport> t = openIOKitTransport(&kr, &why);
  if (!t) return OpenFailure(env, kr, why);
  return WrapOrFail(env, std::move(t));
#else
  return OpenFailure(env, RC_kIOReturnUnsupported,
                     "the iokit backend exists only on macOS; this build has no IOKit");
#endif
}

Napi::Value Codes(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  size_t n = sizeof(kCodeTable) / sizeof(kCodeTable[0]);
  Napi::Array list = Napi::Array::New(env, n);
  for (size_t i = 0; i < n; i++) {
    Napi::Object c = Napi::Object::New(env);
    c.Set("name", kCodeTable[i].name);
    c.Set("value", Napi::Number::New(env, kCodeTable[i].value));
    c.Set("message", kCodeTable[i].message);
    list.Set((uint32_t)i, c);
  }
  return list;
}

Napi::Value Selectors(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Array list = Napi::Array::New(env, kSelectorCount);
  for (uint32_t i = 0; i < kSelectorCount; i++) {
    const SelectorShape &s = kSelectorShapes[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", kSelectorNames[i]);
    o.Set("selector", Napi::Number::New(env, i));
    o.Set("scalarInputs", Napi::Number::New(env, s.scalarInputs));
    o.Set("structInputSize", Napi::Number::New(env, s.structInputSize));
    o.Set("scalarOutputs", Napi::Number::New(env, s.scalarOutputs));
    o.Set("structOutputSize", Napi::Number::New(env, s.structOutputSize));
    o.Set("admin", Napi::Boolean::New(env, s.admin));
    list.Set(i, o);
  }
  return list;
}

// Benchmark floors: the cheapest N-API call, and the AsyncWorker round trip that
// node-hid and serialport pay per call.
Napi::Value Noop(const Napi::CallbackInfo &info) { return info.Env().Undefined(); }

class NoopWorker : public Napi::AsyncWorker {
 public:
  explicit NoopWorker(Napi::Env env) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override {}
  void OnOK() override { deferred_.Resolve(Env().Undefined()); }

 private:
  Napi::Promise::Deferred deferred_;
};

Napi::Value AsyncWorkerNoop(const Napi::CallbackInfo &info) {
  NoopWorker *w = new NoopWorker(info.Env());
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// The environment is going away. Cleanup hooks run in reverse order of registration, and this
// one is registered by Init, before any connection of this environment registers its own: so
// every connection here was shut down already (its queue stopped, no job running). When this
// was the last environment using the addon, the shared pool's threads are joined here, before
// Node unloads the library they run in.
void OnAddonEnvCleanup(void *) { SerialQueue::removePoolUser(); }

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  SerialQueue::addPoolUser();
  // The napi_env as the hook's argument: Node refuses a second hook with the same function and
  // argument, and jest's module resets load the addon again into one Node environment.
  napi_add_env_cleanup_hook(env, &OnAddonEnvCleanup, static_cast<napi_env>(env));
  AddonData *data = new AddonData();
  data->connection = Napi::Persistent(Connection::Define(env));
  data->simKernel = Napi::Persistent(SimKernelWrap::Define(env));
  env.SetInstanceData(data);

  exports.Set("Connection", data->connection.Value());
  exports.Set("SimKernel", data->simKernel.Value());
  exports.Set("createSimKernel", Napi::Function::New<CreateSimKernel>(env));
  exports.Set("defaultSimKernel", Napi::Function::New<DefaultSimKernel>(env));
  exports.Set("_defaultSimKernelGeneration", Napi::Function::New<DefaultSimKernelGeneration>(env));
  exports.Set("_resetDefaultSimKernel", Napi::Function::New<ResetDefaultSimKernel>(env));
  exports.Set("_failThreadStarts", Napi::Function::New<FailThreadStarts>(env));
  exports.Set("openSim", Napi::Function::New<OpenSim>(env));
  exports.Set("openIOKit", Napi::Function::New<OpenIOKit>(env));
#ifdef KB_HAVE_IOKIT
  exports.Set("iokitAvailable", Napi::Boolean::New(env, true));
#else
  exports.Set("iokitAvailable", Napi::Boolean::New(env, false));
#endif
  exports.Set("_codes", Napi::Function::New<Codes>(env));
  exports.Set("_selectors", Napi::Function::New<Selectors>(env));
  exports.Set("_noop", Napi::Function::New<Noop>(env));
  exports.Set("_asyncWorkerNoop", Napi::Function::New<AsyncWorkerNoop>(env));
  return exports;
}

}  // namespace kb

static Napi::Object InitKextbridge(Napi::Env env, Napi::Object exports) {
  return kb::Init(env, exports);
}

NODE_API_MODULE(kextbridge, InitKextbridge)
