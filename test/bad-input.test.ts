// Bad input anywhere gets a clear error naming the argument and changes nothing.
//
// One matrix: every public function and option × every kind of bad value. Each cell must
// throw (or reject with) a TypeError or RangeError whose message names the argument, raised by
// the TypeScript layer before anything reaches native code, and leave the simulated machine
// exactly as it was (loaded kexts, clock, scan deadline, panic, every connection's ledger).
// A closed connection is one more kind of bad input: KextBridgeError MACH_SEND_INVALID_DEST.
import { createSimKernel, describeReturn, KextBridge, KextBridgeError, open, SELECTORS, SimKernel } from '../lib';
import { binding, NativeConnection } from '../lib/native';

const BAD: readonly unknown[] = [NaN, -1, 2 ** 32, 1.5, '5', null, undefined, {}, [], 5n];

let kernel: SimKernel;
let kb: KextBridge;
let other: KextBridge;
/** A kext of the test's own, with a class whose instances setInstances may set. */
let target: number;
beforeEach(async () => {
  kernel = createSimKernel();
  target = kernel.loadKext({ bundleId: 'com.example.target', version: '1.0', classes: [{ name: 'com_example_Driver', instances: 1 }] });
  kb = await open({ backend: 'sim', kernel });
  other = await open({ backend: 'sim', kernel });
  await kb.retain(); // some state to be disturbed
  await other.retain(target);
  await other.release(target); // and a scan armed
});
afterEach(async () => {
  await kb.close();
  await other.close();
});

/**
 * Everything a bad input could disturb: the loaded-kext table, every kext's raw OSObject count
 * (with the kernel's baseline: __kernel__ and the KPI interfaces too), the clock and scan, a
 * panic, both connections' ledgers and what reached each native connection at all.
 */
async function snapshot() {
  const held = async (c: KextBridge) => (c.closed ? 'closed' : await c.held());
  const kexts = kernel.loadedKexts();
  const raw = Object.fromEntries(kexts.map((k) => [k.bundleId, kernel.rawRetainCount(k.loadTag)]));
  const state = {
    kexts,
    raw,
    now: kernel.now,
    deadline: kernel.autounloadDeadline,
    panic: kernel.panicked,
    held: await held(kb),
    otherHeld: await held(other),
  };
  // Read last, so the held() calls above are counted in it.
  return { ...state, nativeCalls: [kb._nativeCalls, other._nativeCalls] };
}

/** The snapshot as it is when nothing happened since `before` (the counters unchanged). */
async function expectUnchanged(before: Awaited<ReturnType<typeof snapshot>>): Promise<void> {
  // Nothing reached either native connection between the two snapshots.
  expect([kb._nativeCalls, other._nativeCalls]).toEqual(before.nativeCalls);
  const after = await snapshot();
  expect({ ...after, nativeCalls: undefined }).toEqual({ ...before, nativeCalls: undefined });
}

interface Row {
  /** The call, as a reader would write it. */
  fn: string;
  /** What the error message must name. */
  arg: string;
  call: (v: unknown) => unknown;
  /** Values of BAD that are fine for this argument. */
  valid?: readonly unknown[];
}
const optional = [undefined];
const aString = ['5'];
const spec = (extra: object) => ({ bundleId: 'com.example.new', version: '1.0', ...extra });
const cls = (extra: object) => spec({ classes: [{ name: 'com_example_New', ...extra }] });

