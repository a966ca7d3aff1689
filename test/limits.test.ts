// Limits and resources: the batch maximum, the longest timeout, and no timer left behind.
import { createSimKernel, KextBridge, open, SimKernel } from '../lib';
import { NativeConnection } from '../lib/native';
import { MAX_BATCH_TAGS } from '../lib/validate';

let kernel: SimKernel;
let kb: KextBridge;
beforeEach(async () => {
  kernel = createSimKernel();
  kb = await open({ backend: 'sim', kernel });
});
afterEach(async () => {
  jest.useRealTimers();
  await kb.close();
});

describe('a documented maximum per retainMany / releaseMany call', () => {
  test('is 65,536 tags', () => expect(MAX_BATCH_TAGS).toBe(65_536));

  test.each([
    ['an array', () => new Array<number>(MAX_BATCH_TAGS + 1).fill(0)],
    ['a Uint32Array', () => new Uint32Array(MAX_BATCH_TAGS + 1)],
    ['an array claiming 2^32 - 1 elements', () => { const a: number[] = []; a.length = 2 ** 32 - 1; return a; }],
  ])('one more, as %s, is a RangeError before native code (async and sync)', async (_what, make) => {
    const calls = kb._nativeCalls;
    const before = kernel.rawRetainCount(0);
    await expect(kb.retainMany(make())).rejects.toThrow(RangeError);
    await expect(kb.releaseMany(make())).rejects.toThrow(/loadTags must hold at most 65536 load tags per call, got \d+: split the list/);
    expect(() => kb.sync.retainMany(make())).toThrow(RangeError);
    expect(() => kb.sync.releaseMany(make())).toThrow(/at most 65536/);
    expect(kb._nativeCalls).toBe(calls);
    expect(kernel.rawRetainCount(0)).toBe(before);
  });

  test('exactly the maximum is accepted', async () => {
    const tags = new Uint32Array(MAX_BATCH_TAGS).fill(0xffffffff); // kOSKextInvalidLoadTag: refused by the kernel, harmless
    const r = await kb.retainMany(tags);
    expect(r).toHaveLength(MAX_BATCH_TAGS);
    expect(r[MAX_BATCH_TAGS - 1]).toMatchObject({ name: 'kOSKextReturnInvalidArgument' });
  });

  test('native code enforces it too', () => {
    const conn = (kb as unknown as { conn: NativeConnection }).conn;
    expect(() => conn.callManySync(4, new Uint32Array(MAX_BATCH_TAGS + 1))).toThrow(expect.objectContaining({ name: 'RangeError', message: expect.stringMatching(/at most 65536/) }));
  });
});

describe('timeouts', () => {
  test('2**31 - 1 ms (the longest timer Node keeps) is accepted; 2**31 is a RangeError', async () => {
    await expect(kb.held({ timeout: 2 ** 31 - 1 })).resolves.toEqual([]);
    await expect(kb.held({ timeout: 2 ** 31 })).rejects.toThrow(RangeError);
  });
});

describe('no call leaves a timer behind', () => {
  const fake = () => jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
  const target = () => kernel.sampleLoadTag;
  const calls: [string, (o: object) => Promise<unknown>][] = [
    ['info', (o) => kb.info(o)],
    ['retain', (o) => kb.retain(target(), o)],
    ['release', (o) => kb.release(target(), o)],
    ['retainMany', (o) => kb.retainMany([target()], o)],
    ['releaseMany', (o) => kb.releaseMany([target()], o)],
    ['held', (o) => kb.held(o)],
    ['loadedKexts', (o) => kb.loadedKexts(o)],
  ];

  test.each(calls)('%s: answered, aborted or timed out, no timer is left', async (_name, call) => {
    fake();
    expect(jest.getTimerCount()).toBe(0);
    // answered before its deadline
    await call({ timeout: 2 ** 31 - 1 });
    expect(jest.getTimerCount()).toBe(0);
    await call({ timeout: 0, signal: new AbortController().signal }).catch(() => undefined);
    // aborted while waiting
    const ac = new AbortController();
    const p = call({ timeout: 60_000, signal: ac.signal }).catch((e: Error) => e.name);
    ac.abort();
    await p;
    expect(jest.getTimerCount()).toBe(0);
    // timed out: the deadline fires, and that timer is gone too
    kernel.delayCalls(30);
    const t = call({ timeout: 5 }).catch((e: Error) => e.name);
    jest.advanceTimersByTime(5);
    expect(await t).toBe('AbortError');
    expect(jest.getTimerCount()).toBe(0);
    jest.useRealTimers();
    await kb.held(); // let the delayed call finish
    await kb.close(); // releases whatever ran
    expect(kernel.rawRetainCount(target())).toBe(2);
  });

  test('sync calls, close() and open() leave none either', async () => {
    fake();
    kb.sync.retain();
    kb.sync.release();
    kb.sync.held();
    const other = await open({ backend: 'sim', kernel });
    await other.close();
    expect(jest.getTimerCount()).toBe(0);
  });
});
