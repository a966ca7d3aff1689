// A refused retain of a held tag reports the ledger's real count on every path (issue 15):
// single and batch, async and sync, and a refusal that ran while close() was already queued.
// A single call's refusal carries no outputs (MIG drops them on a non-success IOReturn), so the
// addon asks the user client's held selector right after, in the same turn on the queue; a
// batch entry carries the count itself. Each number here is checked against held().
import { createSimKernel, KextBridge, open, SimKernel } from '../lib';

let kernel: SimKernel;
let kb: KextBridge;
let a: number; // the sample kext: 200 held
let b: number; // another kext: 56 held (the ledger's 256 are full)
let c: number; // loaded, not held
beforeEach(async () => {
  kernel = createSimKernel();
  b = kernel.loadKext({ bundleId: 'com.example.held.b', version: '1.0' });
  c = kernel.loadKext({ bundleId: 'com.example.held.c', version: '1.0' });
  kb = await open({ backend: 'sim', kernel });
  a = kernel.sampleLoadTag;
  const fill = [...new Array<number>(200).fill(a), ...new Array<number>(56).fill(b)];
  for (const r of await kb.retainMany(fill)) expect(r.ok).toBe(true);
  expect(await kb.held()).toEqual([{ loadTag: a, count: 200 }, { loadTag: b, count: 56 }].sort((x, y) => x.loadTag - y.loadTag));
});
afterEach(async () => {
  await kb.close().catch(() => undefined);
});

const full = (loadTag: number, held: number) => ({ ok: false, layer: 'userclient', name: 'kIOReturnNoResources', code: 0xe00002be, loadTag, held });

test('a single async retain refused by the full ledger reports each tag its own count', async () => {
  expect(await kb.retain(a)).toMatchObject(full(a, 200));
  expect(await kb.retain(b)).toMatchObject(full(b, 56));
  expect(await kb.retain(c)).toMatchObject(full(c, 0));
  expect(await kb.retain()).toMatchObject(full(a, 200)); // the default tag
});

test('a single sync retain refused by the full ledger reports each tag its own count', () => {
  expect(kb.sync.retain(a)).toMatchObject(full(a, 200));
  expect(kb.sync.retain(b)).toMatchObject(full(b, 56));
  expect(kb.sync.retain(c)).toMatchObject(full(c, 0));
  expect(kb.sync.retain()).toMatchObject(full(a, 200));
});

test('batch refusals (async and sync, across chunks) report the real counts', async () => {
  const tags = [a, b, c, ...new Array<number>(1000).fill(b), a]; // 1,004 tags: two chunks of the selector
  const check = (rs: unknown[]) => {
    expect(rs).toHaveLength(tags.length);
    rs.forEach((r, i) => expect(r).toMatchObject(full(tags[i], tags[i] === a ? 200 : tags[i] === b ? 56 : 0)));
  };
  check(await kb.retainMany(tags));
  check(kb.sync.retainMany(Uint32Array.from(tags)));
});

test('after a release frees a unit, the next refusal reports the new count', async () => {
  expect(await kb.release(b)).toMatchObject({ ok: true, held: 55 });
  expect(await kb.retainMany([b, b])).toEqual([
    expect.objectContaining({ ok: true, held: 56 }),
    expect.objectContaining(full(b, 56)),
  ]);
  expect(kb.sync.release(a)).toMatchObject({ ok: true, held: 199 });
  expect(kb.sync.retain(b)).toMatchObject({ ok: true, held: 57 });
  expect(kb.sync.retain(a)).toMatchObject(full(a, 199));
  expect(kb.sync.retain(b)).toMatchObject(full(b, 57));
  expect(await kb.held()).toEqual([{ loadTag: a, count: 199 }, { loadTag: b, count: 57 }].sort((x, y) => x.loadTag - y.loadTag));
});

test('a refused release reports 0 (the ledger holds none of the tag)', async () => {
  expect(await kb.release(c)).toMatchObject({ ok: false, name: 'kIOReturnNotPermitted', held: 0 });
  expect(kb.sync.release(c)).toMatchObject({ ok: false, name: 'kIOReturnNotPermitted', held: 0 });
  expect(await kb.releaseMany([c])).toEqual([expect.objectContaining({ name: 'kIOReturnNotPermitted', held: 0 })]);
});

test('refusals queued before close() still report the real count; the close then releases all 256', async () => {
  const before = kernel.rawRetainCount(a)!;
  const single = kb.retain(a);
  const many = kb.retainMany([b, a]);
  const closed = kb.close();
  expect(kb.closed).toBe(true);
  expect(await single).toMatchObject(full(a, 200));
  expect(await many).toEqual([expect.objectContaining(full(b, 56)), expect.objectContaining(full(a, 200))]);
  await closed;
  expect(kernel.rawRetainCount(a)).toBe(before - 200);
  // After close a retain reaches nothing: a KextBridgeError, never a result claiming a count.
  await expect(kb.retain(a)).rejects.toMatchObject({ codeName: 'MACH_SEND_INVALID_DEST' });
  expect(() => kb.sync.retain(a)).toThrow(/MACH_SEND_INVALID_DEST/);
});

test('a connection without admin rights is refused with its (empty) ledger count, single and batch', async () => {
  const guest = await open({ backend: 'sim', kernel, privileged: false });
  try {
    const refused = (loadTag: number) => ({ ok: false, layer: 'userclient', name: 'kIOReturnNotPrivileged', loadTag, held: 0 });
    expect(await guest.retain(a)).toMatchObject(refused(a));
    expect(guest.sync.release(b)).toMatchObject(refused(b));
    expect(await guest.retainMany([a, b])).toEqual([expect.objectContaining(refused(a)), expect.objectContaining(refused(b))]);
    expect(guest.sync.releaseMany([b])).toEqual([expect.objectContaining(refused(b))]);
  } finally {
    await guest.close();
  }
});
