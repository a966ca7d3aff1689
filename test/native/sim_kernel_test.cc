// Unit tests for SimKernel (sim/sim_kernel.h). Run with npm run test:native (test/native/run.sh).
// Every check states an exact value that the modelled xnu behaviour produces.
#include <stdio.h>
#include <string.h>

#include <functional>
#include <mutex>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "open_limit.h"
#include "protocol.gen.h"
#include "sim_kernel.h"
#include "sim_transport.h"
#include "unit.h"
#include "user_client_core.h"

using namespace kb;
using namespace kb::sim;
using KextRow = kb::sim::KextRecord;

namespace {

// Default world tags.
const uint32_t kKernel = 0, kBsd = 1, kDsep = 2, kIokit = 3, kLibkern = 4, kMach = 5,
               kPrivate = 6, kUnsupported = 7, kSample = 8;

const uint32_t OK = RC_kOSReturnSuccess;

KextSpec spec(const std::string &id, std::vector<std::string> deps = {}, bool autounload = true) {
  KextSpec s;
  s.bundleId = id;
  s.dependencies = std::move(deps);
  s.autounload = autounload;
  return s;
}

uint32_t load(SimKernel &k, const KextSpec &s) {
  uint32_t tag = 0xDEADBEEF;
  uint32_t kr = k.loadKext(s, &tag);
  CHECK_EQ(kr, OK);
  return tag;
}

bool loaded(const SimKernel &k, uint32_t tag) { return k.retainCount(tag) >= 0; }

// Only on an lvalue vector, or within one full expression (the pointer points into v).
const KextRow *infoFor(const std::vector<KextRow> &v, uint32_t tag) {
  for (const KextRow &i : v)
    if (i.loadTag == tag) return &i;
  return nullptr;
}

// ---------------------------------------------------------------------------------------

TEST(default_world_tags_and_counts) {
  SimKernel k;
  std::vector<KextRow> v = k.loadedKexts();
  CHECK_EQ(v.size(), 9u);
  const char *ids[] = {"__kernel__",           "com.apple.kpi.bsd",  "com.apple.kpi.dsep",
                       "com.apple.kpi.iokit",  "com.apple.kpi.libkern", "com.apple.kpi.mach",
                       "com.apple.kpi.private", "com.apple.kpi.unsupported",
                       KB_SAMPLE_BUNDLE_ID};
  for (size_t i = 0; i < v.size() && i < 9; i++) {
    CHECK_EQ(v[i].loadTag, (uint32_t)i);
    CHECK_STR(v[i].bundleId, ids[i]);
    CHECK(v[i].started);
    CHECK_EQ(k.lookupLoadTag(ids[i]), (uint32_t)i);
    CHECK_EQ(v[i].uuid.size(), 36u);
  }
  for (size_t i = 0; i < 8 && i < v.size(); i++) {
    CHECK_STR(v[i].version, "24.5.0");
    CHECK(v[i].dependencies.empty());
    CHECK(v[i].classes.empty());
  }
  // The sample depends on kpi.bsd, kpi.iokit, kpi.libkern and kpi.mach: one outside reference each.
  for (uint32_t t : {kKernel, kDsep, kPrivate, kUnsupported}) {
    CHECK_EQ(v[t].retainCount, 0);
    CHECK_EQ(k.retainCount(t), 2);
  }
  for (uint32_t t : {kBsd, kIokit, kLibkern, kMach}) {
    CHECK_EQ(v[t].retainCount, 1);
    CHECK_EQ(k.retainCount(t), 3);
  }

  const KextRow &s = v[kSample];
  CHECK_EQ(k.sampleLoadTag(), kSample);
  CHECK_STR(s.version, KB_SAMPLE_VERSION);
  CHECK_EQ(s.retainCount, 0);
  CHECK_EQ(k.retainCount(kSample), 2);
  CHECK_EQ(s.dependencies.size(), 4u);
  if (s.dependencies.size() == 4) {
    CHECK_EQ(s.dependencies[0], kMach);  // descending
    CHECK_EQ(s.dependencies[1], kLibkern);
    CHECK_EQ(s.dependencies[2], kIokit);
    CHECK_EQ(s.dependencies[3], kBsd);
  }
  CHECK_EQ(s.classes.size(), 2u);
  if (s.classes.size() == 2) {
    CHECK_STR(s.classes[0].name, KB_SERVICE_CLASS_NAME);
    CHECK_STR(s.classes[0].superclass, "IOService");
    CHECK_EQ(s.classes[0].instances, 1u);
    CHECK_STR(s.classes[1].name, KB_USER_CLIENT_CLASS_NAME);
    CHECK_STR(s.classes[1].superclass, "IOUserClient");
    CHECK_EQ(s.classes[1].instances, 0u);
  }
  CHECK_EQ(k.lookupLoadTag("com.example.nope"), kInvalidLoadTag);
  CHECK_EQ(k.retainCount(9), -1);
  CHECK_EQ(k.now(), 0u);
  CHECK(!k.autounloadArmed());
  CHECK(!k.panicked());
  // A fresh world is identical (deterministic UUIDs).
  SimKernel k2;
  std::vector<KextRow> v2 = k2.loadedKexts();
  CHECK_EQ(v2.size(), v.size());
  for (size_t i = 0; i < v.size() && i < v2.size(); i++) CHECK_STR(v2[i].uuid, v[i].uuid);
  CHECK(v[0].uuid != v[1].uuid);
}

TEST(retain_release_move_count_by_one) {
  SimKernel k;
  CHECK_EQ(k.retainKextWithLoadTag(kSample), OK);
  CHECK_EQ(k.retainCount(kSample), 3);
  CHECK_EQ(infoFor(k.loadedKexts(), kSample)->retainCount, 1);
  CHECK_EQ(k.retainKextWithLoadTag(kSample), OK);
  CHECK_EQ(k.retainCount(kSample), 4);
  CHECK_EQ(k.releaseKextWithLoadTag(kSample), OK);
  CHECK_EQ(k.retainCount(kSample), 3);
  CHECK_EQ(k.releaseKextWithLoadTag(kSample), OK);
  CHECK_EQ(k.retainCount(kSample), 2);
  CHECK_EQ(infoFor(k.loadedKexts(), kSample)->retainCount, 0);
  CHECK(!k.panicked());
  // __kernel__ (tag 0) is found like any other kext.
  CHECK_EQ(k.retainKextWithLoadTag(kKernel), OK);
  CHECK_EQ(k.retainCount(kKernel), 3);
  CHECK_EQ(k.releaseKextWithLoadTag(kKernel), OK);
  CHECK_EQ(k.retainCount(kKernel), 2);
}

TEST(invalid_and_unknown_tags) {
  SimKernel k;
  CHECK_EQ(k.retainKextWithLoadTag(0xFFFFFFFFu), 0xDC008005u);
  CHECK_EQ(k.releaseKextWithLoadTag(0xFFFFFFFFu), 0xDC008005u);
  CHECK_EQ(k.retainKextWithLoadTag(9), 0xDC008006u);
  CHECK_EQ(k.releaseKextWithLoadTag(9), 0xDC008006u);
  CHECK_EQ(k.retainKextWithLoadTag(0xFFFFFFFEu), 0xDC008006u);
  CHECK_EQ(RC_kOSKextReturnInvalidArgument, 0xDC008005u);
  CHECK_EQ(RC_kOSKextReturnNotFound, 0xDC008006u);
  // Failed releases do not arm the autounload scan.
  CHECK(!k.autounloadArmed());
  CHECK(!k.panicked());
}

TEST(over_release_panics_and_machine_stays_dead) {
  SimKernel k;
  uint32_t x = load(k, spec("com.example.x"));
  CHECK_EQ(x, 9u);
  k.advance(1234);
  CHECK_EQ(k.retainKextWithLoadTag(x), OK);
  CHECK_EQ(k.releaseKextWithLoadTag(x), OK);
  CHECK(!k.panicked());
  // One release too many: the real kernel answers success and frees the OSKext.
  CHECK_EQ(k.releaseKextWithLoadTag(x), OK);
  CHECK(k.panicked());
  PanicRecord p = k.panicRecord();
  CHECK_STR(p.call, "OSKextReleaseKextWithLoadTag");
  CHECK_EQ(p.loadTag, 9u);
  CHECK_STR(p.bundleId, "com.example.x");
  CHECK_EQ(p.retainCountAfter, 1);
  CHECK_EQ(p.timeMs, 1234u);
  CHECK_STR(p.message,
            "panic: OSKextReleaseKextWithLoadTag(9) dropped com.example.x to retain count 1, "
            "below the kernel's baseline of 2 (use-after-free)");
  // Everything afterwards fails loudly and changes nothing.
  CHECK_EQ(k.retainKextWithLoadTag(kSample), RC_kOSReturnError);
  CHECK_EQ(k.releaseKextWithLoadTag(kSample), RC_kOSReturnError);
  CHECK_EQ(k.retainKextWithLoadTag(0xFFFFFFFFu), RC_kOSReturnError);
  CHECK_EQ(k.releaseKextWithLoadTag(12345), RC_kOSReturnError);
  CHECK_EQ(k.retainCount(kSample), 2);
  uint32_t tag = 7;
  CHECK_EQ(k.loadKext(spec("com.example.y"), &tag), RC_kOSReturnError);
  CHECK_EQ(tag, kInvalidLoadTag);
  CHECK_EQ(k.lookupLoadTag("com.example.y"), kInvalidLoadTag);
  CHECK_EQ(k.unloadKext(x), RC_kOSReturnError);
  CHECK_EQ(k.setInstances(kSample, KB_SERVICE_CLASS_NAME, 0), RC_kOSReturnError);
  CHECK_EQ(infoFor(k.loadedKexts(), kSample)->classes[0].instances, 1u);
  k.advance(120000);
  CHECK_EQ(k.now(), 1234u);
  CHECK_EQ(k.openUserClient(), RC_MIG_SERVER_DIED);
  CHECK_EQ(RC_MIG_SERVER_DIED, 0xFFFFFECCu);
  // The record is the first panic's.
  CHECK_EQ(k.panicRecord().loadTag, 9u);
}

TEST(over_release_of_sample_panics_on_the_second_release) {
  SimKernel k;
  CHECK_EQ(k.retainKextWithLoadTag(kSample), OK);
  CHECK_EQ(k.releaseKextWithLoadTag(kSample), OK);
  CHECK(!k.panicked());
  CHECK_EQ(k.releaseKextWithLoadTag(kSample), OK);
  CHECK(k.panicked());
  CHECK_EQ(k.panicRecord().loadTag, kSample);
  CHECK_STR(k.panicRecord().bundleId, KB_SAMPLE_BUNDLE_ID);
  CHECK_EQ(k.panicRecord().retainCountAfter, 1);
  CHECK_EQ(k.retainKextWithLoadTag(kSample), RC_kOSReturnError);
}

TEST(releasing_a_dependents_reference_panics_when_the_dependent_unloads) {
  SimKernel k;
  // kpi.iokit is at 3 (baseline + the sample's reference). Releasing it once, without a
  // retain, steals the sample's reference: no panic yet, the count is still at baseline.
  CHECK_EQ(k.releaseKextWithLoadTag(kIokit), OK);
  CHECK_EQ(k.retainCount(kIokit), 2);
  CHECK(!k.panicked());
  // When the sample unloads and drops its reference, the library falls below baseline.
  CHECK_EQ(k.setInstances(kSample, KB_SERVICE_CLASS_NAME, 0), OK);
  CHECK_EQ(k.unloadKext(kSample), OK);
  CHECK(k.panicked());
  PanicRecord p = k.panicRecord();
  CHECK_STR(p.call, "OSKext::flushDependencies");
  CHECK_EQ(p.loadTag, kIokit);
  CHECK_STR(p.bundleId, "com.apple.kpi.iokit");
  CHECK_EQ(p.retainCountAfter, 1);
  CHECK_EQ(k.retainKextWithLoadTag(kLibkern), RC_kOSReturnError);
}

TEST(panic_inside_the_scan_is_stamped_with_the_scan_time) {
  SimKernel k;
  k.advance(1000);
  CHECK_EQ(k.releaseKextWithLoadTag(kLibkern), OK);  // steals the sample's reference; due 61000
  CHECK_EQ(k.setInstances(kSample, KB_SERVICE_CLASS_NAME, 0), OK);
  k.advance(100000);  // the scan unloads the sample, dropping libkern to 1
  CHECK(!loaded(k, kSample));
  CHECK(k.panicked());
  CHECK_STR(k.panicRecord().call, "OSKext::flushDependencies");
  CHECK_EQ(k.panicRecord().loadTag, kLibkern);
  CHECK_EQ(k.panicRecord().timeMs, 61000u);
  CHECK_EQ(k.now(), 61000u);  // the machine stopped at the panic
}

TEST(autounload_fires_exactly_60s_after_last_release) {
  SimKernel k;
  uint32_t a = load(k, spec("com.example.a"));
  CHECK(!k.autounloadArmed());
  CHECK_EQ(k.retainKextWithLoadTag(a), OK);
  CHECK(!k.autounloadArmed());  // retain does not arm
  CHECK_EQ(k.releaseKextWithLoadTag(a), OK);
  CHECK(k.autounloadArmed());
  CHECK_EQ(k.autounloadDeadline(), 60000u);
  k.advance(59999);
  CHECK_EQ(k.now(), 59999u);
  CHECK(loaded(k, a));
  CHECK(k.autounloadArmed());
  k.advance(1);
  CHECK_EQ(k.now(), 60000u);
  CHECK(!loaded(k, a));
  CHECK(!k.autounloadArmed());
  CHECK_EQ(k.lookupLoadTag("com.example.a"), kInvalidLoadTag);
  CHECK_EQ(k.retainKextWithLoadTag(a), RC_kOSKextReturnNotFound);
  // The default world survives the scan: kernel components and the instantiated sample.
  CHECK_EQ(k.loadedKexts().size(), 9u);
}

TEST(autounload_in_one_big_advance) {
  SimKernel k;
  uint32_t a = load(k, spec("com.example.a"));
  k.advance(500);
  CHECK_EQ(k.retainKextWithLoadTag(a), OK);
  CHECK_EQ(k.releaseKextWithLoadTag(a), OK);
  CHECK_EQ(k.autounloadDeadline(), 60500u);
  k.advance(1000000);
  CHECK_EQ(k.now(), 1000500u);
  CHECK(!loaded(k, a));
  CHECK(!k.autounloadArmed());
}

TEST(each_release_rearms_the_scan) {
  SimKernel k;
  uint32_t a = load(k, spec("com.example.a"));
  uint32_t b = load(k, spec("com.example.b"));
  CHECK_EQ(k.retainKextWithLoadTag(a), OK);
  CHECK_EQ(k.retainKextWithLoadTag(b), OK);
  CHECK_EQ(k.releaseKextWithLoadTag(a), OK);  // t=0 → due at 60000
  CHECK_EQ(k.autounloadDeadline(), 60000u);
  k.advance(30000);
  CHECK_EQ(k.releaseKextWithLoadTag(b), OK);  // t=30000 → pushed to 90000
  CHECK_EQ(k.autounloadDeadline(), 90000u);
  k.advance(30000);  // t=60000: no scan
  CHECK(loaded(k, a));
  CHECK(loaded(k, b));
  k.advance(29999);  // t=89999
  CHECK(loaded(k, a));
  CHECK(loaded(k, b));
  k.advance(1);  // t=90000: one scan unloads both
  CHECK(!loaded(k, a));
  CHECK(!loaded(k, b));
  CHECK_EQ(k.now(), 90000u);
}

TEST(scan_skips_retained_and_does_not_rearm) {
  SimKernel k;
  uint32_t a = load(k, spec("com.example.a"));
  CHECK_EQ(k.retainKextWithLoadTag(a), OK);
  CHECK_EQ(k.retainKextWithLoadTag(a), OK);
  CHECK_EQ(k.releaseKextWithLoadTag(a), OK);  // still retained once
  k.advance(60000);
  CHECK(loaded(k, a));
  CHECK_EQ(k.retainCount(a), 3);
  CHECK(!k.autounloadArmed());
  CHECK_EQ(k.releaseKextWithLoadTag(a), OK);
  CHECK_EQ(k.autounloadDeadline(), 120000u);
  k.advance(60000);
  CHECK(!loaded(k, a));
}

TEST(autounload_needs_flag_or_retain_enables_it) {
  SimKernel k;
  uint32_t off = load(k, spec("com.example.off", {}, false));
  uint32_t other = load(k, spec("com.example.other", {}, false));
  // Arm the scan through another kext; `off` never had autounload enabled.
  CHECK_EQ(k.retainKextWithLoadTag(kSample), OK);
  CHECK_EQ(k.releaseKextWithLoadTag(kSample), OK);
  k.advance(60000);
  CHECK(loaded(k, off));
  CHECK(loaded(k, other));
  // A retain turns the per-kext flag on.
  CHECK_EQ(k.retainKextWithLoadTag(off), OK);
  CHECK_EQ(k.releaseKextWithLoadTag(off), OK);
  k.advance(60000);
  CHECK(!loaded(k, off));
  CHECK(loaded(k, other));
  // An IOService subclass turns it on at load.
  KextSpec svc = spec("com.example.svc", {}, false);
  svc.classes.push_back({"com_example_Driver", "IOService", 0});
  uint32_t s = load(k, svc);
  CHECK_EQ(k.retainKextWithLoadTag(kSample), OK);
  CHECK_EQ(k.releaseKextWithLoadTag(kSample), OK);
  k.advance(60000);
  CHECK(!loaded(k, s));
  CHECK(loaded(k, other));
}

TEST(unload_unsupported_and_global_autounload_off) {
  SimKernel k;
  KextSpec u = spec("com.example.pinned");
  u.unloadUnsupported = true;
  uint32_t p = load(k, u);
  CHECK_EQ(k.retainKextWithLoadTag(p), OK);
  CHECK_EQ(k.releaseKextWithLoadTag(p), OK);
  k.advance(60000);
  CHECK(loaded(k, p));
  CHECK_EQ(k.unloadKext(p), RC_kOSKextReturnInUse);

  SimKernel::Options o;
  o.autounloadEnabled = false;
  SimKernel k2(o);
  uint32_t a = load(k2, spec("com.example.a"));
  CHECK_EQ(k2.retainKextWithLoadTag(a), OK);
  CHECK_EQ(k2.releaseKextWithLoadTag(a), OK);
  CHECK(!k2.autounloadArmed());
  k2.advance(600000);
  CHECK(loaded(k2, a));
  CHECK_EQ(k2.unloadKext(a), OK);  // explicit unload still works
}

TEST(live_instance_keeps_kext_loaded) {
  SimKernel k;
  KextSpec c = spec("com.example.c");
  c.classes.push_back({"com_example_Thing", "OSObject", 1});
  uint32_t t = load(k, c);
  CHECK_EQ(k.retainKextWithLoadTag(t), OK);
  CHECK_EQ(k.releaseKextWithLoadTag(t), OK);
  k.advance(60000);
  CHECK(loaded(k, t));
  CHECK_EQ(k.setInstances(t, "com_example_Thing", 0), OK);
  // The scan already ran and does not re-arm itself: nothing happens without a release.
  k.advance(600000);
  CHECK(loaded(k, t));
  CHECK_EQ(k.retainKextWithLoadTag(t), OK);
  CHECK_EQ(k.releaseKextWithLoadTag(t), OK);
  k.advance(60000);
  CHECK(!loaded(k, t));
}

TEST(set_instances_of_declared_classes_only) {
  SimKernel k;
  KextSpec cs = spec("com.example.c");
  cs.classes.push_back(ClassSpec{"com_example_New", "", 0});
  uint32_t t = load(k, cs);
  CHECK_EQ(k.setInstances(t, "com_example_Undeclared", 3), RC_kOSKextReturnInvalidArgument);
  CHECK_EQ(k.setInstances(kSample, KB_USER_CLIENT_CLASS_NAME, 3), RC_kOSKextReturnInvalidArgument);
  CHECK_EQ(k.setInstances(t, "com_example_New", 3), OK);
  std::vector<KextRow> v = k.loadedKexts();
  const KextRow *i = infoFor(v, t);
  CHECK(i != nullptr);
  if (i) {
    CHECK_EQ(i->classes.size(), 1u);
    CHECK_STR(i->classes[0].name, "com_example_New");
    CHECK_STR(i->classes[0].superclass, "");
    CHECK_EQ(i->classes[0].instances, 3u);
  }
  CHECK_EQ(k.setInstances(t, "com_example_New", 0), OK);
  CHECK_EQ(infoFor(k.loadedKexts(), t)->classes[0].instances, 0u);
  CHECK_EQ(infoFor(k.loadedKexts(), t)->classes.size(), 1u);
  CHECK_EQ(k.setInstances(999, "x", 1), RC_kOSKextReturnNotFound);
  // The sample stays while its service is instantiated, and goes once it is not.
  CHECK_EQ(k.retainKextWithLoadTag(kSample), OK);
  CHECK_EQ(k.releaseKextWithLoadTag(kSample), OK);
  k.advance(60000);
  CHECK(loaded(k, kSample));
  CHECK_EQ(k.setInstances(kSample, KB_SERVICE_CLASS_NAME, 0), OK);
  CHECK_EQ(k.retainKextWithLoadTag(kSample), OK);
  CHECK_EQ(k.releaseKextWithLoadTag(kSample), OK);
  k.advance(60000);
  CHECK(!loaded(k, kSample));
  CHECK(!loaded(k, t));
  // Its libraries lost the sample's references.
  CHECK_EQ(k.retainCount(kIokit), 2);
  CHECK_EQ(k.retainCount(kLibkern), 2);
  CHECK_EQ(k.loadedKexts().size(), 8u);
}

TEST(dependent_keeps_library_and_chain_unloads_in_one_scan) {
  SimKernel k;
  uint32_t a = load(k, spec("com.example.lib"));
  KextSpec bs = spec("com.example.user", {"com.example.lib"});
  bs.classes.push_back({"com_example_User", "OSObject", 1});
  uint32_t b = load(k, bs);
  CHECK_EQ(k.retainCount(a), 3);
  CHECK_EQ(infoFor(k.loadedKexts(), a)->retainCount, 1);
  CHECK_EQ(infoFor(k.loadedKexts(), b)->dependencies.size(), 1u);
  CHECK_EQ(infoFor(k.loadedKexts(), b)->dependencies[0], a);
  CHECK_EQ(k.retainKextWithLoadTag(a), OK);
  CHECK_EQ(k.releaseKextWithLoadTag(a), OK);
  k.advance(60000);
  CHECK(loaded(k, a));  // depended on
  CHECK(loaded(k, b));  // instantiated
  CHECK_EQ(k.setInstances(b, "com_example_User", 0), OK);
  CHECK_EQ(k.retainKextWithLoadTag(b), OK);
  CHECK_EQ(k.releaseKextWithLoadTag(b), OK);
  k.advance(60000);  // one scan: B goes, dropping its reference, then A
  CHECK(!loaded(k, b));
  CHECK(!loaded(k, a));
  CHECK(!k.autounloadArmed());
}

TEST(three_level_chain_unloads_in_one_scan) {
  SimKernel k;
  uint32_t a = load(k, spec("com.example.a"));
  uint32_t b = load(k, spec("com.example.b", {"com.example.a"}));
  uint32_t c = load(k, spec("com.example.c", {"com.example.b", "com.example.a"}));
  CHECK_EQ(k.retainCount(a), 4);
  CHECK_EQ(k.retainCount(b), 3);
  std::vector<KextRow> v = k.loadedKexts();
  const KextRow *ci = infoFor(v, c);
  CHECK(ci != nullptr);
  if (ci) {
    CHECK_EQ(ci->dependencies.size(), 2u);
    CHECK_EQ(ci->dependencies[0], b);
    CHECK_EQ(ci->dependencies[1], a);
  }
  CHECK_EQ(k.retainKextWithLoadTag(c), OK);
  CHECK_EQ(k.releaseKextWithLoadTag(c), OK);
  k.advance(60000);
  CHECK(!loaded(k, a));
  CHECK(!loaded(k, b));
  CHECK(!loaded(k, c));
  CHECK_EQ(k.loadedKexts().size(), 9u);
}

TEST(explicit_unload_codes) {
  SimKernel k;
  CHECK_EQ(k.unloadKext(kKernel), RC_kOSKextReturnInvalidArgument);
  CHECK_EQ(k.unloadKext(kBsd), RC_kOSKextReturnInUse);  // depended on by the sample
  CHECK_EQ(k.unloadKext(kDsep), RC_kOSKextReturnInvalidArgument);
  CHECK_EQ(k.unloadKext(kIokit), RC_kOSKextReturnInUse);  // depended on by the sample
  CHECK_EQ(k.unloadKext(9), RC_kOSKextReturnNotFound);
  CHECK_EQ(k.unloadKext(0xFFFFFFFFu), RC_kOSKextReturnNotFound);
  CHECK_EQ(RC_kOSKextReturnInUse, 0xDC008018u);

  uint32_t a = load(k, spec("com.example.a"));
  KextSpec bs = spec("com.example.b", {"com.example.a"});
  bs.classes.push_back(ClassSpec{"com_example_B", "OSObject", 0});
  uint32_t b = load(k, bs);
  CHECK_EQ(k.unloadKext(a), RC_kOSKextReturnInUse);  // depended on
  CHECK_EQ(k.retainKextWithLoadTag(b), OK);
  CHECK_EQ(k.unloadKext(b), RC_kOSKextReturnInUse);  // retained
  CHECK_EQ(k.releaseKextWithLoadTag(b), OK);
  CHECK_EQ(k.setInstances(b, "com_example_B", 2), OK);
  CHECK_EQ(k.unloadKext(b), RC_kOSKextReturnInUse);  // instantiated
  CHECK_EQ(k.setInstances(b, "com_example_B", 0), OK);
  CHECK_EQ(k.unloadKext(b), OK);
  CHECK(!loaded(k, b));
  CHECK_EQ(k.retainCount(a), 2);
  CHECK_EQ(k.unloadKext(b), RC_kOSKextReturnNotFound);
  CHECK_EQ(k.unloadKext(a), OK);
  CHECK_EQ(k.loadedKexts().size(), 9u);

  SimKernel::Options o;
  o.unloadEnabled = false;
  SimKernel k2(o);
  uint32_t c = load(k2, spec("com.example.c"));
  CHECK_EQ(k2.unloadKext(c), RC_kOSKextReturnDisabled);
  CHECK_EQ(k2.unloadKext(kKernel), RC_kOSKextReturnDisabled);
  CHECK_EQ(k2.unloadKext(44), RC_kOSKextReturnNotFound);
}

// kmutil unload terminates the kext's services first (synchronously, kext lock held), then
// refuses while anything is left: with a user client open the sample kext stays loaded with
// no service, and nobody can open it until the service starts again.
TEST(unload_of_the_sample_terminates_its_service_first) {
  SimKernel k;
  CHECK_EQ(k.openUserClient(), RC_kIOReturnSuccess);
  CHECK_EQ(k.unloadKext(kSample), RC_kOSKextReturnInUse);  // the open user client
  CHECK(loaded(k, kSample));
  CHECK_EQ(k.openUserClient(), RC_kIOReturnNotFound);  // no service to match
  std::vector<KextRow> table = k.loadedKexts();
  const KextRow *s = infoFor(table, kSample);
  CHECK(s != nullptr);
  uint32_t serviceInstances = 99, clientInstances = 99;
  for (const ClassSpec &c : s->classes) {
    if (c.name == KB_SERVICE_CLASS_NAME) serviceInstances = c.instances;
    if (c.name == KB_USER_CLIENT_CLASS_NAME) clientInstances = c.instances;
  }
  CHECK_EQ(serviceInstances, 0u);
  CHECK_EQ(clientInstances, 1u);
  k.closeUserClient();
  CHECK_EQ(k.unloadKext(kSample), OK);  // nothing left: it goes
  CHECK(!loaded(k, kSample));
  CHECK_EQ(k.openUserClient(), RC_kIOReturnNotFound);

  SimKernel k2;  // retained: refused before anything is terminated
  CHECK_EQ(k2.retainKextWithLoadTag(kSample), OK);
  CHECK_EQ(k2.unloadKext(kSample), RC_kOSKextReturnInUse);
  CHECK_EQ(k2.openUserClient(), RC_kIOReturnSuccess);  // the service is still there
}

TEST(load_codes) {
  SimKernel k;
  uint32_t tag = 0;
  CHECK_EQ(k.loadKext(spec(""), &tag), RC_kOSKextReturnInvalidArgument);
  CHECK_EQ(tag, kInvalidLoadTag);
  KextSpec a = spec("com.example.a");
  a.version = "2.0";
  a.uuid = "11111111-2222-3333-4444-555555555555";
  CHECK_EQ(k.loadKext(a, &tag), OK);
  CHECK_EQ(tag, 9u);
  CHECK_STR(infoFor(k.loadedKexts(), 9)->uuid, "11111111-2222-3333-4444-555555555555");
  CHECK_STR(infoFor(k.loadedKexts(), 9)->version, "2.0");
  // Same version: success with the existing tag, with or without the UUID.
  tag = 0;
  CHECK_EQ(k.loadKext(a, &tag), OK);
  CHECK_EQ(tag, 9u);
  KextSpec noUuid = a;
  noUuid.uuid.clear();
  tag = 0;
  CHECK_EQ(k.loadKext(noUuid, &tag), OK);
  CHECK_EQ(tag, 9u);
  CHECK_EQ(k.retainCount(9), 2);  // an idempotent load takes no reference
  KextSpec other = a;
  other.version = "2.1";
  CHECK_EQ(k.loadKext(other, &tag), RC_kOSKextReturnLoadedVersionDiffers);
  CHECK_EQ(tag, kInvalidLoadTag);
  other = a;
  other.uuid = "11111111-2222-3333-4444-555555555556";
  CHECK_EQ(k.loadKext(other, &tag), RC_kOSKextReturnLoadedVersionDiffers);
  CHECK_EQ(RC_kOSKextReturnLoadedVersionDiffers, 0xDC008014u);
  // Missing dependency: nothing changes, not even the tag counter.
  CHECK_EQ(k.loadKext(spec("com.example.b", {"com.example.a", "com.example.missing"}), &tag),
           RC_kOSKextReturnDependencies);
  CHECK_EQ(RC_kOSKextReturnDependencies, 0xDC00800Eu);
  CHECK_EQ(k.retainCount(9), 2);
  CHECK_EQ(k.lookupLoadTag("com.example.b"), kInvalidLoadTag);
  CHECK_EQ(k.loadedKexts().size(), 10u);
  CHECK_EQ(load(k, spec("com.example.b", {"com.example.a"})), 10u);
  CHECK_EQ(k.retainCount(9), 3);
  // A duplicated dependency is linked once.
  CHECK_EQ(load(k, spec("com.example.c", {"com.example.a", "com.example.a"})), 11u);
  CHECK_EQ(k.retainCount(9), 4);
  CHECK_EQ(infoFor(k.loadedKexts(), 11)->dependencies.size(), 1u);
  // A null tagOut is allowed.
  CHECK_EQ(k.loadKext(spec("com.example.d"), nullptr), OK);
  CHECK_EQ(k.lookupLoadTag("com.example.d"), 12u);
  // Derived UUIDs: uppercase 8-4-4-4-12, distinct per kext.
  std::string u = infoFor(k.loadedKexts(), 12)->uuid;
  CHECK_EQ(u.size(), 36u);
  bool shape = u.size() == 36;
  for (size_t i = 0; shape && i < u.size(); i++) {
    if (i == 8 || i == 13 || i == 18 || i == 23)
      shape = u[i] == '-';
    else
      shape = (u[i] >= '0' && u[i] <= '9') || (u[i] >= 'A' && u[i] <= 'F');
  }
  CHECK(shape);
  CHECK(u != infoFor(k.loadedKexts(), 10)->uuid);
  // Deterministic: the same id at the same tag in another world gets the same UUID.
  SimKernel k2;
  for (const char *id : {"com.example.x1", "com.example.x2", "com.example.x3"})
    load(k2, spec(id));
  CHECK_EQ(load(k2, spec("com.example.d")), 12u);
  CHECK_STR(infoFor(k2.loadedKexts(), 12)->uuid, u);
}

TEST(tags_never_reused) {
  SimKernel k;
  uint32_t a = load(k, spec("com.example.a"));
  CHECK_EQ(a, 9u);
  CHECK_EQ(k.unloadKext(a), OK);
  uint32_t again = load(k, spec("com.example.a"));
  CHECK_EQ(again, 10u);
  CHECK_EQ(k.retainKextWithLoadTag(9), RC_kOSKextReturnNotFound);
  CHECK_EQ(k.retainCount(10), 2);
  // Autounloaded tags are not reused either.
  CHECK_EQ(k.retainKextWithLoadTag(again), OK);
  CHECK_EQ(k.releaseKextWithLoadTag(again), OK);
  k.advance(60000);
  CHECK(!loaded(k, again));
  CHECK_EQ(load(k, spec("com.example.a")), 11u);
  std::vector<KextRow> v = k.loadedKexts();
  CHECK_EQ(v.size(), 10u);
  CHECK_EQ(v.back().loadTag, 11u);
  for (size_t i = 1; i < v.size(); i++) CHECK(v[i - 1].loadTag < v[i].loadTag);
}

TEST(fault_injection) {
  SimKernel k;
  k.injectFault(Kpi::Retain, RC_kOSKextReturnNoMemory, 2);
  CHECK_EQ(k.retainKextWithLoadTag(kSample), RC_kOSKextReturnNoMemory);
  CHECK_EQ(k.retainKextWithLoadTag(0xFFFFFFFFu), RC_kOSKextReturnNoMemory);
  CHECK_EQ(k.retainCount(kSample), 2);
  CHECK_EQ(k.retainKextWithLoadTag(kSample), OK);
  CHECK_EQ(k.retainCount(kSample), 3);
  k.injectFault(Kpi::Release, RC_kOSReturnError, 1);
  CHECK_EQ(k.releaseKextWithLoadTag(kSample), RC_kOSReturnError);
  CHECK_EQ(k.retainCount(kSample), 3);
  CHECK(!k.autounloadArmed());  // a faulted release changes nothing
  CHECK_EQ(k.releaseKextWithLoadTag(kSample), OK);
  CHECK_EQ(k.retainCount(kSample), 2);
  CHECK(k.autounloadArmed());
  // A release fault does not touch retains, and vice versa.
  k.injectFault(Kpi::Release, 0xE00002BCu, 1);
  CHECK_EQ(k.retainKextWithLoadTag(kSample), OK);
  CHECK_EQ(k.releaseKextWithLoadTag(kSample), 0xE00002BCu);
  CHECK_EQ(k.releaseKextWithLoadTag(kSample), OK);
  CHECK_EQ(k.retainCount(kSample), 2);
  // A faulted over-release does not panic (nothing happened).
  k.injectFault(Kpi::Release, RC_kOSKextReturnNotFound, 1);
  CHECK_EQ(k.releaseKextWithLoadTag(kSample), RC_kOSKextReturnNotFound);
  CHECK(!k.panicked());
}

TEST(user_client_instances) {
  SimKernel k;
  auto clients = [&k]() { return infoFor(k.loadedKexts(), kSample)->classes[1].instances; };
  CHECK_EQ(k.openUserClient(), RC_kIOReturnSuccess);
  CHECK_EQ(clients(), 1u);
  CHECK_EQ(k.openUserClient(), RC_kIOReturnSuccess);
  CHECK_EQ(clients(), 2u);
  k.closeUserClient();
  CHECK_EQ(clients(), 1u);
  // With its service gone, an open user client still keeps the kext loaded.
  CHECK_EQ(k.setInstances(kSample, KB_SERVICE_CLASS_NAME, 0), OK);
  CHECK_EQ(k.openUserClient(), RC_kIOReturnNotFound);
  CHECK_EQ(RC_kIOReturnNotFound, 0xE00002F0u);
  CHECK_EQ(clients(), 1u);
  CHECK_EQ(k.retainKextWithLoadTag(kSample), OK);
  CHECK_EQ(k.releaseKextWithLoadTag(kSample), OK);
  k.advance(60000);
  CHECK(loaded(k, kSample));
  CHECK_EQ(k.unloadKext(kSample), RC_kOSKextReturnInUse);
  k.closeUserClient();
  CHECK_EQ(clients(), 0u);
  k.closeUserClient();  // never below zero
  CHECK_EQ(clients(), 0u);
  CHECK_EQ(k.retainKextWithLoadTag(kSample), OK);
  CHECK_EQ(k.releaseKextWithLoadTag(kSample), OK);
  k.advance(60000);
  CHECK(!loaded(k, kSample));
  CHECK_EQ(k.openUserClient(), RC_kIOReturnNotFound);
  k.closeUserClient();  // no-op with the kext gone
  CHECK_EQ(k.sampleLoadTag(), kSample);
}

TEST(sample_kext_api_and_user_client_core) {
  auto kernel = std::make_shared<SimKernel>();
  SampleKextApi api(kernel);
  CHECK_EQ(api.ownLoadTag(), kSample);
  CHECK_STR(api.ownIdentifier(), KB_SAMPLE_BUNDLE_ID);
  CHECK_STR(api.ownVersion(), KB_SAMPLE_VERSION);
  CHECK_EQ(api.retainKext(kSample), OK);
  CHECK_EQ(kernel->retainCount(kSample), 3);
  CHECK_EQ(api.releaseKext(kSample), OK);
  CHECK_EQ(kernel->retainCount(kSample), 2);
  CHECK_EQ(api.retainKext(0xFFFFFFFFu), RC_kOSKextReturnInvalidArgument);
  CHECK_EQ(api.releaseKext(77), RC_kOSKextReturnNotFound);

  // Through the user-client core: retains are ledgered and released on close.
  MutexLock lock;
  UserClientCore core(api, lock, true);
  uint64_t in[1] = {kIokit};
  uint64_t out[2] = {0, 0};
  MethodArgs args = {in, 1, nullptr, 0, out, 2, nullptr, 0, false};
  CHECK_EQ(core.externalMethod(kSelectorRetain, args), RC_kIOReturnSuccess);
  CHECK_EQ(out[0], (uint64_t)OK);
  CHECK_EQ(out[1], 1u);
  args = {in, 1, nullptr, 0, out, 2, nullptr, 0, false};
  CHECK_EQ(core.externalMethod(kSelectorRetain, args), RC_kIOReturnSuccess);
  CHECK_EQ(kernel->retainCount(kIokit), 5);
  // An asynchronous call (a wake port was sent) is refused before anything happens.
  args = {in, 1, nullptr, 0, out, 2, nullptr, 0, false};
  args.async = true;
  CHECK_EQ(core.externalMethod(kSelectorRetain, args), RC_kIOReturnBadArgument);
  CHECK_EQ(kernel->retainCount(kIokit), 5);
  CHECK_EQ(core.close(), 2u);
  CHECK_EQ(kernel->retainCount(kIokit), 3);
  CHECK(!kernel->panicked());
}

TEST(threads_retain_release_same_tag) {
  SimKernel k;
  uint32_t t = load(k, spec("com.example.hot"));
  std::vector<std::thread> threads;
  std::vector<int> bad(4, 0);
  for (int i = 0; i < 4; i++)
    threads.emplace_back([&k, &bad, t, i]() {
      for (int n = 0; n < 10000; n++) {
        if (k.retainKextWithLoadTag(t) != RC_kOSReturnSuccess) bad[i]++;
        if (k.releaseKextWithLoadTag(t) != RC_kOSReturnSuccess) bad[i]++;
      }
    });
  for (std::thread &th : threads) th.join();
  for (int i = 0; i < 4; i++) CHECK_EQ(bad[i], 0);
  CHECK_EQ(k.retainCount(t), 2);
  CHECK(!k.panicked());
  CHECK_EQ(infoFor(k.loadedKexts(), t)->retainCount, 0);
}

TEST(threads_mixed_calls) {
  SimKernel k;
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; i++)
    threads.emplace_back([&k, i]() {
      for (int n = 0; n < 2000; n++) {
        k.retainKextWithLoadTag(kSample);
        if (i == 0) k.loadedKexts();
        if (i == 1) k.advance(1);
        k.releaseKextWithLoadTag(kSample);
      }
    });
  for (std::thread &th : threads) th.join();
  CHECK_EQ(k.retainCount(kSample), 2);
  CHECK_EQ(k.now(), 2000u);
  CHECK(!k.panicked());
}

