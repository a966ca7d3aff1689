// The simulated kernel behaves as xnu does (docs/kernel-facts.md §3).
import * as fc from 'fast-check';
import { createSimKernel, KextBridgeError, open, SimKernel } from '../lib';

const MIN = 60_000;

function target(kernel: SimKernel, extra: Partial<Parameters<SimKernel['loadKext']>[0]> = {}): number {
  return kernel.loadKext({ bundleId: `com.example.target${Math.random().toString(36).slice(2, 8)}`, version: '1.0', ...extra });
}

const loaded = (kernel: SimKernel, tag: number) => kernel.loadedKexts().some((k) => k.loadTag === tag);

describe('default world', () => {
  test('__kernel__ is tag 0, the KPIs follow, then the sample kext with its live service', () => {
    const kernel = createSimKernel();
    const kexts = kernel.loadedKexts();
    expect(kexts[0]).toMatchObject({ bundleId: '__kernel__', loadTag: 0, retainCount: 0 });
    const byId = new Map(kexts.map((k) => [k.bundleId, k]));
    expect(byId.get('com.apple.kpi.iokit')?.retainCount).toBe(1); // the sample kext depends on it
    expect(byId.get('com.apple.kpi.libkern')?.retainCount).toBe(1);
    expect(byId.get('com.apple.kpi.bsd')?.retainCount).toBe(1);
    expect(byId.get('com.apple.kpi.mach')?.retainCount).toBe(1);
    const sample = byId.get('org.kextbridge.sample')!;
    expect(sample.loadTag).toBe(kernel.sampleLoadTag);
    expect(sample.dependencies).toEqual(['com.apple.kpi.mach', 'com.apple.kpi.libkern', 'com.apple.kpi.iokit', 'com.apple.kpi.bsd'].map((id) => byId.get(id)!.loadTag).sort((a, b) => b - a));
    expect(sample.classes).toContainEqual({ name: 'org_kextbridge_SampleService', superclass: 'IOService', instances: 1 });
    expect(kernel.rawRetainCount(sample.loadTag)).toBe(2);
  });
});

