#include "sim_kernel_wrap.h"

#include "addon.h"
#include "js_values.h"
#include "sim_transport.h"
#include "user_client_core.h"

namespace kb {

namespace {
const napi_type_tag kKernelTag = {0x6b6273696d6b6572ull, 0x6e656c7772617070ull};
const napi_type_tag kKernelWrapTag = {0x6b6273696d6b7772ull, 0x6170696e7374616eull};

uint32_t Tag(const Napi::CallbackInfo &info, size_t i, const char *what = "loadTag") {
  return (uint32_t)ToUint(info[i], what, 0xFFFFFFFFull);
}

// Checked where it is read (see ToCString): every string the sim keeps, and every name it
// looks up, is a well-formed, NUL-free, non-empty string.
std::string String(const Napi::Value &v, const std::string &what, size_t maxBytes = 0) {
  return ToCString(v, what, maxBytes);
}

// kmod_info's name and version fields: 63 bytes and a NUL.
const size_t kKmodNameBytes = 63;
const uint32_t kMaxSpecEntries = 4096;

bool IsUuid(const std::string &s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); i++) {
    char c = s[i];
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) return false;
  }
  return true;
}

bool Flag(const Napi::Object &o, const char *key, bool fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsBoolean())
    throw Napi::TypeError::New(o.Env(), std::string(key) + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

// Every field read once and validated here, where it is used, whatever JS checked before.
sim::KextSpec ParseSpec(const Napi::Value &v) {
  Napi::Env env = v.Env();
  if (!v.IsObject()) throw Napi::TypeError::New(env, "spec must be an object");
  Napi::Object o = v.As<Napi::Object>();
  sim::KextSpec spec;
  spec.bundleId = String(o.Get("bundleId"), "spec.bundleId", kKmodNameBytes);
  Napi::Value version = o.Get("version");
  if (!version.IsUndefined()) spec.version = String(version, "spec.version", kKmodNameBytes);
  Napi::Value uuid = o.Get("uuid");
  if (!uuid.IsUndefined()) {
    spec.uuid = String(uuid, "spec.uuid");
    if (!IsUuid(spec.uuid))
      throw Napi::RangeError::New(env, "spec.uuid must be a UUID (8-4-4-4-12 hexadecimal digits)");
  }
  Napi::Value deps = o.Get("dependencies");
  if (!deps.IsUndefined()) {
    std::vector<Napi::Value> a = ReadArray(deps, "spec.dependencies", kMaxSpecEntries);
    for (size_t i = 0; i < a.size(); i++)
      spec.dependencies.push_back(String(a[i], "spec.dependencies[" + std::to_string(i) + "]", kKmodNameBytes));
  }
  Napi::Value classes = o.Get("classes");
  if (!classes.IsUndefined()) {
    std::vector<Napi::Value> a = ReadArray(classes, "spec.classes", kMaxSpecEntries);
    for (size_t i = 0; i < a.size(); i++) {
      std::string at = "spec.classes[" + std::to_string(i) + "]";
      if (!a[i].IsObject()) throw Napi::TypeError::New(env, at + " must be an object");
      Napi::Object c = a[i].As<Napi::Object>();
      sim::ClassSpec cls;
      cls.name = String(c.Get("name"), at + ".name");
      for (const sim::ClassSpec &seen : spec.classes)
        if (seen.name == cls.name)  // one metaclass per name (kOSMetaClassDuplicateClass)
          throw Napi::RangeError::New(env, at + ".name is declared twice");
      Napi::Value superclass = c.Get("superclass");
      if (!superclass.IsUndefined()) cls.superclass = ToCString(superclass, at + ".superclass", 0, true);  // "" is a root class
      Napi::Value instances = c.Get("instances");
      if (!instances.IsUndefined())
        cls.instances = (uint32_t)ToUint(instances, (at + ".instances").c_str(), 0xFFFFFFFFull);
      spec.classes.push_back(cls);
    }
  }
  spec.autounload = Flag(o, "autounload", spec.autounload);
  spec.unloadUnsupported = Flag(o, "unloadUnsupported", spec.unloadUnsupported);
  spec.started = Flag(o, "started", spec.started);
  return spec;
}
}  // namespace

