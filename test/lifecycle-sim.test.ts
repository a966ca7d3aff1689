// kb.loadBundle / kb.unloadKext on the simulated kernel, from real bundle folders.
import { createSimKernel, open, KextBridge, SimKernel } from '../lib/index';
import { isCompatible, parseKextVersion } from '../lib/lifecycle/kext-version';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as plist from 'plist';
import { Bundles, makeBundles } from './helpers/bundles';

let b: Bundles;
let kernel: SimKernel;
let kb: KextBridge;
beforeAll(() => (b = makeBundles()));
afterAll(() => b.cleanup());
beforeEach(async () => {
  kernel = createSimKernel();
  kb = await open({ backend: 'sim', kernel });
});
afterEach(() => kb.close());

const row = (id: string) => kernel.loadedKexts().find((k) => k.bundleId === id);

describe('kext versions', () => {
  test('the grammar and the order of stages', () => {
    for (const v of ['1', '1.2', '1.2.3', '9999.99.99', '1.0d1', '1.0a2', '1.0b3', '1.0fc4', '8.0.0d0']) expect(parseKextVersion(v)).not.toBeNull();
    for (const v of ['', '1.', '1.2.3.4', '12345', '1.100', '1.0x1', '1.0d256', 'v1', ' 1', 1 as unknown as string]) expect(parseKextVersion(v)).toBeNull();
    const order = ['1.0d1', '1.0a1', '1.0b1', '1.0fc1', '1.0', '1.0.1', '1.1', '2.0'].map((v) => parseKextVersion(v)!);
    expect([...order].sort((x, y) => x - y)).toEqual(order);
    expect(parseKextVersion('1.0')).toBe(parseKextVersion('1.0.0'));
  });
  test('isCompatible: compatibleVersion ≤ wanted ≤ version; no OSBundleCompatibleVersion links nothing', () => {
    const v = parseKextVersion;
    expect(isCompatible(v('2.0')!, v('1.0'), v('1.5')!)).toBe(true);
    expect(isCompatible(v('2.0')!, v('1.0'), v('2.1')!)).toBe(false);
    expect(isCompatible(v('2.0')!, v('1.0'), v('0.9')!)).toBe(false);
    expect(isCompatible(v('2.0')!, null, v('2.0')!)).toBe(false);
  });
});