const rows: Row[] = [
  // open() and its options
  { fn: 'open(options)', arg: 'options', call: (v) => open(v as never), valid: [undefined, {}] },
  { fn: 'open({ backend })', arg: 'backend', call: (v) => open({ backend: v as never, kernel }), valid: optional },
  { fn: 'open({ kernel })', arg: 'kernel', call: (v) => open({ backend: 'sim', kernel: v as never }), valid: optional },
  { fn: 'open({ privileged })', arg: 'privileged', call: (v) => open({ backend: 'sim', kernel, privileged: v as never }), valid: optional },
  // the connection, async
  { fn: 'kb.retain(loadTag)', arg: 'loadTag', call: (v) => kb.retain(v as number), valid: optional },
  { fn: 'kb.release(loadTag)', arg: 'loadTag', call: (v) => kb.release(v as number), valid: optional },
  { fn: 'kb.retainMany(loadTags)', arg: 'loadTags', call: (v) => kb.retainMany(v as number[]), valid: [[]] },
  { fn: 'kb.retainMany([tag, loadTag])', arg: 'loadTags[1]', call: (v) => kb.retainMany([kernel.sampleLoadTag, v] as number[]) },
  { fn: 'kb.releaseMany(loadTags)', arg: 'loadTags', call: (v) => kb.releaseMany(v as number[]), valid: [[]] },
  { fn: 'kb.releaseMany([loadTag])', arg: 'loadTags[0]', call: (v) => kb.releaseMany([v] as number[]) },
  // the connection, sync
  { fn: 'kb.sync.retain(loadTag)', arg: 'loadTag', call: (v) => kb.sync.retain(v as number), valid: optional },
  { fn: 'kb.sync.release(loadTag)', arg: 'loadTag', call: (v) => kb.sync.release(v as number), valid: optional },
  { fn: 'kb.sync.retainMany(loadTags)', arg: 'loadTags', call: (v) => kb.sync.retainMany(v as number[]), valid: [[]] },
  { fn: 'kb.sync.retainMany([loadTag])', arg: 'loadTags[0]', call: (v) => kb.sync.retainMany([v] as number[]) },
  { fn: 'kb.sync.releaseMany(loadTags)', arg: 'loadTags', call: (v) => kb.sync.releaseMany(v as number[]), valid: [[]] },
  { fn: 'kb.sync.releaseMany([tag, loadTag])', arg: 'loadTags[1]', call: (v) => kb.sync.releaseMany([kernel.sampleLoadTag, v] as number[]) },
  // createSimKernel
  { fn: 'createSimKernel(options)', arg: 'options', call: (v) => createSimKernel(v as never), valid: [undefined, {}] },
  { fn: 'createSimKernel({ autounload })', arg: 'autounload', call: (v) => createSimKernel({ autounload: v as never }), valid: optional },
  { fn: 'createSimKernel({ unloadEnabled })', arg: 'unloadEnabled', call: (v) => createSimKernel({ unloadEnabled: v as never }), valid: optional },
  // SimKernel.loadKext and every field of its spec
  { fn: 'kernel.loadKext(spec)', arg: 'spec', call: (v) => kernel.loadKext(v as never) },
  { fn: 'loadKext({ bundleId })', arg: 'spec.bundleId', call: (v) => kernel.loadKext(spec({ bundleId: v }) as never), valid: aString },
  { fn: 'loadKext({ version })', arg: 'spec.version', call: (v) => kernel.loadKext(spec({ version: v }) as never), valid: [undefined, '5'] },
  { fn: 'loadKext({ uuid })', arg: 'spec.uuid', call: (v) => kernel.loadKext(spec({ uuid: v }) as never), valid: optional },
  { fn: 'loadKext({ dependencies })', arg: 'spec.dependencies', call: (v) => kernel.loadKext(spec({ dependencies: v }) as never), valid: [undefined, []] },
  { fn: 'loadKext({ dependencies: [d] })', arg: 'spec.dependencies[0]', call: (v) => kernel.loadKext(spec({ dependencies: [v] }) as never), valid: aString },
  { fn: 'loadKext({ classes })', arg: 'spec.classes', call: (v) => kernel.loadKext(spec({ classes: v }) as never), valid: [undefined, []] },
  { fn: 'loadKext({ classes: [c] })', arg: 'spec.classes[0]', call: (v) => kernel.loadKext(spec({ classes: [v] }) as never) },
  { fn: 'loadKext({ classes: [{ name }] })', arg: 'spec.classes[0].name', call: (v) => kernel.loadKext(cls({ name: v }) as never), valid: aString },
  { fn: 'loadKext({ classes: [{ superclass }] })', arg: 'spec.classes[0].superclass', call: (v) => kernel.loadKext(cls({ superclass: v }) as never), valid: [undefined, '5'] },
  { fn: 'loadKext({ classes: [{ instances }] })', arg: 'spec.classes[0].instances', call: (v) => kernel.loadKext(cls({ instances: v }) as never), valid: optional },
  { fn: 'loadKext({ autounload })', arg: 'spec.autounload', call: (v) => kernel.loadKext(spec({ autounload: v }) as never), valid: optional },
  { fn: 'loadKext({ unloadUnsupported })', arg: 'spec.unloadUnsupported', call: (v) => kernel.loadKext(spec({ unloadUnsupported: v }) as never), valid: optional },
  { fn: 'loadKext({ started })', arg: 'spec.started', call: (v) => kernel.loadKext(spec({ started: v }) as never), valid: optional },
  // the other controls
  { fn: 'kernel.unloadKext(loadTag)', arg: 'loadTag', call: (v) => kernel.unloadKext(v as number) },
  { fn: 'kernel.setInstances(loadTag, …)', arg: 'loadTag', call: (v) => kernel.setInstances(v as number, 'com_example_Driver', 0) },
  // '5' is a string, but no class of the kext: RangeError naming className.
  { fn: 'kernel.setInstances(…, className, …)', arg: 'className', call: (v) => kernel.setInstances(target, v as string, 0) },
  { fn: 'kernel.setInstances(…, count)', arg: 'count', call: (v) => kernel.setInstances(target, 'com_example_Driver', v as number) },
  // 2^32 virtual milliseconds is a fine amount of time to advance; it is only bad as a tag.
  { fn: 'kernel.advance(ms)', arg: 'ms', call: (v) => kernel.advance(v as number), valid: [2 ** 32] },
  { fn: "kernel.injectFault(kpi, 'kOSKextReturnNotFound')", arg: 'kpi', call: (v) => kernel.injectFault(v as never, 'kOSKextReturnNotFound') },
  // '5' is a string, but no code name.
  { fn: "kernel.injectFault('retain', code)", arg: 'code', call: (v) => kernel.injectFault('retain', v as never) },
  { fn: "kernel.injectFault('retain', 0xDC008006, times)", arg: 'times', call: (v) => kernel.injectFault('retain', 0xdc008006, v as number), valid: optional },
  { fn: 'kernel.kpi.retainKextWithLoadTag(loadTag)', arg: 'loadTag', call: (v) => kernel.kpi.retainKextWithLoadTag(v as number) },
  { fn: 'kernel.kpi.releaseKextWithLoadTag(loadTag)', arg: 'loadTag', call: (v) => kernel.kpi.releaseKextWithLoadTag(v as number) },
  { fn: 'kernel.lookup(bundleId)', arg: 'bundleId', call: (v) => kernel.lookup(v as string), valid: aString },
  { fn: 'kernel.rawRetainCount(loadTag)', arg: 'loadTag', call: (v) => kernel.rawRetainCount(v as number) },
  // the workflow API: a target is a load tag or a bundle id ('5' is a bundle id)
  { fn: 'kb.kext(target)', arg: 'target', call: (v) => kb.kext(v as number), valid: aString },
  { fn: 'kb.explain(target)', arg: 'target', call: (v) => kb.explain(v as number), valid: aString },
  { fn: 'kb.waitForUnload(target)', arg: 'target', call: (v) => kb.waitForUnload(v as number), valid: aString },
  { fn: 'kb.waitForLoad(…, { timeout })', arg: 'options.timeout', call: (v) => kb.waitForLoad(target, { timeout: v as number }), valid: optional },
  { fn: 'kb.waitForRetainCount(…, n)', arg: 'n must be', call: (v) => kb.waitForRetainCount(target, v as number) },
  { fn: 'kb.watch({ bundleIds })', arg: 'options.bundleIds', call: (v) => kb.watch({ bundleIds: v as string[] }), valid: [undefined, []] },
  { fn: 'kernel.events(cursor)', arg: 'cursor', call: (v) => kernel.events(v as number), valid: [undefined, 2 ** 32] },
  { fn: 'kernel.explain(target)', arg: 'target', call: (v) => kernel.explain(v as number), valid: aString },
  // -1 is a signed kern_return_t (0xFFFFFFFF): describeReturn decodes signed and unsigned,
  // and takes bigints and decimal or hex strings too.
  { fn: 'describeReturn(code)', arg: 'code', call: (v) => describeReturn(v as number), valid: [-1, '5', 5n] },
];