TEST(ten_thousand_kexts) {
  SimKernel k;
  uint32_t first = 0, last = 0;
  for (int i = 0; i < 10000; i++) {
    KextSpec s = spec("com.example.k" + std::to_string(i),
                      i ? std::vector<std::string>{"com.example.k" + std::to_string(i - 1),
                                                   "com.apple.kpi.libkern"}
                        : std::vector<std::string>{"com.apple.kpi.libkern"});
    uint32_t t = load(k, s);
    if (i == 0) first = t;
    last = t;
  }
  CHECK_EQ(first, 9u);
  CHECK_EQ(last, 10008u);
  std::vector<KextRow> v = k.loadedKexts();
  CHECK_EQ(v.size(), 10009u);
  CHECK_EQ(v[kLibkern].retainCount, 10001);
  CHECK_EQ(v[10].retainCount, 1);
  CHECK_EQ(v[10].dependencies.size(), 2u);
  CHECK_EQ(v[10].dependencies[0], 9u);
  CHECK_EQ(v[10].dependencies[1], kLibkern);
  CHECK_EQ(v.back().retainCount, 0);
  CHECK_EQ(k.lookupLoadTag("com.example.k5000"), 5009u);
  CHECK_EQ(k.retainKextWithLoadTag(5009), OK);
  CHECK_EQ(k.retainCount(5009), 4);
  CHECK_EQ(k.releaseKextWithLoadTag(5009), OK);
  // The whole 10,000-deep chain unwinds in one scan.
  k.advance(60000);
  CHECK_EQ(k.loadedKexts().size(), 9u);
  CHECK_EQ(k.retainCount(kLibkern), 3);
  CHECK_EQ(k.lookupLoadTag("com.example.k5000"), kInvalidLoadTag);
  CHECK_EQ(load(k, spec("com.example.k0")), 10009u);
}

