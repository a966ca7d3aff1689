// Issue 13's user side, end to end (TypeScript → N-API → bridge → core → SimKernel): load by
// identifier, resource requests with real asynchronous completions, aborts that cancel in the
// kernel, close with requests pending, and the unload they block. The contract suite runs on
// every backend; the tests that need the sim's kernelmanagerd controls (install a kext with
// resources, delays, withholding) are pending on iokit with the reason.
import { KextBridge, LIMITS, SAMPLE_KEXT, SimKernel } from '../lib';
import { describeBackends, Machine } from './backends';
import { createSimKernel, defaultSimKernel, open } from '../lib';
import { main } from '../lib/cli/main';
import type { Io } from '../lib/cli/common';

const RES = 'com.example.resources';
const bytes = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + 3) & 0xff));

describeBackends('loadKext and requestResource', (backend) => {
  let machine: Machine;
  let kb: KextBridge;
  let kernel: SimKernel;
  // Tests that need the sim's controls: pending on iokit, with the reason.
  const simTest = backend.name === 'sim' ? test : (name: string) => test.skip(`${name} (needs the simulator's kernelmanagerd controls)`, () => undefined);
  beforeEach(async () => {
    machine = backend.machine();
    kb = await backend.open(machine);
    kernel = machine.sim!;
  });
  afterEach(() => kb.close());

  const state = () => ({ kexts: kernel.loadedKexts(), cursor: kernel.eventCursor, requests: kernel.pendingRequests(), now: kernel.now });
  const install = (resources: Record<string, Buffer | Uint8Array | string> = {}) => kernel.installKext({ bundleId: RES, version: '1.0' }, { resources });

  describe('loadKext', () => {
    simTest('an unknown id is kOSKextReturnDeferred, then loaded after the simulated reply (waitForLoad)', async () => {
      const id = 'com.example.later';
      const r = await kb.loadKext(id);
      expect(r).toEqual({ ok: false, layer: 'kernel', name: 'kOSKextReturnDeferred', code: 0xdc008011, message: expect.any(String), bundleId: id, loadTag: null });
      expect(kernel.lookup(id)).toBeNull();
      const ev = kernel.events(0).events.filter((e) => e.type === 'loadRequested');
      expect(ev).toEqual([{ seq: expect.any(Number), at: 0, type: 'loadRequested', loadTag: null, bundleId: id }]);
      kernel.installKext({ bundleId: id, version: '2.0' }); // kernelmanagerd finds it by its reply
      const w = await kb.waitForLoad(id);
      expect(w).toEqual({ ok: true, waitedMs: 10 }); // the load-reply delay, in virtual ms
      expect(kernel.lookup(id)).not.toBeNull();
    });

    simTest('an id unknown to kernelmanagerd too stays unloaded: waitForLoad times out, never success', async () => {
      expect((await kb.loadKext('com.example.nowhere')).name).toBe('kOSKextReturnDeferred');
      const w = await kb.waitForLoad('com.example.nowhere', { timeout: 1000 });
      expect(w).toMatchObject({ ok: false, reason: 'timeout', waitedMs: 1000 });
    });

    simTest('a known, unloaded id loads now: success with a new tag', async () => {
      install();
      const before = Math.max(...(await kb.loadedKexts()).map((k) => k.loadTag));
      const r = await kb.loadKext(RES);
      expect(r).toMatchObject({ ok: true, layer: 'kernel', name: 'kOSReturnSuccess', code: 0, bundleId: RES });
      expect(r.loadTag).toBeGreaterThan(before);
      expect(kernel.lookup(RES)).toBe(r.loadTag);
    });

    test('an id already loaded: success with the same tag (async and sync)', async () => {
      const tag = (await kb.info()).loadTag;
      expect(await kb.loadKext(SAMPLE_KEXT.bundleId)).toEqual({ ok: true, layer: 'kernel', name: 'kOSReturnSuccess', code: 0, message: 'success', bundleId: SAMPLE_KEXT.bundleId, loadTag: tag });
      expect(kb.sync.loadKext(SAMPLE_KEXT.bundleId)).toEqual({ ok: true, layer: 'kernel', name: 'kOSReturnSuccess', code: 0, message: 'success', bundleId: SAMPLE_KEXT.bundleId, loadTag: tag });
    });

    simTest('sync.loadKext loads an installed kext too', () => {
      install();
      const r = kb.sync.loadKext(RES);
      expect(r).toMatchObject({ ok: true, loadTag: kernel.lookup(RES) });
    });

    simTest('a non-administrator gets kIOReturnNotPrivileged and nothing changes', async () => {
      install();
      const user = await backend.open(machine, { privileged: false });
      try {
        const before = state();
        expect(await user.loadKext(RES)).toMatchObject({ ok: false, layer: 'userclient', name: 'kIOReturnNotPrivileged', code: 0xe00002c1, loadTag: null });
        expect(user.sync.loadKext('com.example.unknown')).toMatchObject({ ok: false, name: 'kIOReturnNotPrivileged' });
        expect(state()).toEqual(before);
      } finally {
        await user.close();
      }
    });

    simTest('bad ids throw before anything is sent (TypeError / RangeError), and the core refuses them with kIOReturnBadArgument', async () => {
      install();
      const before = state();
      const calls = kb._nativeCalls;
      const bad: [unknown, typeof TypeError | typeof RangeError][] = [
        ['', TypeError], ['a'.repeat(64), RangeError], ['com.example\0x', RangeError], ['com.\uD800', RangeError],
        [42, TypeError], [null, TypeError], [undefined, TypeError], [{ toString: () => RES }, TypeError],
      ];
      for (const [id, E] of bad) {
        await expect(kb.loadKext(id as string)).rejects.toThrow(E);
        expect(() => kb.sync.loadKext(id as string)).toThrow(E);
      }
      await expect(kb.loadKext('x'.repeat(5000))).rejects.toThrow(/at most 63 bytes/);
      expect(kb._nativeCalls).toBe(calls); // nothing reached native code
      // 63 bytes is the most: accepted (unknown, so deferred).
      expect((await kb.loadKext('b'.repeat(63))).name).toBe('kOSKextReturnDeferred');
      // Below the library: the user client's own check, before the kernel is asked.
      const conn = kb.conn;
      const s = 6;
      const structs = [Buffer.alloc(0), Buffer.from('\0'), Buffer.from('a'.repeat(64)), Buffer.from(RES), Buffer.alloc(65, 0x61)];
      const mid = state();
      for (const st of structs) {
        const r = await conn.call(s, [], st, 1, 0);
        expect(r.kr).toBe(0xe00002c2); // kIOReturnBadArgument
      }
      expect(state()).toEqual(mid);
      expect(kernel.lookup(RES)).toBeNull();
      expect(before.kexts).toEqual(mid.kexts);
    });
  });

  describe('requestResource', () => {
    simTest('bytes arrive intact: 0, 1, 4097 and 64 KiB; 64 KiB + 1 is refused with kIOReturnNoSpace and no data', async () => {
      const sizes = { zero: 0, one: 1, pieces: 4097, max: LIMITS.maxResourceSize, over: LIMITS.maxResourceSize + 1 };
      install(Object.fromEntries(Object.entries(sizes).map(([k, n]) => [k, bytes(n)])));
      for (const name of ['zero', 'one', 'pieces', 'max'] as const) {
        const calls = kb._userClientCalls;
        const r = await kb.requestResource(RES, name);
        expect(r).toEqual({ ok: true, layer: 'kernel', name: 'kOSReturnSuccess', code: 0, message: 'success', requestTag: expect.any(Number), data: bytes(sizes[name]), abortedAfterDelivery: false });
        // one request, then one fetch per fetchChunkSize piece (none for 0 bytes)
        expect(kb._userClientCalls - calls).toBe(1 + Math.ceil(sizes[name] / LIMITS.fetchChunkSize));
      }
      const over = await kb.requestResource(RES, 'over');
      expect(over).toEqual({ ok: false, layer: 'userclient', name: 'kIOReturnNoSpace', code: 0xe00002db, message: expect.stringContaining(`${LIMITS.maxResourceSize + 1} bytes`), requestTag: expect.any(Number), length: LIMITS.maxResourceSize + 1 });
      expect(kernel.pendingRequests()).toEqual([]);
      expect(kb.conn._asyncPending).toBe(0);
    });

    simTest('a string resource is its UTF-8; the delivery waits in virtual time (the resource delay)', async () => {
      install({ 'greeting.txt': 'grüße' });
      kernel.setResourceDelay(5000);
      const t0 = kernel.now;
      const started = Date.now();
      const r = await kb.requestResource(RES, 'greeting.txt');
      expect(r.ok && r.data.toString('utf8')).toBe('grüße');
      expect(kernel.now - t0).toBe(5000);
      expect(Date.now() - started).toBeLessThan(2000);
    });

    simTest('a resource the bundle does not have: the kernel\'s kOSKextReturnNotFound, no data; an injected failure likewise', async () => {
      install({ a: 'x' });
      expect(await kb.requestResource(RES, 'missing')).toEqual({
        ok: false, layer: 'kernel', stage: 'delivery', name: 'kOSKextReturnNotFound', code: 0xdc008006, message: expect.any(String), requestTag: expect.any(Number), abortedAfterDelivery: false,
      });
      expect(await kb.requestResource('com.example.not-installed', 'a')).toMatchObject({ ok: false, stage: 'delivery', name: 'kOSKextReturnNotFound' });
      kernel.failResources('kOSKextReturnNoMemory', 1);
      expect(await kb.requestResource(RES, 'a')).toMatchObject({ ok: false, stage: 'delivery', name: 'kOSKextReturnNoMemory' });
      expect(await kb.requestResource(RES, 'a')).toMatchObject({ ok: true }); // once only
    });

    simTest('nobody answers (withheld): kOSKextReturnTimeout from the kernel after the autounload scans', async () => {
      install({ a: 'x' });
      kernel.withholdResources(true);
      kernel.armAutounloadScan();
      const t0 = kernel.now;
      const p = kb.requestResource(RES, 'a');
      // The first scan marks it stale; the scan is not re-armed by a request (xnu's
      // rescheduleOnly): arm it again, as the next release would, and the second times it out.
      while (!kernel.pendingRequests()[0]?.stale) await new Promise((r) => setTimeout(r, 1));
      kernel.armAutounloadScan();
      const r = await p;
      expect(r).toMatchObject({ ok: false, layer: 'kernel', stage: 'delivery', name: 'kOSKextReturnTimeout', code: 0xdc008019 });
      expect(kernel.now - t0).toBeGreaterThanOrEqual(120_000);
      const phases = kernel.events(0).events.filter((e) => e.type === 'request').map((e) => e.type === 'request' && e.phase);
      expect(phases).toEqual(['queued', 'timedOut']);
    });

    simTest('the kernel refuses a stopping kext\'s request: kOSKextReturnStopping at once', async () => {
      install({ a: 'x' });
      kernel.setStopping(SAMPLE_KEXT.bundleId, true);
      expect(await kb.requestResource(RES, 'a')).toMatchObject({ ok: false, layer: 'kernel', stage: 'request', name: 'kOSKextReturnStopping', requestTag: null });
      expect(kernel.pendingRequests()).toEqual([]);
      kernel.setStopping(SAMPLE_KEXT.bundleId, false);
      expect((await kb.requestResource(RES, 'a')).ok).toBe(true);
    });

    simTest('non-administrator: kIOReturnNotPrivileged; more than requestCapacity outstanding: kIOReturnNoResources', async () => {
      install({ a: 'x' });
      const user = await backend.open(machine, { privileged: false });
      try {
        expect(await user.requestResource(RES, 'a')).toMatchObject({ ok: false, layer: 'userclient', name: 'kIOReturnNotPrivileged', requestTag: null });
      } finally {
        await user.close();
      }
      kernel.withholdResources(true);
      const ac = new AbortController();
      const pending = Array.from({ length: LIMITS.requestCapacity }, () => kb.requestResource(RES, 'a', { signal: ac.signal }));
      expect(await kb.requestResource(RES, 'a')).toMatchObject({ ok: false, layer: 'userclient', name: 'kIOReturnNoResources' });
      ac.abort();
      for (const r of await Promise.all(pending)) expect(r).toMatchObject({ ok: false, reason: 'aborted', cancelled: true, cancel: { name: 'kOSReturnSuccess' } });
      expect(kernel.pendingRequests()).toEqual([]);
    });

    simTest('abort before delivery cancels in the kernel (OSKextCancelRequest: kOSReturnSuccess); no delivery follows', async () => {
      install({ a: 'x' });
      kernel.withholdResources(true);
      const ac = new AbortController();
      const p = kb.requestResource(RES, 'a', { signal: ac.signal });
      while (kernel.pendingRequests().length === 0) await new Promise((r) => setImmediate(r));
      const tag = kernel.pendingRequests()[0].requestTag;
      ac.abort(new Error('the user gave up'));
      expect(await p).toEqual({
        ok: false, layer: 'caller', reason: 'aborted', name: 'Aborted', code: null, message: expect.stringContaining('cancelled in the kernel'),
        requestTag: tag, cancelled: true, cancel: { name: 'kOSReturnSuccess', code: 0 },
      });
      expect(kernel.pendingRequests()).toEqual([]);
      const phases = kernel.events(0).events.flatMap((e) => (e.type === 'request' ? [e.phase] : []));
      expect(phases).toEqual(['queued', 'cancelled']);
      kernel.withholdResources(false);
      kernel.advance(1000);
      await new Promise((r) => setTimeout(r, 20));
      expect(kernel.events(0).events.filter((e) => e.type === 'request' && e.phase === 'delivered')).toEqual([]);
      expect(kb.conn._asyncPending).toBe(0);
    });

    simTest('a timeout (virtual ms on the sim) cancels the same way', async () => {
      install({ a: 'x' });
      kernel.setResourceDelay(10_000);
      const t0 = kernel.now;
      expect(await kb.requestResource(RES, 'a', { timeout: 4000 })).toMatchObject({ ok: false, reason: 'timeout', name: 'Timeout', cancelled: true, cancel: { name: 'kOSReturnSuccess' } });
      expect(kernel.now - t0).toBe(4000);
      expect(kernel.pendingRequests()).toEqual([]);
    });

    simTest('abort after the delivery reports the delivery (the cancel finds nothing: the delivery won)', async () => {
      install({ a: bytes(5000) });
      kernel.withholdResources(true);
      const ac = new AbortController();
      const p = kb.requestResource(RES, 'a', { signal: ac.signal });
      while (kernel.pendingRequests().length === 0) await new Promise((r) => setImmediate(r));
      kernel.withholdResources(false);
      kernel.advance(1000); // delivered now, on this thread; the completion is queued for JS
      ac.abort(); // before JS saw the completion: the cancel reaches the user client and loses
      const r = await p;
      expect(r).toEqual({ ok: true, layer: 'kernel', name: 'kOSReturnSuccess', code: 0, message: 'success', requestTag: expect.any(Number), data: bytes(5000), abortedAfterDelivery: true });
      expect(kernel.events(0).events.flatMap((e) => (e.type === 'request' ? [e.phase] : []))).toEqual(['queued', 'delivered']);
    });

    simTest('an abort while the delivered bytes are being fetched: the data, abortedAfterDelivery', async () => {
      install({ a: bytes(9000) });
      const ac = new AbortController();
      kernel.delayCalls(150, 2); // the request and the first fetch piece each take 150 ms
      const cursor = kernel.eventCursor;
      const p = kb.requestResource(RES, 'a', { signal: ac.signal });
      while (!kernel.events(cursor).events.some((e) => e.type === 'request' && e.phase === 'delivered')) await new Promise((r) => setTimeout(r, 5));
      ac.abort();
      expect(await p).toMatchObject({ ok: true, data: bytes(9000), abortedAfterDelivery: true });
    });

    simTest('close with requests pending cancels them all: each settles as closed, nothing pending or awaited after', async () => {
      install({ a: 'x' });
      kernel.withholdResources(true);
      const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
      // The count is process-wide: let short timers of earlier tests run out first, so none of
      // them expiring below can hide one left behind here.
      await new Promise((r) => setTimeout(r, 50));
      const timersBefore = timers();
      const ps = [kb.requestResource(RES, 'a'), kb.requestResource(RES, 'a'), kb.requestResource(RES, 'a')];
      while (kernel.pendingRequests().length < 3) await new Promise((r) => setImmediate(r));
      expect(kb.conn._asyncPending).toBe(3);
      await new Promise((r) => setImmediate(r));
      expect(timers()).toBeGreaterThan(timersBefore); // (the measure sees them while they wait)
      await kb.close();
      for (const r of await Promise.all(ps)) expect(r).toMatchObject({ ok: false, layer: 'caller', reason: 'closed', name: 'Closed', cancelled: true, cancel: null });
      expect(kernel.pendingRequests()).toEqual([]);
      expect(kb.conn._asyncPending).toBe(0);
      expect(timers()).toBe(timersBefore); // the requests' looks at the clock are all cleared
      expect(kernel.events(0).events.flatMap((e) => (e.type === 'request' ? [e.phase] : []))).toEqual(['queued', 'queued', 'queued', 'cancelled', 'cancelled', 'cancelled']);
      // A request after close: rejected like every call on a closed connection.
      await expect(kb.requestResource(RES, 'a')).rejects.toThrow(/MACH_SEND_INVALID_DEST/);
    });

    simTest('close right after the call (the request not yet answered) settles it as closed too', async () => {
      install({ a: 'x' });
      const p = kb.requestResource(RES, 'a');
      const c = kb.close();
      expect(await p).toMatchObject({ ok: false, reason: 'closed' });
      await c;
      expect(kernel.pendingRequests()).toEqual([]);
    });

    simTest('the sample kext cannot unload while a request is pending (explain shows it); once answered it can', async () => {
      install({ a: 'x' });
      kernel.withholdResources(true);
      const p = kb.requestResource(RES, 'a');
      while (kernel.pendingRequests().length === 0) await new Promise((r) => setImmediate(r));
      const tag = kernel.sampleLoadTag;
      const requestTag = kernel.pendingRequests()[0].requestTag;
      const blocker = { kind: 'pendingRequests', count: 1, requests: [{ requestTag, bundleId: RES, resourceName: 'a' }] };
      expect((await kb.explain(tag)).blockers).toContainEqual(blocker);
      expect((await kb.explain(tag)).unloadable).toBe(false);
      expect(kernel.explain(tag).blockers).toContainEqual(blocker);
      expect(kernel._kextFlags(tag)).toMatchObject({ pendingRequests: 1 });
      // Another kext is not blocked by the sample's request.
      const other = kernel.loadKext({ bundleId: 'com.example.other' });
      expect((await kb.explain(other)).blockers).toEqual([]);
      kernel.withholdResources(false);
      expect((await p).ok).toBe(true);
      expect((await kb.explain(tag)).blockers.map((b) => b.kind)).not.toContain('pendingRequests');
      await kb.close(); // the only other blocker: this connection's user client
      expect(kernel.explain(tag)).toMatchObject({ unloadable: true, blockers: [] });
      expect(kernel.unloadKext(tag)).toMatchObject({ ok: true });
    });

    simTest('watch yields the request events in order: queued, delivered', async () => {
      install({ a: 'xyz' });
      const ac = new AbortController();
      const it = kb.watch({ signal: ac.signal, bundleIds: [RES] });
      const r = await kb.requestResource(RES, 'a');
      const seen = [];
      for await (const e of it) {
        seen.push(e);
        if (seen.length === 2) break;
      }
      ac.abort();
      expect(seen).toEqual([
        { type: 'request', phase: 'queued', at: 0, loadTag: kernel.sampleLoadTag, bundleId: RES, resourceName: 'a', requestTag: r.ok ? r.requestTag : -1 },
        { type: 'request', phase: 'delivered', at: 10, loadTag: kernel.sampleLoadTag, bundleId: RES, resourceName: 'a', requestTag: r.ok ? r.requestTag : -1, code: 0, length: 3 },
      ]);
    });

    test('bad arguments throw before anything is sent; an already-aborted signal rejects with an AbortError', async () => {
      const calls = kb._nativeCalls;
      expect(() => kb.requestResource('', 'a')).toThrow(TypeError);
      expect(() => kb.requestResource(RES, '')).toThrow(TypeError);
      expect(() => kb.requestResource(RES, 'n'.repeat(128))).toThrow(/at most 127 bytes/);
      expect(() => kb.requestResource(RES, 'a\0b')).toThrow(RangeError);
      expect(() => kb.requestResource(RES, '\uDC00')).toThrow(RangeError);
      expect(() => kb.requestResource(RES, 7 as unknown as string)).toThrow(TypeError);
      expect(() => kb.requestResource(RES, 'a', { timeout: -1 })).toThrow(RangeError);
      expect(() => kb.requestResource(RES, 'a', { timeout: 1.5 })).toThrow(RangeError);
      expect(() => kb.requestResource(RES, 'a', { signal: {} as AbortSignal })).toThrow(TypeError);
      expect(() => kb.requestResource(RES, 'a', { sigal: 1 } as object)).toThrow(/sigal is not an option/);
      await expect(kb.requestResource(RES, 'a', { signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError' });
      const hostile = { addEventListener() {}, removeEventListener() {}, get aborted(): boolean { throw new Error('boom'); } } as unknown as AbortSignal;
      await expect(kb.requestResource(RES, 'a', { signal: hostile })).rejects.toThrow(/aborted threw; nothing was started/);
      expect(kb._nativeCalls).toBe(calls);
    });

    simTest('a hostile abort reason never escapes: the request is cancelled and the result is plain', async () => {
      install({ a: 'x' });
      kernel.withholdResources(true);
      const ac = new AbortController();
      const p = kb.requestResource(RES, 'a', { signal: ac.signal });
      while (kernel.pendingRequests().length === 0) await new Promise((r) => setImmediate(r));
      ac.abort(new Proxy({}, { get() { throw new Error('trap'); }, getPrototypeOf() { throw new Error('trap'); } }));
      expect(await p).toMatchObject({ ok: false, reason: 'aborted', cancelled: true });
    });
  });
});

describe('kextbridge load <bundle-id> in-process (the deferred load needs kernelmanagerd to find it meanwhile)', () => {
  afterEach(() => defaultSimKernel.reset());

  test('deferred, then loaded by the simulated reply: exit 0, deferred: true, waitedMs the reply delay', async () => {
    defaultSimKernel.reset();
    const kernel = defaultSimKernel();
    kernel.delayCalls(40, 8); // the verb's calls are slow: the install below lands before its wait jumps the clock
    const cursor = kernel.eventCursor;
    const installer = (async () => {
      while (!kernel.events(cursor).events.some((e) => e.type === 'loadRequested')) await new Promise((r) => setTimeout(r, 1));
      kernel.installKext({ bundleId: 'com.example.late', version: '3.0' });
    })();
    const out: string[] = [];
    const err: string[] = [];
    const io = { stdout: { write: (s: string) => out.push(s) }, stderr: { write: (s: string) => err.push(s) }, stdin: process.stdin, env: {} } as unknown as Io;
    const code = await main(['--backend', 'sim', 'load', 'com.example.late', '--json'], io);
    await installer;
    expect({ code, err: err.join('') }).toEqual({ code: 0, err: '' });
    expect(JSON.parse(out.join(''))).toEqual({
      schemaVersion: 1, ok: true, backend: 'sim',
      result: { bundleId: 'com.example.late', alreadyLoaded: false, name: 'kOSKextReturnDeferred', code: 0xdc008011, loadTag: kernel.lookup('com.example.late'), loaded: true, deferred: true, waitedMs: 10 },
    });
  });
});

/** A native error comes from the main realm: compare its name, not its constructor. */
function named(fn: () => unknown, name: string, message?: RegExp): void {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  expect((thrown as Error | undefined)?.name).toBe(name);
  if (message) expect((thrown as Error).message).toMatch(message);
}

describe('the native surface checks what it reads (below the library)', () => {
  test('sim controls: installKext resources, failResources, setStopping, withholdResources', () => {
    const kernel = createSimKernel();
    const n = kernel._native;
    named(() => n.installKext({ bundleId: 'com.x' }, { a: 5 } as never), 'TypeError');
    named(() => n.installKext({ bundleId: 'com.x' }, [] as never), 'TypeError');
    named(() => n.installKext({ bundleId: 'com.x' }, { ['n'.repeat(128)]: 'x' }), 'RangeError');
    const detached = new Uint8Array(new ArrayBuffer(4));
    structuredClone(detached.buffer, { transfer: [detached.buffer] });
    named(() => n.installKext({ bundleId: 'com.x' }, { a: detached }), 'TypeError', /detached/);
    named(() => n.failResources(0, 1), 'RangeError');
    named(() => n.failResources(-1, 1), 'RangeError');
    named(() => n.setStopping(8, 'yes' as never), 'TypeError');
    named(() => n.withholdResources(1 as never), 'TypeError');
    named(() => n.setResourceDelay(-1), 'RangeError');
    expect(kernel.pendingRequests()).toEqual([]);
    // and through the library, with its messages
    expect(() => kernel.installKext({ bundleId: 'com.x' }, { resources: { '': 'x' } })).toThrow(TypeError);
    expect(() => kernel.installKext({ bundleId: 'com.x' }, { resources: { a: '\uD800' } })).toThrow(/lone UTF-16 surrogate/);
    expect(() => kernel.installKext({ bundleId: 'com.x' }, { resources: { a: 1 as never } })).toThrow(/must be a Buffer, a Uint8Array or a string/);
    expect(() => kernel.failResources('kNoSuchCode' as never)).toThrow(RangeError);
    expect(() => kernel.setStopping('com.example.not-loaded', true)).toThrow(/no loaded kext answers/);
  });

  test('connection: callAsync needs a function, forgetAsync and fetchResource numbers', async () => {
    const kb = await open({ backend: 'sim', kernel: createSimKernel() });
    try {
      const c = kb.conn;
      named(() => c.callAsync(7, [], Buffer.alloc(192), 2, 0, 'nope' as never), 'TypeError', /onCompletion must be a function/);
      named(() => c.forgetAsync('1' as never), 'TypeError');
      named(() => c.fetchResource(-1), 'RangeError');
      named(() => c.fetchResource(2 ** 32), 'RangeError');
      expect(c.forgetAsync(12345)).toBe(false);
      expect((await c.fetchResource(77)).kr).toBe(0xe00002f0); // kIOReturnNotFound: no such delivery
      // requestResource called synchronously (no async reference) is refused by the user client
      expect((await c.call(7, [], Buffer.alloc(192), 2, 0)).kr).not.toBe(0);
      expect(c._asyncPending).toBe(0);
    } finally {
      await kb.close();
    }
  });
});

describe('explain on a Mac lists this connection\'s own pending requests (user space cannot list the kernel\'s)', () => {
  test('the sample kext carries the blocker with each request; without requests none', async () => {
    const { Workflow } = await import('../lib/workflow/workflow');
    const sample = { bundleId: SAMPLE_KEXT.bundleId, loadTag: 150, retainCount: 0, started: true, version: '0.1.0', uuid: '00000000-0000-0000-0000-000000000000', dependencies: [], classes: [] };
    const other = { ...sample, bundleId: 'com.example.other', loadTag: 151 };
    let own: { requestTag: number | null; bundleId: string; resourceName: string }[] = [{ requestTag: 4, bundleId: RES, resourceName: 'fw.bin' }];
    const host = {
      sim: undefined, closed: false,
      loadedKexts: async () => [sample, other], held: async () => [],
      retain: async () => { throw new Error('unused'); }, release: async () => { throw new Error('unused'); },
      _ownRequests: () => own,
      _userClients: async () => [],
    };
    const wf = new Workflow(host as never);
    expect(await wf.explain(150)).toMatchObject({ unloadable: false, blockers: [{ kind: 'pendingRequests', count: 1, requests: [{ requestTag: 4, bundleId: RES, resourceName: 'fw.bin' }] }] });
    expect(await wf.explain(151)).toMatchObject({ unloadable: true, blockers: [] });
    own = [];
    expect(await wf.explain(150)).toMatchObject({ unloadable: true, blockers: [] });
  });
});