/** Values that are the right type but still wrong, per argument (beyond BAD). */
const MORE: Row[] = [
  { fn: 'kb.retain(loadTag)', arg: 'loadTag', call: (v) => kb.retain(v as number) },
  { fn: 'kernel.advance(ms)', arg: 'ms', call: (v) => kernel.advance(v as number) },
  { fn: 'loadKext({ bundleId })', arg: 'spec.bundleId', call: (v) => kernel.loadKext(spec({ bundleId: v }) as never) },
  { fn: 'loadKext({ version })', arg: 'spec.version', call: (v) => kernel.loadKext(spec({ version: v }) as never) },
  { fn: 'loadKext({ uuid })', arg: 'spec.uuid', call: (v) => kernel.loadKext(spec({ uuid: v }) as never) },
  { fn: 'loadKext({ classes })', arg: 'spec.classes[1].name', call: (v) => kernel.loadKext(spec({ classes: v }) as never) },
  { fn: 'kernel.setInstances(sample, className, …)', arg: 'className', call: (v) => kernel.setInstances(kernel.sampleLoadTag, v as string, 0) },
  { fn: 'kernel.lookup(bundleId)', arg: 'bundleId', call: (v) => kernel.lookup(v as string) },
  { fn: "kernel.injectFault('retain', code)", arg: 'code', call: (v) => kernel.injectFault('retain', v as never) },
];
const moreValues: [number, unknown][] = [
  [0, -0.5],
  [0, Infinity],
  [1, 2 ** 53],
  [2, 'com.example.' + 'x'.repeat(60)], // kmod_info holds 63 bytes and a NUL
  [2, 'com.example.a\0b'],
  [2, ''],
  [3, '1.' + '0'.repeat(70)],
  [4, '5'],
  [4, 'not-a-uuid-at-all'],
  [5, [{ name: 'C' }, { name: 'C' }]], // a class name declared twice
  [6, 'org_kextbridge_SampleUserClient'], // its instances are the open connections
  [7, 'a\0b'],
  [8, 0], // a fault that answers success would make the ledger count a retain the kernel never took
  [8, 'kOSReturnSuccess'],
];

