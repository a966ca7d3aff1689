// The simulated kernel as a JS object: its test controls, and the handle connections are
// opened on. Several wrappers (one per environment) may share one SimKernel.
#ifndef KEXTBRIDGE_SIM_KERNEL_WRAP_H
#define KEXTBRIDGE_SIM_KERNEL_WRAP_H

#include <napi.h>

#include <memory>

#include "sim_kernel.h"

namespace kb {

class SimKernelWrap : public Napi::ObjectWrap<SimKernelWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Object Wrap(Napi::Env env, std::shared_ptr<sim::SimKernel> kernel);
  // The SimKernel behind a JS value, or null when it is not one of ours.
  static std::shared_ptr<sim::SimKernel> KernelOf(Napi::Value value);

  explicit SimKernelWrap(const Napi::CallbackInfo &info);
  // Hides ObjectWrap::Unwrap (node-addon-api's trampolines call T::Unwrap): only an object
  // carrying this class's type tag unwraps; anything else is a TypeError.
  static SimKernelWrap *Unwrap(Napi::Object wrapper);

 private:
  Napi::Value LoadKext(const Napi::CallbackInfo &info);
  Napi::Value UnloadKext(const Napi::CallbackInfo &info);
  Napi::Value SetInstances(const Napi::CallbackInfo &info);
  Napi::Value Advance(const Napi::CallbackInfo &info);
  Napi::Value Now(const Napi::CallbackInfo &info);
  Napi::Value AutounloadDeadline(const Napi::CallbackInfo &info);
  Napi::Value PanicRecord(const Napi::CallbackInfo &info);
  Napi::Value LoadedKexts(const Napi::CallbackInfo &info);
  Napi::Value RetainCount(const Napi::CallbackInfo &info);
  Napi::Value LookupLoadTag(const Napi::CallbackInfo &info);
  Napi::Value SampleLoadTag(const Napi::CallbackInfo &info);
  Napi::Value KpiRetain(const Napi::CallbackInfo &info);
  Napi::Value KpiRelease(const Napi::CallbackInfo &info);
  Napi::Value InjectFault(const Napi::CallbackInfo &info);
  Napi::Value DelayCalls(const Napi::CallbackInfo &info);
  Napi::Value EventsSince(const Napi::CallbackInfo &info);
  Napi::Value NextDueMs(const Napi::CallbackInfo &info);
  Napi::Value KextFlags(const Napi::CallbackInfo &info);
  Napi::Value UserClients(const Napi::CallbackInfo &info);
  Napi::Value UnloadEnabled(const Napi::CallbackInfo &info);
  // kernelmanagerd (issue 13): installed kexts with resources, and its test controls.
  Napi::Value InstallKext(const Napi::CallbackInfo &info);
  Napi::Value SetResourceDelay(const Napi::CallbackInfo &info);
  Napi::Value SetLoadReplyDelay(const Napi::CallbackInfo &info);
  Napi::Value WithholdResources(const Napi::CallbackInfo &info);
  Napi::Value FailResources(const Napi::CallbackInfo &info);
  Napi::Value SetStopping(const Napi::CallbackInfo &info);
  Napi::Value ArmAutounloadScan(const Napi::CallbackInfo &info);
  Napi::Value PendingRequests(const Napi::CallbackInfo &info);

  std::shared_ptr<sim::SimKernel> kernel_;
};

} // namespace kb

#endif
