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

std::string ToCString(const Napi::Value &v, const std::string &what, size_t maxBytes, bool allowEmpty) {
  Napi::Env env = v.Env();
  if (!v.IsString()) throw Napi::TypeError::New(env, what + " must be a string");
  size_t units = 0;
  if (napi_get_value_string_utf16(env, v, nullptr, 0, &units) != napi_ok)
    throw Napi::TypeError::New(env, what + " must be a string");
  if (units == 0 && !allowEmpty) throw Napi::TypeError::New(env, what + " must be a non-empty string");
  std::vector<char16_t> u(units + 1);
  napi_get_value_string_utf16(env, v, u.data(), u.size(), &units);
  for (size_t i = 0; i < units; i++) {
    char16_t c = u[i];
    bool high = c >= 0xD800 && c <= 0xDBFF, low = c >= 0xDC00 && c <= 0xDFFF;
    if (high && i + 1 < units && u[i + 1] >= 0xDC00 && u[i + 1] <= 0xDFFF) {
      i++;  // a pair
    } else if (high || low) {
      throw Napi::RangeError::New(env, what + " must be well-formed Unicode (it has a lone UTF-16 surrogate at index " +
                                           std::to_string(i) + ")");
    }
  }
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s.find('\0') != std::string::npos)
    throw Napi::RangeError::New(env, what + " must not contain a NUL character");
  if (maxBytes != 0 && s.size() > maxBytes)
    throw Napi::RangeError::New(env, what + " must be at most " + std::to_string(maxBytes) + " bytes of UTF-8, got " +
                                         std::to_string(s.size()));
  return s;
}

std::vector<Napi::Value> ReadArray(const Napi::Value &v, const std::string &what, uint32_t maxLength) {
  Napi::Env env = v.Env();
  if (!v.IsArray()) throw Napi::TypeError::New(env, what + " must be an array");
  Napi::Array a = v.As<Napi::Array>();
  const uint32_t length = a.Length();  // read once: getters below cannot move it
  if (length > maxLength)
    throw Napi::RangeError::New(env, what + ": at most " + std::to_string(maxLength) + " entries");
  std::vector<Napi::Value> out;
  out.reserve(length);
  for (uint32_t i = 0; i < length; i++) {
    if (!a.Has(i)) throw Napi::TypeError::New(env, what + "[" + std::to_string(i) + "] is a hole (a sparse array)");
    out.push_back(a.Get(i));
  }
  return out;
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

Napi::Array UserClientsToJs(Napi::Env env, const std::vector<UserClientInfo> &clients) {
  Napi::Array list = Napi::Array::New(env, clients.size());
  for (size_t i = 0; i < clients.size(); i++) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("pid", Napi::Number::New(env, clients[i].pid));
    o.Set("process", clients[i].process);
    list.Set((uint32_t)i, o);
  }
  return list;
}

} // namespace kb
