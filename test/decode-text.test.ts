// decodeText on real failure texts (test/fixtures/kmutil, each with its source) and on edges.
import * as fs from 'fs';
import * as path from 'path';
import { decodeText } from '../lib';

const FIXTURES = path.join(__dirname, 'fixtures', 'kmutil');
const read = (f: string) => fs.readFileSync(path.join(FIXTURES, f), 'utf8');

/** What a finding comes down to: its kind, the text matched, and the code name or domain code. */
const brief = (text: string) =>
  decodeText(text).map((f) => [f.kind, f.match, f.kind === 'KMErrorDomain' ? f.domainCode : f.code!.name]);

const START_STOP = '(libkern/kext) kext (kmod) start/stop routine failed';

test.each<[string, unknown[][]]>([
  ['kmutil-not-loadable.txt', [
    ['message', '(libkern/kext) not loadable (reason unspecified)', 'kOSKextReturnNotLoadable'],
    ['decimal', '-603946989', 'kOSKextReturnNotLoadable'],
  ]],
  ['kmutil-collection-31.txt', [['KMErrorDomain', 'Error Domain=KMErrorDomain Code=31', 31]]],
  ['kmutil-71-architecture.txt', [['KMErrorDomain', 'Error Domain=KMErrorDomain Code=71', 71]]],
  ['kmutil-71-not-found.txt', [['KMErrorDomain', 'Error Domain=KMErrorDomain Code=71', 71]]],
  ['kmutil-29-signature.txt', [['KMErrorDomain', 'Error Domain=KMErrorDomain Code=29', 29]]],
  ['kmutil-not-approved.txt', []],
  ['kextunload-classes-have-instances.txt', [
    ['message', '(libkern/kext) kext is in use or retained (cannot unload)', 'kOSKextReturnInUse'],
  ]],
  ['kextunload-stop-failed.txt', [
    ['hex', '0xdc008017', 'kOSKextReturnStartStopError'],
    ['message', START_STOP, 'kOSKextReturnStartStopError'],
    ['message', START_STOP, 'kOSKextReturnStartStopError'],
  ]],
  ['kextd-start-failed.txt', [
    ['hex', '0xdc008017', 'kOSKextReturnStartStopError'],
    ['hex', '0xdc008017', 'kOSKextReturnStartStopError'],
    ['message', START_STOP, 'kOSKextReturnStartStopError'],
  ]],
  ['kextmanager-status.txt', [
    ['decimal', '-603946981', 'kOSKextReturnSystemPolicy'],
    ['decimal', '-603946981', 'kOSKextReturnSystemPolicy'],
  ]],
  ['kextload-system-policy.txt', [['message', '(libkern/kext) system policy prevents loading', 'kOSKextReturnSystemPolicy']]],
  ['name-in-comment.txt', [['name', 'kOSKextReturnBootLevel', 'kOSKextReturnBootLevel']]],
  ['kextstat-no-codes.txt', []],
  ['log-show-no-codes.txt', []],
])('%s', (file, expected) => {
  expect(brief(read(file))).toEqual(expected);
});

