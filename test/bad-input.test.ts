// Bad input anywhere gets a clear error naming the argument and changes nothing.
import { createSimKernel, KextBridge, open, SELECTORS, SimKernel } from '../lib';
import { binding, NativeConnection } from '../lib/native';

const BAD = [NaN, -1, 2 ** 32, 1.5, '5', null, {}, [], 5n] as const;

let kernel: SimKernel;
let kb: KextBridge;
let other: KextBridge;
beforeEach(async () => {
  kernel = createSimKernel();
  kb = await open({ backend: 'sim', kernel });
  other = await open({ backend: 'sim', kernel });
  await kb.retain(); // some state to be disturbed
});
afterEach(async () => {
  await kb.close();
  await other.close();
});

async function snapshot() {
  return { kexts: kernel.loadedKexts(), now: kernel.now, panic: kernel.panicked, held: await kb.held(), otherHeld: await other.held() };
}

type Call = [string, (v: unknown) => unknown];
const calls: Call[] = [
  ['loadTag', (v) => kb.retain(v as number)],
  ['loadTag', (v) => kb.release(v as number)],
  ['loadTag', (v) => kb.sync.retain(v as number)],
  ['loadTag', (v) => kb.sync.release(v as number)],
  ['loadTags', (v) => kb.retainMany([kernel.sampleLoadTag, v] as number[])],
  ['loadTags', (v) => kb.releaseMany([v] as number[])],
  ['loadTags', (v) => kb.sync.retainMany([v] as number[])],
  ['loadTag', (v) => kernel.unloadKext(v as number)],
  ['loadTag', (v) => kernel.kpi.releaseKextWithLoadTag(v as number)],
  ['ms', (v) => kernel.advance(v as number)],
];

describe.each(calls.map((c, i) => [i, ...c] as const))('call %i rejects bad %s', (_i, name, call) => {
  // 2^32 virtual milliseconds is a fine amount of time to advance; it is only bad as a tag.
  test.each(BAD.filter((v) => name !== 'ms' || v !== 2 ** 32).map((v) => [v]))('%p', async (value) => {
    const before = await snapshot();
    let error: unknown;
    try {
      await call(value);
    } catch (e) {
      error = e;
    }
    expect(error).toBeDefined();
    expect([TypeError, RangeError].some((t) => error instanceof t)).toBe(true);
    expect((error as Error).message).toContain(name);
    expect(await snapshot()).toEqual(before);
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
  expect(() => kernel.setInstances(kernel.sampleLoadTag, 5 as never, 1)).toThrow(/className/);
  expect(() => kernel.injectFault('load' as never, 0)).toThrow(/kpi/);
  expect(() => createSimKernel({ autounload: 'no' } as never)).toThrow(/autounload/);
  expect(kernel.loadedKexts()).toEqual(before);
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
    expect(() => new (binding().Connection as unknown as new (x: unknown) => unknown)({})).toThrow(/open\(\)/);
  });

  test('a call on a closed connection answers MACH_SEND_INVALID_DEST; close twice is harmless', async () => {
    expect((await conn.close()).kr).toBe(0);
    expect((await conn.close()).kr).toBe(0x10000003);
    expect((await conn.call(0, [], null, 4, 128)).kr).toBe(0x10000003);
    expect(conn.callSync(0, [], null, 4, 128).kr).toBe(0x10000003);
  });
});
