// A batch interrupted by a fault or a service termination reports the per-tag results of what
// already happened (issue 15): retainMany/releaseMany reject with a KextBridgeError whose
// `results` has every tag's outcome in order (typed results for the tags that ran, a
// BatchTagFailure for the others); nothing is lost, and the kernel and held() agree.
import { BatchTagFailure, createSimKernel, KextBridge, KextBridgeError, open, ReleaseResult, RetainResult, SimKernel } from '../lib';

let kernel: SimKernel;
let kb: KextBridge;
let tags: number[];
beforeEach(async () => {
  kernel = createSimKernel();
  tags = Array.from({ length: 8 }, (_, i) => kernel.loadKext({ bundleId: `com.example.cut.k${i}`, version: '1.0' }));
  kb = await open({ backend: 'sim', kernel });
});
afterEach(async () => {
  kernel.delayCalls(0);
  await kb.close().catch(() => undefined);
});

type Outcome = RetainResult | ReleaseResult | BatchTagFailure;
async function rejection(p: Promise<unknown>): Promise<KextBridgeError & { results: Outcome[] }> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(KextBridgeError);
  const err = e as KextBridgeError;
  expect(err.results).toBeDefined();
  return err as KextBridgeError & { results: Outcome[] };
}
function rejectionSync(f: () => unknown): KextBridgeError & { results: Outcome[] } {
  let e: unknown;
  try {
    f();
  } catch (err) {
    e = err;
  }
  expect(e).toBeInstanceOf(KextBridgeError);
  expect((e as KextBridgeError).results).toBeDefined();
  return e as KextBridgeError & { results: Outcome[] };
}
/** Each tag's successes in a batch's outcomes. */
const successes = (rs: Outcome[], tag: number) => rs.filter((r) => r.loadTag === tag && r.ok).length;
const raw = (tag: number) => kernel.rawRetainCount(tag)! - 2;

describe('a kernel fault mid-batch (a code the KPI cannot produce)', () => {
  test('releaseMany: the tags before and after the faulted one keep their results (async)', async () => {
    const [a, b, c] = tags;
    for (const r of await kb.retainMany([a, a, b])) expect(r.ok).toBe(true);
    kernel.injectFault('release', 'kOSReturnError', 1);
    // c is not held: refused by the user client without a KPI call, so the fault strikes the 4th tag.
    const batch = [c, c, c, a, a, b, c];
    const e = await rejection(kb.releaseMany(batch));
    expect(e).toMatchObject({ operation: 'releaseMany', codeName: 'kOSReturnError' });
    expect(e.message).toMatch(/tag \d+, index 3\); 7 of 7 tags were answered, 0 never ran: error\.results/);
    expect(e.results).toEqual([
      expect.objectContaining({ loadTag: c, layer: 'userclient', name: 'kIOReturnNotPermitted', held: 0 }),
      expect.objectContaining({ loadTag: c, layer: 'userclient', name: 'kIOReturnNotPermitted', held: 0 }),
      expect.objectContaining({ loadTag: c, layer: 'userclient', name: 'kIOReturnNotPermitted', held: 0 }),
      { ok: false, layer: 'unexpected', name: 'kOSReturnError', code: 0xdc000001, loadTag: a, message: expect.stringContaining('cannot produce') },
      expect.objectContaining({ loadTag: a, ok: true, held: 1 }), // the fault changed nothing: 2 → 1
      expect.objectContaining({ loadTag: b, ok: true, held: 0 }),
      expect.objectContaining({ loadTag: c, name: 'kIOReturnNotPermitted' }),
    ]);
    expect(await kb.held()).toEqual([{ loadTag: a, count: 1 }]);
    expect([raw(a), raw(b)]).toEqual([1, 0]);
  });

  test('the sync batch reports the same', () => {
    const [a, b] = tags;
    kb.sync.retainMany([a, b]);
    kernel.injectFault('release', 'kOSReturnError', 1);
    const e = rejectionSync(() => kb.sync.releaseMany([a, b]));
    expect(e.results.map((r) => [r.layer, r.name])).toEqual([['unexpected', 'kOSReturnError'], ['kernel', 'kOSReturnSuccess']]);
    expect(kb.sync.held()).toEqual([{ loadTag: a, count: 1 }]);
  });

  test('retainMany over two chunks, the fault injected while the second is on its way: every tag keeps its result', async () => {
    // 600 tags: the batch selector carries 512 per user-client call, so two calls, each slow.
    // The first 500 are not loaded (kOSKextReturnNotFound, nothing held), so the ledger has room.
    const batch = Array.from({ length: 600 }, (_, i) => (i < 500 ? 99_999 : tags[i % 4]));
    kernel.delayCalls(500, 2);
    const p = kb.retainMany(batch);
    await new Promise((r) => setTimeout(r, 700)); // the first call ran (0–500 ms); the second sleeps (500–1000 ms)
    kernel.injectFault('retain', 'kOSReturnError', 1);
    const e = await rejection(p);
    expect(e).toMatchObject({ operation: 'retainMany', codeName: 'kOSReturnError' });
    expect(e.message).toMatch(/index 512\); 600 of 600 tags were answered/);
    expect(e.results).toHaveLength(600);
    expect(e.results.slice(0, 500).every((r) => r.layer === 'kernel' && r.name === 'kOSKextReturnNotFound')).toBe(true);
    expect(e.results.slice(500, 512).every((r) => r.ok)).toBe(true);
    expect(e.results[512]).toMatchObject({ layer: 'unexpected', name: 'kOSReturnError', loadTag: batch[512] });
    expect(e.results.slice(513).every((r) => r.ok)).toBe(true);
    const held = await kb.held();
    for (const t of tags.slice(0, 4)) {
      expect(successes(e.results, t)).toBe(batch.slice(500).filter((x) => x === t).length - (t === batch[512] ? 1 : 0));
      expect(raw(t)).toBe(successes(e.results, t));
      expect(held.find((h) => h.loadTag === t)?.count).toBe(successes(e.results, t));
    }
  });
});

