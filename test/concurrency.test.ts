// Calls on several connections, all in flight at once, end with exact counts.
import { createSimKernel, open } from '../lib';

test('1,000 concurrent retain/release calls over 4 connections end with exact ledger and kernel counts', async () => {
  const kernel = createSimKernel();
  const targets = [0, 1, 2].map((i) => kernel.loadKext({ bundleId: `com.example.t${i}`, version: '1.0' }));
  const tags = [kernel.sampleLoadTag, ...targets];
  const conns = await Promise.all([0, 1, 2, 3].map(() => open({ backend: 'sim', kernel })));
  const base = new Map(tags.map((t) => [t, kernel.rawRetainCount(t)!]));

  // Each connection: 150 retains then 100 releases, all issued without waiting (order per
  // connection is preserved by its serial worker, so every release finds a retain).
  const calls: Promise<{ ok: boolean }>[] = [];
  conns.forEach((kb, c) => {
    for (let i = 0; i < 150; i++) calls.push(kb.retain(tags[(i + c) % tags.length]));
    for (let i = 0; i < 100; i++) calls.push(kb.release(tags[(i + c) % tags.length]));
  });
  expect(calls).toHaveLength(1000);
  const results = await Promise.all(calls);
  expect(results.every((r) => r.ok)).toBe(true);

  const outstanding = new Map<number, number>(); // per tag, over all connections
  for (const [c, kb] of conns.entries()) {
    const expected = new Map<number, number>();
    for (let i = 100; i < 150; i++) {
      const t = tags[(i + c) % tags.length];
      expected.set(t, (expected.get(t) ?? 0) + 1);
      outstanding.set(t, (outstanding.get(t) ?? 0) + 1);
    }
    expect(await kb.held()).toEqual([...expected].map(([loadTag, count]) => ({ loadTag, count })).sort((a, b) => a.loadTag - b.loadTag));
  }
  for (const t of tags) expect(kernel.rawRetainCount(t)).toBe(base.get(t)! + outstanding.get(t)!);
  await Promise.all(conns.map((kb) => kb.close()));
  for (const t of tags) expect(kernel.rawRetainCount(t)).toBe(base.get(t));
  expect(kernel.panicked).toBeNull();
});