Napi::Function SimKernelWrap::Define(Napi::Env env) {
  return DefineClass(
      env, "SimKernel",
      {InstanceMethod<&SimKernelWrap::LoadKext>("loadKext"),
       InstanceMethod<&SimKernelWrap::UnloadKext>("unloadKext"),
       InstanceMethod<&SimKernelWrap::SetInstances>("setInstances"),
       InstanceMethod<&SimKernelWrap::Advance>("advance"),
       InstanceMethod<&SimKernelWrap::Now>("now"),
       InstanceMethod<&SimKernelWrap::AutounloadDeadline>("autounloadDeadline"),
       InstanceMethod<&SimKernelWrap::PanicRecord>("panicRecord"),
       InstanceMethod<&SimKernelWrap::LoadedKexts>("loadedKexts"),
       InstanceMethod<&SimKernelWrap::RetainCount>("retainCount"),
       InstanceMethod<&SimKernelWrap::LookupLoadTag>("lookupLoadTag"),
       InstanceMethod<&SimKernelWrap::SampleLoadTag>("sampleLoadTag"),
       InstanceMethod<&SimKernelWrap::KpiRetain>("kpiRetain"),
       InstanceMethod<&SimKernelWrap::KpiRelease>("kpiRelease"),
       InstanceMethod<&SimKernelWrap::InjectFault>("injectFault"),
       InstanceMethod<&SimKernelWrap::DelayCalls>("delayCalls"),
       InstanceMethod<&SimKernelWrap::EventsSince>("eventsSince"),
       InstanceMethod<&SimKernelWrap::NextDueMs>("nextDueMs"),
       InstanceMethod<&SimKernelWrap::KextFlags>("kextFlags"),
       InstanceMethod<&SimKernelWrap::UserClients>("userClients"),
       InstanceMethod<&SimKernelWrap::UnloadEnabled>("unloadEnabled"),
       InstanceMethod<&SimKernelWrap::InstallKext>("installKext"),
       InstanceMethod<&SimKernelWrap::SetResourceDelay>("setResourceDelay"),
       InstanceMethod<&SimKernelWrap::SetLoadReplyDelay>("setLoadReplyDelay"),
       InstanceMethod<&SimKernelWrap::WithholdResources>("withholdResources"),
       InstanceMethod<&SimKernelWrap::FailResources>("failResources"),
       InstanceMethod<&SimKernelWrap::SetStopping>("setStopping"),
       InstanceMethod<&SimKernelWrap::ArmAutounloadScan>("armAutounloadScan"),
       InstanceMethod<&SimKernelWrap::PendingRequests>("pendingRequests")});
}

Napi::Object SimKernelWrap::Wrap(Napi::Env env, std::shared_ptr<sim::SimKernel> kernel) {
  auto *holder = new std::shared_ptr<sim::SimKernel>(std::move(kernel));
  Napi::External<std::shared_ptr<sim::SimKernel>> ext =
      Napi::External<std::shared_ptr<sim::SimKernel>>::New(
          env, holder, [](Napi::Env, std::shared_ptr<sim::SimKernel> *p) { delete p; });
  ext.TypeTag(&kKernelTag);
  return env.GetInstanceData<AddonData>()->simKernel.New({ext});
}

SimKernelWrap::SimKernelWrap(const Napi::CallbackInfo &info)
    : Napi::ObjectWrap<SimKernelWrap>(info) {
  if (info.Length() != 1 || !info[0].IsExternal() ||
      !info[0].As<Napi::Object>().CheckTypeTag(&kKernelTag))
    throw Napi::TypeError::New(info.Env(), "use createSimKernel() to make a simulated kernel");
  info.This().As<Napi::Object>().TypeTag(&kKernelWrapTag);
  kernel_ = *info[0].As<Napi::External<std::shared_ptr<sim::SimKernel>>>().Data();
}