// ---- events ----

std::vector<Event> eventsFrom(const SimKernel &k, uint64_t *cursor, uint64_t *dropped = nullptr) {
  std::vector<Event> v;
  uint64_t d = 0;
  *cursor = k.eventsSince(*cursor, v, &d);
  if (dropped) *dropped = d;
  return v;
}

TEST(events_boot_world_then_retain_release_autounload_in_order) {
  SimKernel k;
  uint64_t cursor = 0;
  std::vector<Event> boot = eventsFrom(k, &cursor);
  // 9 loads, plus the sample's four libraries going 0 -> 1 just before the sample loads.
  CHECK_EQ(boot.size(), 13u);
  CHECK_EQ(cursor, 13u);
  CHECK_EQ(k.eventCursor(), 13u);
  for (size_t i = 0; i < boot.size(); i++) CHECK_EQ(boot[i].seq, (uint64_t)i);
  if (boot.size() == 13) {
    CHECK(boot[0].type == EventType::Loaded);
    CHECK_STR(boot[0].bundleId, "__kernel__");
    CHECK(boot[8].type == EventType::RetainCount);
    CHECK_EQ(boot[8].loadTag, kBsd);
    CHECK_EQ(boot[8].from, 0);
    CHECK_EQ(boot[8].to, 1);
    CHECK(boot[12].type == EventType::Loaded);
    CHECK_EQ(boot[12].loadTag, kSample);
  }
  uint32_t x = load(k, spec("com.example.x", {}, false));
  k.advance(5);
  CHECK_EQ(k.retainKextWithLoadTag(x), OK);
  k.advance(7);
  CHECK_EQ(k.releaseKextWithLoadTag(x), OK);
  uint64_t due = 0;
  CHECK(k.nextDueMs(&due));
  CHECK_EQ(due, 12u + 60000u);
  k.advance(59999);
  CHECK(eventsFrom(k, &cursor).size() == 3u);  // nothing new at 59,999 after the release...
  cursor -= 3;
  k.advance(1);                                  // ...the unload comes at exactly 60,000
  CHECK(!k.nextDueMs(&due));
  std::vector<Event> v = eventsFrom(k, &cursor);
  CHECK_EQ(v.size(), 4u);
  if (v.size() == 4) {
    CHECK(v[0].type == EventType::Loaded);
    CHECK_EQ(v[0].timeMs, 0u);
    CHECK(v[1].type == EventType::RetainCount);
    CHECK_EQ(v[1].from, 0);
    CHECK_EQ(v[1].to, 1);
    CHECK_EQ(v[1].timeMs, 5u);
    CHECK(v[2].type == EventType::RetainCount);
    CHECK_EQ(v[2].from, 1);
    CHECK_EQ(v[2].to, 0);
    CHECK_EQ(v[2].timeMs, 12u);
    CHECK(v[3].type == EventType::Unloaded);
    CHECK(v[3].cause == UnloadCause::Autounload);
    CHECK_EQ(v[3].loadTag, x);
    CHECK_STR(v[3].bundleId, "com.example.x");
    CHECK_EQ(v[3].timeMs, 60012u);
  }
  CHECK(eventsFrom(k, &cursor).empty());
}

