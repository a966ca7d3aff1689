// Every return code's value checked against a table typed by hand from the kernel headers
// (as transcribed in the project's xnu reference notes, §2), never from
// protocol/kextbridge.json or anything generated from it: a wrong number in the protocol
// file must fail here even though the generated C++ and TypeScript agree with each other.
import { CODES, codeValue, describeReturn } from '../lib';

// [name, unsigned hex, signed int32]
const LIBKERN: [string, number, number][] = [
  // libkern/libkern/OSReturn.h
  ['kOSReturnSuccess', 0x00000000, 0],
  ['kOSReturnError', 0xdc000001, -603979775],
  ['kOSMetaClassInternal', 0xdc004001, -603963391],
  ['kOSMetaClassHasInstances', 0xdc004002, -603963390],
  ['kOSMetaClassNoInit', 0xdc004003, -603963389],
  ['kOSMetaClassNoTempData', 0xdc004004, -603963388],
  ['kOSMetaClassNoDicts', 0xdc004005, -603963387],
  ['kOSMetaClassNoKModSet', 0xdc004006, -603963386],
  ['kOSMetaClassNoInsKModSet', 0xdc004007, -603963385],
  ['kOSMetaClassNoSuper', 0xdc004008, -603963384],
  ['kOSMetaClassInstNoSuper', 0xdc004009, -603963383],
  ['kOSMetaClassDuplicateClass', 0xdc00400a, -603963382],
  ['kOSMetaClassNoKext', 0xdc00400b, -603963381],
  // libkern/libkern/OSKextLib.h: libkern_kext_err(code) = 0xDC008000 | code
  ['kOSKextReturnInternalError', 0xdc008001, -603947007],
  ['kOSKextReturnNoMemory', 0xdc008002, -603947006],
  ['kOSKextReturnNoResources', 0xdc008003, -603947005],
  ['kOSKextReturnNotPrivileged', 0xdc008004, -603947004],
  ['kOSKextReturnInvalidArgument', 0xdc008005, -603947003],
  ['kOSKextReturnNotFound', 0xdc008006, -603947002],
  ['kOSKextReturnBadData', 0xdc008007, -603947001],
  ['kOSKextReturnSerialization', 0xdc008008, -603947000],
  ['kOSKextReturnUnsupported', 0xdc008009, -603946999],
  ['kOSKextReturnDisabled', 0xdc00800a, -603946998],
  ['kOSKextReturnNotAKext', 0xdc00800b, -603946997],
  ['kOSKextReturnValidation', 0xdc00800c, -603946996],
  ['kOSKextReturnAuthentication', 0xdc00800d, -603946995],
  ['kOSKextReturnDependencies', 0xdc00800e, -603946994],
  ['kOSKextReturnArchNotFound', 0xdc00800f, -603946993],
  ['kOSKextReturnCache', 0xdc008010, -603946992],
  ['kOSKextReturnDeferred', 0xdc008011, -603946991],
  ['kOSKextReturnBootLevel', 0xdc008012, -603946990],
  ['kOSKextReturnNotLoadable', 0xdc008013, -603946989],
  ['kOSKextReturnLoadedVersionDiffers', 0xdc008014, -603946988],
  ['kOSKextReturnDependencyLoadError', 0xdc008015, -603946987],
  ['kOSKextReturnLinkError', 0xdc008016, -603946986],
  ['kOSKextReturnStartStopError', 0xdc008017, -603946985],
  ['kOSKextReturnInUse', 0xdc008018, -603946984],
  ['kOSKextReturnTimeout', 0xdc008019, -603946983],
  ['kOSKextReturnStopping', 0xdc00801a, -603946982],
  ['kOSKextReturnSystemPolicy', 0xdc00801b, -603946981],
  ['kOSKextReturnKCLoadFailure', 0xdc00801c, -603946980],
  ['kOSKextReturnKCLoadFailureSystemKC', 0xdc00801d, -603946979],
  ['kOSKextReturnKCLoadFailureAuxKC', 0xdc00801e, -603946978],
  ['kOSKextReturnKCLoadFailureBothKCs', 0xdc00801f, -603946977], // no macro; err_libkern.sub only
];