SimKernelWrap *SimKernelWrap::Unwrap(Napi::Object wrapper) {
  if (!wrapper.IsObject() || !wrapper.CheckTypeTag(&kKernelWrapTag))
    throw Napi::TypeError::New(wrapper.Env(), "this is not a kextbridge SimKernel (a method was called on another object)");
  return Napi::ObjectWrap<SimKernelWrap>::Unwrap(wrapper);
}

std::shared_ptr<sim::SimKernel> SimKernelWrap::KernelOf(Napi::Value value) {
  if (!value.IsObject()) return nullptr;
  Napi::Object o = value.As<Napi::Object>();
  if (!o.CheckTypeTag(&kKernelWrapTag)) return nullptr;  // a brand, not the prototype chain
  return SimKernelWrap::Unwrap(o)->kernel_;
}

Napi::Value SimKernelWrap::LoadKext(const Napi::CallbackInfo &info) {
  sim::KextSpec spec = ParseSpec(info[0]);
  uint32_t tag = kInvalidLoadTag;
  uint32_t kr = kernel_->loadKext(spec, &tag);
  Napi::Object r = Napi::Object::New(info.Env());
  r.Set("kr", Napi::Number::New(info.Env(), kr));
  r.Set("loadTag", Napi::Number::New(info.Env(), tag));
  return r;
}

Napi::Value SimKernelWrap::UnloadKext(const Napi::CallbackInfo &info) {
  return Napi::Number::New(info.Env(), kernel_->unloadKext(Tag(info, 0)));
}

Napi::Value SimKernelWrap::SetInstances(const Napi::CallbackInfo &info) {
  uint32_t tag = Tag(info, 0);
  std::string cls = String(info[1], "className");
  uint32_t n = (uint32_t)ToUint(info[2], "count", 0xFFFFFFFFull);
  return Napi::Number::New(info.Env(), kernel_->setInstances(tag, cls, n));
}

Napi::Value SimKernelWrap::Advance(const Napi::CallbackInfo &info) {
  kernel_->advance(ToUint(info[0], "ms", 9007199254740991ull));
  return info.Env().Undefined();
}

Napi::Value SimKernelWrap::Now(const Napi::CallbackInfo &info) {
  return Napi::Number::New(info.Env(), (double)kernel_->now());
}

Napi::Value SimKernelWrap::AutounloadDeadline(const Napi::CallbackInfo &info) {
  if (!kernel_->autounloadArmed()) return info.Env().Null();
  return Napi::Number::New(info.Env(), (double)kernel_->autounloadDeadline());
}

Napi::Value SimKernelWrap::PanicRecord(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (!kernel_->panicked()) return env.Null();
  sim::PanicRecord p = kernel_->panicRecord();
  Napi::Object r = Napi::Object::New(env);
  r.Set("call", p.call);
  r.Set("loadTag", Napi::Number::New(env, p.loadTag));
  r.Set("bundleId", p.bundleId);
  r.Set("retainCountAfter", Napi::Number::New(env, p.retainCountAfter));
  r.Set("timeMs", Napi::Number::New(env, (double)p.timeMs));
  r.Set("message", p.message);
  return r;
}

Napi::Value SimKernelWrap::LoadedKexts(const Napi::CallbackInfo &info) {
  return KextsToJs(info.Env(), ToKextInfo(kernel_->loadedKexts()));
}

Napi::Value SimKernelWrap::RetainCount(const Napi::CallbackInfo &info) {
  return Napi::Number::New(info.Env(), (double)kernel_->retainCount(Tag(info, 0)));
}

Napi::Value SimKernelWrap::LookupLoadTag(const Napi::CallbackInfo &info) {
  return Napi::Number::New(info.Env(), kernel_->lookupLoadTag(String(info[0], "bundleId")));
}

Napi::Value SimKernelWrap::SampleLoadTag(const Napi::CallbackInfo &info) {
  return Napi::Number::New(info.Env(), kernel_->sampleLoadTag());
}

Napi::Value SimKernelWrap::KpiRetain(const Napi::CallbackInfo &info) {
  return Napi::Number::New(info.Env(), kernel_->retainKextWithLoadTag(Tag(info, 0)));
}

Napi::Value SimKernelWrap::KpiRelease(const Napi::CallbackInfo &info) {
  return Napi::Number::New(info.Env(), kernel_->releaseKextWithLoadTag(Tag(info, 0)));
}