describe('the service terminated mid-batch', () => {
  test('retainMany: the first chunk ran, the second never did; the kernel holds exactly the successes, and close releases them', async () => {
    const [a, b] = tags;
    const batch = Array.from({ length: 600 }, (_, i) => (i < 200 ? a : b)); // 200 a, then b: the ledger fills at 256
    kernel.delayCalls(500, 2);
    const p = kb.retainMany(batch);
    await new Promise((r) => setTimeout(r, 700));
    kernel.setInstances(kernel.sampleLoadTag, 'org_kextbridge_SampleService', 0); // IOService::terminate
    const e = await rejection(p);
    expect(e).toMatchObject({ operation: 'retainMany', codeName: 'kIOReturnNotOpen' });
    expect(e.message).toMatch(/index 512\); 512 of 600 tags were answered, 88 never ran/);
    expect(e.results.slice(0, 200).every((r) => r.ok && r.loadTag === a)).toBe(true);
    expect(e.results[199]).toMatchObject({ ok: true, held: 200 });
    expect(e.results[255]).toMatchObject({ ok: true, loadTag: b, held: 56 });
    expect(e.results[256]).toMatchObject({ layer: 'userclient', name: 'kIOReturnNoResources', held: 56 });
    expect(e.results.slice(512)).toEqual(
      batch.slice(512).map((loadTag) => ({ ok: false, layer: 'not-run', name: 'kIOReturnNotOpen', code: 0xe00002cd, loadTag, message: expect.any(String) })),
    );
    expect([raw(a), raw(b)]).toEqual([200, 56]); // nothing lost, nothing extra
    await kb.close();
    expect([raw(a), raw(b)]).toEqual([0, 0]);
  });

  test('watch() sees the calls that ran, not the ones that did not', async () => {
    const [a] = tags;
    const calls: unknown[] = [];
    const ac = new AbortController();
    const w = kb.watch({ signal: ac.signal });
    const reading = (async () => {
      for await (const ev of w) if (ev.type === 'call') calls.push(ev);
    })();
    await new Promise((r) => setTimeout(r, 20));
    kernel.delayCalls(500, 2);
    const p = kb.retainMany(Array.from({ length: 520 }, () => a));
    await new Promise((r) => setTimeout(r, 700));
    kernel.setInstances(kernel.sampleLoadTag, 'org_kextbridge_SampleService', 0);
    await rejection(p);
    await new Promise((r) => setTimeout(r, 20));
    ac.abort();
    await reading.catch(() => undefined);
    expect(calls).toHaveLength(512);
  });
});
