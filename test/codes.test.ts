// One source of truth: protocol/kextbridge.json → C++ and TypeScript tables that agree.
import { execFileSync } from 'child_process';
import * as path from 'path';
import { CODES, codeValue, describeReturn, SELECTORS, toHex } from '../lib';
import { binding } from '../lib/native';

const spec = require('../protocol/kextbridge.json');

test('the generated C++ and TypeScript files are up to date with protocol/kextbridge.json', () => {
  expect(() => execFileSync(process.execPath, [path.join(__dirname, '../scripts/gen-protocol.js'), '--check'], { stdio: 'pipe' })).not.toThrow();
});

test('the C++ code table compiled into the addon equals the TypeScript one and the source', () => {
  const fromSource = spec.codes.map((c: { name: string; value: string; message: string }) => ({ name: c.name, value: Number(c.value), message: c.message }));
  expect(binding()._codes()).toEqual(fromSource);
  expect(CODES.map((c) => ({ name: c.name, value: c.value, message: c.message }))).toEqual(fromSource);
});

test('the C++ selector table equals the TypeScript one', () => {
  const ts = Object.entries(SELECTORS).map(([name, s]) => ({
    name, selector: s.selector, scalarInputs: s.scalarInputs, structInputSize: s.structInputSize,
    scalarOutputs: s.scalarOutputs, structOutputSize: s.structOutputSize, admin: s.admin,
  }));
  expect(binding()._selectors()).toEqual(ts);
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

test('describeReturn takes numbers, bigints and hex, decimal or signed strings alike', () => {
  const d = describeReturn(0xdc008017);
  expect(d.name).toBe('kOSKextReturnStartStopError');
  for (const input of ['0xDC008017', '0xdc008017', '0XDC008017', '3691020311', '-603946985', -603946985, -603946985n, 3691020311n, '0x00dc008017'])
    expect(describeReturn(input)).toEqual(d);
  expect(describeReturn('0')).toEqual(describeReturn(0));
  expect(describeReturn('0x1')).toEqual(describeReturn(1));
});

test.each([
  ['0xFFFFFFFF', 0xffffffff], ['4294967295', 0xffffffff], ['-1', 0xffffffff], [-1n, 0xffffffff], [0xffffffffn, 0xffffffff],
  ['-2147483648', 0x80000000], [-0x80000000, 0x80000000], [-0x80000000n, 0x80000000], ['2147483647', 0x7fffffff], [0n, 0],
])('the ends of the 32-bit range are accepted: %p is %s', (input, value) => {
  expect(describeReturn(input).value).toBe(value);
});

test.each([
  [NaN, RangeError], [Infinity, RangeError], [-Infinity, RangeError], [1.5, RangeError], [2 ** 32, RangeError], [-(2 ** 31) - 1, RangeError],
  [2n ** 32n, RangeError], [-(2n ** 31n) - 1n, RangeError], ['4294967296', RangeError], ['-2147483649', RangeError], ['0x100000000', RangeError],
  ['99999999999999999999999999', RangeError],
  ['', TypeError], ['abc', TypeError], ['0x', TypeError], ['1.5', TypeError], [' 5', TypeError], ['5 ', TypeError], ['+5', TypeError],
  ['-0x5', TypeError], ['0x-5', TypeError], ['1e3', TypeError], ['0b101', TypeError], ['kOSKextReturnNotFound', TypeError],
  [null, TypeError], [undefined, TypeError], [{}, TypeError], [[5], TypeError], [true, TypeError], [Symbol('x'), TypeError], [() => 5, TypeError],
  [{ valueOf: () => 5 }, TypeError], [new Number(5), TypeError],
])('describeReturn(%p) throws %p naming the argument', (input, kind) => {
  expect(() => describeReturn(input as never)).toThrow(kind as ErrorConstructor);
  expect(() => describeReturn(input as never)).toThrow(/^code must be/);
});

test('error messages quote at most ~100 characters of the input', () => {
  const long = 'x'.repeat(10_000);
  let message = '';
  try { describeReturn(long); } catch (e) { message = (e as Error).message; }
  expect(message.length).toBeLessThan(250);
  try { describeReturn('9'.repeat(10_000)); } catch (e) { message = (e as Error).message; }
  expect(message.length).toBeLessThan(250);
});

test('0 is success, named by its system: kern (err_get_system(0) is 0), kOSReturnSuccess kept as the name results switch on', () => {
  expect(describeReturn(0)).toMatchObject({
    name: 'kOSReturnSuccess', aliases: ['kIOReturnSuccess', 'KERN_SUCCESS'], message: 'success', known: true,
    system: 0, subsystem: 0, code: 0, systemName: 'kern', hex: '0x00000000', signed: 0,
  });
  expect(describeReturn('0x00000000')).toEqual(describeReturn(0));
  expect(describeReturn(-0)).toEqual(describeReturn(0));
});

test('toHex formats 32-bit integers and refuses anything else', () => {
  expect(toHex(0)).toBe('0x00000000');
  expect(toHex(0xdc008006)).toBe('0xDC008006');
  expect(toHex(-307)).toBe('0xFFFFFECD');
  expect(toHex(0xffffffff)).toBe('0xFFFFFFFF');
  expect(toHex(-0x80000000)).toBe('0x80000000');
  for (const bad of [NaN, 1.5, 2 ** 32, -(2 ** 31) - 1, Infinity]) expect(() => toHex(bad)).toThrow(RangeError);
  for (const bad of ['5', '0x5', 5n, null, undefined, {}]) expect(() => toHex(bad as never)).toThrow(TypeError);
  expect(() => toHex(NaN)).toThrow(/^value must be/);
});

test('codeValue of an unknown name throws a clear error instead of returning nothing', () => {
  expect(codeValue('kOSKextReturnNotFound')).toBe(0xdc008006);
  expect(() => codeValue('kOSKextReturnNotFund' as never)).toThrow(RangeError);
  expect(() => codeValue('kOSKextReturnNotFund' as never)).toThrow(/'kOSKextReturnNotFund'|"kOSKextReturnNotFund"/);
  expect(() => codeValue('' as never)).toThrow(RangeError);
  expect(() => codeValue('constructor' as never)).toThrow(RangeError);
  expect(() => codeValue(5 as never)).toThrow(TypeError);
});
