// The C++ unit tests' small harness: TEST(name) registers a case, CHECK/CHECK_EQ/CHECK_STR
// count failed checks in it, and runAll() prints "ok"/"FAIL" per case and the closing line
// "N passed, M failed" (exit status non-zero on a failure).
#ifndef KEXTBRIDGE_TEST_UNIT_H
#define KEXTBRIDGE_TEST_UNIT_H

#include <stdio.h>

#include <functional>
#include <string>
#include <vector>

namespace unit {

inline int &failures() {  // failed checks in the current case
  static int n = 0;
  return n;
}

struct Case {
  const char *name;
  std::function<void()> fn;
};

inline std::vector<Case> &cases() {
  static std::vector<Case> r;
  return r;
}

inline const char *caseName(const char *id, const char *description = nullptr) {
  return description ? description : id;
}

struct Registrar {
  Registrar(const char *name, std::function<void()> fn) { cases().push_back({name, fn}); }
};

inline int runAll() {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  int passed = 0, failed = 0;
  for (const Case &t : cases()) {
    failures() = 0;
    t.fn();
    if (failures() == 0) {
      passed++;
      printf("ok   %s\n", t.name);
    } else {
      failed++;
      printf("FAIL %s (%d checks)\n", t.name, failures());
    }
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}

}  // namespace unit

// TEST(name) or TEST(name, "what it shows"): the case is reported by its description if given.
#define TEST(name, ...)                                                        \
  void name();                                                                 \
  unit::Registrar name##_registrar(unit::caseName(#name, ##__VA_ARGS__), name); \
  void name()

#define CHECK(cond)                                                              \
  do {                                                                           \
    if (!(cond)) {                                                               \
      fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
      unit::failures()++;                                                        \
    }                                                                            \
  } while (0)

#define CHECK_EQ(a, b)                                                                  \
  do {                                                                                  \
    /* compared as 64-bit patterns: int -1 and uint32 0xFFFFFFFF differ, as they should */ \
    unsigned long long va_ = (unsigned long long)(a);                                   \
    unsigned long long vb_ = (unsigned long long)(b);                                   \
    if (va_ != vb_) {                                                                   \
      fprintf(stderr, "  %s:%d: CHECK_EQ(%s, %s) failed: 0x%llX vs 0x%llX\n", __FILE__, \
              __LINE__, #a, #b, va_, vb_);                                              \
      unit::failures()++;                                                               \
    }                                                                                   \
  } while (0)

#define CHECK_STR(a, b)                                                                      \
  do {                                                                                       \
    std::string va_ = (a);                                                                   \
    std::string vb_ = (b);                                                                   \
    if (va_ != vb_) {                                                                        \
      fprintf(stderr, "  %s:%d: CHECK_STR(%s, %s) failed:\n    \"%s\"\n    \"%s\"\n", __FILE__, \
              __LINE__, #a, #b, va_.c_str(), vb_.c_str());                                   \
      unit::failures()++;                                                                    \
    }                                                                                        \
  } while (0)

#endif