async function expectArgumentError(row: Row, value: unknown): Promise<void> {
  const before = await snapshot();
  let error: unknown;
  try {
    const accepted = await row.call(value);
    if (accepted instanceof KextBridge) await accepted.close(); // accepted by mistake: don't leak it
  } catch (e) {
    error = e;
  }
  expect(error).toBeDefined();
  const e = error as Error;
  expect(['TypeError', 'RangeError']).toContain(e.name);
  // Raised in TypeScript (this realm), not by the addon after the fact.
  expect([TypeError, RangeError].some((t) => error instanceof t)).toBe(true);
  expect(e.message).toContain(row.arg);
  await expectUnchanged(before);
}

const hasValue = (list: readonly unknown[] | undefined, v: unknown) => (list ?? []).some((x) => Object.is(x, v) || (Array.isArray(x) && Array.isArray(v) && x.length === v.length && x.length === 0) || (isEmptyObject(x) && isEmptyObject(v)));
const isEmptyObject = (x: unknown) => x !== null && typeof x === 'object' && !Array.isArray(x) && Object.keys(x).length === 0;


describe.each(rows.map((r) => [r.fn, r] as const))('%s', (_fn, row) => {
  const values = BAD.filter((v) => !hasValue(row.valid, v));
  test.each(values.map((v) => [v]))(`rejects %p, naming ${row.arg}, and changes nothing`, (value) => expectArgumentError(row, value));
});

