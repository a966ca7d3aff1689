// Generated from protocol/kextbridge.json by scripts/gen-protocol.js. Do not edit.
// Kernel-safe: plain C types only, no standard-library headers.
#ifndef KEXTBRIDGE_PROTOCOL_GEN_H
#define KEXTBRIDGE_PROTOCOL_GEN_H

#include <stdint.h>

#define KB_SAMPLE_BUNDLE_ID "org.kextbridge.sample"
#define KB_SAMPLE_VERSION "0.1.0"
#define KB_SAMPLE_EXECUTABLE "KextBridgeSample"
#define KB_SERVICE_CLASS org_kextbridge_SampleService
#define KB_USER_CLIENT_CLASS org_kextbridge_SampleUserClient
#define KB_SERVICE_CLASS_NAME "org_kextbridge_SampleService"
#define KB_USER_CLIENT_CLASS_NAME "org_kextbridge_SampleUserClient"
// The libraries the sample kext links against (its OSBundleLibraries).
#define KB_SAMPLE_LIBRARIES "com.apple.kpi.bsd", "com.apple.kpi.iokit", "com.apple.kpi.libkern", "com.apple.kpi.mach"

namespace kb {

static const uint32_t kProtocolVersion = 3;
static const uint32_t kMaxScalars = 16;
static const uint32_t kInfoStringSize = 64;
static const uint32_t kLedgerCapacity = 256;
static const uint32_t kBatchMaxTags = 512;
static const uint32_t kInbandStructMax = 4096;
static const uint32_t kBundleIdSize = 64;
static const uint32_t kResourceNameSize = 128;
static const uint32_t kRequestCapacity = 8;
static const uint32_t kMaxResourceSize = 65536;
static const uint32_t kFetchChunkSize = 4096;
static const uint32_t kAsyncRefWords = 8;

enum Selector : uint32_t {
  kSelectorGetInfo = 0,
  kSelectorRetain = 1,
  kSelectorRelease = 2,
  kSelectorHeld = 3,
  kSelectorRetainBatch = 4,
  kSelectorReleaseBatch = 5,
  kSelectorLoadKextWithIdentifier = 6,
  kSelectorRequestResource = 7,
  kSelectorFetchResource = 8,
  kSelectorCancelRequest = 9,
  kSelectorCount = 10
};

// What each selector takes and gives, checked before any work is done. With a structInputUnit,
// the input is 1 to structInputSize / unit whole units and the caller's output buffer must
// hold structOutputPerUnit bytes per unit (at most structOutputSize); otherwise sizes are exact,
// except that a structInputVariable input is 1 to structInputSize bytes (the handler checks the
// content). structOutputVariable: the handler writes at most structOutputSize bytes and says how
// many. async: the selector is called with an async reference, and only it may be.
struct SelectorShape {
  uint32_t scalarInputs;
  uint32_t structInputSize;
  uint32_t structInputUnit;
  uint32_t scalarOutputs;
  uint32_t structOutputSize;
  uint32_t structOutputPerUnit;
  bool admin;
  bool structInputVariable;
  bool structOutputVariable;
  bool async;
};

static constexpr SelectorShape kSelectorShapes[kSelectorCount] = {
  {0, 0, 0, 4, 128, 0, false, false, false, false}, // getInfo
  {1, 0, 0, 2, 0, 0, true, false, false, false}, // retain
  {1, 0, 0, 2, 0, 0, true, false, false, false}, // release
  {0, 0, 0, 0, 2048, 0, false, false, false, false}, // held
  {0, 2048, 4, 0, 4096, 8, true, false, false, false}, // retainBatch
  {0, 2048, 4, 0, 4096, 8, true, false, false, false}, // releaseBatch
  {0, 64, 0, 1, 0, 0, true, true, false, false}, // loadKextWithIdentifier
  {0, 192, 0, 2, 0, 0, true, false, false, true}, // requestResource
  {2, 0, 0, 2, 4096, 0, false, false, true, false}, // fetchResource
  {1, 0, 0, 1, 0, 0, false, false, false, false}, // cancelRequest
};

// Output scalar positions, per selector that has any: args.scalarOutput[RetainOut::heldAfter].
struct GetInfoOut {
  enum : uint32_t { protocolVersion = 0, ownLoadTag = 1, privileged = 2, ledgerCap = 3, fieldCount = 4 };
};
struct RetainOut {
  enum : uint32_t { osReturn = 0, heldAfter = 1, fieldCount = 2 };
};
struct ReleaseOut {
  enum : uint32_t { osReturn = 0, heldAfter = 1, fieldCount = 2 };
};
struct LoadKextWithIdentifierOut {
  enum : uint32_t { osReturn = 0, fieldCount = 1 };
};
struct RequestResourceOut {
  enum : uint32_t { osReturn = 0, requestTag = 1, fieldCount = 2 };
};
struct FetchResourceOut {
  enum : uint32_t { length = 0, copied = 1, fieldCount = 2 };
};
struct CancelRequestOut {
  enum : uint32_t { osReturn = 0, fieldCount = 1 };
};

// One entry per tag of a batch selector's output: little-endian uint32 fields.
struct BatchEntry {
  enum : uint32_t { code = 0, heldAfter = 1, fieldCount = 2 };
};
static const uint32_t kBatchEntrySize = 8;

// One (uint32) entry per held tag in the held selector's output.
struct HeldEntry {
  enum : uint32_t { loadTag = 0, count = 1, fieldCount = 2 };
};
static const uint32_t kHeldEntrySize = 8;

// The args of a requestResource completion (sendAsyncResult64), in order.
struct Completion {
  enum : uint32_t { requestTag = 0, osReturn = 1, length = 2, fieldCount = 3 };
};

// The addon's per-tag answer to a batch, as doubles (user space only).
struct BatchResult {
  enum : uint32_t { kr = 0, osReturn = 1, heldAfter = 2, fieldCount = 3 };
};

// Return codes as unsigned 32-bit values. Prefixed RC_ so the names never collide with
// the SDK's own macros (kIOReturnBadArgument, KERN_SUCCESS, ...).
enum ReturnCode : uint32_t {
  RC_kOSReturnSuccess = 0x00000000u,
  RC_kOSReturnError = 0xDC000001u,
  RC_kOSMetaClassInternal = 0xDC004001u,
  RC_kOSMetaClassHasInstances = 0xDC004002u,
  RC_kOSMetaClassNoInit = 0xDC004003u,
  RC_kOSMetaClassNoTempData = 0xDC004004u,
  RC_kOSMetaClassNoDicts = 0xDC004005u,
  RC_kOSMetaClassNoKModSet = 0xDC004006u,
  RC_kOSMetaClassNoInsKModSet = 0xDC004007u,
  RC_kOSMetaClassNoSuper = 0xDC004008u,
  RC_kOSMetaClassInstNoSuper = 0xDC004009u,
  RC_kOSMetaClassDuplicateClass = 0xDC00400Au,
  RC_kOSMetaClassNoKext = 0xDC00400Bu,
  RC_kOSKextReturnInternalError = 0xDC008001u,
  RC_kOSKextReturnNoMemory = 0xDC008002u,
  RC_kOSKextReturnNoResources = 0xDC008003u,
  RC_kOSKextReturnNotPrivileged = 0xDC008004u,
  RC_kOSKextReturnInvalidArgument = 0xDC008005u,
  RC_kOSKextReturnNotFound = 0xDC008006u,
  RC_kOSKextReturnBadData = 0xDC008007u,
  RC_kOSKextReturnSerialization = 0xDC008008u,
  RC_kOSKextReturnUnsupported = 0xDC008009u,
  RC_kOSKextReturnDisabled = 0xDC00800Au,
  RC_kOSKextReturnNotAKext = 0xDC00800Bu,
  RC_kOSKextReturnValidation = 0xDC00800Cu,
  RC_kOSKextReturnAuthentication = 0xDC00800Du,
  RC_kOSKextReturnDependencies = 0xDC00800Eu,
  RC_kOSKextReturnArchNotFound = 0xDC00800Fu,
  RC_kOSKextReturnCache = 0xDC008010u,
  RC_kOSKextReturnDeferred = 0xDC008011u,
  RC_kOSKextReturnBootLevel = 0xDC008012u,
  RC_kOSKextReturnNotLoadable = 0xDC008013u,
  RC_kOSKextReturnLoadedVersionDiffers = 0xDC008014u,
  RC_kOSKextReturnDependencyLoadError = 0xDC008015u,
  RC_kOSKextReturnLinkError = 0xDC008016u,
  RC_kOSKextReturnStartStopError = 0xDC008017u,
  RC_kOSKextReturnInUse = 0xDC008018u,
  RC_kOSKextReturnTimeout = 0xDC008019u,
  RC_kOSKextReturnStopping = 0xDC00801Au,
  RC_kOSKextReturnSystemPolicy = 0xDC00801Bu,
  RC_kOSKextReturnKCLoadFailure = 0xDC00801Cu,
  RC_kOSKextReturnKCLoadFailureSystemKC = 0xDC00801Du,
  RC_kOSKextReturnKCLoadFailureAuxKC = 0xDC00801Eu,
  RC_kOSKextReturnKCLoadFailureBothKCs = 0xDC00801Fu,
  RC_kIOReturnSuccess = 0x00000000u,
  RC_kIOReturnError = 0xE00002BCu,
  RC_kIOReturnNoMemory = 0xE00002BDu,
  RC_kIOReturnNoResources = 0xE00002BEu,
  RC_kIOReturnIPCError = 0xE00002BFu,
  RC_kIOReturnNoDevice = 0xE00002C0u,
  RC_kIOReturnNotPrivileged = 0xE00002C1u,
  RC_kIOReturnBadArgument = 0xE00002C2u,
  RC_kIOReturnLockedRead = 0xE00002C3u,
  RC_kIOReturnLockedWrite = 0xE00002C4u,
  RC_kIOReturnExclusiveAccess = 0xE00002C5u,
  RC_kIOReturnBadMessageID = 0xE00002C6u,
  RC_kIOReturnUnsupported = 0xE00002C7u,
  RC_kIOReturnVMError = 0xE00002C8u,
  RC_kIOReturnInternalError = 0xE00002C9u,
  RC_kIOReturnIOError = 0xE00002CAu,
  RC_kIOReturnCannotLock = 0xE00002CCu,
  RC_kIOReturnNotOpen = 0xE00002CDu,
  RC_kIOReturnNotReadable = 0xE00002CEu,
  RC_kIOReturnNotWritable = 0xE00002CFu,
  RC_kIOReturnNotAligned = 0xE00002D0u,
  RC_kIOReturnBadMedia = 0xE00002D1u,
  RC_kIOReturnStillOpen = 0xE00002D2u,
  RC_kIOReturnRLDError = 0xE00002D3u,
  RC_kIOReturnDMAError = 0xE00002D4u,
  RC_kIOReturnBusy = 0xE00002D5u,
  RC_kIOReturnTimeout = 0xE00002D6u,
  RC_kIOReturnOffline = 0xE00002D7u,
  RC_kIOReturnNotReady = 0xE00002D8u,
  RC_kIOReturnNotAttached = 0xE00002D9u,
  RC_kIOReturnNoChannels = 0xE00002DAu,
  RC_kIOReturnNoSpace = 0xE00002DBu,
  RC_kIOReturnPortExists = 0xE00002DDu,
  RC_kIOReturnCannotWire = 0xE00002DEu,
  RC_kIOReturnNoInterrupt = 0xE00002DFu,
  RC_kIOReturnNoFrames = 0xE00002E0u,
  RC_kIOReturnMessageTooLarge = 0xE00002E1u,
  RC_kIOReturnNotPermitted = 0xE00002E2u,
  RC_kIOReturnNoPower = 0xE00002E3u,
  RC_kIOReturnNoMedia = 0xE00002E4u,
  RC_kIOReturnUnformattedMedia = 0xE00002E5u,
  RC_kIOReturnUnsupportedMode = 0xE00002E6u,
  RC_kIOReturnUnderrun = 0xE00002E7u,
  RC_kIOReturnOverrun = 0xE00002E8u,
  RC_kIOReturnDeviceError = 0xE00002E9u,
  RC_kIOReturnNoCompletion = 0xE00002EAu,
  RC_kIOReturnAborted = 0xE00002EBu,
  RC_kIOReturnNoBandwidth = 0xE00002ECu,
  RC_kIOReturnNotResponding = 0xE00002EDu,
  RC_kIOReturnIsoTooOld = 0xE00002EEu,
  RC_kIOReturnIsoTooNew = 0xE00002EFu,
  RC_kIOReturnNotFound = 0xE00002F0u,
  RC_kIOReturnInvalid = 0xE0000001u,
  RC_KERN_SUCCESS = 0x00000000u,
  RC_KERN_INVALID_ADDRESS = 0x00000001u,
  RC_KERN_PROTECTION_FAILURE = 0x00000002u,
  RC_KERN_NO_SPACE = 0x00000003u,
  RC_KERN_INVALID_ARGUMENT = 0x00000004u,
  RC_KERN_FAILURE = 0x00000005u,
  RC_KERN_RESOURCE_SHORTAGE = 0x00000006u,
  RC_KERN_NO_ACCESS = 0x00000008u,
  RC_KERN_ABORTED = 0x0000000Eu,
  RC_KERN_INVALID_NAME = 0x0000000Fu,
  RC_KERN_INVALID_TASK = 0x00000010u,
  RC_KERN_INVALID_RIGHT = 0x00000011u,
  RC_KERN_INVALID_VALUE = 0x00000012u,
  RC_KERN_INVALID_CAPABILITY = 0x00000014u,
  RC_KERN_TERMINATED = 0x00000025u,
  RC_KERN_NOT_SUPPORTED = 0x0000002Eu,
  RC_KERN_OPERATION_TIMED_OUT = 0x00000031u,
  RC_KERN_DENIED = 0x00000035u,
  RC_KERN_NOT_FOUND = 0x00000038u,
  RC_MACH_SEND_INVALID_DATA = 0x10000002u,
  RC_MACH_SEND_INVALID_DEST = 0x10000003u,
  RC_MACH_SEND_TIMED_OUT = 0x10000004u,
  RC_MACH_SEND_INTERRUPTED = 0x10000007u,
  RC_MACH_SEND_INVALID_REPLY = 0x10000009u,
  RC_MACH_SEND_INVALID_RIGHT = 0x1000000Au,
  RC_MACH_SEND_NO_BUFFER = 0x1000000Du,
  RC_MACH_SEND_TOO_LARGE = 0x1000000Eu,
  RC_MACH_RCV_INVALID_NAME = 0x10004002u,
  RC_MACH_RCV_TIMED_OUT = 0x10004003u,
  RC_MACH_RCV_TOO_LARGE = 0x10004004u,
  RC_MACH_RCV_INTERRUPTED = 0x10004005u,
  RC_MACH_RCV_PORT_DIED = 0x10004009u,
  RC_MIG_TYPE_ERROR = 0xFFFFFED4u,
  RC_MIG_REPLY_MISMATCH = 0xFFFFFED3u,
  RC_MIG_REMOTE_ERROR = 0xFFFFFED2u,
  RC_MIG_BAD_ID = 0xFFFFFED1u,
  RC_MIG_BAD_ARGUMENTS = 0xFFFFFED0u,
  RC_MIG_NO_REPLY = 0xFFFFFECFu,
  RC_MIG_EXCEPTION = 0xFFFFFECEu,
  RC_MIG_ARRAY_TOO_LARGE = 0xFFFFFECDu,
  RC_MIG_SERVER_DIED = 0xFFFFFECCu,
  RC_MIG_TRAILER_ERROR = 0xFFFFFECBu,
};

// The externalMethod refusals each selector may answer besides success (the fuzzer's oracle
// checks every answer against this): its own, and the ones any selector may give.
constexpr bool selectorMayRefuse(uint32_t selector, uint32_t code) {
  return code == RC_kIOReturnBadArgument || code == RC_kIOReturnNotOpen ||
         (selector == kSelectorRetain && (code == RC_kIOReturnNotPrivileged || code == RC_kIOReturnNoResources)) ||
         (selector == kSelectorRelease && (code == RC_kIOReturnNotPrivileged || code == RC_kIOReturnNotPermitted)) ||
         (selector == kSelectorRetainBatch && (code == RC_kIOReturnNotPrivileged || code == RC_kIOReturnNoResources)) ||
         (selector == kSelectorReleaseBatch && (code == RC_kIOReturnNotPrivileged || code == RC_kIOReturnNotPermitted)) ||
         (selector == kSelectorLoadKextWithIdentifier && (code == RC_kIOReturnNotPrivileged)) ||
         (selector == kSelectorRequestResource && (code == RC_kIOReturnNotPrivileged || code == RC_kIOReturnNoResources || code == RC_kIOReturnNoMemory || code == RC_kIOReturnUnsupported)) ||
         (selector == kSelectorFetchResource && (code == RC_kIOReturnNotFound)) ||
         (selector == kSelectorCancelRequest && (code == RC_kIOReturnNotFound));
}

} // namespace kb

#endif