describe('loadBundle on the sim', () => {
  test('a bundle with two dependencies and personalities: dependencies, classes, the IOResources instance', async () => {
    const r = await kb.loadBundle(b.driver);
    expect(r).toMatchObject({ ok: true, bundleId: 'com.example.driver', version: '1.2.0', alreadyLoaded: false, started: true });
    if (!r.ok) return;
    const k = row('com.example.driver')!;
    expect(k.loadTag).toBe(r.loadTag);
    const iokit = row('com.apple.kpi.iokit')!.loadTag;
    const libkern = row('com.apple.kpi.libkern')!.loadTag;
    expect(k.dependencies).toEqual([iokit, libkern].sort((x, y) => y - x));
    // IOResources matches at once; an IOPCIDevice personality has no provider on the sim.
    expect(k.classes).toEqual(
      expect.arrayContaining([
        { name: 'com_example_Driver', superclass: 'IOService', instances: 1 },
        { name: 'com_example_PCIDriver', superclass: 'IOService', instances: 0 },
      ]),
    );
    // Loading it again: the kernel answers success with the same tag.
    expect(await kb.loadBundle(b.driver)).toMatchObject({ ok: true, loadTag: r.loadTag, alreadyLoaded: true });
  });

  test('a binary Info.plist loads the same kext', async () => {
    const r = await kb.loadBundle(b.driverBinary);
    expect(r).toMatchObject({ ok: true, bundleId: 'com.example.driver' });
    expect(row('com.example.driver')!.classes.find((c) => c.name === 'com_example_Driver')!.instances).toBe(1);
  });

  test('a missing dependency: kOSKextReturnDependencies, nothing loaded', async () => {
    const before = kernel.loadedKexts().length;
    const r = await kb.loadBundle(b.missingDependency);
    expect(r).toMatchObject({ ok: false, name: 'kOSKextReturnDependencies', code: 0xdc00800e, bundleId: 'com.example.needsfamily' });
    if (!r.ok) expect(r.nextStep).toMatch(/load com\.example\.family .*first/);
    expect(kernel.loadedKexts().length).toBe(before);
  });

  test('a dependency loaded at a version too old for the request: kOSKextReturnDependencies', async () => {
    const r = await kb.loadBundle(b.tooOldDependency);
    expect(r).toMatchObject({ ok: false, name: 'kOSKextReturnDependencies' });
    if (!r.ok) expect(r.message).toMatch(/needs com\.apple\.kpi\.libkern 99\.0; the loaded com\.apple\.kpi\.libkern is 24\.5\.0/);
    expect(row('com.example.newlibkern')).toBeUndefined();
  });

  test('a library loaded from a bundle: its OSBundleCompatibleVersion is honoured', async () => {
    expect(await kb.loadBundle(b.family)).toMatchObject({ ok: true });
    expect(await kb.loadBundle(b.missingDependency)).toMatchObject({ ok: true }); // asks 1.0: 1.0 ≤ 1.0 ≤ 2.0
  });

  test('a library newer than the request but not compatible back to it: kOSKextReturnDependencies', async () => {
    expect(await kb.loadBundle(b.family)).toMatchObject({ ok: true }); // 2.0, compatible back to 1.0
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kextbridge-old-'));
    const p = path.join(dir, 'Old.kext');
    fs.mkdirSync(path.join(p, 'Contents'), { recursive: true });
    fs.writeFileSync(path.join(p, 'Contents', 'Info.plist'), plist.build({ CFBundleIdentifier: 'com.example.old', CFBundleVersion: '1.0', OSBundleLibraries: { 'com.example.family': '0.9' } }));
    const r = await kb.loadBundle(p);
    expect(r).toMatchObject({ ok: false, name: 'kOSKextReturnDependencies' });
    if (!r.ok) expect(r.message).toMatch(/needs com\.example\.family 0\.9; the loaded com\.example\.family is 2\.0 \(compatible back to 1\.0\)/);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('LeakPerLoad into the kext itself: its unload fails with the instances blocker', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kextbridge-selfleak-'));
    const p = path.join(dir, 'SelfLeak.kext');
    fs.mkdirSync(path.join(p, 'Contents'), { recursive: true });
    fs.writeFileSync(
      path.join(p, 'Contents', 'Info.plist'),
      plist.build({
        CFBundleIdentifier: 'com.example.selfleak',
        CFBundleVersion: '1.0',
        OSBundleLibraries: { 'com.apple.kpi.iokit': '7.0' },
        IOKitPersonalities: { S: { IOClass: 'com_example_Self', IOProviderClass: 'IOResources' } },
        KextBridgeSimControls: { LeakPerLoad: [{ Class: 'com_example_Self' }] },
      }),
    );
    expect(await kb.loadBundle(p)).toMatchObject({ ok: true });
    expect(row('com.example.selfleak')!.classes[0].instances).toBe(2); // matched + leaked
    const u = await kb.unloadKext('com.example.selfleak', { timeout: 3000 });
    expect(u).toMatchObject({ ok: false, name: 'kOSKextReturnInUse', blockers: [{ kind: 'instances', classes: [{ name: 'com_example_Self', count: 1 }] }] });
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('the same id at another version: kOSKextReturnLoadedVersionDiffers', async () => {
    const first = await kb.loadBundle(b.driver);
    const r = await kb.loadBundle(b.driverV2);
    expect(r).toMatchObject({ ok: false, name: 'kOSKextReturnLoadedVersionDiffers', code: 0xdc008014, loadTag: first.ok ? first.loadTag : -1 });
    if (!r.ok) expect(r.nextStep).toMatch(/unload the loaded version first/);
  });

  test.each([
    ['notABundle', 'kOSKextReturnNotAKext', /is a file, not a folder/],
    ['unparsable', 'kOSKextReturnBadData', /does not parse as an XML property list/],
    ['noIdentifier', 'kOSKextReturnValidation', /CFBundleIdentifier is missing/],
  ] as const)('bad input: %s → %s, nothing loaded', async (which, name, message) => {
    const before = kernel.loadedKexts().length;
    const r = await kb.loadBundle(b[which]);
    expect(r).toMatchObject({ ok: false, name });
    if (!r.ok) {
      expect(r.message).toMatch(message);
      expect(r.nextStep.length).toBeGreaterThan(10);
    }
    expect(kernel.loadedKexts().length).toBe(before);
  });

  test('a path that does not exist, and bad arguments', async () => {
    expect(await kb.loadBundle(b.dir + '/nope.kext')).toMatchObject({ ok: false, name: 'kOSKextReturnNotAKext' });
    await expect(kb.loadBundle('' as string)).rejects.toThrow(TypeError);
    await expect(kb.loadBundle(3 as unknown as string)).rejects.toThrow(TypeError);
    await expect(kb.loadBundle(b.driver, { timeout: -1 })).rejects.toThrow(RangeError);
  });
});

describe('unloadKext on the sim', () => {
  test('terminates its services, unloads, and is gone from the table', async () => {
    const r = await kb.loadBundle(b.driver);
    if (!r.ok) throw new Error(r.message);
    const u = await kb.unloadKext('com.example.driver');
    expect(u).toEqual({ ok: true, bundleId: 'com.example.driver', loadTag: r.loadTag, attempts: 1 });
    expect(row('com.example.driver')).toBeUndefined();
    // The libraries' references are back to the default world's.
    expect(row('com.apple.kpi.iokit')!.retainCount).toBe(createSimKernel().loadedKexts().find((k) => k.bundleId === 'com.apple.kpi.iokit')!.retainCount);
  });

  test('live instances it cannot free: retries with back-off, then reports the instances blocker', async () => {
    const r = await kb.loadBundle(b.driver);
    if (!r.ok) throw new Error(r.message);
    kernel.setInstances(r.loadTag, 'com_example_PCIDriver', 2); // not from a personality match: termination does not free them
    const t0 = kernel.now;
    const u = await kb.unloadKext(r.loadTag, { timeout: 5_000 });
    expect(u).toMatchObject({ ok: false, name: 'kOSKextReturnInUse', code: 0xdc008018, bundleId: 'com.example.driver' });
    if (u.ok) return;
    expect(u.attempts).toBeGreaterThan(3);
    expect(kernel.now - t0).toBeGreaterThanOrEqual(5_000); // virtual time
    expect(u.blockers).toEqual([{ kind: 'instances', classes: [{ name: 'com_example_PCIDriver', count: 2 }] }]);
    expect(u.nextStep).toMatch(/com_example_PCIDriver/);
    expect(row('com.example.driver')).toBeDefined();
  });

  test('busy, then free: the retry succeeds', async () => {
    const r = await kb.loadBundle(b.driver);
    if (!r.ok) throw new Error(r.message);
    kernel.setInstances(r.loadTag, 'com_example_PCIDriver', 1);
    setImmediate(() => kernel.setInstances(r.loadTag, 'com_example_PCIDriver', 0)); // another actor, while unload waits
    const u = await kb.unloadKext(r.loadTag, { timeout: 1_000_000 });
    expect(u).toMatchObject({ ok: true });
    if (u.ok) expect(u.attempts).toBeGreaterThan(1);
  });

  test('a dependent is not "busy": refused at once, naming it', async () => {
    await kb.loadBundle(b.family);
    await kb.loadBundle(b.missingDependency);
    const u = await kb.unloadKext('com.example.family');
    expect(u).toMatchObject({ ok: false, name: 'kOSKextReturnInUse', attempts: 1, blockers: [{ kind: 'dependents', kexts: [{ bundleId: 'com.example.needsfamily' }] }] });
    if (!u.ok) expect(u.nextStep).toMatch(/unload its dependents first \(com\.example\.needsfamily\)/);
  });

  test('retained by this connection: refused, with the holder', async () => {
    const r = await kb.loadBundle(b.driver);
    if (!r.ok) throw new Error(r.message);
    await kb.retain(r.loadTag);
    const u = await kb.unloadKext(r.loadTag);
    expect(u).toMatchObject({ ok: false, name: 'kOSKextReturnInUse', blockers: [{ kind: 'retained', count: 1, heldByThisConnection: 1 }] });
  });

  test('an abort while it is busy: Aborted, still loaded', async () => {
    const r = await kb.loadBundle(b.driver);
    if (!r.ok) throw new Error(r.message);
    kernel.setInstances(r.loadTag, 'com_example_PCIDriver', 1);
    const ac = new AbortController();
    setImmediate(() => ac.abort());
    const u = await kb.unloadKext(r.loadTag, { timeout: 1_000_000_000, signal: ac.signal });
    expect(u).toMatchObject({ ok: false, name: 'Aborted', code: null });
    expect(row('com.example.driver')).toBeDefined();
  });

  test('not loaded: kOSKextReturnNotFound', async () => {
    expect(await kb.unloadKext('com.example.nothing')).toMatchObject({ ok: false, name: 'kOSKextReturnNotFound', bundleId: 'com.example.nothing' });
    await expect(kb.unloadKext(-1)).rejects.toThrow(RangeError);
  });

  test('the leak control: every load leaves one more instance in the library', async () => {
    await kb.loadBundle(b.family);
    const buffers = () => row('com.example.family')!.classes.find((c) => c.name === 'com_example_FamilyBuffer')!.instances;
    for (let i = 1; i <= 3; i++) {
      expect(await kb.loadBundle(b.leaky)).toMatchObject({ ok: true });
      expect(await kb.unloadKext('com.example.leaky')).toMatchObject({ ok: true });
      expect(buffers()).toBe(i);
    }
  });
});