describe('right type, wrong value', () => {
  test.each(moreValues.map(([i, v]) => [MORE[i].fn, v, i] as const))('%s rejects %p', (_fn, value, i) => expectArgumentError(MORE[i], value));
});

describe('a closed connection', () => {
  const closedRows: [string, () => unknown][] = [
    ['retain()', () => kb.retain()],
    ['retain(tag)', () => kb.retain(kernel.sampleLoadTag)],
    ['release(tag)', () => kb.release(kernel.sampleLoadTag)],
    ['retainMany', () => kb.retainMany([kernel.sampleLoadTag])],
    ['releaseMany', () => kb.releaseMany([kernel.sampleLoadTag])],
    ['held', () => kb.held()],
    ['info', () => kb.info()],
    ['loadedKexts', () => kb.loadedKexts()],
    ['sync.info', () => kb.sync.info()],
    ['sync.retain', () => kb.sync.retain()],
    ['sync.release', () => kb.sync.release(kernel.sampleLoadTag)],
    ['sync.retainMany', () => kb.sync.retainMany([kernel.sampleLoadTag])],
    ['sync.releaseMany', () => kb.sync.releaseMany([kernel.sampleLoadTag])],
    ['sync.held', () => kb.sync.held()],
    ['sync.loadedKexts', () => kb.sync.loadedKexts()],
    ['kext', () => kb.kext(kernel.sampleLoadTag)],
    ['explain', () => kb.explain(kernel.sampleLoadTag)],
    ['waitForUnload', () => kb.waitForUnload(kernel.sampleLoadTag)],
  ];
  test.each(closedRows)('%s fails with KextBridgeError MACH_SEND_INVALID_DEST and changes nothing', async (_name, call) => {
    await kb.close();
    const before = await snapshot();
    const error = await (async () => call())().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(KextBridgeError);
    expect(error).toMatchObject({ name: 'KextBridgeError', codeName: 'MACH_SEND_INVALID_DEST', code: 0x10000003 });
    // (a closed connection answers in native code: its counter moves, nothing else)
    expect({ ...(await snapshot()), nativeCalls: undefined }).toEqual({ ...before, nativeCalls: undefined });
  });

  test('close() again resolves and changes nothing', async () => {
    await kb.close();
    const before = await snapshot();
    await expect(kb.close()).resolves.toBeUndefined();
    // (a closed connection answers in native code: its counter moves, nothing else)
    expect({ ...(await snapshot()), nativeCalls: undefined }).toEqual({ ...before, nativeCalls: undefined });
  });

  test('a bad argument on a closed connection is still a TypeError/RangeError (checked first)', async () => {
    await kb.close();
    await expectArgumentError({ fn: 'kb.retain', arg: 'loadTag', call: (v) => kb.retain(v as number) }, -1);
    await expectArgumentError({ fn: 'kb.sync.releaseMany', arg: 'loadTags[0]', call: (v) => kb.sync.releaseMany([v] as number[]) }, '5');
  });
});

test('retain() and release() without an argument act on the sample kext; undefined means the same', async () => {
  expect(await kb.retain(undefined)).toMatchObject({ ok: true, loadTag: kernel.sampleLoadTag, held: 2 });
  expect(await kb.release()).toMatchObject({ ok: true, loadTag: kernel.sampleLoadTag, held: 1 });
});

test('0xFFFFFFFF is valid input (it is kOSKextInvalidLoadTag)', async () => {
  expect(await kb.retain(0xffffffff)).toMatchObject({ name: 'kOSKextReturnInvalidArgument' });
});