const IOKIT: [string, number, number][] = [
  // iokit/IOKit/IOReturn.h: iokit_common_err(code) = 0xE0000000 | code
  ['kIOReturnSuccess', 0x00000000, 0],
  ['kIOReturnError', 0xe00002bc, -536870212],
  ['kIOReturnNoMemory', 0xe00002bd, -536870211],
  ['kIOReturnNoResources', 0xe00002be, -536870210],
  ['kIOReturnIPCError', 0xe00002bf, -536870209],
  ['kIOReturnNoDevice', 0xe00002c0, -536870208],
  ['kIOReturnNotPrivileged', 0xe00002c1, -536870207],
  ['kIOReturnBadArgument', 0xe00002c2, -536870206],
  ['kIOReturnLockedRead', 0xe00002c3, -536870205],
  ['kIOReturnLockedWrite', 0xe00002c4, -536870204],
  ['kIOReturnExclusiveAccess', 0xe00002c5, -536870203],
  ['kIOReturnBadMessageID', 0xe00002c6, -536870202],
  ['kIOReturnUnsupported', 0xe00002c7, -536870201],
  ['kIOReturnVMError', 0xe00002c8, -536870200],
  ['kIOReturnInternalError', 0xe00002c9, -536870199],
  ['kIOReturnIOError', 0xe00002ca, -536870198],
  ['kIOReturnCannotLock', 0xe00002cc, -536870196],
  ['kIOReturnNotOpen', 0xe00002cd, -536870195],
  ['kIOReturnNotReadable', 0xe00002ce, -536870194],
  ['kIOReturnNotWritable', 0xe00002cf, -536870193],
  ['kIOReturnNotAligned', 0xe00002d0, -536870192],
  ['kIOReturnBadMedia', 0xe00002d1, -536870191],
  ['kIOReturnStillOpen', 0xe00002d2, -536870190],
  ['kIOReturnRLDError', 0xe00002d3, -536870189],
  ['kIOReturnDMAError', 0xe00002d4, -536870188],
  ['kIOReturnBusy', 0xe00002d5, -536870187],
  ['kIOReturnTimeout', 0xe00002d6, -536870186],
  ['kIOReturnOffline', 0xe00002d7, -536870185],
  ['kIOReturnNotReady', 0xe00002d8, -536870184],
  ['kIOReturnNotAttached', 0xe00002d9, -536870183],
  ['kIOReturnNoChannels', 0xe00002da, -536870182],
  ['kIOReturnNoSpace', 0xe00002db, -536870181],
  ['kIOReturnPortExists', 0xe00002dd, -536870179],
  ['kIOReturnCannotWire', 0xe00002de, -536870178],
  ['kIOReturnNoInterrupt', 0xe00002df, -536870177],
  ['kIOReturnNoFrames', 0xe00002e0, -536870176],
  ['kIOReturnMessageTooLarge', 0xe00002e1, -536870175],
  ['kIOReturnNotPermitted', 0xe00002e2, -536870174],
  ['kIOReturnNoPower', 0xe00002e3, -536870173],
  ['kIOReturnNoMedia', 0xe00002e4, -536870172],
  ['kIOReturnUnformattedMedia', 0xe00002e5, -536870171],
  ['kIOReturnUnsupportedMode', 0xe00002e6, -536870170],
  ['kIOReturnUnderrun', 0xe00002e7, -536870169],
  ['kIOReturnOverrun', 0xe00002e8, -536870168],
  ['kIOReturnDeviceError', 0xe00002e9, -536870167],
  ['kIOReturnNoCompletion', 0xe00002ea, -536870166],
  ['kIOReturnAborted', 0xe00002eb, -536870165],
  ['kIOReturnNoBandwidth', 0xe00002ec, -536870164],
  ['kIOReturnNotResponding', 0xe00002ed, -536870163],
  ['kIOReturnIsoTooOld', 0xe00002ee, -536870162],
  ['kIOReturnIsoTooNew', 0xe00002ef, -536870161],
  ['kIOReturnNotFound', 0xe00002f0, -536870160],
  ['kIOReturnInvalid', 0xe0000001, -536870911],
];

