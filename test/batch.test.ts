// The batch selectors: retainMany/releaseMany carry up to 512 tags per user-client call (one
// kernel crossing on a Mac, not one per tag), with the same ledger rule per tag as single calls.
import { createSimKernel, KextBridge, LIMITS, open, SELECTORS, SimKernel } from '../lib';
import { binding, NativeConnection } from '../lib/native';

function machine(): { kernel: SimKernel; tags: number[] } {
  const kernel = createSimKernel();
  const tags = [0, 1, 2].map((i) => kernel.loadKext({ bundleId: `com.example.batch${i}`, version: '1.0' }));
  return { kernel, tags };
}

/** 1,000 tags: loaded ones (past the 256-retain ledger cap), unknown, the invalid tag, the sample. */
function mix(m: { kernel: SimKernel; tags: number[] }): number[] {
  const pool = [...m.tags, m.kernel.sampleLoadTag, 0xffffffff, 0xfffffffe, 4242];
  return Array.from({ length: 1000 }, (_, i) => pool[(i * 7 + (i >> 3)) % pool.length]);
}

async function twins(): Promise<[KextBridge, KextBridge, SimKernel, SimKernel, number[]]> {
  const a = machine();
  const b = machine();
  const seq = mix(a);
  expect(mix(b)).toEqual(seq); // the two machines hand out the same tags
  return [await open({ backend: 'sim', kernel: a.kernel }), await open({ backend: 'sim', kernel: b.kernel }), a.kernel, b.kernel, seq];
}

test.each(['async', 'sync'] as const)('%s retainMany/releaseMany of 1,000 tags: 2 user-client calls each, results identical to 1,000 single calls on a twin kernel', async (mode) => {
  const [batched, single, ka, kb, seq] = await twins();
  expect(LIMITS.batchMaxTags).toBe(512);
  for (const op of ['retain', 'release'] as const) {
    const before = batched._userClientCalls;
    const many = mode === 'sync' ? batched.sync[`${op}Many`](seq) : await batched[`${op}Many`](seq);
    expect(batched._userClientCalls - before).toBe(2); // ceil(1000 / 512)
    const ones = [];
    for (const t of seq) ones.push(await single[op](t));
    expect(many).toEqual(ones);
    expect(ka.loadedKexts()).toEqual(kb.loadedKexts());
    expect(await batched.held()).toEqual(await single.held());
  }
  // The mix really exercised every answer: successes, refusals past the cap, kernel failures.
  const names = new Set((await batched.retainMany(seq)).map((r) => r.name));
  expect([...names].sort()).toEqual(['kIOReturnNoResources', 'kOSKextReturnInvalidArgument', 'kOSKextReturnNotFound', 'kOSReturnSuccess'].sort());
  await Promise.all([batched.close(), single.close()]);
  expect(ka.loadedKexts()).toEqual(kb.loadedKexts());
  expect(ka.panicked).toBeNull();
});

test('releaseMany refuses per tag what this connection does not hold, and goes on with the rest', async () => {
  const m = machine();
  const kb = await open({ backend: 'sim', kernel: m.kernel });
  await kb.retain(m.tags[0]);
  const r = await kb.releaseMany([m.tags[1], m.tags[0], m.tags[0]]);
  expect(r.map((x) => x.name)).toEqual(['kIOReturnNotPermitted', 'kOSReturnSuccess', 'kIOReturnNotPermitted']);
  expect(r[1]).toMatchObject({ layer: 'kernel', held: 0 });
  expect(m.kernel.rawRetainCount(m.tags[0])).toBe(2);
  await kb.close();
});

describe('the batch selectors at the user-client boundary', () => {
  let conn: NativeConnection;
  let kernel: SimKernel;
  beforeEach(() => {
    kernel = createSimKernel();
    conn = binding().openSim(kernel._native, true) as NativeConnection;
  });
  afterEach(() => conn.close());
  const tags = (n: number, tag: number) => {
    const b = Buffer.alloc(4 * n);
    for (let i = 0; i < n; i++) b.writeUInt32LE(tag, 4 * i);
    return b;
  };
  const sel = SELECTORS.retainBatch.selector;

  test('a well-formed batch answers one (code, heldAfter) entry per tag', async () => {
    const r = await conn.call(sel, [], tags(3, kernel.sampleLoadTag), 0, 3 * 8);
    expect(r.kr).toBe(0);
    expect([...new Uint32Array(new Uint8Array(r.struct).buffer)]).toEqual([0, 1, 0, 2, 0, 3]);
    expect(kernel.rawRetainCount(kernel.sampleLoadTag)).toBe(5);
  });

  test.each([
    ['no tags', 0, 4096],
    ['a size that is not whole tags', 6, 4096],
    ['more than 512 tags', 513 * 4, 4096],
    ['an output too small for one entry per tag', 8, 15],
    ['an output larger than the selector allows', 8, 4097],
  ])('%s is kIOReturnBadArgument and changes nothing', async (_what, inSize, outSize) => {
    const before = kernel.loadedKexts();
    const r = await conn.call(sel, [], Buffer.alloc(inSize, 0), 0, outSize);
    expect(r.kr).toBe(0xe00002c2);
    expect(kernel.loadedKexts()).toEqual(before);
  });

  test('an unprivileged connection is refused the whole batch (kIOReturnNotPrivileged)', async () => {
    const u = binding().openSim(kernel._native, false) as NativeConnection;
    const r = await u.call(sel, [], tags(2, kernel.sampleLoadTag), 0, 16);
    expect(r.kr).toBe(0xe00002c1);
    expect(kernel.rawRetainCount(kernel.sampleLoadTag)).toBe(2);
    await u.close();
  });
});