TEST(events_explicit_unload_dependents_instances_clients_panic) {
  SimKernel k;
  uint64_t cursor = k.eventCursor();
  uint32_t lib = load(k, spec("com.example.lib"));
  uint32_t dep = load(k, spec("com.example.dep", {"com.example.lib"}));
  KextSpec withClass = spec("com.example.c");
  withClass.classes.push_back({"CThing", "OSObject", 0});
  uint32_t c = load(k, withClass);
  CHECK_EQ(k.setInstances(c, "CThing", 3), OK);
  CHECK_EQ(k.setInstances(c, "CThing", 3), OK);  // no change, no event
  CHECK_EQ(k.unloadKext(dep), OK);
  CHECK_EQ(k.openUserClient(nullptr, 42), RC_kIOReturnSuccess);
  k.closeUserClient(nullptr, 42);
  CHECK_EQ(k.releaseKextWithLoadTag(lib), OK);  // below the baseline: the panic
  std::vector<Event> v = eventsFrom(k, &cursor);
  const EventType want[] = {EventType::Loaded,      EventType::RetainCount, EventType::Loaded,
                            EventType::Loaded,      EventType::Instances,   EventType::Unloaded,
                            EventType::RetainCount, EventType::Instances,   EventType::Instances,
                            EventType::RetainCount, EventType::Panic};
  CHECK_EQ(v.size(), sizeof want / sizeof want[0]);
  for (size_t i = 0; i < v.size() && i < sizeof want / sizeof want[0]; i++) CHECK(v[i].type == want[i]);
  if (v.size() == 11) {
    CHECK_EQ(v[1].loadTag, lib);  // the dependent's link retains the library first
    CHECK_EQ(v[4].from, 0);
    CHECK_EQ(v[4].to, 3);
    CHECK_STR(v[4].className, "CThing");
    CHECK(v[5].cause == UnloadCause::Explicit);
    CHECK_EQ(v[5].loadTag, dep);
    CHECK_EQ(v[6].loadTag, lib);
    CHECK_EQ(v[6].from, 1);
    CHECK_EQ(v[6].to, 0);
    CHECK_STR(v[7].className, KB_USER_CLIENT_CLASS_NAME);
    CHECK_EQ(v[7].to, 1);
    CHECK_EQ(v[8].to, 0);
    CHECK_EQ(v[9].to, -1);
    CHECK_STR(v[10].message, k.panicRecord().message);
  }
  uint64_t due = 0;
  CHECK(!k.nextDueMs(&due));  // a panicked machine has nothing due
}

TEST(events_ring_is_bounded_and_reports_what_a_slow_reader_missed) {
  SimKernel k;
  uint64_t cursor = k.eventCursor();  // 13: the boot world
  const uint64_t n = SimKernel::kEventRing + 100;
  for (uint64_t i = 0; i < n / 2; i++) {
    CHECK_EQ(k.retainKextWithLoadTag(kKernel), OK);
    CHECK_EQ(k.releaseKextWithLoadTag(kKernel), OK);
  }
  uint64_t dropped = 0;
  std::vector<Event> v = eventsFrom(k, &cursor, &dropped);
  CHECK_EQ(dropped, 100u);
  CHECK_EQ(v.size(), SimKernel::kEventRing);
  CHECK_EQ(v.front().seq, 13u + 100u);
  CHECK_EQ(v.back().seq, 13u + n - 1);
  CHECK_EQ(cursor, 13u + n);
  // A reader that kept up misses nothing; a cursor from the future resumes at the end.
  CHECK_EQ(k.retainKextWithLoadTag(kKernel), OK);
  v = eventsFrom(k, &cursor, &dropped);
  CHECK_EQ(dropped, 0u);
  CHECK_EQ(v.size(), 1u);
  uint64_t future = cursor + 1000;
  v = eventsFrom(k, &future, &dropped);
  CHECK(v.empty());
  CHECK_EQ(future, cursor);
}

TEST(events_of_an_unloaded_kext_keep_its_bundle_id_while_the_ring_holds_them) {
  // The ring stores no strings for a kext's events (their id is looked up by tag when read),
  // so a kext unloaded and swept out of the table must still be named by its events.
  SimKernel k;
  uint64_t cursor = k.eventCursor();
  uint32_t a = load(k, spec("com.example.swept.a"));
  uint32_t b = load(k, spec("com.example.swept.b"));
  CHECK_EQ(k.retainKextWithLoadTag(a), OK);
  CHECK_EQ(k.releaseKextWithLoadTag(a), OK);
  CHECK_EQ(k.unloadKext(a), OK);
  CHECK_EQ(k.lookupLoadTag("com.example.swept.a"), kInvalidLoadTag);  // gone from the table
  uint64_t dropped = 0;
  std::vector<Event> v = eventsFrom(k, &cursor, &dropped);
  size_t named = 0;
  for (const Event &e : v) {
    CHECK_STR(e.bundleId, e.loadTag == a ? "com.example.swept.a" : "com.example.swept.b");
    if (e.loadTag == a) named++;
  }
  CHECK_EQ(named, 4u);  // loaded, +1, -1, unloaded
  // Later events do not drop the id while the ring still holds one of the unloaded kext's
  // events: exactly when its last one (Unloaded) is the oldest in the ring, it is still named.
  const uint64_t lastOfA = v.back().seq;
  CHECK(v.back().type == EventType::Unloaded && v.back().loadTag == a);
  for (uint64_t i = 0; k.eventCursor() < lastOfA + SimKernel::kEventRing; i++)  // one event each
    CHECK_EQ(i % 2 ? k.releaseKextWithLoadTag(b) : k.retainKextWithLoadTag(b), OK);
  uint64_t start = 0;
  v = eventsFrom(k, &start, &dropped);
  CHECK_EQ(v.front().seq, lastOfA);
  CHECK_EQ(v.front().loadTag, a);
  CHECK_STR(v.front().bundleId, "com.example.swept.a");
  if (k.retainCount(b) > 0) CHECK_EQ(k.releaseKextWithLoadTag(b), OK);
  // Past the ring: the unloaded kext's events are gone, the others' still named.
  for (uint64_t i = 0; i < SimKernel::kEventRing / 2; i++) {
    CHECK_EQ(k.retainKextWithLoadTag(b), OK);
    CHECK_EQ(k.releaseKextWithLoadTag(b), OK);
  }
  uint64_t from = 0;
  v = eventsFrom(k, &from, &dropped);
  CHECK_EQ(v.size(), SimKernel::kEventRing);
  for (const Event &e : v) {
    CHECK(e.loadTag != a);
    if (e.loadTag == b) CHECK_STR(e.bundleId, "com.example.swept.b");
    CHECK(!e.bundleId.empty());
  }
}

TEST(flags_and_user_client_pids) {
  SimKernel k;
  KextFlags f;
  CHECK(k.kextFlags(kKernel, &f));
  CHECK(f.kernelComponent);
  CHECK(!f.autounload);
  CHECK(k.kextFlags(kSample, &f));
  CHECK(f.autounload);  // it registers an IOService subclass
  CHECK(!f.kernelComponent);
  CHECK(!k.kextFlags(99, &f));
  uint32_t x = load(k, spec("com.example.x", {}, false));
  CHECK(k.kextFlags(x, &f));
  CHECK(!f.autounload);
  CHECK_EQ(k.retainKextWithLoadTag(x), OK);
  CHECK(k.kextFlags(x, &f));
  CHECK(f.autounload);  // a retain turns it on
  CHECK(k.userClientPids().empty());
  CHECK_EQ(k.openUserClient(nullptr, 7), RC_kIOReturnSuccess);
  CHECK_EQ(k.openUserClient(nullptr, 9), RC_kIOReturnSuccess);
  CHECK(k.userClientPids() == std::vector<int32_t>({7, 9}));
  k.closeUserClient(nullptr, 7);
  CHECK(k.userClientPids() == std::vector<int32_t>({9}));
  CHECK(k.unloadEnabled());
  SimKernel::Options o;
  o.unloadEnabled = false;
  SimKernel off(o);
  CHECK(!off.unloadEnabled());
}

// ---- reset(): a reset kernel is indistinguishable from a new one ----

void sameEvents(SimKernel &a, SimKernel &b) {
  // The event stream from boot (every field), and its cursor.
  CHECK_EQ(a.eventCursor(), b.eventCursor());
  std::vector<Event> ea, eb;
  uint64_t dropA = 9, dropB = 9;
  CHECK_EQ(a.eventsSince(0, ea, &dropA), b.eventsSince(0, eb, &dropB));
  CHECK_EQ(dropA, dropB);
  CHECK_EQ(ea.size(), eb.size());
  for (size_t i = 0; i < ea.size() && i < eb.size(); i++) {
    CHECK_EQ(ea[i].seq, eb[i].seq);
    CHECK_EQ(ea[i].timeMs, eb[i].timeMs);
    CHECK_EQ((int)ea[i].type, (int)eb[i].type);
    CHECK_EQ(ea[i].loadTag, eb[i].loadTag);
    CHECK_STR(ea[i].bundleId, eb[i].bundleId);
    CHECK_EQ((int)ea[i].cause, (int)eb[i].cause);
    CHECK_EQ(ea[i].from, eb[i].from);
    CHECK_EQ(ea[i].to, eb[i].to);
    CHECK_STR(ea[i].className, eb[i].className);
    CHECK_STR(ea[i].message, eb[i].message);
  }
}

// Everything a caller can observe of a kernel, compared between a and b (a new kernel):
// the table, per-tag counts and flags, the clock and the scan, the event stream from 0, the
// clients, panic state, the options, and what happens next (the next tag and its UUID, a KPI
// call that a leftover fault would refuse, a delay left over, the per-process open cap, the
// autounload scan).
// A resource callback that does nothing (reset tests only compare what the kernel records).
void noteCallback(uint32_t, int32_t, const void *, uint32_t, void *) {}
// Counts its calls in *(int *)context (reset tests: a dropped record is never called).
void countCallback(uint32_t, int32_t, const void *, uint32_t, void *context) {
  if (context) ++*(int *)context;
}

void checkSameAsNew(SimKernel &a, SimKernel &b) {
  std::vector<KextRow> ta = a.loadedKexts(), tb = b.loadedKexts();
  CHECK_EQ(ta.size(), tb.size());
  for (size_t i = 0; i < ta.size() && i < tb.size(); i++) {
    CHECK_STR(ta[i].bundleId, tb[i].bundleId);
    CHECK_STR(ta[i].version, tb[i].version);
    CHECK_STR(ta[i].uuid, tb[i].uuid);
    CHECK_EQ(ta[i].loadTag, tb[i].loadTag);
    CHECK_EQ(ta[i].retainCount, tb[i].retainCount);
    CHECK_EQ(ta[i].started, tb[i].started);
    CHECK(ta[i].dependencies == tb[i].dependencies);
    CHECK_EQ(ta[i].classes.size(), tb[i].classes.size());
    for (size_t c = 0; c < ta[i].classes.size() && c < tb[i].classes.size(); c++) {
      CHECK_STR(ta[i].classes[c].name, tb[i].classes[c].name);
      CHECK_STR(ta[i].classes[c].superclass, tb[i].classes[c].superclass);
      CHECK_EQ(ta[i].classes[c].instances, tb[i].classes[c].instances);
    }
  }
  for (uint32_t tag = 0; tag < 40; tag++) {
    CHECK_EQ(a.retainCount(tag), b.retainCount(tag));
    KextFlags fa, fb;
    bool ha = a.kextFlags(tag, &fa), hb = b.kextFlags(tag, &fb);
    CHECK_EQ(ha, hb);
    if (ha && hb) {
      CHECK_EQ(fa.autounload, fb.autounload);
      CHECK_EQ(fa.unloadUnsupported, fb.unloadUnsupported);
      CHECK_EQ(fa.kernelComponent, fb.kernelComponent);
    }
  }
  for (const char *id : {"com.example.lib", "com.example.dep", "com.example.gone", KB_SAMPLE_BUNDLE_ID})
    CHECK_EQ(a.lookupLoadTag(id), b.lookupLoadTag(id));
  CHECK_EQ(a.sampleLoadTag(), b.sampleLoadTag());
  CHECK_EQ(a.now(), b.now());
  CHECK_EQ(a.autounloadArmed(), b.autounloadArmed());
  uint64_t da = 1, db = 2;
  CHECK_EQ(a.nextDueMs(&da), b.nextDueMs(&db));
  CHECK_EQ(a.unloadEnabled(), b.unloadEnabled());
  CHECK_EQ(a.autounloadGloballyEnabled(), b.autounloadGloballyEnabled());
  CHECK(a.userClientPids() == b.userClientPids());
  CHECK_EQ(a.panicked(), b.panicked());
  PanicRecord pa = a.panicRecord(), pb = b.panicRecord();
  CHECK_STR(pa.call, pb.call);
  CHECK_STR(pa.message, pb.message);
  CHECK_EQ(pa.loadTag, pb.loadTag);
  CHECK_EQ(pa.timeMs, pb.timeMs);
  sameEvents(a, b);
  // kernelmanagerd as at boot: the same bundles installed, nothing pending or posted.
  CHECK_EQ(a.installed("com.example.installed"), b.installed("com.example.installed"));
  CHECK_EQ(a.installed(KB_SAMPLE_BUNDLE_ID), b.installed(KB_SAMPLE_BUNDLE_ID));
  CHECK_EQ(a.pendingRequests().size(), b.pendingRequests().size());
  // What happens next is the same too.
  CHECK_EQ(a.takeCallDelay(), b.takeCallDelay());  // no delay left over
  CHECK_EQ(a.retainKextWithLoadTag(kSample), b.retainKextWithLoadTag(kSample));  // no fault left
  CHECK_EQ(a.releaseKextWithLoadTag(kSample), b.releaseKextWithLoadTag(kSample));
  uint32_t na = 0, nb = 1;
  CHECK_EQ(a.loadKext(spec("com.example.next"), &na), b.loadKext(spec("com.example.next"), &nb));
  CHECK_EQ(na, nb);  // the tag counter
  std::vector<KextRow> va = a.loadedKexts(), vb = b.loadedKexts();
  const KextRow *xa = infoFor(va, na), *xb = infoFor(vb, nb);
  CHECK(xa && xb && xa->uuid == xb->uuid);
  for (uint32_t i = 0; i <= OpenLimit::kPerProcess; i++)  // the per-process cap starts empty
    CHECK_EQ(a.openUserClient(nullptr, 77), b.openUserClient(nullptr, 77));
  for (uint32_t i = 0; i < OpenLimit::kPerProcess; i++) {
    a.closeUserClient(nullptr, 77);
    b.closeUserClient(nullptr, 77);
  }
  a.advance(SimKernel::kConsiderUnloadDelayMs);  // the scan armed by the release above
  b.advance(SimKernel::kConsiderUnloadDelayMs);
  CHECK_EQ(a.retainCount(kSample), b.retainCount(kSample));
  CHECK_EQ(a.lookupLoadTag(KB_SAMPLE_BUNDLE_ID), b.lookupLoadTag(KB_SAMPLE_BUNDLE_ID));
  sameEvents(a, b);  // the events since, written into a reset ring's reused slots
  // The request tag counter, the delays and the resource controls: a request asked of both
  // gets the same tag and the same answer at the same virtual time.
  uint32_t ra = 1, rb = 2;
  CHECK_EQ(a.installKext(spec("com.example.res"), {{"x", {9}}}), OK);
  CHECK_EQ(b.installKext(spec("com.example.res"), {{"x", {9}}}), OK);
  CHECK_EQ(a.requestResource(a.sampleLoadTag(), "com.example.res", "x", noteCallback, nullptr, &ra),
           b.requestResource(b.sampleLoadTag(), "com.example.res", "x", noteCallback, nullptr, &rb));
  CHECK_EQ(ra, rb);
  uint64_t dueA = 0, dueB = 1;
  CHECK_EQ(a.nextDueMs(&dueA), b.nextDueMs(&dueB));
  CHECK_EQ(dueA, dueB);
  a.advance(dueA - a.now());
  b.advance(dueB - b.now());
  sameEvents(a, b);
  CHECK_EQ(a.loadKextWithIdentifier("com.example.unknown"), b.loadKextWithIdentifier("com.example.unknown"));
  // No cancel fault or drop left over: a cancel dequeues, a delivery calls back.
  int calledA = 0, calledB = 0;
  CHECK_EQ(a.requestResource(a.sampleLoadTag(), "com.example.res", "x", countCallback, &calledA, &ra),
           b.requestResource(b.sampleLoadTag(), "com.example.res", "x", countCallback, &calledB, &rb));
  void *ca = nullptr, *cb = nullptr;
  CHECK_EQ(a.cancelRequest(ra, &ca), b.cancelRequest(rb, &cb));
  CHECK(ca == &calledA && cb == &calledB);  // dequeued (a left-over fault answers an error)
  CHECK_EQ(a.requestResource(a.sampleLoadTag(), "com.example.res", "x", countCallback, &calledA, &ra),
           b.requestResource(b.sampleLoadTag(), "com.example.res", "x", countCallback, &calledB, &rb));
  a.advance(100);
  b.advance(100);
  CHECK_EQ(calledA, calledB);
  CHECK_EQ(calledA, 1);
}