Napi::Value SimKernelWrap::InjectFault(const Napi::CallbackInfo &info) {
  std::string kpi = String(info[0], "kpi");
  if (kpi != "retain" && kpi != "release")
    throw Napi::TypeError::New(info.Env(), "kpi must be 'retain' or 'release'");
  uint32_t code = (uint32_t)ToUint(info[1], "code", 0xFFFFFFFFull);
  if (code == RC_kOSReturnSuccess)
    throw Napi::RangeError::New(info.Env(), "code must be a failure, not kOSReturnSuccess");
  uint32_t times = (uint32_t)ToUint(info[2], "times", 0xFFFFFFFFull);
  kernel_->injectFault(kpi == "retain" ? sim::Kpi::Retain : sim::Kpi::Release, code, times);
  return info.Env().Undefined();
}

} // namespace kb

namespace kb {

Napi::Value SimKernelWrap::DelayCalls(const Napi::CallbackInfo &info) {
  uint32_t us = (uint32_t)ToUint(info[0], "microseconds", 60000000ull);
  uint32_t count = (uint32_t)ToUint(info[1], "count", 0xFFFFFFFFull);
  kernel_->delayCalls(us, count);
  return info.Env().Undefined();
}

} // namespace kb

namespace kb {

namespace {
const char *EventTypeName(sim::EventType t) {
  switch (t) {
    case sim::EventType::Loaded: return "loaded";
    case sim::EventType::Unloaded: return "unloaded";
    case sim::EventType::RetainCount: return "retainCount";
    case sim::EventType::Instances: return "instances";
    case sim::EventType::Panic: return "panic";
    case sim::EventType::LoadRequested: return "loadRequested";
    case sim::EventType::RequestQueued:
    case sim::EventType::RequestDelivered:
    case sim::EventType::RequestTimedOut:
    case sim::EventType::RequestCancelled: return "request";
  }
  return "unknown";
}
}  // namespace

// eventsSince(cursor) → { cursor, dropped, events: [{ seq, at, type, loadTag, bundleId, … }] }
Napi::Value SimKernelWrap::EventsSince(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  uint64_t cursor = ToUint(info[0], "cursor", 9007199254740991ull);
  std::vector<sim::Event> events;
  uint64_t dropped = 0;
  uint64_t next = kernel_->eventsSince(cursor, events, &dropped);
  Napi::Array list = Napi::Array::New(env, events.size());
  for (size_t i = 0; i < events.size(); i++) {
    const sim::Event &e = events[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("seq", Napi::Number::New(env, (double)e.seq));
    o.Set("at", Napi::Number::New(env, (double)e.timeMs));
    o.Set("type", EventTypeName(e.type));
    o.Set("loadTag", Napi::Number::New(env, e.loadTag));
    o.Set("bundleId", e.bundleId);
    switch (e.type) {
      case sim::EventType::Unloaded:
        o.Set("cause", e.cause == sim::UnloadCause::Autounload ? "autounload" : "explicit");
        break;
      case sim::EventType::Instances:
        o.Set("className", e.className);
        o.Set("from", Napi::Number::New(env, (double)e.from));
        o.Set("to", Napi::Number::New(env, (double)e.to));
        break;
      case sim::EventType::RetainCount:
        o.Set("from", Napi::Number::New(env, (double)e.from));
        o.Set("to", Napi::Number::New(env, (double)e.to));
        break;
      case sim::EventType::Panic:
        o.Set("message", e.message);
        break;
      case sim::EventType::Loaded:
        break;
      case sim::EventType::LoadRequested:  // an unknown id queued to user space: no tag yet
        o.Set("loadTag", env.Null());
        break;
      case sim::EventType::RequestQueued:
      case sim::EventType::RequestDelivered:
      case sim::EventType::RequestTimedOut:
      case sim::EventType::RequestCancelled: {
        // loadTag: the requesting kext; bundleId + resourceName: what it asked for.
        const char *phase = e.type == sim::EventType::RequestQueued      ? "queued"
                            : e.type == sim::EventType::RequestDelivered ? "delivered"
                            : e.type == sim::EventType::RequestTimedOut  ? "timedOut"
                                                                         : "cancelled";
        o.Set("phase", phase);
        o.Set("requestTag", Napi::Number::New(env, e.requestTag));
        o.Set("resourceName", e.resourceName);
        if (e.type == sim::EventType::RequestDelivered || e.type == sim::EventType::RequestTimedOut)
          o.Set("code", Napi::Number::New(env, e.code));
        if (e.type == sim::EventType::RequestDelivered) o.Set("length", Napi::Number::New(env, (double)e.length));
        break;
      }
    }
    list.Set((uint32_t)i, o);
  }
  Napi::Object r = Napi::Object::New(env);
  r.Set("cursor", Napi::Number::New(env, (double)next));
  r.Set("dropped", Napi::Number::New(env, (double)dropped));
  r.Set("events", list);
  return r;
}

Napi::Value SimKernelWrap::NextDueMs(const Napi::CallbackInfo &info) {
  uint64_t due = 0;
  if (!kernel_->nextDueMs(&due)) return info.Env().Null();
  return Napi::Number::New(info.Env(), (double)due);
}

Napi::Value SimKernelWrap::KextFlags(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  sim::KextFlags f;
  if (!kernel_->kextFlags(Tag(info, 0), &f)) return env.Null();
  Napi::Object r = Napi::Object::New(env);
  r.Set("autounload", Napi::Boolean::New(env, f.autounload));
  r.Set("unloadUnsupported", Napi::Boolean::New(env, f.unloadUnsupported));
  r.Set("kernelComponent", Napi::Boolean::New(env, f.kernelComponent));
  r.Set("pendingRequests", Napi::Number::New(env, f.pendingRequests));
  r.Set("stopping", Napi::Boolean::New(env, f.stopping));
  return r;
}

Napi::Value SimKernelWrap::UserClients(const Napi::CallbackInfo &info) {
  return UserClientsToJs(info.Env(), SimUserClients(*kernel_));
}

// Whether unloading is allowed at all, and whether the autounload scan ever runs.
Napi::Value SimKernelWrap::UnloadEnabled(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Object r = Napi::Object::New(env);
  r.Set("unload", Napi::Boolean::New(env, kernel_->unloadEnabled()));
  r.Set("autounload", Napi::Boolean::New(env, kernel_->autounloadGloballyEnabled()));
  return r;
}

} // namespace kb

namespace kb {

namespace {
// A resource's bytes: a Buffer / Uint8Array (copied; detached is an error) or a string (UTF-8).
const size_t kMaxSimResource = 16u << 20;  // far above what the user client keeps (64 KiB)
const uint32_t kMaxSimResources = 1024;
const size_t kResourceNameBytes = 127;     // LIMITS.resourceNameSize less the NUL

std::vector<uint8_t> ResourceBytes(const Napi::Value &v, const std::string &what) {
  Napi::Env env = v.Env();
  if (v.IsString()) {
    std::string s = v.As<Napi::String>().Utf8Value();
    if (s.size() > kMaxSimResource) throw Napi::RangeError::New(env, what + ": at most 16 MiB");
    return std::vector<uint8_t>(s.begin(), s.end());
  }
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw Napi::TypeError::New(env, what + " must be a Buffer, a Uint8Array or a string");
  Napi::Uint8Array bytes = v.As<Napi::Uint8Array>();
  bool detached = false;
  if (napi_is_detached_arraybuffer(env, bytes.ArrayBuffer(), &detached) != napi_ok || detached)
    throw Napi::TypeError::New(env, what + " is a Uint8Array whose buffer was detached (transferred)");
  if (bytes.ByteLength() > kMaxSimResource) throw Napi::RangeError::New(env, what + ": at most 16 MiB");
  return std::vector<uint8_t>(bytes.Data(), bytes.Data() + bytes.ByteLength());
}
}  // namespace

// installKext(spec, resources?: { name: bytes }) → kr. Every key and value read once here.
Napi::Value SimKernelWrap::InstallKext(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  sim::KextSpec spec = ParseSpec(info[0]);
  sim::Resources resources;
  if (!info[1].IsUndefined()) {
    if (!info[1].IsObject() || info[1].IsArray() || info[1].IsFunction())
      throw Napi::TypeError::New(env, "resources must be an object of name: bytes");
    Napi::Object o = info[1].As<Napi::Object>();
    Napi::Array names = o.GetPropertyNames();
    const uint32_t n = names.Length();
    if (n > kMaxSimResources) throw Napi::RangeError::New(env, "resources: at most 1024 entries");
    for (uint32_t i = 0; i < n; i++) {
      Napi::Value key = names.Get(i);
      std::string name = ToCString(key, "a resource name", kResourceNameBytes);
      resources[name] = ResourceBytes(o.Get(key), "resources[" + std::to_string(i) + "]");
    }
  }
  return Napi::Number::New(env, kernel_->installKext(spec, resources));
}

Napi::Value SimKernelWrap::SetResourceDelay(const Napi::CallbackInfo &info) {
  kernel_->setResourceDelay(ToUint(info[0], "ms", 9007199254740991ull));
  return info.Env().Undefined();
}

Napi::Value SimKernelWrap::SetLoadReplyDelay(const Napi::CallbackInfo &info) {
  kernel_->setLoadReplyDelay(ToUint(info[0], "ms", 9007199254740991ull));
  return info.Env().Undefined();
}

Napi::Value SimKernelWrap::WithholdResources(const Napi::CallbackInfo &info) {
  if (!info[0].IsBoolean()) throw Napi::TypeError::New(info.Env(), "on must be a boolean");
  kernel_->withholdResources(info[0].As<Napi::Boolean>().Value());
  return info.Env().Undefined();
}

Napi::Value SimKernelWrap::FailResources(const Napi::CallbackInfo &info) {
  uint32_t code = (uint32_t)ToUint(info[0], "code", 0xFFFFFFFFull);
  if (code == RC_kOSReturnSuccess)
    throw Napi::RangeError::New(info.Env(), "code must be a failure, not kOSReturnSuccess");
  uint32_t times = (uint32_t)ToUint(info[1], "times", 0xFFFFFFFFull);
  kernel_->failResources(code, times);
  return info.Env().Undefined();
}

Napi::Value SimKernelWrap::SetStopping(const Napi::CallbackInfo &info) {
  uint32_t tag = Tag(info, 0);
  if (!info[1].IsBoolean()) throw Napi::TypeError::New(info.Env(), "stopping must be a boolean");
  return Napi::Number::New(info.Env(), kernel_->setStopping(tag, info[1].As<Napi::Boolean>().Value()));
}

Napi::Value SimKernelWrap::ArmAutounloadScan(const Napi::CallbackInfo &info) {
  kernel_->armAutounloadScan();
  return info.Env().Undefined();
}

// pendingRequests() → [{ requestTag, loadTag, callerBundleId, bundleId, resourceName,
//   requestedAt, dueAt (null when withheld), withheld, stale }]
Napi::Value SimKernelWrap::PendingRequests(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::vector<sim::RequestRecord> recs = kernel_->pendingRequests();
  Napi::Array list = Napi::Array::New(env, recs.size());
  for (size_t i = 0; i < recs.size(); i++) {
    const sim::RequestRecord &r = recs[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("requestTag", Napi::Number::New(env, r.requestTag));
    o.Set("loadTag", Napi::Number::New(env, r.callerTag));
    o.Set("callerBundleId", r.callerBundleId);
    o.Set("bundleId", r.bundleId);
    o.Set("resourceName", r.resourceName);
    o.Set("requestedAt", Napi::Number::New(env, (double)r.requestedMs));
    if (r.withheld || r.dueMs == UINT64_MAX) o.Set("dueAt", env.Null());
    else o.Set("dueAt", Napi::Number::New(env, (double)r.dueMs));
    o.Set("withheld", Napi::Boolean::New(env, r.withheld));
    o.Set("stale", Napi::Boolean::New(env, r.stale));
    list.Set((uint32_t)i, o);
  }
  return list;
}

} // namespace kb
