// Hostile input through the public API: arrays and typed arrays whose getters, Proxies or
// subclasses change what they hold while being read; strings native code would mangle;
// objects that are not what they claim. Each is refused (or read exactly once) and leaves
// the simulated machine as it was.
import { createSimKernel, KextBridge, open, SimKernel } from '../lib';
import { binding, NativeConnection } from '../lib/native';

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

  test("call's structIn: a detached buffer is an error, not an empty struct", () => {
    const conn = nativeOf(kb);
    const bytes = new Uint8Array(8);
    structuredClone(bytes.buffer, { transfer: [bytes.buffer] });
    expect(() => conn.callSync(4, [], bytes, 0, 16)).toThrow(expect.objectContaining({ name: 'TypeError', message: expect.stringMatching(/structIn.*detached/) }));
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

describe('a kext spec is read once and validated where native code reads it', () => {
  const nativeKernel = () => kernel._native;

  test('a bundleId getter cannot answer the check one thing and the kernel another', () => {
    let reads = 0;
    const spec = { version: '1.0' } as { bundleId: string; version: string };
    Object.defineProperty(spec, 'bundleId', { get: () => (reads++ === 0 ? 'com.example.ok' : 'com.example.a\0b'), enumerable: true });
    const tag = kernel.loadKext(spec);
    expect(reads).toBe(1);
    expect(kernel.loadedKexts().find((k) => k.loadTag === tag)?.bundleId).toBe('com.example.ok');
  });

  test('dependencies and classes arrays are read once, at a fixed length', () => {
    const deps = ['com.example.target'];
    let depReads = 0;
    Object.defineProperty(deps, 0, { get: () => (depReads++, deps.push('x'.repeat(200)), 'com.example.target'), enumerable: true });
    const classes = [{ name: 'com_example_A' }];
    let clsReads = 0;
    Object.defineProperty(classes, 0, { get: () => (clsReads++, { name: 'com_example_A' }), enumerable: true });
    const tag = kernel.loadKext({ bundleId: 'com.example.dep', dependencies: deps, classes });
    expect([depReads, clsReads]).toEqual([1, 1]);
    const k = kernel.loadedKexts().find((x) => x.loadTag === tag)!;
    expect(k.dependencies).toEqual([target]);
    expect(k.classes.map((c) => c.name)).toEqual(['com_example_A']);
  });

  test.each([
    ['a NUL in bundleId', { bundleId: 'com.example.a\0b' }, RangeError, /spec\.bundleId must not contain a NUL/],
    ['a 64-byte bundleId', { bundleId: 'c'.repeat(64) }, RangeError, /spec\.bundleId must be at most 63 bytes/],
    ['a 64-byte version', { bundleId: 'com.example.v', version: '1'.repeat(64) }, RangeError, /spec\.version must be at most 63 bytes/],
    ['a lone surrogate in bundleId', { bundleId: 'com.example.\uD800' }, RangeError, /spec\.bundleId must be well-formed Unicode/],
    ['a lone low surrogate in version', { bundleId: 'com.example.v', version: '\uDC001' }, RangeError, /spec\.version must be well-formed Unicode/],
    ['a 64-byte dependency', { bundleId: 'com.example.d', dependencies: ['d'.repeat(64)] }, RangeError, /spec\.dependencies\[0\] must be at most 63 bytes/],
    ['a hole in dependencies', { bundleId: 'com.example.d', dependencies: [, 'x'] }, TypeError, /spec\.dependencies\[0\] is a hole/],
    ['a duplicate class name', { bundleId: 'com.example.c', classes: [{ name: 'C' }, { name: 'C' }] }, RangeError, /spec\.classes\[1\]\.name is declared twice/],
    ['a NUL in a class name', { bundleId: 'com.example.c', classes: [{ name: 'C\0D' }] }, RangeError, /spec\.classes\[0\]\.name must not contain a NUL/],
    ['a lone surrogate in a superclass', { bundleId: 'com.example.c', classes: [{ name: 'C', superclass: '\uDBFF' }] }, RangeError, /spec\.classes\[0\]\.superclass must be well-formed/],
    ['a bad uuid', { bundleId: 'com.example.u', uuid: 'nope' }, RangeError, /spec\.uuid must be a UUID/],
  ])('native loadKext refuses %s itself', (_what, spec, type, message) => {
    const before = kernel.loadedKexts();
    // The addon's errors come from the main realm, not jest's: compare by name.
    expect(() => nativeKernel().loadKext(spec as never)).toThrow(expect.objectContaining({ name: type.name, message: expect.stringMatching(message) }));
    expect(kernel.loadedKexts()).toEqual(before);
  });

  test('native lookups refuse a lone surrogate instead of looking up U+FFFD', () => {
    expect(() => nativeKernel().lookupLoadTag('com.example.\uD800')).toThrow(/bundleId must be well-formed/);
    expect(() => nativeKernel().setInstances(target, 'C\uDC00', 0)).toThrow(/className must be well-formed/);
  });
});

describe('strings: lone surrogates are refused, never merged into U+FFFD', () => {
  test('two ids that differ only in a lone surrogate never become one kext', () => {
    const before = kernel.loadedKexts();
    expect(() => kernel.loadKext({ bundleId: 'com.example.\uD800' })).toThrow(RangeError);
    expect(() => kernel.loadKext({ bundleId: 'com.example.\uD801' })).toThrow(/spec\.bundleId must be well-formed Unicode/);
    expect(() => kernel.loadKext({ bundleId: 'com.example.\uFFFD', version: '\uDFFF' })).toThrow(/spec\.version/);
    expect(() => kernel.loadKext({ bundleId: 'com.example.c', classes: [{ name: 'A\uD800' }, { name: 'A\uD801' }] })).toThrow(/spec\.classes\[0\]\.name/);
    expect(() => kernel.loadKext({ bundleId: 'com.example.c', dependencies: ['com.example.target\uDC00'] })).toThrow(/spec\.dependencies\[0\]/);
    expect(() => kernel.lookup('com.example.\uD800')).toThrow(/bundleId must be well-formed/);
    expect(kernel.loadedKexts()).toEqual(before);
    // A well-formed pair is fine, and stays itself.
    const tag = kernel.loadKext({ bundleId: 'com.example.\uD83D\uDE00' });
    expect(kernel.lookup('com.example.\uD83D\uDE00')).toBe(tag);
    expect(kernel.lookup('com.example.\uFFFD')).toBeNull();
  });

  test('the Node 18 fallback agrees with String.prototype.isWellFormed', async () => {
    const { _isWellFormedFallback, isWellFormed } = await import('../lib/validate');
    for (const s of ['', 'a', '\uD800', '\uDC00', 'a\uD800b', '\uD800\uDC00', '\uDC00\uD800', '\uD83D\uDE00x', 'x\uDBFF', '\uD800\uD800\uDC00'])
      expect([s, _isWellFormedFallback(s)]).toEqual([s, isWellFormed(s)]);
  });

  test('error messages quote at most ~100 characters of user input', () => {
    const long = 'com.example.' + 'y'.repeat(100_000);
    for (const call of [
      () => kernel.loadKext({ bundleId: long }),
      () => kernel.loadKext({ bundleId: 'com.example.x', uuid: long }),
      () => kernel.loadKext({ bundleId: long + '\0' }),
      () => kernel.injectFault('retain', long as never),
      () => kernel.setInstances(target, long, 0),
      () => kb.sync.retain(long as never),
    ]) {
      let message = '';
      try {
        call();
      } catch (e) {
        message = (e as Error).message;
      }
      expect(message).not.toBe('');
      expect(message.length).toBeLessThan(300);
    }
  });
});

describe('brand checks: no object is unwrapped as another class', () => {
  const addon = () => binding();
  // The addon's errors come from the main realm, not jest's: compare by name.
  // V8 itself refuses some receivers ("Illegal invocation": napi_define_class gives methods a
  // receiver signature); the type tag catches the rest (unwraps outside a method trampoline).
  const typeError = (message: RegExp) =>
    expect.objectContaining({ name: 'TypeError', message: expect.stringMatching(new RegExp(`${message.source}|Illegal invocation`)) });

  test('a Connection method called with this = a SimKernel wrap, and vice versa, is a TypeError', () => {
    const conn = nativeOf(kb);
    const simNative = kernel._native;
    const C = addon().Connection.prototype as unknown as Record<string, (...a: unknown[]) => unknown>;
    const K = addon().SimKernel.prototype as unknown as Record<string, (...a: unknown[]) => unknown>;
    expect(() => C.callSync.call(simNative, 1, [target], null, 2, 0)).toThrow(typeError(/not a kextbridge Connection/));
    expect(() => C.callManySync.call(simNative, 4, new Uint32Array([target]))).toThrow(typeError(/not a kextbridge Connection/));
    expect(() => C.close.call(simNative)).toThrow(typeError(/not a kextbridge Connection/));
    expect(() => K.loadKext.call(conn, { bundleId: 'com.example.x' })).toThrow(typeError(/not a kextbridge SimKernel/));
    expect(() => K.kpiRelease.call(conn, 0)).toThrow(typeError(/not a kextbridge SimKernel/));
    expect(() => K.now.call({})).toThrow(typeError(/not a kextbridge SimKernel/));
    expect(() => K.now.call(5)).toThrow(typeError(/not a kextbridge SimKernel/));
    const closing = Object.getOwnPropertyDescriptor(addon().Connection.prototype, 'closing')!.get!;
    expect(() => closing.call(simNative)).toThrow(typeError(/not a kextbridge Connection/));
  });

  test('an object whose prototype was swapped, or Object.create(prototype), is not unwrapped', async () => {
    const conn = nativeOf(kb);
    const fake = Object.create(addon().Connection.prototype) as NativeConnection;
    expect(() => fake.callSync(1, [target], null, 2, 0)).toThrow(typeError(/not a kextbridge Connection/));
    const swapped = Object.setPrototypeOf(addon().createSimKernel(), addon().Connection.prototype) as NativeConnection;
    expect(() => swapped.callManySync(4, new Uint32Array([0]))).toThrow(typeError(/not a kextbridge Connection/));
    // A connection dressed as a kernel is not a kernel to open on.
    const dressed = Object.setPrototypeOf(Object.create(null), addon().SimKernel.prototype);
    expect(() => addon().openSim(dressed, true)).toThrow(typeError(/kernel must be a SimKernel/));
    const connAsKernel = Object.setPrototypeOf(conn, addon().SimKernel.prototype);
    expect(() => addon().openSim(connAsKernel as never, true)).toThrow(typeError(/kernel must be a SimKernel/));
    Object.setPrototypeOf(conn, addon().Connection.prototype);
    expect(kernel.rawRetainCount(0)).toBe(2);
  });

  test('a detached method, a method on another object, a subclass without a connection: clear TypeErrors', async () => {
    const retain = kb.retain;
    await expect(retain()).rejects.toThrow(/KextBridge\.retain\(\) must be called on a connection from open\(\), got undefined/);
    const { retainMany, held } = kb;
    await expect(retainMany([target])).rejects.toThrow(TypeError);
    await expect(held.call({} as never)).rejects.toThrow(/KextBridge\.held\(\) must be called on a connection from open\(\), got another object/);
    const close = kb.close;
    expect(() => close()).toThrow(/KextBridge\.close\(\)/);
    class X extends KextBridge {}
    expect(() => new (X as unknown as new () => KextBridge)()).toThrow(/KextBridge cannot be constructed without a native connection: use open\(\)/);
    expect(() => new (KextBridge as unknown as new (c: unknown) => KextBridge)({ call: () => 0 })).toThrow(TypeError);
    // Bound, they work.
    expect(await kb.retain.bind(kb)(target)).toMatchObject({ ok: true, held: 1 });
    await kb.release(target);
  });
});

describe('hostile abort signals and reasons', () => {
  /** Runs `body`, collecting uncaught exceptions, unhandled rejections and warnings meanwhile. */
  async function watching(body: () => Promise<void>): Promise<unknown[]> {
    const seen: unknown[] = [];
    const onError = (e: unknown) => seen.push(e);
    const onWarning = (w: Error) => seen.push(w);
    // jest installs its own handlers; ours see the same events.
    process.on('uncaughtException', onError);
    process.on('unhandledRejection', onError);
    process.on('warning', onWarning);
    try {
      await body();
      await new Promise((r) => setTimeout(r, 20));
    } finally {
      process.off('uncaughtException', onError);
      process.off('unhandledRejection', onError);
      process.off('warning', onWarning);
    }
    return seen;
  }

  test('a reason whose getters throw: the call rejects with an AbortError, nothing escapes', async () => {
    const hostile = new Proxy({}, { get: () => { throw new Error('trap'); }, getPrototypeOf: () => { throw new Error('trap'); } });
    const seen = await watching(async () => {
      kernel.delayCalls(20);
      const c = new AbortController();
      const p = kb.retain(target, { signal: c.signal });
      c.abort(hostile);
      await expect(p).rejects.toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
      const already = new AbortController();
      already.abort(hostile);
      await expect(kb.held({ signal: already.signal })).rejects.toMatchObject({ name: 'AbortError' });
    });
    expect(seen).toEqual([]);
    await kb.held(); // the queue drained: the aborted retain ran
    await kb.release(target);
  });

  test('a signal whose reason getter throws still aborts the wait', async () => {
    const listeners: (() => void)[] = [];
    const signal = {
      aborted: false,
      get reason(): unknown { throw new Error('reason getter'); },
      addEventListener: (_t: string, f: () => void) => listeners.push(f),
      removeEventListener: () => {},
    };
    const seen = await watching(async () => {
      kernel.delayCalls(20);
      const p = kb.retain(target, { signal: signal as unknown as AbortSignal });
      signal.aborted = true;
      listeners.forEach((f) => f());
      await expect(p).rejects.toMatchObject({ name: 'AbortError' });
    });
    expect(seen).toEqual([]);
    await kb.release(target);
  });

  test('a signal whose addEventListener or aborted getter throws: a TypeError, and nothing was started', async () => {
    const throwingAdd = { aborted: false, reason: undefined, addEventListener: () => { throw new Error('add'); }, removeEventListener: () => {} };
    const throwingAborted = { get aborted(): boolean { throw new Error('aborted'); }, addEventListener: () => {}, removeEventListener: () => {} };
    const before = await state();
    const calls = kb._nativeCalls;
    const seen = await watching(async () => {
      await expect(kb.retain(target, { signal: throwingAdd as unknown as AbortSignal })).rejects.toThrow(/refused an 'abort' listener; nothing was started/);
      await expect(kb.retainMany([target], { signal: throwingAborted as unknown as AbortSignal })).rejects.toThrow(/signal\.aborted threw; nothing was started/);
    });
    expect(seen).toEqual([]);
    expect(kb._nativeCalls).toBe(calls);
    expect(await state()).toEqual(before);
  });

  test('a signal whose removeEventListener throws: the result is delivered, nothing escapes', async () => {
    const signal = { aborted: false, reason: undefined, addEventListener: () => {}, removeEventListener: () => { throw new Error('remove'); } };
    const seen = await watching(async () => {
      expect(await kb.retain(target, { signal: signal as unknown as AbortSignal })).toMatchObject({ ok: true, held: 1 });
      expect(await kb.release(target, { signal: signal as unknown as AbortSignal, timeout: 1000 })).toMatchObject({ ok: true, held: 0 });
    });
    expect(seen).toEqual([]);
  });

  test('one signal shared by 100 calls raises no MaxListeners warning and adds one listener', async () => {
    const c = new AbortController();
    let added = 0;
    const add = c.signal.addEventListener.bind(c.signal);
    c.signal.addEventListener = ((...a: Parameters<typeof add>) => (added++, add(...a))) as typeof add;
    const seen = await watching(async () => {
      kernel.delayCalls(2, 1);
      const calls = Array.from({ length: 100 }, () => kb.held({ signal: c.signal }));
      await Promise.all(calls);
    });
    expect(seen).toEqual([]);
    expect(added).toBe(1);
    // and aborting it rejects every waiter once
    kernel.delayCalls(20, 1);
    const waits = Array.from({ length: 50 }, () => kb.held({ signal: c.signal }).then(() => 'resolved', (e: Error) => e.name));
    c.abort();
    expect(new Set(await Promise.all(waits))).toEqual(new Set(['AbortError']));
  });
});