test('every fixture is listed in the README with its source, and names its source on line 1', () => {
  const readme = read('README.md');
  for (const f of fs.readdirSync(FIXTURES).filter((f) => f.endsWith('.txt'))) {
    expect(readme).toContain(f);
    expect(read(f).split('\n')[0]).toMatch(/^# source: https:\/\/github\.com\/[\w.-]+\/[\w.-]+\/(issues|pull)\/\d+/);
  }
});

test('indexes point at the match, in text order, and carry the full description', () => {
  for (const f of fs.readdirSync(FIXTURES).filter((f) => f.endsWith('.txt'))) {
    const text = read(f);
    const found = decodeText(text);
    for (const x of found) expect(text.slice(x.index, x.index + x.match.length)).toBe(x.match);
    expect(found.map((x) => x.index)).toEqual([...found.map((x) => x.index)].sort((a, b) => a - b));
    expect(new Set(found.map((x) => x.index)).size).toBe(found.length);
  }
  const [sig] = decodeText(read('kmutil-29-signature.txt'));
  expect(sig.description).toMatch(/^Authenticating extension failed: Kext com\.alexandred\.VoodooI2CHID v1 .*\n\nAuthenticating extension failed: Bad code signature$/s);
  expect(sig.code).toBeUndefined();
  const [arch] = decodeText(read('kmutil-71-architecture.txt'));
  expect(arch).toEqual({
    match: 'Error Domain=KMErrorDomain Code=71', index: expect.any(Number), kind: 'KMErrorDomain', domainCode: 71,
    description: 'Incompatible architecture: Binary is for x86_64, but needed arch arm64e',
  });
});

test('a decoded finding carries the whole ReturnDescription', () => {
  const [f] = decodeText('failed (-603946984)');
  expect(f).toEqual({ match: '-603946984', index: 8, kind: 'decimal', code: expect.objectContaining({ name: 'kOSKextReturnInUse', value: 0xdc008018, hex: '0xDC008018', signed: -603946984 }) });
});

test.each<[string, unknown[][]]>([
  // hex: exactly 8 digits, either case, ends of sentences and parentheses are fine
  ['0xDC008006 0Xdc008006.', [['hex', '0xDC008006', 'kOSKextReturnNotFound'], ['hex', '0Xdc008006', 'kOSKextReturnNotFound']]],
  ['(0xe00002c1)', [['hex', '0xe00002c1', 'kIOReturnNotPrivileged']]],
  ['0x12345678', [['hex', '0x12345678', 'UNKNOWN_0x12345678']]],
  ['0x1234567 0x123456789 0xffffff7f83496000 x0xdc008006 0xdc008006z 0xdc008006.5 1.0xdc008006', []],
  // decimals: negative ones in parentheses always, bare ones only when known
  ['(-1) (-12345)', [['decimal', '-1', 'UNKNOWN_0xFFFFFFFF'], ['decimal', '-12345', 'UNKNOWN_0xFFFFCFC7']]],
  ['status -536870207, then -12345', [['decimal', '-536870207', 'kIOReturnNotPrivileged']]],
  ['ends with -307.', [['decimal', '-307', 'MIG_ARRAY_TOO_LARGE']]],
  ['(3691020294) (5) 2022-05-16 -0700 v-300 1-300 -300.5 --300 (-2147483649) (-99999999999)', []],
  ['(-2147483648)', [['decimal', '-2147483648', 'UNKNOWN_0x80000000']]],
  // names: whole words only, the longest name wins
  ['kOSKextReturnKCLoadFailureSystemKC and kIOReturnSuccess', [
    ['name', 'kOSKextReturnKCLoadFailureSystemKC', 'kOSKextReturnKCLoadFailureSystemKC'],
    ['name', 'kIOReturnSuccess', 'kOSReturnSuccess'],
  ]],
  ['kOSKextReturnInUseX xkOSKextReturnInUse kOSKextReturnNotAThing KERN_FAILURE_2', []],
  ['MIG_ARRAY_TOO_LARGE/KERN_FAILURE', [['name', 'MIG_ARRAY_TOO_LARGE', 'MIG_ARRAY_TOO_LARGE'], ['name', 'KERN_FAILURE', 'KERN_FAILURE']]],
  // KMErrorDomain: with or without "Error Domain=", a code inside its description is still found
  ['KMErrorDomain Code=1', [['KMErrorDomain', 'KMErrorDomain Code=1', 1]]],
  ['Error Domain=KMErrorDomain Code=31 "stop returned 0xdc008017" UserInfo={}', [
    ['KMErrorDomain', 'Error Domain=KMErrorDomain Code=31', 31], ['hex', '0xdc008017', 'kOSKextReturnStartStopError'],
  ]],
  ['Error Domain=KMErrorDomain Code=-5', [['KMErrorDomain', 'Error Domain=KMErrorDomain Code=-5', -5]]],
  ['Error Domain=NSPOSIXErrorDomain Code=2 "No such file or directory"', []],
  ['KMErrorDomain Code=12345678901', []],
  ['', []],
])('%j', (text, expected) => {
  expect(brief(text)).toEqual(expected);
});

test('a KMErrorDomain without a quoted description has none; a long one is clipped', () => {
  expect(decodeText('Error Domain=KMErrorDomain Code=71 UserInfo={}')[0]).not.toHaveProperty('description');
  const long = decodeText(`Error Domain=KMErrorDomain Code=71 "${'x'.repeat(5000)}"`)[0].description!;
  expect(long.length).toBeLessThanOrEqual(301);
  expect(long.endsWith('…')).toBe(true);
});

test('large input is linear, not a regex blow-up', () => {
  const text = ('(kernel) Kext com.example did not stop (return code 0x5). -0700 0xffffff7f83496000 ' + '-'.repeat(50) + '\n').repeat(20_000);
  const t0 = Date.now();
  expect(decodeText(text)).toEqual([]);
  expect(Date.now() - t0).toBeLessThan(2000);
});

test('refuses what is not a string', () => {
  for (const bad of [undefined, null, 5, Buffer.from('0xdc008006'), {}, ['0xdc008006']])
    expect(() => decodeText(bad as never)).toThrow(TypeError);
  expect(() => decodeText(5 as never)).toThrow(/^text must be a string/);
});
