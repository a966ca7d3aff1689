// The sync path after queued async calls (issue 15): a kb.sync call runs after everything
// already queued on the connection and never while the worker runs a job. kernel.delayCalls
// makes the worker slow on purpose (each delayed user-client call sleeps on the worker before
// it reaches the user client), and the kernel's event stream records the order in which the
// retains and releases really happened.
// Plus the sync fast path's own hostile inputs (kb.sync.retain/release run through functions
// bound to the connection, each answering one packed Number).
import { createSimKernel, KextBridge, open, SimKernel } from '../lib';
import { NativeConnection } from '../lib/native';

let kernel: SimKernel;
let kb: KextBridge;
let tags: number[];
beforeEach(async () => {
  kernel = createSimKernel();
  tags = [1, 2, 3, 4].map((i) => kernel.loadKext({ bundleId: `com.example.order.k${i}`, version: '1.0' }));
  kb = await open({ backend: 'sim', kernel });
});
afterEach(async () => {
  kernel.delayCalls(0);
  await kb.close();
});

/** The retain-count changes since `cursor`, as [tag, +1 | -1], in the kernel's order. */
function changes(cursor: number): [number, number][] {
  return kernel
    .events(cursor)
    .events.flatMap((e): [number, number][] => (e.type === 'retainCount' && tags.includes(e.loadTag) ? [[e.loadTag, e.to - e.from]] : []));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a sync retain queued behind three slow async calls runs after all of them', async () => {
  const [a, b, c] = tags;
  const cursor = kernel.eventCursor;
  kernel.delayCalls(15, 3); // the next three user-client calls (the async ones) are slow
  const queued = [kb.retain(a), kb.retain(b), kb.release(a)];
  const r = kb.sync.retain(c); // blocks until the three ran
  expect(r).toMatchObject({ ok: true, held: 1, loadTag: c });
  // Everything queued already happened when the sync call returned, in order, then the sync one.
  expect(changes(cursor)).toEqual([[a, 1], [b, 1], [a, -1], [c, 1]]);
  expect(await Promise.all(queued)).toEqual([
    expect.objectContaining({ ok: true, loadTag: a, held: 1 }),
    expect.objectContaining({ ok: true, loadTag: b, held: 1 }),
    expect.objectContaining({ ok: true, loadTag: a, held: 0 }),
  ]);
  expect(await kb.held()).toEqual([{ loadTag: b, count: 1 }, { loadTag: c, count: 1 }].sort((x, y) => x.loadTag - y.loadTag));
});

test('a sync call made while the worker is inside a slow job waits for that job to finish', async () => {
  const [a, b] = tags;
  const cursor = kernel.eventCursor;
  kernel.delayCalls(200, 1);
  const slow = kb.retain(a);
  await sleep(30); // the worker took the job off the queue and sleeps inside it (200 ms)
  expect(changes(cursor)).toEqual([]); // …it has not reached the kernel yet
  const r = kb.sync.release(b); // not held: refused, but only after the slow job ran
  expect(r).toMatchObject({ ok: false, name: 'kIOReturnNotPermitted', held: 0 });
  expect(kb.sync.retain(b)).toMatchObject({ ok: true, held: 1 });
  expect(changes(cursor)).toEqual([[a, 1], [b, 1]]);
  expect(await slow).toMatchObject({ ok: true, loadTag: a, held: 1 });
});

test('every sync kind (call, batch, held, table) waits for the queue, including calls queued between sync calls', async () => {
  const [a, b, c, d] = tags;
  const cursor = kernel.eventCursor;
  kernel.delayCalls(10, 2);
  const first = [kb.retain(a), kb.retainMany([b])];
  expect(kb.sync.retainMany([c])).toEqual([expect.objectContaining({ ok: true, held: 1 })]);
  expect(kb.sync.held().map((h) => h.loadTag).sort()).toEqual([a, b, c].sort());
  expect(kb.sync.loadedKexts().find((k) => k.loadTag === b)?.retainCount).toBe(1);
  const later = kb.retain(d); // queued after the sync calls above, before the one below
  expect(kb.sync.release(c)).toMatchObject({ ok: true, held: 0 });
  await Promise.all([...first, later]);
  expect(changes(cursor)).toEqual([[a, 1], [b, 1], [c, 1], [d, 1], [c, -1]]);
});

describe('the sync fast path (kb.sync.retain / release) on hostile input', () => {
  const fastOf = (k: KextBridge) => ((k as unknown as { conn: NativeConnection }).conn).bindSync();

  test('a tag is validated natively too: BigInt works, junk is a clear error and reaches nothing', () => {
    const fast = fastOf(kb);
    const [a] = tags;
    expect(fast.retain(BigInt(a) as never)).toBe(1); // kOSReturnSuccess, held 1
    expect(fast.release(a)).toBe(0); // kOSReturnSuccess, held 0
    const calls = kb._userClientCalls;
    for (const junk of [-1, 1.5, NaN, '1', undefined, null, {}, 2 ** 64]) expect(() => fast.retain(junk as never)).toThrow(/loadTag must be/);
    expect(kb._userClientCalls).toBe(calls);
    expect(kernel.rawRetainCount(a)).toBe(2);
    // Above 32 bits: the user client refuses (kIOReturnBadArgument), never truncates.
    expect(fast.retain(2 ** 32 + a)).toBe(-1 - 0xe00002c2 * fast.heldSpan);
    expect(fast.retain(2n ** 32n + BigInt(a) as never)).toBe(-1 - 0xe00002c2 * fast.heldSpan);
    expect(kernel.rawRetainCount(a)).toBe(2);
  });

  test('the functions hold their connection weakly: once it is collected they throw, never touch it', async () => {
    const k2 = await open({ backend: 'sim', kernel });
    const fast = fastOf(k2);
    expect(fast.retain(tags[0])).toBe(1);
    expect(fast.release(tags[0])).toBe(0);
    expect(fastOf(k2).heldSpan).toBe(fast.heldSpan);
    await k2.close();
  });

  test('the bound functions of a closed connection answer MACH_SEND_INVALID_DEST', async () => {
    const k2 = await open({ backend: 'sim', kernel });
    const fast = fastOf(k2);
    await k2.close();
    expect(fast.retain(tags[0])).toBe(-1 - 0x10000003 * fast.heldSpan);
    expect(() => k2.sync.retain(tags[0])).toThrow(/MACH_SEND_INVALID_DEST/);
  });
});
