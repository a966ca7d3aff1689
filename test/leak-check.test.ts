// LeakChecker without jest's environment around it: the sim path against a real kernel, and
// the iokit path against a stand-in connection class (the Mac's table read through one of the
// file's open connections, ledgers from held()), since no Mac runs this suite.
import { createSimKernel, open } from '../lib';
import { LeakChecker } from '../lib/jest/leak';
import type { Held, LoadedKext } from '../lib';

const kext = (bundleId: string, loadTag: number, retainCount: number, instances = 0): LoadedKext => ({
  bundleId, loadTag, retainCount, started: true, version: '1', uuid: '', dependencies: [], classes: instances ? [{ name: 'Drv', superclass: 'IOService', instances }] : [],
});

/** A Mac connection as the checker sees it: methods on the class, no sim. */
class FakeMacConnection {
  readonly backend = 'iokit';
  readonly sim = undefined;
  closed = false;
  static table: LoadedKext[] = [];
  ledger: Held[] = [];
  readonly sync = { loadedKexts: () => FakeMacConnection.table.map((k) => ({ ...k })) };
  async loadedKexts() {
    return FakeMacConnection.table.map((k) => ({ ...k }));
  }
  async held() {
    if (this.closed) throw new Error('closed');
    return this.ledger.map((h) => ({ ...h }));
  }
}

test('iokit: a retain held by a connection the test opened, an unexplained count, Apple kexts left out by default', async () => {
  const c = new LeakChecker();
  FakeMacConnection.table = [kext('__kernel__', 0, 0), kext('com.apple.driver.AppleHV', 50, 3), kext('com.example.driver', 142, 0, 1)];
  const outside = new FakeMacConnection();
  c.opened(outside as never); // opened in beforeAll
  await c.before('retains');
  const mine = new FakeMacConnection();
  c.opened(mine as never);
  mine.ledger = [{ loadTag: 142, count: 2 }];
  FakeMacConnection.table = [kext('__kernel__', 0, 5), kext('com.apple.driver.AppleHV', 50, 9), kext('com.example.driver', 142, 2, 2)];
  expect(await c.after()).toBe(
    'kextbridge leak check: "retains" left the kernel changed:\n' +
      '  com.example.driver (tag 142): refs 0 → 2 (held by connection #2 (2 retains), opened in "retains")\n' +
      '  com.example.driver (tag 142): instances of Drv 1 → 2\n' +
      "(the state is compared from the test's start to its end, after its hooks; skipLeakCheck() from kextbridge/jest opts a test out)",
  );
  // The next test starts from here; a count nobody's ledger explains is said to be so.
  await c.before('someone else');
  FakeMacConnection.table = [kext('com.example.driver', 142, 3, 2)];
  expect(await c.after()).toContain('com.example.driver (tag 142): refs 2 → 3 (in no ledger of a connection this test file opened: a KPI retain by a kext, or another process)');
  // Configured ids; opted out; nothing open to read through: nothing reported.
  const only = new LeakChecker({ bundleIds: ['com.apple.driver.AppleHV'] });
  only.opened(outside as never);
  FakeMacConnection.table = [kext('com.apple.driver.AppleHV', 50, 9)];
  await only.before('apple');
  FakeMacConnection.table = [kext('com.apple.driver.AppleHV', 50, 10)];
  expect(await only.after()).toMatch(/com\.apple\.driver\.AppleHV \(tag 50\): refs 9 → 10/);
  await only.before('skipped');
  only.skipLeakCheck();
  FakeMacConnection.table = [kext('com.apple.driver.AppleHV', 50, 11)];
  expect(await only.after()).toBeNull();
  await only.before('all closed');
  outside.closed = true;
  mine.closed = true;
  FakeMacConnection.table = [kext('com.apple.driver.AppleHV', 50, 12)];
  expect(await only.after()).toBeNull();
});

test('sim: a KPI retain, a dependent loaded during the test, a release below the start; a balanced test is null', async () => {
  const kernel = createSimKernel();
  const lib = kernel.loadKext({ bundleId: 'com.example.lib' });
  const c = new LeakChecker();
  const kb = await open({ backend: 'sim', kernel });
  c.opened(kb);
  await c.before('balanced');
  await kb.retain(lib);
  await kb.release(lib);
  expect(await c.after()).toBeNull();
  await c.before('raw');
  kernel.kpi.retainKextWithLoadTag(lib);
  const user = kernel.loadKext({ bundleId: 'com.example.user', dependencies: ['com.example.lib'] });
  const report = await c.after();
  expect(report).toContain('com.example.lib (tag 9): refs 0 → 2 (depended on by com.example.user (tag 10), loaded during the test; 1 more in no ledger of a connection this test file opened: a KPI retain by a kext, or another process)');
  await c.before('undo');
  kernel.unloadKext(user);
  kernel.kpi.releaseKextWithLoadTag(lib);
  expect(await c.after()).toContain('com.example.lib (tag 9): refs 2 → 0 (released below where the test started)');
  await c.before('depends');
  kernel.loadKext({ bundleId: 'com.example.user2', dependencies: ['com.example.lib'] });
  expect(await c.after()).toContain('com.example.lib (tag 9): refs 0 → 1 (depended on by com.example.user2 (tag 11), loaded during the test)');
  await kb.close();
});

test('sim: a machine first seen during a test (its connection opened in beforeEach) starts from before that open', async () => {
  const kernel = createSimKernel();
  const c = new LeakChecker();
  await c.before('hooks'); // nothing known yet
  const kb = await open({ backend: 'sim', kernel }); // beforeEach
  c.opened(kb);
  await kb.retain();
  await kb.close(); // afterEach
  expect(await c.after()).toBeNull();
  await c.before('hooks, leaking');
  const leaky = await open({ backend: 'sim', kernel: createSimKernel() });
  c.opened(leaky);
  expect(await c.after()).toMatch(/instances of org_kextbridge_SampleUserClient 0 → 1 \(not closed: connection #2, opened in "hooks, leaking"\)/);
  await leaky.close();
});

test('sim: a kernel that panicked is not read (and the check does not throw)', async () => {
  const kernel = createSimKernel();
  const tag = kernel.loadKext({ bundleId: 'com.example.doomed' });
  const c = new LeakChecker();
  const kb = await open({ backend: 'sim', kernel });
  c.opened(kb);
  await c.before('panics');
  // The raw KPI, below the baseline at once: the call that panics says so.
  expect(() => kernel.kpi.releaseKextWithLoadTag(tag)).toThrow(/panicked the simulated kernel/);
  expect(kernel.panicked).not.toBeNull();
  await expect(c.after()).resolves.toBeNull();
  await expect(c.before('after the panic')).resolves.toBeUndefined();
  await expect(c.after()).resolves.toBeNull();
  await kb.close().catch(() => undefined);
});