// Drives every part of a kernel's state away from the default world.
void dirty(SimKernel &k) {
  uint32_t lib = load(k, spec("com.example.lib"));
  KextSpec d = spec("com.example.dep", {"com.example.lib"});
  d.classes = {{"com_example_Thing", "OSObject", 3}};
  d.uuid = "11111111-2222-3333-4444-555555555555";
  uint32_t dep = load(k, d);
  uint32_t gone = load(k, spec("com.example.gone"));
  CHECK_EQ(k.unloadKext(gone), k.unloadEnabled() ? OK : RC_kOSKextReturnDisabled);  // issued (and gone)
  CHECK_EQ(k.retainKextWithLoadTag(lib), OK);
  CHECK_EQ(k.releaseKextWithLoadTag(lib), OK);  // arms the scan
  k.advance(1234);
  CHECK_EQ(k.setInstances(dep, "com_example_Thing", 1), OK);
  CHECK_EQ(k.openUserClient(nullptr, 5), RC_kIOReturnSuccess);
  k.closeUserClient(nullptr, 5);
  for (int i = 0; i < 2100; i++) {  // past the event ring: it wraps
    CHECK_EQ(k.retainKextWithLoadTag(kSample), OK);
    CHECK_EQ(k.releaseKextWithLoadTag(kSample), OK);
  }
  CHECK_EQ(k.setInstances(kSample, KB_SERVICE_CLASS_NAME, 0), OK);  // the service terminated
  k.injectFault(Kpi::Retain, RC_kOSKextReturnNoMemory, 5);  // left over at the reset
  k.injectFault(Kpi::Release, RC_kOSReturnError, 2);
  k.delayCalls(7, 3);
  // kernelmanagerd: an installed bundle with a resource, a posted load, a pending and a
  // withheld request, changed delays and a fault left over.
  CHECK_EQ(k.installKext(spec("com.example.installed"), {{"r", {1, 2, 3}}}), OK);
  CHECK_EQ(k.loadKextWithIdentifier("com.example.unknown"), RC_kOSKextReturnDeferred);
  uint32_t rt = 0;
  CHECK_EQ(k.requestResource(dep, "com.example.installed", "r", noteCallback, nullptr, &rt), OK);
  k.setResourceDelay(999);
  k.setLoadReplyDelay(777);
  k.withholdResources(true);
  k.failResources(RC_kOSReturnError, 4);
  k.failCancels(3);
  k.dropResources(2);
  // Over-release: the machine panics.
  CHECK_EQ(k.releaseKextWithLoadTag(dep), RC_kOSReturnError);  // the injected fault first
  for (int i = 0; i < 4; i++) k.releaseKextWithLoadTag(kMach);  // a fault, then below its baseline
  CHECK(k.panicked());
}

TEST(reset_is_indistinguishable_from_new, "reset(): a used kernel (kexts, clock, scan, events past the ring, faults, delay, panic) is a new one again") {
  for (int opts = 0; opts < 4; opts++) {
    SimKernel::Options o;
    o.autounloadEnabled = !(opts & 1);
    o.unloadEnabled = !(opts & 2);
    SimKernel a;
    dirty(a);
    CHECK(a.reset(o));
    SimKernel b(o);
    checkSameAsNew(a, b);
    // And again: a kernel reset twice (the fuzzer's loop) is still a new one.
    SimKernel c(o);
    dirty(a);
    CHECK(a.reset(o));
    checkSameAsNew(a, c);
  }
#if defined(__GLIBCXX__) && defined(__x86_64__) && defined(__linux__)
  // A tripwire for new members: when SimKernel grows, reset() must reset the new member and
  // checkSameAsNew above must observe it; then update this number (libstdc++, x86-64 Linux).
  if (sizeof(SimKernel) != 1280)
    fprintf(stderr, "  sizeof(SimKernel) is %zu: a member was added or removed. Reset it in "
            "SimKernel::reset (sim/sim_kernel.cpp), compare it in checkSameAsNew, then update "
            "the size here.\n", sizeof(SimKernel));
  CHECK_EQ(sizeof(SimKernel), 1280u);
#endif
}

TEST(reset_refused_with_a_client_open, "reset(): refused, changing nothing, while a user client is open") {
  SimKernel k;
  uint32_t x = load(k, spec("com.example.x"));
  CHECK_EQ(k.openUserClient(nullptr, 3), RC_kIOReturnSuccess);
  CHECK(!k.reset(SimKernel::Options()));
  CHECK(loaded(k, x));
  CHECK(k.userClientPids() == std::vector<int32_t>({3}));
  k.closeUserClient(nullptr, 3);
  CHECK(k.reset(SimKernel::Options()));
  CHECK(!loaded(k, x));
  SimKernel fresh;
  checkSameAsNew(k, fresh);
}

}  // namespace


// ---- issue 13: load by identifier, resource requests (sim + core + SimTransport) ----

namespace req {

struct Got {
  uint64_t refcon;
  uint32_t result;
  uint32_t tag, osReturn, length;
};

// The transport's completion sink: records what arrives.
struct Sink : AsyncSink {
  std::mutex mu;
  std::vector<Got> got;
  void asyncCompleted(uint64_t refcon, uint32_t result, const uint64_t *args, uint32_t n) override {
    std::lock_guard<std::mutex> g(mu);
    CHECK_EQ(n, (uint32_t)Completion::fieldCount);
    got.push_back({refcon, result, (uint32_t)args[Completion::requestTag],
                   (uint32_t)args[Completion::osReturn], (uint32_t)args[Completion::length]});
  }
  size_t count() {
    std::lock_guard<std::mutex> g(mu);
    return got.size();
  }
};

struct Conn {
  std::shared_ptr<SimKernel> kernel;
  std::unique_ptr<Transport> t;
  Sink sink;
  SimTransport *sim() { return static_cast<SimTransport *>(t.get()); }
  explicit Conn(std::shared_ptr<SimKernel> k, bool privileged = true) : kernel(k) {
    uint32_t kr = 0;
    t = SimTransport::open(k, privileged, &kr);
    CHECK_EQ(kr, RC_kIOReturnSuccess);
    t->setAsyncSink(&sink);
  }
  // selector 6 with the id's bytes as given (size: what the caller passes)
  uint32_t loadId(const void *bytes, size_t size, uint32_t *osr) {
    uint64_t out[1] = {0xBAD};
    uint32_t outCnt = 1;
    size_t outStruct = 0;
    uint32_t kr = t->callMethod(kSelectorLoadKextWithIdentifier, nullptr, 0, bytes, size, out,
                                &outCnt, nullptr, &outStruct);
    if (osr) *osr = (uint32_t)out[0];
    return kr;
  }
  uint32_t loadId(const std::string &id, uint32_t *osr) { return loadId(id.c_str(), id.size() + 1, osr); }
  uint32_t request(uint64_t refcon, const std::string &id, const std::string &name, uint32_t *osr,
                   uint32_t *tag) {
    uint8_t in[kBundleIdSize + kResourceNameSize] = {0};
    memcpy(in, id.data(), id.size() < kBundleIdSize ? id.size() : kBundleIdSize);
    memcpy(in + kBundleIdSize, name.data(), name.size() < kResourceNameSize ? name.size() : kResourceNameSize);
    return requestRaw(refcon, in, osr, tag);
  }
  uint32_t requestRaw(uint64_t refcon, const uint8_t *in, uint32_t *osr, uint32_t *tag) {
    uint64_t out[2] = {0xBAD, 0xBAD};
    uint32_t outCnt = 2;
    size_t outStruct = 0;
    uint32_t kr = t->callAsyncMethod(kSelectorRequestResource, refcon, nullptr, 0, in,
                                     kBundleIdSize + kResourceNameSize, out, &outCnt, nullptr, &outStruct);
    if (osr) *osr = (uint32_t)out[0];
    if (tag) *tag = (uint32_t)out[1];
    return kr;
  }
  uint32_t fetch(uint32_t tag, uint32_t offset, std::vector<uint8_t> &bytes, uint32_t *length) {
    uint64_t in[2] = {tag, offset};
    uint64_t out[2] = {0, 0};
    uint32_t outCnt = 2;
    uint8_t chunk[kFetchChunkSize];
    size_t outStruct = sizeof chunk;
    uint32_t kr = t->callMethod(kSelectorFetchResource, in, 2, nullptr, 0, out, &outCnt, chunk, &outStruct);
    if (kr == RC_kIOReturnSuccess) {
      CHECK_EQ(out[1], outStruct);
      bytes.insert(bytes.end(), chunk, chunk + outStruct);
      if (length) *length = (uint32_t)out[0];
    }
    return kr;
  }
  uint32_t fetchAll(uint32_t tag, std::vector<uint8_t> &bytes) {
    uint32_t length = 0;
    for (;;) {
      uint32_t kr = fetch(tag, (uint32_t)bytes.size(), bytes, &length);
      if (kr != RC_kIOReturnSuccess) return kr;
      if (bytes.size() >= length) return kr;
    }
  }
  uint32_t cancel(uint32_t tag, uint32_t *osr) {
    uint64_t in[1] = {tag};
    uint64_t out[1] = {0xBAD};
    uint32_t outCnt = 1;
    size_t outStruct = 0;
    uint32_t kr = t->callMethod(kSelectorCancelRequest, in, 1, nullptr, 0, out, &outCnt, nullptr, &outStruct);
    if (osr) *osr = (uint32_t)out[0];
    return kr;
  }
};

std::vector<uint8_t> pattern(size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; i++) v[i] = (uint8_t)(i * 131 + (i >> 8) + 7);
  return v;
}

size_t countEvents(SimKernel &k, EventType type, uint64_t from = 0) {
  std::vector<Event> ev;
  uint64_t dropped;
  k.eventsSince(from, ev, &dropped);
  size_t n = 0;
  for (const Event &e : ev)
    if (e.type == type) n++;
  return n;
}

const char *const kRes = "org.kextbridge.sample";  // the sample's own bundle carries the resources

}  // namespace req

using namespace req;

TEST(load_by_identifier, "load: unknown → deferred then loaded by the reply; known → new tag; loaded → same tag") {
  auto k = std::make_shared<SimKernel>();
  Conn c(k);
  uint32_t osr = 0;
  // Unknown: deferred, posted once however often it is asked before kernelmanagerd comes.
  CHECK_EQ(c.loadId("com.example.later", &osr), RC_kIOReturnSuccess);
  CHECK_EQ(osr, RC_kOSKextReturnDeferred);
  CHECK_EQ(c.loadId("com.example.later", &osr), RC_kIOReturnSuccess);
  CHECK_EQ(osr, RC_kOSKextReturnDeferred);
  CHECK_EQ(countEvents(*k, EventType::LoadRequested), 1u);
  uint64_t due = 0;
  CHECK(k->nextDueMs(&due));
  CHECK_EQ(due, 10u);
  // Installed before the reply: the reply loads it.
  CHECK_EQ(k->installKext(spec("com.example.later")), OK);
  CHECK_EQ(k->lookupLoadTag("com.example.later"), kInvalidLoadTag);
  k->advance(9);
  CHECK_EQ(k->lookupLoadTag("com.example.later"), kInvalidLoadTag);
  k->advance(1);
  const uint32_t later = k->lookupLoadTag("com.example.later");
  CHECK_EQ(later, kSample + 1);
  // Already loaded: success, the same tag.
  CHECK_EQ(c.loadId("com.example.later", &osr), RC_kIOReturnSuccess);
  CHECK_EQ(osr, OK);
  CHECK_EQ(k->lookupLoadTag("com.example.later"), later);
  // Known (installed) but not loaded: loaded now, a new tag.
  CHECK_EQ(k->installKext(spec("com.example.known")), OK);
  CHECK_EQ(c.loadId("com.example.known", &osr), RC_kIOReturnSuccess);
  CHECK_EQ(osr, OK);
  CHECK_EQ(k->lookupLoadTag("com.example.known"), later + 1);
  // Unknown and never installed: the reply loads nothing; asked again later it is posted again.
  CHECK_EQ(c.loadId("com.example.never", &osr), RC_kIOReturnSuccess);
  CHECK_EQ(osr, RC_kOSKextReturnDeferred);
  k->advance(10);
  CHECK_EQ(k->lookupLoadTag("com.example.never"), kInvalidLoadTag);
  CHECK(!k->nextDueMs(&due));
  CHECK_EQ(c.loadId("com.example.never", &osr), RC_kIOReturnSuccess);
  CHECK_EQ(countEvents(*k, EventType::LoadRequested), 3u);
  // A known kext whose dependency is missing: the load's own error.
  CHECK_EQ(k->installKext(spec("com.example.orphan", {"com.example.absent"})), OK);
  CHECK_EQ(c.loadId("com.example.orphan", &osr), RC_kIOReturnSuccess);
  CHECK_EQ(osr, RC_kOSKextReturnDependencies);
}