const MACH: [string, number, number][] = [
  // osfmk/mach/kern_return.h
  ['KERN_SUCCESS', 0, 0],
  ['KERN_INVALID_ADDRESS', 1, 1],
  ['KERN_PROTECTION_FAILURE', 2, 2],
  ['KERN_NO_SPACE', 3, 3],
  ['KERN_INVALID_ARGUMENT', 4, 4],
  ['KERN_FAILURE', 5, 5],
  ['KERN_RESOURCE_SHORTAGE', 6, 6],
  ['KERN_NO_ACCESS', 8, 8],
  ['KERN_ABORTED', 14, 14],
  ['KERN_INVALID_NAME', 15, 15],
  ['KERN_INVALID_TASK', 16, 16],
  ['KERN_INVALID_RIGHT', 17, 17],
  ['KERN_INVALID_VALUE', 18, 18],
  ['KERN_INVALID_CAPABILITY', 20, 20],
  ['KERN_TERMINATED', 37, 37],
  ['KERN_NOT_SUPPORTED', 46, 46],
  ['KERN_OPERATION_TIMED_OUT', 49, 49],
  ['KERN_DENIED', 53, 53],
  ['KERN_NOT_FOUND', 56, 56],
  // osfmk/mach/message.h
  ['MACH_SEND_INVALID_DATA', 0x10000002, 268435458],
  ['MACH_SEND_INVALID_DEST', 0x10000003, 268435459],
  ['MACH_SEND_TIMED_OUT', 0x10000004, 268435460],
  ['MACH_SEND_INTERRUPTED', 0x10000007, 268435463],
  ['MACH_SEND_INVALID_REPLY', 0x10000009, 268435465],
  ['MACH_SEND_INVALID_RIGHT', 0x1000000a, 268435466],
  ['MACH_SEND_NO_BUFFER', 0x1000000d, 268435469],
  ['MACH_SEND_TOO_LARGE', 0x1000000e, 268435470],
  ['MACH_RCV_INVALID_NAME', 0x10004002, 268451842],
  ['MACH_RCV_TIMED_OUT', 0x10004003, 268451843],
  ['MACH_RCV_TOO_LARGE', 0x10004004, 268451844],
  ['MACH_RCV_INTERRUPTED', 0x10004005, 268451845],
  ['MACH_RCV_PORT_DIED', 0x10004009, 268451849],
  // osfmk/mach/mig_errors.h
  ['MIG_TYPE_ERROR', 0xfffffed4, -300],
  ['MIG_REPLY_MISMATCH', 0xfffffed3, -301],
  ['MIG_REMOTE_ERROR', 0xfffffed2, -302],
  ['MIG_BAD_ID', 0xfffffed1, -303],
  ['MIG_BAD_ARGUMENTS', 0xfffffed0, -304],
  ['MIG_NO_REPLY', 0xfffffecf, -305],
  ['MIG_EXCEPTION', 0xfffffece, -306],
  ['MIG_ARRAY_TOO_LARGE', 0xfffffecd, -307],
  ['MIG_SERVER_DIED', 0xfffffecc, -308],
  ['MIG_TRAILER_ERROR', 0xfffffecb, -309],
];

const TABLE = [...LIBKERN, ...IOKIT, ...MACH];

test('the hand-written table is itself consistent (hex and signed columns are the same bits)', () => {
  for (const [name, hex, signed] of TABLE) {
    expect({ name, signed: hex | 0 }).toEqual({ name, signed });
    expect({ name, unsigned: signed >>> 0 }).toEqual({ name, unsigned: hex });
  }
  expect(new Set(TABLE.map(([n]) => n)).size).toBe(TABLE.length);
});

test.each(TABLE)('%s is %p by the headers', (name, hex, signed) => {
  expect(codeValue(name as never)).toBe(hex);
  for (const input of [hex, signed, BigInt(hex), BigInt(signed), String(hex), String(signed), '0x' + hex.toString(16)]) {
    const d = describeReturn(input);
    expect([d.name, ...d.aliases]).toContain(name);
    expect(d).toMatchObject({ value: hex, signed, known: true });
  }
});

test('the code table has exactly the codes of the hand-written table, no more, no fewer', () => {
  expect(CODES.map((c) => c.name).sort()).toEqual(TABLE.map(([n]) => n).sort());
  for (const c of CODES) expect([c.name, c.value]).toEqual(TABLE.find(([n]) => n === c.name)!.slice(0, 2));
});

