// The simulated kernel's event stream and its next due time, as the library reads them.
import { createSimKernel, open } from '../lib';

test('events(): load, retain 0→1, release 1→0, autounload at exactly 60,000 ms, in order', async () => {
  const kernel = createSimKernel();
  const from = kernel.eventCursor;
  expect(kernel.events(0).events.slice(0, 1)).toEqual([{ seq: 0, at: 0, type: 'loaded', loadTag: 0, bundleId: '__kernel__' }]);
  const tag = kernel.loadKext({ bundleId: 'com.example.w', version: '1.0' });
  const kb = await open({ backend: 'sim', kernel });
  expect(kernel.nextDueMs).toBeNull();
  await kb.retain(tag);
  kernel.advance(10);
  await kb.release(tag);
  expect(kernel.nextDueMs).toBe(60_010);
  kernel.advance(60_000);
  const r = kernel.events(from);
  expect(r.dropped).toBe(0);
  expect(r.cursor).toBe(kernel.eventCursor);
  const mine = r.events.filter((e) => e.loadTag === tag);
  expect(mine).toEqual([
    { seq: from, at: 0, type: 'loaded', loadTag: tag, bundleId: 'com.example.w' },
    expect.objectContaining({ at: 0, type: 'retainCount', from: 0, to: 1 }),
    expect.objectContaining({ at: 10, type: 'retainCount', from: 1, to: 0 }),
    expect.objectContaining({ at: 60_010, type: 'unloaded', cause: 'autounload' }),
  ]);
  // The connection itself is an instance of the sample's user-client class.
  expect(r.events.find((e) => e.type === 'instances')).toMatchObject({ loadTag: kernel.sampleLoadTag, className: 'org_kextbridge_SampleUserClient', from: 0, to: 1 });
  expect(kernel.nextDueMs).toBeNull();
  await kb.close();
});

test('events(): a reader that fell behind the 4096-entry ring is told how many it missed', () => {
  const kernel = createSimKernel();
  const from = kernel.eventCursor;
  for (let i = 0; i < 2100; i++) {
    kernel.kpi.retainKextWithLoadTag(0);
    kernel.kpi.releaseKextWithLoadTag(0);
  }
  const r = kernel.events(from);
  expect(r.dropped).toBe(4200 - 4096);
  expect(r.events).toHaveLength(4096);
  expect(r.events[0].seq).toBe(from + r.dropped);
  expect(kernel.events(r.cursor)).toEqual({ cursor: r.cursor, dropped: 0, events: [] });
  expect(() => kernel.events(-1)).toThrow(/cursor/);
});
