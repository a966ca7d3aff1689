// Hostile input through the public API: arrays and typed arrays whose getters, Proxies or
// subclasses change what they hold while being read; strings native code would mangle;
// objects that are not what they claim. Each is refused (or read exactly once) and leaves
// the simulated machine as it was.
import { createSimKernel, KextBridge, open, SimKernel } from '../lib';
import { NativeConnection } from '../lib/native';

let kernel: SimKernel;
let kb: KextBridge;
let target: number;
beforeEach(async () => {
  kernel = createSimKernel();
  target = kernel.loadKext({ bundleId: 'com.example.target', version: '1.0' });
  kb = await open({ backend: 'sim', kernel });
});
afterEach(async () => {
  await kb.close();
});

/** Everything a bad input could have disturbed: the table, every raw count, the ledger. */
async function state() {
  const kexts = kernel.loadedKexts();
  return { kexts, raw: kexts.map((k) => kernel.rawRetainCount(k.loadTag)), held: await kb.held(), panic: kernel.panicked };
}

const nativeOf = (c: KextBridge) => (c as unknown as { conn: NativeConnection }).conn;

describe('arrays are read once, at a length fixed before use', () => {
  test('an element getter that shrinks the array cannot make retainMany retain __kernel__ (tag 0)', async () => {
    const arr = [target, target, target];
    Object.defineProperty(arr, 0, { get: () => ((arr.length = 1), target), enumerable: true });
    const before = kernel.rawRetainCount(0);
    const r = await kb.retainMany(arr).then((x) => x, (e: unknown) => e);
    // Either refused, or exactly the tags it held when its length was read.
    if (Array.isArray(r)) expect(r.map((x) => x.loadTag)).not.toContain(0);
    expect(kernel.rawRetainCount(0)).toBe(before);
    expect((await kb.held()).map((h) => h.loadTag)).not.toContain(0);
  });

  test.each(['async', 'sync'] as const)('a Proxy whose length shrinks while read retains nothing it did not pass (%s)', async (mode) => {
    let n = 3;
    const p = new Proxy([target, target, target], { get: (o, k) => (k === 'length' ? n-- : Reflect.get(o, k)) });
    const before = await state();
    const run = () => (mode === 'sync' ? kb.sync.retainMany(p) : kb.retainMany(p));
    const r = await (async () => run())().then((x) => x, (e: unknown) => e);
    if (Array.isArray(r)) {
      expect(r.map((x) => x.loadTag)).toEqual([target, target, target]);
      await kb.releaseMany([target, target, target]);
    }
    expect(await state()).toEqual(before);
  });

  test('a getter that grows the array is not followed past the length read first', async () => {
    const arr: number[] = [target];
    Object.defineProperty(arr, 0, { get: () => (arr.push(0, 0, 0), target), enumerable: true });
    const r = await kb.retainMany(arr);
    expect(r.map((x) => x.loadTag)).toEqual([target]);
    expect(kernel.rawRetainCount(0)).toBe(2);
  });

  test('holes are named', async () => {
    // eslint-disable-next-line no-sparse-arrays
    const sparse = [target, , target] as number[];
    const before = await state();
    await expect(kb.retainMany(sparse)).rejects.toThrow(/loadTags\[1\] is a hole/);
    expect(() => kb.sync.releaseMany(sparse)).toThrow(/loadTags\[1\] is a hole/);
    expect(await state()).toEqual(before);
  });

  test.each([
    ['Int8Array', new Int8Array(1)],
    ['Uint8Array', new Uint8Array(1)],
    ['Uint8ClampedArray', new Uint8ClampedArray(1)],
    ['Int16Array', new Int16Array(1)],
    ['Uint16Array', new Uint16Array(1)],
    ['Int32Array', new Int32Array(1)],
    ['Float32Array', new Float32Array(1)],
    ['Float64Array', new Float64Array(1)],
    ['BigInt64Array', new BigInt64Array(1)],
    ['BigUint64Array', new BigUint64Array(1)],
    ['DataView', new DataView(new ArrayBuffer(4))],
    ['Buffer', Buffer.alloc(4)],
  ])('a %s is refused with an error naming what is accepted', async (kind, value) => {
    const before = await state();
    const expected = new RegExp(`loadTags must be an array of load tags or a Uint32Array, got an? ${kind === 'Buffer' ? 'Uint8Array' : kind}`);
    await expect(kb.retainMany(value as never)).rejects.toThrow(TypeError);
    await expect(kb.retainMany(value as never)).rejects.toThrow(expected);
    expect(() => kb.sync.releaseMany(value as never)).toThrow(expected);
    expect(await state()).toEqual(before);
  });

  test('a detached Uint32Array is an error, not []', async () => {
    const tags = new Uint32Array([target]);
    structuredClone(tags.buffer, { transfer: [tags.buffer] });
    await expect(kb.retainMany(tags)).rejects.toThrow(/loadTags.*detached/);
    expect(() => kb.sync.retainMany(tags)).toThrow(/loadTags.*detached/);
  });

  test('a Uint32Array subclass that lies about its length, or a Proxy of one, is read by its real contents', async () => {
    class Liar extends Uint32Array {
      override get length() {
        return 5;
      }
    }
    const liar = new Liar([target, target]);
    expect((await kb.retainMany(liar)).map((x) => x.loadTag)).toEqual([target, target]);
    // A Proxy is not a Uint32Array (no internal slots): read like an array, once.
    let n = 2;
    const proxy = new Proxy(new Uint32Array([target, target]), { get: (o, k) => (k === 'length' ? n-- : Reflect.get(o, k)) });
    const r = await kb.releaseMany(proxy as never).then((x) => x, (e: unknown) => e);
    if (Array.isArray(r)) expect(r.map((x) => x.loadTag)).toEqual([target, target]);
    expect(kernel.rawRetainCount(0)).toBe(2);
  });
});

describe('native code validates what it reads itself', () => {
  test('callMany refuses a detached buffer and a non-Uint32Array', () => {
    const conn = nativeOf(kb);
    const tags = new Uint32Array([target]);
    structuredClone(tags.buffer, { transfer: [tags.buffer] });
    expect(() => conn.callManySync(4, tags)).toThrow(/detached/);
    expect(() => conn.callManySync(4, new Int32Array(1) as never)).toThrow(/Uint32Array/);
  });

  test("call's scalars array: its length is read once, holes and growth are refused", async () => {
    const conn = nativeOf(kb);
    const before = await state();
    // Grows past the 256-entry bound after the bound was checked.
    const grow: unknown[] = [target];
    Object.defineProperty(grow, 0, { get: () => { for (let i = 0; i < 1000; i++) grow.push(0); return target; } });
    const r = conn.callSync(1, grow as number[], null, 2, 0);
    // One scalar was passed: the retain saw exactly that (the core checks the count).
    expect(r.kr).toBe(0);
    await kb.release(target);
    // eslint-disable-next-line no-sparse-arrays
    expect(() => conn.callSync(1, [, target] as number[], null, 2, 0)).toThrow(/scalars\[0\]/);
    expect(await state()).toEqual(before);
  });
});
