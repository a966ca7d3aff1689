// The simulated kernel at its edges: the end of its clock, kernel components, after a panic,
// a close that could not release, and the process's default machine.
import { createSimKernel, defaultSimKernel, KextBridgeError, open } from '../lib';

const MAX = Number.MAX_SAFE_INTEGER;

describe('the clock near 2^53 ms', () => {
  test('advances to exactly 2^53 - 1, refuses one more, and a scan past the end is Infinity (never rounded)', async () => {
    const kernel = createSimKernel();
    const kb = await open({ backend: 'sim', kernel });
    const tag = kernel.loadKext({ bundleId: 'com.example.clock', autounload: true });
    kernel.advance(MAX - 120_000);
    expect(kernel.now).toBe(MAX - 120_000);
    await kb.retain(tag);
    await kb.release(tag); // arms the scan 60 s ahead: still a safe time
    expect(kernel.autounloadDeadline).toBe(MAX - 60_000);
    kernel.advance(60_000);
    expect(kernel.lookup('com.example.clock')).toBeNull();
    kernel.advance(MAX - kernel.now);
    expect(kernel.now).toBe(MAX);
    expect(() => kernel.advance(1)).toThrow(RangeError);
    const late = kernel.loadKext({ bundleId: 'com.example.late', autounload: true });
    await kb.retain(late);
    await kb.release(late);
    expect(kernel.autounloadDeadline).toBe(Infinity);
    expect(kernel.lookup('com.example.late')).toBe(late);
    await kb.close();
  });
});

describe('unloadKext of kernel components', () => {
  test('__kernel__ and the KPI interfaces answer that they are kernel components, not the invalid-tag text', () => {
    const kernel = createSimKernel();
    const kpis = kernel.loadedKexts().filter((k) => k.bundleId.startsWith('com.apple.kpi.'));
    expect(kpis.length).toBeGreaterThan(0);
    for (const k of [kernel.loadedKexts()[0], ...kpis]) {
      const r = kernel.unloadKext(k.loadTag);
      expect(r.ok).toBe(false);
      expect(['kOSKextReturnInvalidArgument', 'kOSKextReturnInUse']).toContain(r.name);
      expect(r.message).toMatch(new RegExp(`^${k.bundleId.replace(/\./g, '\\.')} \\(tag ${k.loadTag}\\) is a kernel component`));
      expect(r.message).not.toMatch(/kOSKextInvalidLoadTag|retain\/release/);
    }
    expect(kernel.unloadKext(0).message).toMatch(/the kernel itself/);
    // An ordinary kext keeps the ordinary answers.
    expect(kernel.unloadKext(0xfffffffe).name).toBe('kOSKextReturnNotFound');
  });
});

describe('close() that could not release something says so', () => {
  test('an armed release fault: close() rejects naming what stays held; the kernel still counts it', async () => {
    const kernel = createSimKernel();
    const kb = await open({ backend: 'sim', kernel });
    const tag = kernel.sampleLoadTag;
    await kb.retain();
    kernel.injectFault('release', 'kOSKextReturnNotFound', 1);
    const err = await kb.close().then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(KextBridgeError);
    expect((err as Error).message).toMatch(/closed, but 1 retain could not be released/);
    expect(kb.closed).toBe(true);
    expect(kernel.rawRetainCount(tag)).toBe(3);
    // Idempotent: the same answer again.
    await expect(kb.close()).rejects.toBe(err);
  });

  test('a close that released everything resolves', async () => {
    const kernel = createSimKernel();
    const kb = await open({ backend: 'sim', kernel });
    await kb.retainMany([kernel.sampleLoadTag, kernel.sampleLoadTag]);
    await expect(kb.close()).resolves.toBeUndefined();
    expect(kernel.rawRetainCount(kernel.sampleLoadTag)).toBe(2);
  });
});

describe('the process default machine', () => {
  test('is one per process, survives a jest module reset, and reset() replaces it', async () => {
    const first = defaultSimKernel();
    const tag = first.loadKext({ bundleId: `com.example.default${Date.now()}` });
    let again: typeof defaultSimKernel | undefined;
    jest.isolateModules(() => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      again = (require('../lib') as typeof import('../lib')).defaultSimKernel;
    });
    expect(again).not.toBe(defaultSimKernel);
    expect(again!().rawRetainCount(tag)).toBe(2); // the same machine, seen from a fresh module registry
    const kb = await open({ backend: 'sim' });
    again!.reset();
    const fresh = defaultSimKernel(); // this module instance sees the reset too
    expect(fresh).not.toBe(first);
    expect(fresh.rawRetainCount(tag)).toBeNull();
    expect(fresh.now).toBe(0);
    expect(first.rawRetainCount(tag)).toBe(2); // the old machine lives on for what holds it
    expect((await kb.info()).identifier).toBeTruthy(); // a connection on the old machine still works
    await kb.close();
    const kb2 = await open({ backend: 'sim' });
    expect(kb2.sim).toBe(fresh);
    await kb2.close();
  });
});