TEST(load_by_identifier_refusals, "load: non-admin → NotPrivileged; bad ids → BadArgument, nothing changed") {
  auto k = std::make_shared<SimKernel>();
  CHECK_EQ(k->installKext(spec("com.example.known")), OK);
  Conn user(k, false);
  uint32_t osr = 0;
  CHECK_EQ(user.loadId("com.example.known", &osr), RC_kIOReturnNotPrivileged);
  Conn c(k);
  const uint64_t cursor = k->eventCursor();
  char noNul[64];
  memset(noNul, 'a', sizeof noNul);
  char longer[65];
  memset(longer, 'a', 64);
  longer[64] = 0;
  char sixtyThree[64];
  memset(sixtyThree, 'b', 63);
  sixtyThree[63] = 0;
  CHECK_EQ(c.loadId("", 1, &osr), RC_kIOReturnBadArgument);           // empty
  CHECK_EQ(c.loadId(noNul, sizeof noNul, &osr), RC_kIOReturnBadArgument);  // no NUL within 64
  CHECK_EQ(c.loadId("com.x", 5, &osr), RC_kIOReturnBadArgument);      // NUL not within its size
  CHECK_EQ(c.loadId(longer, sizeof longer, &osr), RC_kIOReturnBadArgument);  // 64 chars
  CHECK_EQ(c.loadId(noNul, 0, &osr), RC_kIOReturnBadArgument);        // nothing
  CHECK_EQ(k->eventCursor(), cursor);                                   // nothing happened
  CHECK_EQ(k->lookupLoadTag("com.example.known"), kInvalidLoadTag);
  // 63 characters is the longest id: it reaches the kernel (unknown → deferred).
  CHECK_EQ(c.loadId(sixtyThree, sizeof sixtyThree, &osr), RC_kIOReturnSuccess);
  CHECK_EQ(osr, RC_kOSKextReturnDeferred);
  // Not asynchronous: an async call of it is refused.
  uint64_t out[1];
  uint32_t outCnt = 1;
  size_t os = 0;
  CHECK_EQ(c.t->callAsyncMethod(kSelectorLoadKextWithIdentifier, 1, nullptr, 0, "com.example.known", 18,
                                out, &outCnt, nullptr, &os),
           RC_kIOReturnBadArgument);
  CHECK_EQ(k->lookupLoadTag("com.example.known"), kInvalidLoadTag);
}

TEST(resources_delivered_intact, "resources: 0, 1, 4097 and 65536 bytes intact; 65537 refused and counted") {
  auto k = std::make_shared<SimKernel>();
  KextSpec sampleSpec;
  sampleSpec.bundleId = kRes;
  Resources res = {{"zero", {}}, {"one", {0x5A}}, {"odd", pattern(4097)},
                   {"max", pattern(kMaxResourceSize)}, {"over", pattern(kMaxResourceSize + 1)}};
  CHECK_EQ(k->installKext(sampleSpec, res), OK);
  Conn c(k);
  const char *names[] = {"zero", "one", "odd", "max", "over"};
  uint32_t tags[5];
  for (int i = 0; i < 5; i++) {
    uint32_t osr = 0;
    CHECK_EQ(c.request(100 + i, kRes, names[i], &osr, &tags[i]), RC_kIOReturnSuccess);
    CHECK_EQ(osr, OK);
    CHECK_EQ(tags[i], (uint32_t)i);  // request tags from 0 up
  }
  CHECK_EQ(k->pendingRequestCount(kSample), 5u);
  CHECK_EQ(c.sink.count(), 0u);  // nothing before the delay
  k->advance(10);
  CHECK_EQ(c.sink.count(), 5u);
  CHECK_EQ(k->pendingRequestCount(kSample), 0u);
  for (int i = 0; i < 5; i++) {
    const Got &g = c.sink.got[i];
    CHECK_EQ(g.refcon, 100u + i);
    CHECK_EQ(g.tag, tags[i]);
    CHECK_EQ(g.osReturn, OK);
    CHECK_EQ(g.length, res[names[i]].size());
    CHECK_EQ(g.result, i == 4 ? RC_kIOReturnNoSpace : RC_kIOReturnSuccess);
  }
  CHECK_EQ(c.sim()->core().oversizeRefused(), 1u);
  std::vector<uint8_t> bytes;
  CHECK_EQ(c.fetchAll(tags[0], bytes), RC_kIOReturnNotFound);  // 0 bytes: nothing kept
  for (int i = 1; i < 4; i++) {
    bytes.clear();
    CHECK_EQ(c.fetchAll(tags[i], bytes), RC_kIOReturnSuccess);
    CHECK(bytes == res[names[i]]);
    bytes.clear();
    CHECK_EQ(c.fetchAll(tags[i], bytes), RC_kIOReturnNotFound);  // handed over once
  }
  CHECK_EQ(c.fetchAll(tags[4], bytes), RC_kIOReturnNotFound);  // the refused one: nothing kept
  CHECK_EQ(c.sim()->core().requestsInUse(), 0u);
  CHECK_EQ(c.sim()->asyncRefsHeld(), 0);
}

TEST(fetch_rules, "fetch: only the requester, offsets in order, pieces of at most 4096") {
  auto k = std::make_shared<SimKernel>();
  KextSpec s;
  s.bundleId = kRes;
  CHECK_EQ(k->installKext(s, {{"r", pattern(10000)}}), OK);
  Conn a(k), b(k);
  uint32_t osr, tag;
  CHECK_EQ(a.request(1, kRes, "r", &osr, &tag), RC_kIOReturnSuccess);
  k->advance(10);
  std::vector<uint8_t> bytes;
  CHECK_EQ(b.fetch(tag, 0, bytes, nullptr), RC_kIOReturnNotFound);  // another client's
  uint32_t cancelOsr;
  CHECK_EQ(b.cancel(tag, &cancelOsr), RC_kIOReturnNotFound);
  uint32_t length = 0;
  CHECK_EQ(a.fetch(tag, 1, bytes, &length), RC_kIOReturnBadArgument);  // not the next offset
  CHECK_EQ(a.fetch(tag, 0, bytes, &length), RC_kIOReturnSuccess);
  CHECK_EQ(bytes.size(), (size_t)kFetchChunkSize);
  CHECK_EQ(length, 10000u);
  CHECK_EQ(a.fetch(tag, 0, bytes, &length), RC_kIOReturnBadArgument);  // already handed over
  CHECK_EQ(a.fetch(tag, 4096, bytes, &length), RC_kIOReturnSuccess);
  CHECK_EQ(a.fetch(tag, 8192, bytes, &length), RC_kIOReturnSuccess);
  CHECK_EQ(bytes.size(), 10000u);
  CHECK(bytes == pattern(10000));
  CHECK_EQ(a.fetch(tag, 10000, bytes, &length), RC_kIOReturnNotFound);
  uint64_t in[2] = {1ull << 32, 0};
  uint64_t out[2];
  uint32_t oc = 2;
  uint8_t chunk[kFetchChunkSize];
  size_t os = sizeof chunk;
  CHECK_EQ(a.t->callMethod(kSelectorFetchResource, in, 2, nullptr, 0, out, &oc, chunk, &os),
           RC_kIOReturnBadArgument);
}

TEST(resource_not_found_and_failures, "resources: not found / an injected failure → the kernel's code, no data") {
  auto k = std::make_shared<SimKernel>();
  Conn c(k);
  uint32_t osr, tag;
  CHECK_EQ(c.request(7, "com.example.nobundle", "x", &osr, &tag), RC_kIOReturnSuccess);
  CHECK_EQ(osr, OK);
  k->advance(10);
  CHECK_EQ(c.sink.count(), 1u);
  CHECK_EQ(c.sink.got[0].osReturn, RC_kOSKextReturnNotFound);
  CHECK_EQ(c.sink.got[0].length, 0u);
  CHECK_EQ(c.sink.got[0].result, RC_kIOReturnSuccess);
  std::vector<uint8_t> bytes;
  CHECK_EQ(c.fetchAll(tag, bytes), RC_kIOReturnNotFound);
  KextSpec s;
  s.bundleId = kRes;
  CHECK_EQ(k->installKext(s, {{"r", pattern(3)}}), OK);
  k->failResources(RC_kOSKextReturnNoMemory, 1);
  k->setResourceDelay(250);
  CHECK_EQ(c.request(8, kRes, "r", &osr, &tag), RC_kIOReturnSuccess);
  uint64_t due = 0;
  CHECK(k->nextDueMs(&due));
  CHECK_EQ(due, k->now() + 250);
  k->advance(250);
  CHECK_EQ(c.sink.count(), 2u);
  CHECK_EQ(c.sink.got[1].osReturn, RC_kOSKextReturnNoMemory);
  CHECK_EQ(c.sink.got[1].length, 0u);
  CHECK_EQ(c.sink.got[1].tag, tag);
  CHECK_EQ(c.sim()->core().requestsInUse(), 0u);
}

TEST(resource_timeout_after_scans, "resources: nothing answers → kOSKextReturnTimeout at the second scan that sees it") {
  auto k = std::make_shared<SimKernel>();
  Conn c(k);
  k->withholdResources(true);
  uint32_t osr, tag;
  CHECK_EQ(c.request(3, kRes, "r", &osr, &tag), RC_kIOReturnSuccess);
  uint64_t due = 0;
  CHECK(!k->nextDueMs(&due));  // withheld, no scan armed: nothing will ever happen
  k->advance(1000000);
  CHECK_EQ(c.sink.count(), 0u);
  k->armAutounloadScan();
  k->advance(SimKernel::kConsiderUnloadDelayMs);  // first scan: marked stale
  CHECK_EQ(c.sink.count(), 0u);
  CHECK_EQ(k->pendingRequests().size(), 1u);
  CHECK(k->pendingRequests()[0].stale);
  k->armAutounloadScan();
  // A request reschedules an armed scan (never arms one): the second scan moves 60 s on.
  k->advance(30000);
  uint32_t tag2;
  CHECK_EQ(c.request(4, kRes, "r", &osr, &tag2), RC_kIOReturnSuccess);
  CHECK_EQ(k->autounloadDeadline(), k->now() + SimKernel::kConsiderUnloadDelayMs);
  k->advance(SimKernel::kConsiderUnloadDelayMs - 1);
  CHECK_EQ(c.sink.count(), 0u);
  k->advance(1);
  CHECK_EQ(c.sink.count(), 1u);
  CHECK_EQ(c.sink.got[0].tag, tag);
  CHECK_EQ(c.sink.got[0].osReturn, RC_kOSKextReturnTimeout);
  CHECK_EQ(countEvents(*k, EventType::RequestTimedOut), 1u);
  CHECK_EQ(k->pendingRequestCount(kSample), 1u);  // the second one was only marked stale
  k->withholdResources(false);
  k->advance(0);  // overdue: answered at once (NotFound: the sample's bundle has no "r")
  CHECK_EQ(c.sink.count(), 2u);
  CHECK_EQ(c.sink.got[1].osReturn, RC_kOSKextReturnNotFound);
}

TEST(cancel_before_and_after_delivery, "cancel: before delivery → kernel success, no completion; after → delivery reported") {
  auto k = std::make_shared<SimKernel>();
  KextSpec s;
  s.bundleId = kRes;
  CHECK_EQ(k->installKext(s, {{"r", pattern(5)}}), OK);
  Conn c(k);
  uint32_t osr, tag;
  CHECK_EQ(c.request(1, kRes, "r", &osr, &tag), RC_kIOReturnSuccess);
  uint32_t cancelOsr = 0xBAD;
  CHECK_EQ(c.cancel(tag, &cancelOsr), RC_kIOReturnSuccess);
  CHECK_EQ(cancelOsr, OK);
  k->advance(100);
  CHECK_EQ(c.sink.count(), 0u);
  CHECK_EQ(countEvents(*k, EventType::RequestCancelled), 1u);
  CHECK_EQ(countEvents(*k, EventType::RequestDelivered), 0u);
  CHECK_EQ(c.cancel(tag, &cancelOsr), RC_kIOReturnNotFound);  // no longer this client's
  // After delivery: the completion has gone out; the tag is no longer pending.
  CHECK_EQ(c.request(2, kRes, "r", &osr, &tag), RC_kIOReturnSuccess);
  k->advance(10);
  CHECK_EQ(c.sink.count(), 1u);
  CHECK_EQ(c.cancel(tag, &cancelOsr), RC_kIOReturnNotFound);
  std::vector<uint8_t> bytes;
  CHECK_EQ(c.fetchAll(tag, bytes), RC_kIOReturnSuccess);
  CHECK(bytes == pattern(5));
  CHECK_EQ(c.sim()->asyncRefsHeld(), 0);
}

TEST(close_with_pending_cancels_all, "close: every pending request is cancelled, nothing arrives after") {
  auto k = std::make_shared<SimKernel>();
  KextSpec s;
  s.bundleId = kRes;
  CHECK_EQ(k->installKext(s, {{"r", pattern(100)}}), OK);
  Conn c(k);
  uint32_t osr, tag;
  for (uint32_t i = 0; i < kRequestCapacity; i++) {
    CHECK_EQ(c.request(i, kRes, "r", &osr, &tag), RC_kIOReturnSuccess);
    CHECK_EQ(osr, OK);
  }
  CHECK_EQ(c.request(99, kRes, "r", &osr, &tag), RC_kIOReturnNoResources);  // the cap
  CHECK_EQ(k->pendingRequestCount(kSample), kRequestCapacity);
  CHECK_EQ(c.sim()->asyncRefsHeld(), (int32_t)kRequestCapacity);
  CHECK_EQ(c.t->close(), RC_kIOReturnSuccess);
  CHECK_EQ(k->pendingRequestCount(kSample), 0u);
  CHECK_EQ(countEvents(*k, EventType::RequestCancelled), (size_t)kRequestCapacity);
  k->advance(1000);
  CHECK_EQ(c.sink.count(), 0u);
  CHECK_EQ(c.sim()->asyncRefsHeld(), 0);
  CHECK_EQ(c.sim()->core().requestsInUse(), 0u);
  CHECK_EQ(c.request(1, kRes, "r", &osr, &tag), RC_MACH_SEND_INVALID_DEST);
  // A delivered, unfetched resource is dropped by close too (the table empties).
  Conn d(k);
  CHECK_EQ(d.request(5, kRes, "r", &osr, &tag), RC_kIOReturnSuccess);
  k->advance(10);
  CHECK_EQ(d.sim()->core().requestsInUse(), 1u);
  CHECK_EQ(d.t->close(), RC_kIOReturnSuccess);
  CHECK_EQ(d.sim()->core().requestsInUse(), 0u);
  CHECK_EQ(d.sim()->asyncRefsHeld(), 0);
}

