// Compile-time proof that the generated protocol (protocol/kextbridge.json →
// protocol.gen.h) agrees with the SDK this kext is built against. Emits no code.
#include <IOKit/IOReturn.h>
#include <IOKit/IOUserClient.h>
#include <libkern/OSKextLib.h>
#include <libkern/OSReturn.h>
#include <mach/kmod.h>

#include "protocol.gen.h"
#include "sample_service.h"
#include "sample_user_client.h"
#include "user_client_core.h"

namespace {

constexpr bool sameString(const char *a, const char *b) {
  return *a == *b && (*a == '\0' || sameString(a + 1, b + 1));
}

template <class A, class B> struct SameType { static constexpr bool value = false; };
template <class A> struct SameType<A, A> { static constexpr bool value = true; };

} // namespace

// Every code the kext can hand to user space, directly or in scalar output 0.
#define KB_SAME_CODE(name)                       \
  static_assert(kb::RC_##name == (uint32_t)(name), \
                #name " differs between kextbridge.json and the SDK")

KB_SAME_CODE(kIOReturnSuccess);
KB_SAME_CODE(kIOReturnBadArgument);
KB_SAME_CODE(kIOReturnNotPrivileged);
KB_SAME_CODE(kIOReturnNotPermitted);
KB_SAME_CODE(kIOReturnNoResources);
KB_SAME_CODE(kIOReturnNotOpen);
KB_SAME_CODE(kOSReturnSuccess);
KB_SAME_CODE(kOSKextReturnNotFound);
KB_SAME_CODE(kOSKextReturnInvalidArgument);
// Issue 13: load, resource requests and their completion.
KB_SAME_CODE(kIOReturnNoMemory);
KB_SAME_CODE(kIOReturnNoSpace);
KB_SAME_CODE(kIOReturnNotFound);
KB_SAME_CODE(kIOReturnNotReady);
KB_SAME_CODE(kIOReturnUnsupported);
KB_SAME_CODE(kOSReturnError);
KB_SAME_CODE(kOSKextReturnDeferred);
KB_SAME_CODE(kOSKextReturnDisabled);
KB_SAME_CODE(kOSKextReturnNoMemory);
KB_SAME_CODE(kOSKextReturnNoResources);
KB_SAME_CODE(kOSKextReturnNotLoadable);
KB_SAME_CODE(kOSKextReturnDependencies);
KB_SAME_CODE(kOSKextReturnLoadedVersionDiffers);
KB_SAME_CODE(kOSKextReturnStopping);
KB_SAME_CODE(kOSKextReturnTimeout);

#undef KB_SAME_CODE

// MIG carries at most this many scalars each way; the protocol's limit must be the same.
static_assert(kb::kMaxScalars == (uint32_t)kIOExternalMethodScalarInputCountMax,
              "kMaxScalars differs from kIOExternalMethodScalarInputCountMax");
static_assert(kb::kMaxScalars == (uint32_t)kIOExternalMethodScalarOutputCountMax,
              "kMaxScalars differs from kIOExternalMethodScalarOutputCountMax");

// The core's own name for the invalid tags.
static_assert(kb::kInvalidLoadTag == (uint32_t)kOSKextInvalidLoadTag,
              "kb::kInvalidLoadTag differs from kOSKextInvalidLoadTag");
static_assert(kb::kInvalidRequestTag == (uint32_t)kOSKextRequestTagInvalid,
              "kb::kInvalidRequestTag differs from kOSKextRequestTagInvalid");
static_assert(SameType<uint32_t, OSKextRequestTag>::value, "a request tag is 32 bits");

// The completion of requestResource: at most what sendAsyncResult64 carries, and the
// reference the core stores is an OSAsyncReference64.
static_assert(kb::Completion::fieldCount <= (uint32_t)kMaxAsyncArgs,
              "the completion has more words than sendAsyncResult64 carries");
static_assert(kb::kAsyncRefWords == (uint32_t)kOSAsyncRef64Count,
              "kAsyncRefWords differs from kOSAsyncRef64Count");
static_assert(sizeof(kb::AsyncRef) == sizeof(OSAsyncReference64),
              "kb::AsyncRef is not an OSAsyncReference64");
// The bundle-id field (NUL included) matches the kernel's kmod_info name field.
static_assert(kb::kBundleIdSize == (uint32_t)KMOD_MAX_NAME,
              "kBundleIdSize differs from KMOD_MAX_NAME");

// The classes are declared with raw tokens (the metaclass macros need them). The token
// must name the generated class (KB_*_CLASS) and spell the generated string
// (KB_*_CLASS_NAME) that the personality and user space use.
#define KB_SAME_CLASS(token, generated, name)                                    \
  static_assert(SameType<token, generated>::value && sameString(#token, name), \
                #token " differs from protocol/kextbridge.json sampleKext")

KB_SAME_CLASS(org_kextbridge_SampleService, KB_SERVICE_CLASS, KB_SERVICE_CLASS_NAME);
KB_SAME_CLASS(org_kextbridge_SampleUserClient, KB_USER_CLIENT_CLASS, KB_USER_CLIENT_CLASS_NAME);

#undef KB_SAME_CLASS
