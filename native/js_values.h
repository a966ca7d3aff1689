// Conversions between JS values and the plain C++ data the transports speak.
#ifndef KEXTBRIDGE_JS_VALUES_H
#define KEXTBRIDGE_JS_VALUES_H

#include <napi.h>

#include <string>
#include <vector>

#include "transport.h"

namespace kb {

// A JS integer in [0, max]: a safe-integer number or (when allowBigInt) a lossless BigInt.
// Throws TypeError (wrong type) or RangeError (out of range) naming `what`.
uint64_t ToUint(const Napi::Value &v, const char *what, uint64_t max, bool allowBigInt = false);

// A JS string as native code keeps it, checked where it is read: a string, non-empty (unless allowEmpty), no lone
// UTF-16 surrogate (napi's UTF-8 conversion would turn it into U+FFFD, making two different
// strings one), no NUL (it becomes a C string), at most maxBytes bytes of UTF-8 (0: no limit).
// Throws TypeError / RangeError naming `what`; never quotes the value.
std::string ToCString(const Napi::Value &v, const std::string &what, size_t maxBytes = 0, bool allowEmpty = false);

// A JS array read once: its length fixed first (at most maxLength), each index read once, a
// hole an error naming what[i].
std::vector<Napi::Value> ReadArray(const Napi::Value &v, const std::string &what, uint32_t maxLength);

// A number when it is exact as a double, else a BigInt.
Napi::Value FromUint64(Napi::Env env, uint64_t v);

Napi::Array KextsToJs(Napi::Env env, const std::vector<KextInfo> &kexts);

// [{ pid, process }], in the given order.
Napi::Array UserClientsToJs(Napi::Env env, const std::vector<UserClientInfo> &clients);

} // namespace kb

#endif