TEST(pending_request_blocks_unload, "the sample kext cannot unload while a request is pending") {
  auto k = std::make_shared<SimKernel>();
  auto c = std::unique_ptr<Conn>(new Conn(k));
  uint32_t osr, tag;
  CHECK_EQ(c->request(1, kRes, "r", &osr, &tag), RC_kIOReturnSuccess);
  KextFlags f;
  CHECK(k->kextFlags(kSample, &f));
  CHECK_EQ(f.pendingRequests, 1u);
  // Refused before its service is terminated: the client is not even stopped.
  CHECK_EQ(k->unloadKext(kSample), RC_kOSKextReturnInUse);
  uint64_t out[4];
  uint32_t oc = 4;
  uint8_t info[128];
  size_t os = sizeof info;
  CHECK_EQ(c->t->callMethod(kSelectorGetInfo, nullptr, 0, nullptr, 0, out, &oc, info, &os), RC_kIOReturnSuccess);
  // Without the request the unload goes on to terminate the service (the open client then
  // keeps it loaded).
  CHECK_EQ(c->cancel(tag, &osr), RC_kIOReturnSuccess);
  CHECK_EQ(k->unloadKext(kSample), RC_kOSKextReturnInUse);
  oc = 4;
  os = sizeof info;
  CHECK_EQ(c->t->callMethod(kSelectorGetInfo, nullptr, 0, nullptr, 0, out, &oc, info, &os), RC_kIOReturnNotOpen);
  c.reset();
  CHECK_EQ(k->unloadKext(kSample), OK);
  // And by identifier it comes back (its bundle is installed), with a new tag.
  CHECK_EQ(k->loadKextWithIdentifier(KB_SAMPLE_BUNDLE_ID), OK);
  CHECK_EQ(k->sampleLoadTag(), kSample + 1);
}

TEST(pending_request_blocks_autounload, "a kext with a pending request is skipped by the scan; a stopping kext is refused") {
  SimKernel k;
  const uint32_t t = load(k, spec("com.example.req"));
  int calls = 0;
  struct Ctx { int *calls; uint32_t code; } ctx = {&calls, 0};
  auto cb = [](uint32_t, int32_t result, const void *, uint32_t, void *c) {
    Ctx *x = (Ctx *)c;
    (*x->calls)++;
    x->code = (uint32_t)result;
  };
  k.withholdResources(true);
  uint32_t tag = 0;
  CHECK_EQ(k.requestResource(t, "com.example.req", "x", cb, &ctx, &tag), OK);
  CHECK_EQ(tag, 0u);
  CHECK_EQ(k.retainKextWithLoadTag(t), OK);
  CHECK_EQ(k.releaseKextWithLoadTag(t), OK);  // arms the scan
  k.advance(SimKernel::kConsiderUnloadDelayMs);
  CHECK(loaded(k, t));  // pending: skipped
  CHECK_EQ(k.unloadKext(t), RC_kOSKextReturnInUse);
  k.armAutounloadScan();
  k.advance(SimKernel::kConsiderUnloadDelayMs);  // the second scan times it out, then unloads
  CHECK_EQ(calls, 1);
  CHECK_EQ(ctx.code, RC_kOSKextReturnTimeout);
  CHECK(!loaded(k, t));
  // xnu's checks, in order.
  const uint32_t u = load(k, spec("com.example.stopper"));
  CHECK_EQ(k.requestResource(u, nullptr, "x", cb, &ctx, &tag), RC_kOSKextReturnInvalidArgument);
  CHECK_EQ(tag, kInvalidRequestTag);
  CHECK_EQ(k.requestResource(u, "a", "x", nullptr, &ctx, &tag), RC_kOSKextReturnInvalidArgument);
  CHECK_EQ(k.requestResource(t, "a", "x", cb, &ctx, &tag), RC_kOSKextReturnInvalidArgument);  // unloaded caller
  CHECK_EQ(k.setStopping(u, true), OK);
  CHECK_EQ(k.requestResource(u, "a", "x", cb, &ctx, &tag), RC_kOSKextReturnStopping);
  CHECK_EQ(tag, kInvalidRequestTag);
  CHECK_EQ(k.setStopping(u, false), OK);
  CHECK_EQ(k.requestResource(u, "a", "x", cb, &ctx, &tag), OK);
  CHECK_EQ(tag, 1u);
  void *back = nullptr;
  CHECK_EQ(k.cancelRequest(tag, &back), OK);
  CHECK(back == &ctx);
  CHECK_EQ(k.cancelRequest(tag, &back), RC_kOSKextReturnNotFound);
  CHECK_EQ(k.setStopping(12345, true), RC_kOSKextReturnNotFound);
}

TEST(request_refusals, "requests: non-admin, bad names, sync call, stopping sample: refused, nothing queued") {
  auto k = std::make_shared<SimKernel>();
  Conn user(k, false);
  uint32_t osr, tag;
  CHECK_EQ(user.request(1, kRes, "r", &osr, &tag), RC_kIOReturnNotPrivileged);
  Conn c(k);
  const uint64_t cursor = k->eventCursor();
  CHECK_EQ(c.request(1, "", "r", &osr, &tag), RC_kIOReturnBadArgument);
  CHECK_EQ(c.request(1, kRes, "", &osr, &tag), RC_kIOReturnBadArgument);
  uint8_t in[kBundleIdSize + kResourceNameSize];
  memset(in, 'a', sizeof in);  // neither field NUL-terminated
  CHECK_EQ(c.requestRaw(1, in, &osr, &tag), RC_kIOReturnBadArgument);
  in[kBundleIdSize - 1] = 0;   // id ok, name still not terminated within its 128 bytes
  CHECK_EQ(c.requestRaw(1, in, &osr, &tag), RC_kIOReturnBadArgument);
  in[sizeof in - 1] = 0;       // 63 + 127 characters: the longest accepted
  CHECK_EQ(c.requestRaw(1, in, &osr, &tag), RC_kIOReturnSuccess);
  CHECK_EQ(osr, OK);
  CHECK_EQ(c.cancel(tag, &osr), RC_kIOReturnSuccess);
  CHECK_EQ(countEvents(*k, EventType::RequestQueued, cursor), 1u);
  // Synchronously: requestResource needs an async reference.
  uint8_t ok[kBundleIdSize + kResourceNameSize] = {'a', 0};
  ok[kBundleIdSize] = 'b';
  uint64_t out[2];
  uint32_t oc = 2;
  size_t os = 0;
  CHECK_EQ(c.t->callMethod(kSelectorRequestResource, nullptr, 0, ok, sizeof ok, out, &oc, nullptr, &os),
           RC_kIOReturnBadArgument);
  // A stopping sample kext: the kernel's kOSKextReturnStopping, no completion, slot freed.
  CHECK_EQ(k->setStopping(kSample, true), OK);
  CHECK_EQ(c.request(2, kRes, "r", &osr, &tag), RC_kIOReturnSuccess);
  CHECK_EQ(osr, RC_kOSKextReturnStopping);
  CHECK_EQ(tag, kInvalidRequestTag);
  k->advance(100);
  CHECK_EQ(c.sink.count(), 0u);
  CHECK_EQ(c.sim()->core().requestsInUse(), 0u);
  CHECK_EQ(c.sim()->asyncRefsHeld(), 0);
  // No sink: the async call is refused before it reaches the user client.
  uint32_t kr;
  auto bare = SimTransport::open(k, true, &kr);
  oc = 2;
  CHECK_EQ(bare->callAsyncMethod(kSelectorRequestResource, 1, nullptr, 0, ok, sizeof ok, out, &oc, nullptr, &os),
           RC_kIOReturnNotReady);
}

// A KernelApi around SampleKextApi with a hook after each request/cancel KPI returns: lets a
// test put a delivery or a close exactly between the KPI and the core's second lock.
struct HookedApi : KernelApi {
  SampleKextApi inner;
  std::function<void()> afterRequest, beforeCancel;
  explicit HookedApi(std::shared_ptr<SimKernel> k) : inner(k) {}
  uint32_t retainKext(uint32_t t) override { return inner.retainKext(t); }
  uint32_t releaseKext(uint32_t t) override { return inner.releaseKext(t); }
  uint32_t ownLoadTag() override { return inner.ownLoadTag(); }
  const char *ownIdentifier() override { return inner.ownIdentifier(); }
  const char *ownVersion() override { return inner.ownVersion(); }
  uint32_t loadKextWithIdentifier(const char *id) override { return inner.loadKextWithIdentifier(id); }
  uint32_t requestResource(const char *id, const char *name, ResourceCallback cb, void *ctx,
                           uint32_t *tag) override {
    uint32_t kr = inner.requestResource(id, name, cb, ctx, tag);
    if (afterRequest) afterRequest();
    return kr;
  }
  uint32_t cancelRequest(uint32_t tag, void **ctx) override {
    if (beforeCancel) beforeCancel();
    return inner.cancelRequest(tag, ctx);
  }
  void *allocBuffer(uint32_t size) override { return inner.allocBuffer(size); }
  void freeBuffer(void *b, uint32_t size) override { inner.freeBuffer(b, size); }
};

struct Notes : AsyncNotifier {
  std::vector<Got> got;
  int refs = 0;  // released references (each accepted call's is released once)
  void sendAsyncResult(const AsyncRef &ref, uint32_t result, const uint64_t *a, uint32_t) override {
    got.push_back({ref.words[2], result, (uint32_t)a[0], (uint32_t)a[1], (uint32_t)a[2]});
  }
  void releaseAsyncReference(const AsyncRef &) override { refs++; }
};

uint32_t coreRequest(UserClientCore &core, uint64_t refcon, uint64_t *out) {
  uint8_t in[kBundleIdSize + kResourceNameSize] = {0};
  strcpy((char *)in, kRes);
  strcpy((char *)in + kBundleIdSize, "r");
  uint64_t ref[kAsyncRefWords] = {1, 0, refcon};
  MethodArgs a;
  a.structureInput = in;
  a.structureInputSize = sizeof in;
  a.scalarOutput = out;
  a.scalarOutputCount = 2;
  a.async = true;
  a.asyncReference = ref;
  a.asyncReferenceCount = kAsyncRefWords;
  return core.externalMethod(kSelectorRequestResource, a);
}

uint32_t coreCancel(UserClientCore &core, uint32_t tag, uint64_t *out) {
  uint64_t in[1] = {tag};
  MethodArgs a;
  a.scalarInput = in;
  a.scalarInputCount = 1;
  a.scalarOutput = out;
  a.scalarOutputCount = 1;
  return core.externalMethod(kSelectorCancelRequest, a);
}

TEST(core_races_at_fixed_points, "core: delivery before the reply, delivery inside a cancel, close inside a request") {
  auto k = std::make_shared<SimKernel>();
  KextSpec s;
  s.bundleId = kRes;
  CHECK_EQ(k->installKext(s, {{"r", pattern(9)}}), OK);
  k->setResourceDelay(0);
  {  // the callback runs before the requesting thread is back: completion first, reply after
    HookedApi api(k);
    MutexLock lock;
    Notes notes;
    UserClientCore core(api, lock, true, &notes);
    api.afterRequest = [&] { k->advance(0); };
    uint64_t out[2];
    CHECK_EQ(coreRequest(core, 11, out), RC_kIOReturnSuccess);
    CHECK_EQ(notes.got.size(), 1u);
    CHECK_EQ(notes.got[0].tag, (uint32_t)out[1]);
    CHECK_EQ(notes.got[0].refcon, 11u);
    CHECK_EQ(core.requestsInUse(), 1u);  // kept for fetch
    CHECK_EQ(core.close(), 0u);
    CHECK_EQ(core.requestsInUse(), 0u);
    CHECK_EQ(notes.refs, 1);
  }
  {  // the delivery wins inside cancelRequest: the kernel says NotFound, the completion went out
    HookedApi api(k);
    MutexLock lock;
    Notes notes;
    UserClientCore core(api, lock, true, &notes);
    uint64_t out[2];
    CHECK_EQ(coreRequest(core, 12, out), RC_kIOReturnSuccess);
    api.beforeCancel = [&] { k->advance(0); };
    uint64_t cout[1];
    CHECK_EQ(coreCancel(core, (uint32_t)out[1], cout), RC_kIOReturnSuccess);
    CHECK_EQ(cout[0], RC_kOSKextReturnNotFound);
    CHECK_EQ(notes.got.size(), 1u);
    CHECK_EQ(notes.got[0].osReturn, OK);
    CHECK_EQ(core.requestsInUse(), 1u);  // the delivery's bytes wait for fetch
    api.beforeCancel = nullptr;
    CHECK_EQ(core.close(), 0u);
    CHECK_EQ(notes.refs, 1);
  }
  {  // the client closes while the request is in the kernel: answered NotOpen, cancelled there
    HookedApi api(k);
    MutexLock lock;
    Notes notes;
    UserClientCore core(api, lock, true, &notes);
    k->setResourceDelay(10);
    api.afterRequest = [&] { core.close(); };
    uint64_t out[2];
    CHECK_EQ(coreRequest(core, 13, out), RC_kIOReturnNotOpen);
    CHECK_EQ(k->pendingRequestCount(kSample), 0u);
    k->advance(100);
    CHECK_EQ(notes.got.size(), 0u);
    CHECK_EQ(notes.refs, 0);  // the error reply gives the wake port back
    CHECK_EQ(core.requestsInUse(), 0u);
  }
  {  // delivered, then closed, before the requester is back: its reply is still success
    HookedApi api(k);
    MutexLock lock;
    Notes notes;
    UserClientCore core(api, lock, true, &notes);
    k->setResourceDelay(0);
    api.afterRequest = [&] {
      k->advance(0);
      core.close();
    };
    uint64_t out[2] = {0, 0};
    CHECK_EQ(coreRequest(core, 16, out), RC_kIOReturnSuccess);
    CHECK_EQ(out[0], OK);
    CHECK_EQ(notes.got.size(), 1u);
    CHECK_EQ(notes.got[0].tag, (uint32_t)out[1]);
    CHECK_EQ(core.requestsInUse(), 0u);
    CHECK_EQ(notes.refs, 1);
    k->setResourceDelay(10);
  }
  {  // the delivery comes during close (between the flag and the cancel): nothing is sent
    HookedApi api(k);
    MutexLock lock;
    Notes notes;
    UserClientCore core(api, lock, true, &notes);
    k->setResourceDelay(0);
    uint64_t out[2];
    CHECK_EQ(coreRequest(core, 15, out), RC_kIOReturnSuccess);
    CHECK_EQ(k->pendingRequestCount(kSample), 1u);
    api.beforeCancel = [&] { k->advance(0); };
    const uint64_t cursor = k->eventCursor();
    CHECK_EQ(core.close(), 0u);
    CHECK_EQ(countEvents(*k, EventType::RequestDelivered, cursor), 1u);  // the kernel did call back
    CHECK_EQ(notes.got.size(), 0u);                                     // but nothing went out
    CHECK_EQ(core.completionsSent(), 0u);
    CHECK_EQ(core.requestsInUse(), 0u);
    CHECK_EQ(notes.refs, 1);
    k->setResourceDelay(10);
  }
  {  // a close inside a cancel: the canceller finishes the entry; nothing is delivered
    HookedApi api(k);
    MutexLock lock;
    Notes notes;
    UserClientCore core(api, lock, true, &notes);
    uint64_t out[2];
    CHECK_EQ(coreRequest(core, 14, out), RC_kIOReturnSuccess);
    bool once = true;
    api.beforeCancel = [&] {
      if (once) {
        once = false;
        core.close();
      }
    };
    uint64_t cout[1];
    CHECK_EQ(coreCancel(core, (uint32_t)out[1], cout), RC_kIOReturnSuccess);
    CHECK_EQ(cout[0], OK);
    k->advance(100);
    CHECK_EQ(notes.got.size(), 0u);
    CHECK_EQ(core.requestsInUse(), 0u);
    CHECK_EQ(notes.refs, 1);
  }
}