test.each([
  [{ backend: 'mac' }, TypeError, /backend/],
  [{ backend: 'iokit', kernel: undefined, privileged: false }, TypeError, /sim backend only/],
  [{ kernel: {} }, TypeError, /kernel/],
  [{ privileged: 'yes' }, TypeError, /privileged/],
  [{ colour: 'red' }, TypeError, /colour/],
  [5, TypeError, /options/],
  [null, TypeError, /options/],
])('open(%p) throws %p', async (options, type, message) => {
  await expect(open(options as never)).rejects.toThrow(type);
  await expect(open(options as never)).rejects.toThrow(message);
});

test('loadKext and controls validate their arguments', () => {
  const before = kernel.loadedKexts();
  expect(() => kernel.loadKext(undefined as never)).toThrow(TypeError);
  expect(() => kernel.loadKext({ bundleId: '' })).toThrow(/bundleId/);
  expect(() => kernel.loadKext({ bundleId: 'a', dependencies: 'x' } as never)).toThrow(/dependencies/);
  expect(() => kernel.loadKext({ bundleId: 'a', classes: [{ name: 'C', instances: -1 }] })).toThrow(/instances/);
  expect(() => kernel.loadKext({ bundleId: 'a', autounload: 1 } as never)).toThrow(/autounload/);
  expect(() => kernel.loadKext({ bundleId: 'a', colour: 'red' } as never)).toThrow(/colour/);
  expect(() => kernel.loadKext({ bundleId: 'a', classes: [{ name: 'C', colour: 'red' }] } as never)).toThrow(/colour/);
  expect(() => kernel.setInstances(kernel.sampleLoadTag, 5 as never, 1)).toThrow(/className/);
  expect(() => kernel.injectFault('load' as never, 0)).toThrow(/kpi/);
  expect(() => createSimKernel({ autounload: 'no' } as never)).toThrow(/autounload/);
  expect(() => createSimKernel({ colour: 'red' } as never)).toThrow(/colour/);
  expect(kernel.loadedKexts()).toEqual(before);
});

test('the edges of the valid range are accepted', () => {
  expect(kernel.loadKext({ bundleId: 'com.example.' + 'x'.repeat(51), version: '1.' + '0'.repeat(61), uuid: 'aae0d952-40dd-6cfa-91ed-9d8414056d99' })).toBeGreaterThan(target);
  expect(kernel.lookup('com.example.' + 'x'.repeat(51))).not.toBeNull();
  expect(kernel.lookup('com.example.never')).toBeNull();
  kernel.injectFault('release', 0xdc008006, 0);
  kernel.setInstances(target, 'com_example_Driver', 0xffffffff);
  kernel.advance(0);
  kernel.advance(Number.MAX_SAFE_INTEGER - kernel.now);
  expect(kernel.now).toBe(Number.MAX_SAFE_INTEGER);
  expect(() => kernel.advance(1)).toThrow(RangeError);
  expect(describeReturn(-1).value).toBe(0xffffffff);
  expect(describeReturn(-0x80000000).value).toBe(0x80000000);
});