describe('the KPIs driven directly, as a buggy kext would', () => {
  test('releasing past the baseline of 2 records a panic; every later call fails loudly', async () => {
    const kernel = createSimKernel();
    const tag = target(kernel);
    expect(kernel.kpi.retainKextWithLoadTag(tag)).toMatchObject({ ok: true, name: 'kOSReturnSuccess' });
    expect(kernel.kpi.releaseKextWithLoadTag(tag)).toMatchObject({ ok: true });
    expect(kernel.panicked).toBeNull();
    // The real KPI has no lower bound: it says success, and the Mac panics. The call that
    // did it says so (it throws, naming the panic), not a quiet { ok: true }.
    expect(() => kernel.kpi.releaseKextWithLoadTag(tag)).toThrow(/this call panicked the simulated kernel \(the KPI answered kOSReturnSuccess.*below/);
    expect(kernel.panicked).toMatchObject({ call: 'OSKextReleaseKextWithLoadTag', loadTag: tag, retainCountAfter: 1 });
    expect(kernel.panicked!.message).toMatch(/below/);
    // Every control after it fails loudly.
    for (const control of [
      () => kernel.kpi.retainKextWithLoadTag(tag),
      () => kernel.kpi.releaseKextWithLoadTag(tag),
      () => kernel.advance(1),
      () => kernel.loadKext({ bundleId: 'com.example.after' }),
      () => kernel.unloadKext(tag),
      () => kernel.setInstances(tag, 'C', 0),
      () => kernel.injectFault('retain', 'kOSKextReturnNotFound'),
      () => kernel.delayCalls(1),
    ])
      expect(control).toThrow(expect.objectContaining({ name: 'KextBridgeError', message: expect.stringMatching(/panicked earlier/) }));
    expect(() => target(kernel)).toThrow(KextBridgeError);
    await expect(open({ backend: 'sim', kernel })).rejects.toMatchObject({ codeName: 'MIG_SERVER_DIED' });
  });

  test('a connection open when the kernel panics fails with MIG_SERVER_DIED', async () => {
    const kernel = createSimKernel();
    const kb = await open({ backend: 'sim', kernel });
    const tag = target(kernel);
    expect(() => kernel.kpi.releaseKextWithLoadTag(tag)).toThrow(/panicked/);
    await expect(kb.retain()).rejects.toMatchObject({ codeName: 'MIG_SERVER_DIED', code: 0xfffffecc });
    await kb.close();
  });

  test('through the public API, no sequence of calls ever panics the kernel', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.constantFrom('retain', 'release', 'close', 'advance'), fc.nat(2), fc.nat(3)), { maxLength: 60 }),
        async (steps) => {
          const kernel = createSimKernel();
          const tags = [target(kernel), target(kernel), kernel.sampleLoadTag, 0];
          const conns = await Promise.all([0, 1, 2].map(() => open({ backend: 'sim', kernel })));
          for (const [op, c, t] of steps) {
            const kb = conns[c];
            if (op === 'advance') kernel.advance(MIN);
            else if (op === 'close') await kb.close();
            else await kb[op](tags[t]).catch((e: unknown) => expect(e).toBeInstanceOf(KextBridgeError));
          }
          await Promise.all(conns.map((kb) => kb.close()));
          expect(kernel.panicked).toBeNull();
          // Every retain made through a connection was given back when it closed.
          for (const k of kernel.loadedKexts()) if (!k.bundleId.startsWith('com.apple.kpi')) expect(k.retainCount).toBe(0);
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('autounload', () => {
  test('a retained then released kext is loaded at +59.999 s and gone at +60 s', async () => {
    const kernel = createSimKernel();
    const kb = await open({ backend: 'sim', kernel });
    const tag = target(kernel);
    expect(await kb.retain(tag)).toMatchObject({ ok: true });
    kernel.advance(10 * MIN);
    expect(loaded(kernel, tag)).toBe(true); // retained: never
    expect(await kb.release(tag)).toMatchObject({ ok: true });
    expect(kernel.autounloadDeadline).toBe(kernel.now + MIN);
    kernel.advance(MIN - 1);
    expect(loaded(kernel, tag)).toBe(true);
    kernel.advance(1);
    expect(loaded(kernel, tag)).toBe(false);
    expect(await kb.retain(tag)).toMatchObject({ ok: false, name: 'kOSKextReturnNotFound' });
    await kb.close();
  });

  test('every release re-arms the timer 60 s ahead', async () => {
    const kernel = createSimKernel();
    const kb = await open({ backend: 'sim', kernel });
    const a = target(kernel);
    await kb.retainMany([a, kernel.sampleLoadTag]);
    await kb.release(a);
    kernel.advance(30_000);
    await kb.release(kernel.sampleLoadTag); // another release pushes the scan back
    kernel.advance(MIN - 1);
    expect(loaded(kernel, a)).toBe(true);
    kernel.advance(1);
    expect(loaded(kernel, a)).toBe(false);
    await kb.close();
  });

  test('a kext with a live instance or a loaded dependent stays; the sample kext stays', async () => {
    const kernel = createSimKernel();
    const kb = await open({ backend: 'sim', kernel });
    const withInstance = target(kernel, { classes: [{ name: 'com_example_Driver', superclass: 'IOService', instances: 1 }] });
    const library = kernel.loadKext({ bundleId: 'com.example.lib', version: '1.0' });
    const client = kernel.loadKext({ bundleId: 'com.example.client', version: '1.0', dependencies: ['com.example.lib'] });
    expect(kernel.loadedKexts().find((k) => k.loadTag === library)?.retainCount).toBe(1);
    for (const t of [withInstance, library, kernel.sampleLoadTag]) {
      await kb.retain(t);
      await kb.release(t);
    }
    kernel.advance(MIN);
    expect(loaded(kernel, withInstance)).toBe(true);
    expect(loaded(kernel, library)).toBe(true);
    expect(loaded(kernel, kernel.sampleLoadTag)).toBe(true);
    // Once the dependent goes, the library is eligible in the next pass of the same scan.
    await kb.retain(client);
    await kb.release(client);
    kernel.setInstances(withInstance, 'com_example_Driver', 0);
    kernel.advance(MIN);
    expect(loaded(kernel, client)).toBe(false);
    expect(loaded(kernel, library)).toBe(false);
    expect(loaded(kernel, withInstance)).toBe(false);
    await kb.close();
  });

  test('explicit unload: kOSKextReturnInUse (0xDC008018) while retained, depended on or instantiated', async () => {
    const kernel = createSimKernel();
    const kb = await open({ backend: 'sim', kernel });
    const tag = target(kernel);
    await kb.retain(tag);
    expect(kernel.unloadKext(tag)).toMatchObject({ ok: false, name: 'kOSKextReturnInUse', code: 0xdc008018 });
    await kb.release(tag);
    expect(kernel.unloadKext(tag)).toMatchObject({ ok: true, name: 'kOSReturnSuccess' });
    expect(kernel.unloadKext(tag)).toMatchObject({ ok: false, name: 'kOSKextReturnNotFound' });
    kernel.loadKext({ bundleId: 'com.example.lib', version: '1.0' });
    kernel.loadKext({ bundleId: 'com.example.client', version: '1.0', dependencies: ['com.example.lib'] });
    expect(kernel.unloadKext(kernel.lookup('com.example.lib')!)).toMatchObject({ name: 'kOSKextReturnInUse' });
    expect(kernel.unloadKext(kernel.sampleLoadTag)).toMatchObject({ name: 'kOSKextReturnInUse' });
    expect(kernel.unloadKext(0)).toMatchObject({ name: 'kOSKextReturnInvalidArgument' });
    const next = target(kernel);
    expect(next).toBeGreaterThan(tag); // tags are never reused
    await kb.close();
  });

  test('with unloading disabled, unloadKext answers kOSKextReturnDisabled and the scan unloads nothing', async () => {
    const kernel = createSimKernel({ unloadEnabled: false });
    const kb = await open({ backend: 'sim', kernel });
    const tag = target(kernel);
    await kb.retain(tag);
    await kb.release(tag);
    expect(kernel.unloadKext(tag)).toMatchObject({ ok: false, name: 'kOSKextReturnDisabled', code: 0xdc00800a });
    kernel.advance(MIN);
    expect(loaded(kernel, tag)).toBe(true);
    await kb.close();
  });

  test('with global autounload off nothing is scheduled', async () => {
    const kernel = createSimKernel({ autounload: false });
    const kb = await open({ backend: 'sim', kernel });
    const tag = target(kernel);
    await kb.retain(tag);
    await kb.release(tag);
    expect(kernel.autounloadDeadline).toBeNull();
    kernel.advance(10 * MIN);
    expect(loaded(kernel, tag)).toBe(true);
    await kb.close();
  });
});

describe('controls', () => {
  test('loadKext refuses bad worlds with the kernel codes', () => {
    const kernel = createSimKernel();
    kernel.loadKext({ bundleId: 'com.example.a', version: '1.0' });
    expect(kernel.loadKext({ bundleId: 'com.example.a', version: '1.0' })).toBe(kernel.lookup('com.example.a'));
    expect(() => kernel.loadKext({ bundleId: 'com.example.a', version: '2.0' })).toThrow(expect.objectContaining({ codeName: 'kOSKextReturnLoadedVersionDiffers' }));
    expect(() => kernel.loadKext({ bundleId: 'com.example.b', dependencies: ['com.example.missing'] })).toThrow(expect.objectContaining({ codeName: 'kOSKextReturnDependencies' }));
  });

  test('an injected fault answers the given code once and changes nothing', async () => {
    const kernel = createSimKernel();
    const kb = await open({ backend: 'sim', kernel });
    kernel.injectFault('retain', 'kOSKextReturnNotFound', 1);
    expect(await kb.retain()).toMatchObject({ ok: false, name: 'kOSKextReturnNotFound', held: 0 });
    expect(await kb.retain()).toMatchObject({ ok: true, held: 1 });
    expect(kernel.rawRetainCount(kernel.sampleLoadTag)).toBe(3);
    await kb.close();
    expect(kernel.rawRetainCount(kernel.sampleLoadTag)).toBe(2);
  });

  // IOUserClient::stop only stops a client (it runs with the kernel's kext lock held and may
  // call no KPI); what the client holds is released when it closes (clientClose).
  test("terminating the sample's service stops its clients: later calls answer kIOReturnNotOpen, retains are released at close", async () => {
    const kernel = createSimKernel();
    const a = await open({ backend: 'sim', kernel });
    const b = await open({ backend: 'sim', kernel });
    const tag = target(kernel);
    await a.retainMany([tag, tag, kernel.sampleLoadTag]);
    await b.retain(tag);
    expect(kernel.rawRetainCount(tag)).toBe(5);
    kernel.setInstances(kernel.sampleLoadTag, 'org_kextbridge_SampleService', 0); // IOService::terminate
    expect(kernel.rawRetainCount(tag)).toBe(5); // still held: stop() releases nothing
    await expect(a.retain(tag)).rejects.toMatchObject({ codeName: 'kIOReturnNotOpen', code: 0xe00002cd });
    await expect(b.held()).rejects.toMatchObject({ codeName: 'kIOReturnNotOpen' });
    await expect(open({ backend: 'sim', kernel })).rejects.toMatchObject({ codeName: 'kIOReturnNotFound' });
    expect((await a.loadedKexts()).length).toBeGreaterThan(0); // not a user-client call
    await a.close();
    expect(kernel.rawRetainCount(tag)).toBe(3);
    expect(kernel.rawRetainCount(kernel.sampleLoadTag)).toBe(2);
    await b.close();
    expect(kernel.rawRetainCount(tag)).toBe(2);
    expect(kernel.panicked).toBeNull();
  });

  // kmutil unload with a connection open: the service is terminated first, then the unload is
  // refused (the open client is a live instance). The kext stays loaded with no service.
  test('unloading the sample with a connection open leaves it loaded without its service; after close it unloads', async () => {
    const kernel = createSimKernel();
    const tag = target(kernel);
    const kb = await open({ backend: 'sim', kernel });
    await kb.retain(tag); // a retain on another kext: the sample itself is not retained
    expect(kernel.unloadKext(kernel.sampleLoadTag)).toMatchObject({ ok: false, name: 'kOSKextReturnInUse' });
    expect(kernel.lookup('org.kextbridge.sample')).toBe(kernel.sampleLoadTag);
    await expect(kb.retain(tag)).rejects.toMatchObject({ codeName: 'kIOReturnNotOpen' });
    await expect(open({ backend: 'sim', kernel })).rejects.toMatchObject({ codeName: 'kIOReturnNotFound' });
    expect(kernel.rawRetainCount(tag)).toBe(3); // still held by the stopped client
    await kb.close(); // releases the retain it still held
    expect(kernel.rawRetainCount(tag)).toBe(2);
    expect(kernel.unloadKext(kernel.sampleLoadTag)).toMatchObject({ ok: true });
    expect(kernel.lookup('org.kextbridge.sample')).toBeNull();
    expect(kernel.panicked).toBeNull();
  });

  // kmutil asks first whether the kext could go at all: a retained kext is refused before any
  // of its services is terminated.
  test('unloading a retained sample kext is refused at once and terminates nothing', async () => {
    const kernel = createSimKernel();
    const kb = await open({ backend: 'sim', kernel });
    await kb.retain();
    expect(kernel.unloadKext(kernel.sampleLoadTag)).toMatchObject({ ok: false, name: 'kOSKextReturnInUse' });
    expect(await kb.held()).toEqual([{ loadTag: kernel.sampleLoadTag, count: 1 }]); // not stopped
    const other = await open({ backend: 'sim', kernel }); // the service still matches
    await Promise.all([kb.close(), other.close()]);
  });

  // The sample kext caps the user clients one process may hold open (kext-sample/core/open_limit.h),
  // so no local user can exhaust kernel memory by opening in a loop; the sim uses the same code.
  test('one process may hold 16 connections open; the 17th open answers kIOReturnNoResources until one closes', async () => {
    const kernel = createSimKernel();
    const conns = await Promise.all(Array.from({ length: 16 }, () => open({ backend: 'sim', kernel })));
    await expect(open({ backend: 'sim', kernel })).rejects.toMatchObject({ name: 'KextBridgeError', codeName: 'kIOReturnNoResources', code: 0xe00002be });
    await conns[0].close();
    const again = await open({ backend: 'sim', kernel });
    await Promise.all([again, ...conns.slice(1)].map((c) => c.close()));
    expect(kernel.loadedKexts().find((k) => k.loadTag === kernel.sampleLoadTag)!.classes.find((c) => c.superclass === 'IOUserClient')!.instances).toBe(0);
  });

  test('connections count as live user-client instances of the sample kext', async () => {
    const kernel = createSimKernel();
    const uc = () => kernel.loadedKexts().find((k) => k.loadTag === kernel.sampleLoadTag)!.classes.find((c) => c.superclass === 'IOUserClient')!.instances;
    expect(uc()).toBe(0);
    const a = await open({ backend: 'sim', kernel });
    const b = await open({ backend: 'sim', kernel });
    expect(uc()).toBe(2);
    await a.close();
    await b.close();
    expect(uc()).toBe(0);
  });
});