// Issue 13 review, finding 1: OSKextCancelRequest can answer kOSReturnError and dequeue nothing
// (the kernel still holds the entry's address). The kext frees the session once requestsInUse()
// is 0; this does the same with the core, so ASan sees a use after free if an entry is freed
// while the kernel may still call it.
struct CoreBox {
  HookedApi api;
  MutexLock lock;
  Notes notes;
  std::unique_ptr<UserClientCore> core;
  explicit CoreBox(std::shared_ptr<SimKernel> k) : api(k) {
    core.reset(new UserClientCore(api, lock, true, &notes));
  }
  // What the kext's free() / deferred release do: the session goes when nothing is in use.
  void freeIfIdle() {
    if (core && core->requestsInUse() == 0) core.reset();
  }
};

std::shared_ptr<SimKernel> resourceKernel() {
  auto k = std::make_shared<SimKernel>();
  KextSpec s;
  s.bundleId = kRes;
  CHECK_EQ(k->installKext(s, {{"r", pattern(9)}}), OK);
  k->setResourceDelay(10);
  return k;
}

TEST(cancel_error_at_close_keeps_the_entry, "close: a cancel answering kOSReturnError leaves the entry to the kernel; its delivery is absorbed, a retry ends it") {
  {  // the kernel delivers later: absorbed, then the entry ends
    auto k = resourceKernel();
    CoreBox b(k);
    uint64_t out[2];
    CHECK_EQ(coreRequest(*b.core, 21, out), RC_kIOReturnSuccess);
    k->failCancels(1);
    CHECK_EQ(b.core->close(), 0u);
    CHECK_EQ(k->pendingRequestCount(kSample), 1u);  // nothing dequeued
    CHECK_EQ(b.core->requestsInUse(), 1u);          // so the entry stays: free() must defer
    CHECK_EQ(b.notes.refs, 0);
    b.freeIfIdle();
    CHECK(b.core != nullptr);
    k->advance(100);  // the delivery reaches the orphan (no use after free under ASan)
    CHECK_EQ(countEvents(*k, EventType::RequestDelivered), 1u);
    CHECK(b.core != nullptr);
    CHECK_EQ(b.notes.got.size(), 0u);  // nothing to a closed client
    CHECK_EQ(b.core->completionsSent(), 0u);
    CHECK_EQ(b.core->requestsInUse(), 0u);
    CHECK_EQ(b.notes.refs, 1);  // the accepted call's reference, released once
    CHECK_EQ(b.core->close(), 0u);
    CHECK_EQ(b.notes.refs, 1);
  }
  {  // a later close retries the cancel: success ends it, nothing arrives after
    auto k = resourceKernel();
    CoreBox b(k);
    uint64_t out[2];
    CHECK_EQ(coreRequest(*b.core, 22, out), RC_kIOReturnSuccess);
    k->failCancels(2);
    b.core->close();
    b.core->close();
    CHECK_EQ(b.core->requestsInUse(), 1u);  // two errors: still the kernel's
    b.freeIfIdle();
    CHECK(b.core != nullptr);
    b.core->close();
    CHECK_EQ(k->pendingRequestCount(kSample), 0u);
    CHECK_EQ(b.core->requestsInUse(), 0u);
    CHECK_EQ(b.notes.refs, 1);
    b.freeIfIdle();
    CHECK(b.core == nullptr);
    k->advance(100);
    CHECK_EQ(countEvents(*k, EventType::RequestDelivered), 0u);
  }
  {  // the timeout reaches the orphan: absorbed too
    auto k = resourceKernel();
    k->withholdResources(true);
    CoreBox b(k);
    uint64_t out[2];
    CHECK_EQ(coreRequest(*b.core, 23, out), RC_kIOReturnSuccess);
    k->failCancels(1);
    b.core->close();
    CHECK_EQ(b.core->requestsInUse(), 1u);
    for (int scan = 0; scan < 2; scan++) {  // the second scan that sees it times it out
      k->armAutounloadScan();
      k->advance(SimKernel::kConsiderUnloadDelayMs);
    }
    CHECK_EQ(countEvents(*k, EventType::RequestTimedOut), 1u);
    CHECK_EQ(b.notes.got.size(), 0u);
    CHECK_EQ(b.core->requestsInUse(), 0u);
    CHECK_EQ(b.notes.refs, 1);
  }
}

TEST(cancel_error_when_closed_inside_a_request, "requestResource: closed meanwhile and its cancel answers kOSReturnError: NotOpen, the entry stays without the reference") {
  auto k = resourceKernel();
  CoreBox b(k);
  b.api.afterRequest = [&] {
    k->failCancels(1);
    b.core->close();  // the entry is Requesting: left to the requester
  };
  uint64_t out[2];
  CHECK_EQ(coreRequest(*b.core, 24, out), RC_kIOReturnNotOpen);
  b.api.afterRequest = nullptr;
  CHECK_EQ(k->pendingRequestCount(kSample), 1u);
  CHECK_EQ(b.core->requestsInUse(), 1u);
  b.freeIfIdle();
  CHECK(b.core != nullptr);
  k->advance(100);  // the delivery: absorbed
  CHECK_EQ(countEvents(*k, EventType::RequestDelivered), 1u);
  CHECK_EQ(b.notes.got.size(), 0u);
  CHECK_EQ(b.core->requestsInUse(), 0u);
  CHECK_EQ(b.notes.refs, 0);  // the error reply gave the wake port back: never ours
  {  // and a retrying close ends it the same way, still without releasing the reference
    auto k2 = resourceKernel();
    CoreBox c(k2);
    c.api.afterRequest = [&] {
      k2->failCancels(1);
      c.core->close();
    };
    CHECK_EQ(coreRequest(*c.core, 25, out), RC_kIOReturnNotOpen);
    CHECK_EQ(c.core->requestsInUse(), 1u);
    c.core->close();
    CHECK_EQ(k2->pendingRequestCount(kSample), 0u);
    CHECK_EQ(c.core->requestsInUse(), 0u);
    CHECK_EQ(c.notes.refs, 0);
  }
}

TEST(cancel_error_when_closed_inside_a_cancel, "cancelRequest: closed or stopped meanwhile and the kernel answers kOSReturnError: NotOpen, the entry stays") {
  for (int stop = 0; stop < 2; stop++) {
    auto k = resourceKernel();
    CoreBox b(k);
    uint64_t out[2];
    CHECK_EQ(coreRequest(*b.core, 26, out), RC_kIOReturnSuccess);
    bool once = true;
    b.api.beforeCancel = [&] {
      if (!once) return;
      once = false;
      k->failCancels(1);
      if (stop) b.core->terminate();
      else b.core->close();  // the entry is Cancelling: left to the canceller
    };
    uint64_t cout[1] = {0xBAD};
    CHECK_EQ(coreCancel(*b.core, (uint32_t)out[1], cout), RC_kIOReturnNotOpen);
    CHECK_EQ(k->pendingRequestCount(kSample), 1u);
    CHECK_EQ(b.core->requestsInUse(), 1u);
    b.freeIfIdle();
    CHECK(b.core != nullptr);
    k->advance(100);  // absorbed
    CHECK_EQ(b.notes.got.size(), 0u);
    CHECK_EQ(b.core->requestsInUse(), 0u);
    CHECK_EQ(b.notes.refs, 1);
    b.core->close();
    CHECK_EQ(b.notes.refs, 1);
  }
  {  // stopped, then closed before the kernel calls: close's retry ends it
    auto k = resourceKernel();
    CoreBox b(k);
    uint64_t out[2];
    CHECK_EQ(coreRequest(*b.core, 27, out), RC_kIOReturnSuccess);
    bool once = true;
    b.api.beforeCancel = [&] {
      if (!once) return;
      once = false;
      k->failCancels(1);
      b.core->terminate();
    };
    uint64_t cout[1];
    CHECK_EQ(coreCancel(*b.core, (uint32_t)out[1], cout), RC_kIOReturnNotOpen);
    CHECK_EQ(b.core->requestsInUse(), 1u);
    b.core->close();
    CHECK_EQ(k->pendingRequestCount(kSample), 0u);
    CHECK_EQ(b.core->requestsInUse(), 0u);
    CHECK_EQ(b.notes.refs, 1);
  }
  {  // while open, an error leaves the request pending; a later cancel succeeds
    auto k = resourceKernel();
    CoreBox b(k);
    uint64_t out[2];
    CHECK_EQ(coreRequest(*b.core, 28, out), RC_kIOReturnSuccess);
    k->failCancels(1);
    uint64_t cout[1];
    CHECK_EQ(coreCancel(*b.core, (uint32_t)out[1], cout), RC_kIOReturnSuccess);
    CHECK_EQ(cout[0], RC_kOSReturnError);
    CHECK_EQ(b.core->requestsInUse(), 1u);
    CHECK_EQ(coreCancel(*b.core, (uint32_t)out[1], cout), RC_kIOReturnSuccess);
    CHECK_EQ(cout[0], OK);
    CHECK_EQ(b.core->requestsInUse(), 0u);
    CHECK_EQ(b.notes.refs, 1);
  }
}

// Finding 2: the callback ran but sent nothing (the client was stopped inside the cancel):
// the kernel says NotFound, yet no completion exists: the cancel must not claim the delivery.
TEST(cancel_not_found_without_completion_when_stopped, "cancelRequest: stopped inside the cancel, the callback ran and sent nothing: NotOpen, not 'the delivery won'") {
  auto k = resourceKernel();
  k->setResourceDelay(0);
  CoreBox b(k);
  uint64_t out[2];
  CHECK_EQ(coreRequest(*b.core, 31, out), RC_kIOReturnSuccess);
  b.api.beforeCancel = [&] {
    b.core->terminate();
    k->advance(0);  // the delivery: the callback sees a stopped client and sends nothing
  };
  uint64_t cout[1] = {0xBAD};
  CHECK_EQ(coreCancel(*b.core, (uint32_t)out[1], cout), RC_kIOReturnNotOpen);
  CHECK_EQ(countEvents(*k, EventType::RequestDelivered), 1u);
  CHECK_EQ(b.notes.got.size(), 0u);
  CHECK_EQ(b.core->requestsInUse(), 0u);
  CHECK_EQ(b.notes.refs, 1);
}

// Finding 3: NotFound also when the kernel dequeued the record and dropped it uncalled.
TEST(cancel_of_a_dropped_record_ends_it, "cancelRequest: the kernel dropped the record without calling: the entry ends and the reply says no completion") {
  auto k = resourceKernel();
  CoreBox b(k);
  uint64_t out[2];
  CHECK_EQ(coreRequest(*b.core, 32, out), RC_kIOReturnSuccess);
  k->dropResources(1);
  k->advance(100);
  CHECK_EQ(countEvents(*k, EventType::RequestDelivered), 1u);  // dequeued by kernelmanagerd's answer
  CHECK_EQ(k->pendingRequestCount(kSample), 0u);
  CHECK_EQ(b.notes.got.size(), 0u);  // but never called
  CHECK_EQ(b.core->requestsInUse(), 1u);
  uint64_t cout[1] = {0xBAD};
  CHECK_EQ(coreCancel(*b.core, (uint32_t)out[1], cout), RC_kIOReturnNotOpen);  // no completion
  CHECK_EQ(b.core->requestsInUse(), 0u);  // not back to Pending forever
  CHECK_EQ(b.notes.refs, 1);
  CHECK_EQ(coreCancel(*b.core, (uint32_t)out[1], cout), RC_kIOReturnNotFound);  // gone
  {  // and close of such an entry ends it too (NotFound is final)
    auto k2 = resourceKernel();
    CoreBox c(k2);
    CHECK_EQ(coreRequest(*c.core, 33, out), RC_kIOReturnSuccess);
    k2->dropResources(1);
    k2->advance(100);
    c.core->close();
    CHECK_EQ(c.core->requestsInUse(), 0u);
    CHECK_EQ(c.notes.refs, 1);
  }
}

// Finding 4: every release (or request) pushes an armed scan back, so steady activity postpones
// an unanswered request's timeout indefinitely; it comes two quiet scan delays after it stops.
TEST(steady_activity_postpones_the_timeout, "resources: a release every 30 s keeps the scan from firing, so an unanswered request never times out until the activity stops") {
  auto k = std::make_shared<SimKernel>();
  Conn c(k);
  k->withholdResources(true);
  uint32_t osr, tag;
  CHECK_EQ(c.request(5, kRes, "r", &osr, &tag), RC_kIOReturnSuccess);
  k->armAutounloadScan();
  for (int i = 0; i < 40; i++) {  // 20 virtual minutes
    k->advance(SimKernel::kConsiderUnloadDelayMs / 2);
    CHECK_EQ(k->retainKextWithLoadTag(kSample), OK);
    CHECK_EQ(k->releaseKextWithLoadTag(kSample), OK);  // cancels and re-enters the scan
  }
  CHECK_EQ(c.sink.count(), 0u);
  CHECK_EQ(countEvents(*k, EventType::RequestTimedOut), 0u);
  CHECK_EQ(k->pendingRequests().size(), 1u);
  CHECK(!k->pendingRequests().empty() && !k->pendingRequests()[0].stale);  // no scan has fired at all
  k->advance(SimKernel::kConsiderUnloadDelayMs);  // quiet: the first scan marks it stale
  CHECK_EQ(c.sink.count(), 0u);
  k->armAutounloadScan();  // (the scan does not re-arm itself; an idle machine's next release would)
  k->advance(SimKernel::kConsiderUnloadDelayMs);
  CHECK_EQ(c.sink.count(), 1u);
  CHECK_EQ(c.sink.got[0].osReturn, RC_kOSKextReturnTimeout);
}

TEST(transport_close_retries_an_erroring_cancel, "SimTransport: close retries a cancel that answered kOSReturnError, so the core never goes while the kernel holds its entry") {
  auto k = resourceKernel();
  {
    Conn c(k);
    uint32_t osr, tag;
    CHECK_EQ(c.request(41, kRes, "r", &osr, &tag), RC_kIOReturnSuccess);
    k->failCancels(3);
    CHECK_EQ(c.t->close(), RC_kIOReturnSuccess);
    CHECK_EQ(k->pendingRequestCount(kSample), 0u);  // the fourth cancel dequeued it
    CHECK_EQ(c.sim()->core().requestsInUse(), 0u);
    CHECK_EQ(c.sim()->asyncRefsHeld(), 0);
  }
  k->advance(100);  // nothing left to call (ASan: no use of the freed core)
  CHECK_EQ(countEvents(*k, EventType::RequestDelivered), 0u);
}

int main() { return unit::runAll(); }