describe('native level (the user-client protocol itself)', () => {
  let conn: NativeConnection;
  beforeEach(() => {
    conn = binding().openSim(binding().createSimKernel(), true) as NativeConnection;
  });
  afterEach(() => conn.close());
  const BAD_ARG = 0xe00002c2;

  test('a selector out of range answers kIOReturnBadArgument, with no outputs', async () => {
    for (const s of [4, 5, 1000, 0xffffffff]) expect(await conn.call(s, [], null, 2, 0)).toEqual({ kr: BAD_ARG, scalars: [], struct: Buffer.alloc(0) });
  });

  test('a wrong scalar count or struct size answers kIOReturnBadArgument', async () => {
    const r = SELECTORS.retain.selector;
    expect((await conn.call(r, [], null, 2, 0)).kr).toBe(BAD_ARG);
    expect((await conn.call(r, [1, 2], null, 2, 0)).kr).toBe(BAD_ARG);
    expect((await conn.call(r, [8], null, 1, 0)).kr).toBe(BAD_ARG);
    expect((await conn.call(r, [8], null, 0, 0)).kr).toBe(BAD_ARG);
    expect((await conn.call(r, [8], Buffer.alloc(4), 2, 0)).kr).toBe(BAD_ARG);
    expect((await conn.call(r, [8], null, 2, 16)).kr).toBe(BAD_ARG);
    expect((await conn.call(SELECTORS.held.selector, [], null, 0, 8)).kr).toBe(BAD_ARG);
    expect((await conn.call(SELECTORS.getInfo.selector, [], null, 4, 5000)).kr).toBe(BAD_ARG); // out of line
    expect((await conn.call(SELECTORS.getInfo.selector, [], null, 4, 128)).kr).toBe(0);
  });

  test('a load tag above 32 bits is refused before narrowing', async () => {
    const r = await conn.call(SELECTORS.retain.selector, [2n ** 32n + 8n], null, 2, 0);
    expect(r.kr).toBe(BAD_ARG);
    expect((await conn.call(SELECTORS.held.selector, [], null, 0, 2048)).struct.length).toBe(0);
  });

  test('17 scalars answer MIG_ARRAY_TOO_LARGE (-307) before anything is sent', async () => {
    expect((await conn.call(SELECTORS.retain.selector, new Array(17).fill(8), null, 2, 0)).kr).toBe(0xfffffecd);
  });

  // Errors made by the addon belong to the main realm, not jest's sandbox: match by name.
  const named = (name: string) => expect.objectContaining({ name });
  test('native argument checks throw TypeError/RangeError', () => {
    expect(() => conn.call('1' as never, [], null, 0, 0)).toThrow(named('TypeError'));
    expect(() => conn.call(-1, [], null, 0, 0)).toThrow(named('RangeError'));
    expect(() => conn.call(1, 5 as never, null, 0, 0)).toThrow(named('TypeError'));
    expect(() => conn.call(1, [-1], null, 0, 0)).toThrow(named('RangeError'));
    expect(() => conn.call(1, [1.5], null, 0, 0)).toThrow(named('RangeError'));
    expect(() => conn.call(1, [1], 'x' as never, 0, 0)).toThrow(named('TypeError'));
    expect(() => conn.callMany(1, [1] as never)).toThrow(named('TypeError'));
    expect(() => binding().createSimKernel().injectFault('retain', 0, 1)).toThrow(named('RangeError'));
    expect(() => conn.bindSync().retain(-8)).toThrow(named('RangeError'));
    expect(() => conn.bindSync().release('8' as never)).toThrow(named('TypeError'));
    expect(() => new (binding().Connection as unknown as new (x: unknown) => unknown)({})).toThrow(/open\(\)/);
  });

  test('a call on a closed connection answers MACH_SEND_INVALID_DEST; close twice is harmless', async () => {
    expect((await conn.close()).kr).toBe(0);
    expect((await conn.close()).kr).toBe(0x10000003);
    expect((await conn.call(0, [], null, 4, 128)).kr).toBe(0x10000003);
    expect(conn.callSync(0, [], null, 4, 128).kr).toBe(0x10000003);
  });
});

