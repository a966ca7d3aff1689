#include "js_values.h"

#include <string>

namespace kb {

namespace {
const uint64_t kMaxSafeInteger = 9007199254740991ull;  // 2^53 - 1
}

uint64_t ToUint(const Napi::Value &v, const char *what, uint64_t max, bool allowBigInt) {
  Napi::Env env = v.Env();
  std::string name(what);
  if (v.IsBigInt() && allowBigInt) {
    bool lossless = false;
    uint64_t n = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless || n > max)
      throw Napi::RangeError::New(env, name + " must be between 0 and " + std::to_string(max));
    return n;
  }
  if (!v.IsNumber()) throw Napi::TypeError::New(env, name + " must be an integer");
  double d = v.As<Napi::Number>().DoubleValue();
  double limit = (double)(max < kMaxSafeInteger ? max : kMaxSafeInteger);
  if (!(d >= 0 && d <= limit) || d != (double)(uint64_t)d)
    throw Napi::RangeError::New(env, name + " must be an integer between 0 and " +
                                         std::to_string((uint64_t)limit));
  return (uint64_t)d;
}

Napi::Value FromUint64(Napi::Env env, uint64_t v) {
  if (v <= kMaxSafeInteger) return Napi::Number::New(env, (double)v);
  return Napi::BigInt::New(env, v);
}

Napi::Array KextsToJs(Napi::Env env, const std::vector<KextInfo> &kexts) {
  Napi::Array list = Napi::Array::New(env, kexts.size());
  for (size_t i = 0; i < kexts.size(); i++) {
    const KextInfo &k = kexts[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("bundleId", k.bundleId);
    o.Set("loadTag", Napi::Number::New(env, k.loadTag));
    o.Set("retainCount", Napi::Number::New(env, k.retainCount));
    o.Set("started", Napi::Boolean::New(env, k.started));
    o.Set("version", k.version);
    o.Set("uuid", k.uuid);
    Napi::Array deps = Napi::Array::New(env, k.dependencies.size());
    for (size_t d = 0; d < k.dependencies.size(); d++)
      deps.Set((uint32_t)d, Napi::Number::New(env, k.dependencies[d]));
    o.Set("dependencies", deps);
    Napi::Array classes = Napi::Array::New(env, k.classes.size());
    for (size_t c = 0; c < k.classes.size(); c++) {
      Napi::Object cls = Napi::Object::New(env);
      cls.Set("name", k.classes[c].name);
      cls.Set("superclass", k.classes[c].superclass);
      cls.Set("instances", Napi::Number::New(env, k.classes[c].instances));
      classes.Set((uint32_t)c, cls);
    }
    o.Set("classes", classes);
    list.Set((uint32_t)i, o);
  }
  return list;
}

} // namespace kb
