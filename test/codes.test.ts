// One source of truth: protocol/kextbridge.json → C++ and TypeScript tables that agree.
import { execFileSync } from 'child_process';
import * as path from 'path';
import { CODES, describeReturn, SELECTORS } from '../lib';
import { binding } from '../lib/native';

const spec = require('../protocol/kextbridge.json');

test('the generated C++ and TypeScript files are up to date with protocol/kextbridge.json', () => {
  expect(() => execFileSync(process.execPath, [path.join(__dirname, '../scripts/gen-protocol.js'), '--check'], { stdio: 'pipe' })).not.toThrow();
});

test('the C++ code table compiled into the addon equals the TypeScript one and the source', () => {
  const fromSource = spec.codes.map((c: { name: string; value: string; message: string }) => ({ name: c.name, value: Number(c.value), message: c.message }));
  expect(binding().codes()).toEqual(fromSource);
  expect(CODES.map((c) => ({ name: c.name, value: c.value, message: c.message }))).toEqual(fromSource);
});

test('the C++ selector table equals the TypeScript one', () => {
  const ts = Object.entries(SELECTORS).map(([name, s]) => ({
    name, selector: s.selector, scalarInputs: s.scalarInputs, structInputSize: s.structInputSize,
    scalarOutputs: s.scalarOutputs, structOutputSize: s.structOutputSize, admin: s.admin,
  }));
  expect(binding().selectors()).toEqual(ts);
  expect(SELECTORS.held.structOutputSize).toBe(spec.limits.ledgerCapacity * 8);
});

test('every named code round-trips through describeReturn, signed or unsigned', () => {
  expect(CODES.length).toBeGreaterThan(130);
  for (const c of CODES) {
    const d = describeReturn(c.value);
    expect([d.name, ...d.aliases]).toContain(c.name);
    expect(d.known).toBe(true);
    expect(describeReturn(c.value | 0)).toEqual(d);
    expect(d.hex).toBe('0x' + c.value.toString(16).toUpperCase().padStart(8, '0'));
  }
});

test.each([
  [0xdc008006, 'kOSKextReturnNotFound', 0x37, 2, 6, 'libkern', 'kext'],
  [-603947002, 'kOSKextReturnNotFound', 0x37, 2, 6, 'libkern', 'kext'],
  [0xdc008005, 'kOSKextReturnInvalidArgument', 0x37, 2, 5, 'libkern', 'kext'],
  [0xdc008018, 'kOSKextReturnInUse', 0x37, 2, 0x18, 'libkern', 'kext'],
  [0xdc00801f, 'kOSKextReturnKCLoadFailureBothKCs', 0x37, 2, 0x1f, 'libkern', 'kext'],
  [0xdc004002, 'kOSMetaClassHasInstances', 0x37, 1, 2, 'libkern', 'metaclass'],
  [0xdc000001, 'kOSReturnError', 0x37, 0, 1, 'libkern', 'common'],
  [0xe00002c2, 'kIOReturnBadArgument', 0x38, 0, 0x2c2, 'iokit', 'common'],
  [0xe00002c1, 'kIOReturnNotPrivileged', 0x38, 0, 0x2c1, 'iokit', 'common'],
  [0xe00002e2, 'kIOReturnNotPermitted', 0x38, 0, 0x2e2, 'iokit', 'common'],
  [0xe00002be, 'kIOReturnNoResources', 0x38, 0, 0x2be, 'iokit', 'common'],
  [0x10000003, 'MACH_SEND_INVALID_DEST', 0x04, 0, 3, 'mach_ipc', 'send'],
  [0x10004003, 'MACH_RCV_TIMED_OUT', 0x04, 1, 3, 'mach_ipc', 'rcv'],
  [-307, 'MIG_ARRAY_TOO_LARGE', 0x3f, 0xfff, 0x3ecd, 'mig', 'mig'],
  [5, 'KERN_FAILURE', 0, 0, 5, 'kern', 'unknown'],
])('describeReturn(%s) is %s', (input, name, system, subsystem, code, systemName, subsystemName) => {
  expect(describeReturn(input)).toMatchObject({ name, system, subsystem, code, systemName, subsystemName, value: input >>> 0 });
});

test('0 has one primary name and its aliases', () => {
  expect(describeReturn(0)).toMatchObject({ name: 'kOSReturnSuccess', aliases: ['kIOReturnSuccess', 'KERN_SUCCESS'], message: 'success' });
});

test('unknown codes decode structurally and never throw', () => {
  expect(describeReturn(0xdc008020)).toMatchObject({
    known: false, name: 'UNKNOWN_0xDC008020', system: 0x37, subsystem: 2, code: 0x20, systemName: 'libkern', subsystemName: 'kext',
    message: 'unknown code 0xDC008020: system 0x37 (libkern), subsystem 2 (kext), code 0x20',
  });
  expect(describeReturn(0x12345678).known).toBe(false);
  expect(describeReturn(0xffffffff).name).toBe('UNKNOWN_0xFFFFFFFF');
});

test('describeReturn refuses what is not a 32-bit integer', () => {
  expect(() => describeReturn('5' as unknown as number)).toThrow(TypeError);
  expect(() => describeReturn(5n as unknown as number)).toThrow(TypeError);
  expect(() => describeReturn(1.5)).toThrow(RangeError);
  expect(() => describeReturn(2 ** 32)).toThrow(RangeError);
  expect(() => describeReturn(NaN)).toThrow(RangeError);
});