describe("the sync fast path's packed answer (bindSync)", () => {
  // The contract (native/connection.h), written out here on its own: r >= 0 is the user
  // client's answer, osReturn * 2^21 + held; r < 0 a refusal, -1 - (kr * 2^21 + (held + 1 | 0)).
  const SPAN = 2 ** 21;
  const answered = (osReturn: number, held: number) => osReturn * SPAN + held;
  const refused = (kr: number, held?: number) => -1 - (kr * SPAN + (held === undefined ? 0 : held + 1));

  test('answers exactly what the full call answers, at the edges of each field', async () => {
    const native = binding();
    const kernel = native.createSimKernel();
    const conn = native.openSim(kernel, true) as NativeConnection;
    const fast = conn.bindSync();
    expect(fast.heldSpan).toBe(SPAN);
    const own = (await conn.call(SELECTORS.getInfo.selector, [], null, 4, 128)).scalars[1] as number;
    const full = async (selector: number, tag: number) => {
      const r = await conn.call(selector, [tag], null, 2, 0);
      return r.kr === 0 ? answered(Number(r.scalars[0]), Number(r.scalars[1])) : refused(r.kr, r.held);
    };
    expect(fast.retain(own)).toBe(answered(0, 1)); // kOSReturnSuccess, held 1: a Smi
    expect(await full(SELECTORS.retain.selector, own)).toBe(answered(0, 2));
    // Up to the ledger's cap (256), then the user client's refusal, with the held count.
    for (let held = 3; held <= 256; held++) expect(fast.retain(own)).toBe(answered(0, held));
    expect(fast.retain(own)).toBe(refused(0xe00002be, 256)); // kIOReturnNoResources
    expect(await full(SELECTORS.retain.selector, own)).toBe(refused(0xe00002be, 256));
    for (let held = 255; held >= 1; held--) expect(fast.release(own)).toBe(answered(0, held));
    // The kernel's refusal: a 32-bit OSReturn in the high field (a double, not a Smi).
    kernel.injectFault('retain', 0xdc008011, 1);
    expect(fast.retain(own)).toBe(answered(0xdc008011, 1));
    kernel.injectFault('retain', 0xdc008011, 1);
    expect(await full(SELECTORS.retain.selector, own)).toBe(answered(0xdc008011, 1));
    // Not held: refused with the held count 0; above 32 bits: refused, no count asked.
    expect(fast.release(4242)).toBe(refused(0xe00002e2, 0)); // kIOReturnNotPermitted
    expect(await full(SELECTORS.release.selector, 4242)).toBe(refused(0xe00002e2, 0));
    expect(fast.retain(2 ** 32 + own)).toBe(refused(0xe00002c2)); // kIOReturnBadArgument
    expect(fast.release(own)).toBe(answered(0, 0));
    await conn.close();
    expect(fast.retain(own)).toBe(refused(0x10000003)); // MACH_SEND_INVALID_DEST
  });

  test('kb.sync decodes every packed case as the awaited call does', async () => {
    const kernel = createSimKernel();
    const kb = await open({ backend: 'sim', kernel });
    const tag = kernel.loadKext({ bundleId: 'com.example.packed', version: '1.0' });
    const both = async (op: 'retain' | 'release', t: number) => {
      const s = op === 'retain' ? kb.sync.retain(t) : kb.sync.release(t);
      const a = op === 'retain' ? await kb.retain(t) : await kb.release(t);
      return [s, a];
    };
    let [s, a] = await both('retain', tag);
    expect(s).toMatchObject({ ok: true, name: 'kOSReturnSuccess', held: 1 });
    expect(a).toMatchObject({ ok: true, held: 2 });
    for (let i = 2; i < 254; i++) kb.sync.retain(tag);
    [s, a] = await both('retain', tag); // the 255th and the 256th
    expect(s).toMatchObject({ ok: true, held: 255 });
    expect(a).toMatchObject({ ok: true, held: 256 });
    [s, a] = await both('retain', tag);
    expect(s).toEqual(a);
    expect(s).toMatchObject({ ok: false, layer: 'userclient', name: 'kIOReturnNoResources', code: 0xe00002be, held: 256 });
    kernel.injectFault('release', 'kOSKextReturnNotFound', 2);
    [s, a] = await both('release', tag);
    expect(s).toEqual(a);
    expect(s).toMatchObject({ ok: false, layer: 'kernel', name: 'kOSKextReturnNotFound', held: 256 });
    [s, a] = await both('release', 0xfffff);
    expect(s).toEqual(a);
    expect(s).toMatchObject({ ok: false, layer: 'userclient', name: 'kIOReturnNotPermitted', held: 0 });
    expect(() => kb.sync.retain(2 ** 32)).toThrow(RangeError); // checked in JS before native
    await kb.close();
  });
});
