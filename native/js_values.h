// Conversions between JS values and the plain C++ data the transports speak.
#ifndef KEXTBRIDGE_JS_VALUES_H
#define KEXTBRIDGE_JS_VALUES_H

#include <napi.h>

#include <vector>

#include "transport.h"

namespace kb {

// A JS integer in [0, max]: a safe-integer number or (when allowBigInt) a lossless BigInt.
// Throws TypeError (wrong type) or RangeError (out of range) naming `what`.
uint64_t ToUint(const Napi::Value &v, const char *what, uint64_t max, bool allowBigInt = false);

// A number when it is exact as a double, else a BigInt.
Napi::Value FromUint64(Napi::Env env, uint64_t v);

Napi::Array KextsToJs(Napi::Env env, const std::vector<KextInfo> &kexts);

} // namespace kb

#endif