// The ends of each range, and the first value past each end, by the err_system/err_sub layout.
test.each([
  // [value, name or null (unknown), system, subsystem, code, systemName, subsystemName]
  [0xdc000001, 'kOSReturnError', 0x37, 0, 1, 'libkern', 'common'],
  [0xdc000000, null, 0x37, 0, 0, 'libkern', 'common'],
  [0xdc000002, null, 0x37, 0, 2, 'libkern', 'common'],
  [0xdc004001, 'kOSMetaClassInternal', 0x37, 1, 1, 'libkern', 'metaclass'],
  [0xdc00400b, 'kOSMetaClassNoKext', 0x37, 1, 0xb, 'libkern', 'metaclass'],
  [0xdc004000, null, 0x37, 1, 0, 'libkern', 'metaclass'],
  [0xdc00400c, null, 0x37, 1, 0xc, 'libkern', 'metaclass'],
  [0xdc008001, 'kOSKextReturnInternalError', 0x37, 2, 1, 'libkern', 'kext'],
  [0xdc00801f, 'kOSKextReturnKCLoadFailureBothKCs', 0x37, 2, 0x1f, 'libkern', 'kext'],
  [0xdc008000, null, 0x37, 2, 0, 'libkern', 'kext'],
  [0xdc008020, null, 0x37, 2, 0x20, 'libkern', 'kext'],
  [0xdc00bfff, null, 0x37, 2, 0x3fff, 'libkern', 'kext'],
  [0xdfffc000, null, 0x37, 0xfff, 0, 'libkern', 'reserved'],
  [0xe0000001, 'kIOReturnInvalid', 0x38, 0, 1, 'iokit', 'common'],
  [0xe00002bc, 'kIOReturnError', 0x38, 0, 0x2bc, 'iokit', 'common'],
  [0xe00002f0, 'kIOReturnNotFound', 0x38, 0, 0x2f0, 'iokit', 'common'],
  [0xe00002bb, null, 0x38, 0, 0x2bb, 'iokit', 'common'],
  [0xe00002f1, null, 0x38, 0, 0x2f1, 'iokit', 'common'],
  [0xe00002cb, null, 0x38, 0, 0x2cb, 'iokit', 'common'], // unused hole
  [0xe00002dc, null, 0x38, 0, 0x2dc, 'iokit', 'common'], // unused hole
  [0x10000002, 'MACH_SEND_INVALID_DATA', 0x04, 0, 2, 'mach_ipc', 'send'],
  [0x10004009, 'MACH_RCV_PORT_DIED', 0x04, 1, 9, 'mach_ipc', 'rcv'],
  [0x10000001, null, 0x04, 0, 1, 'mach_ipc', 'send'],
  [0x1000400a, null, 0x04, 1, 0xa, 'mach_ipc', 'rcv'],
  [0xfffffed4, 'MIG_TYPE_ERROR', 0x3f, 0xfff, 0x3ed4, 'mig', 'mig'],
  [0xfffffecb, 'MIG_TRAILER_ERROR', 0x3f, 0xfff, 0x3ecb, 'mig', 'mig'],
  [0xfffffed5, null, 0x3f, 0xfff, 0x3ed5, 'unknown', 'unknown'], // -299: MIG's range is -300…-399
  [0xfffffe71, null, 0x3f, 0xfff, 0x3e71, 'mig', 'mig'], // -399, the other end
  [0xfffffe70, null, 0x3f, 0xfff, 0x3e70, 'unknown', 'unknown'], // -400: outside it
  [0x00000038, 'KERN_NOT_FOUND', 0, 0, 0x38, 'kern', 'unknown'],
  [0x00000039, null, 0, 0, 0x39, 'kern', 'unknown'],
  [0xffffffff, null, 0x3f, 0xfff, 0x3fff, 'unknown', 'unknown'],
  [0x80000000, null, 0x20, 0, 0, 'unknown', 'unknown'],
])('%p decodes as %s', (value, name, system, subsystem, code, systemName, subsystemName) => {
  const d = describeReturn(value);
  expect(d).toMatchObject({ value, system, subsystem, code, systemName, subsystemName, known: name !== null });
  expect(d.name).toBe(name ?? `UNKNOWN_0x${value.toString(16).toUpperCase().padStart(8, '0')}`);
});
