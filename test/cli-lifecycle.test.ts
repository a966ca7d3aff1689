// kextbridge load / unload / cycle, run as users run them: separate node processes on the
// sim (each has its own kernel, so cycle does everything in one process), on the fixture
// bundles of test/helpers/bundles.ts. Golden files for the verbs' JSON in test/fixtures/cli.
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { Bundles, makeBundles } from './helpers/bundles';
import { LibTree, makeLibTree } from './helpers/lib-tree';

const GOLDEN = path.join(__dirname, 'fixtures', 'cli');
let tree: string;
let CLI: string;
let b: Bundles;

// As test/cli.test.ts: lib/ transpiled into a private tree that links the addon build.
let libTree: LibTree;
beforeAll(() => {
  b = makeBundles();
  libTree = makeLibTree('kextbridge-cli-lc-');
  tree = libTree.dir;
  CLI = path.join(tree, 'lib', 'cli', 'main.js');
}, 60_000);
afterAll(() => {
  libTree.cleanup();
  b.cleanup();
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}
function cli(args: string[], timeout = 30_000): Promise<Run> {
  return new Promise((resolve) => {
    const env = { ...process.env };
    delete env.KEXTBRIDGE_SIM_UNPRIVILEGED;
    const child = execFile(process.execPath, [CLI, '--backend', 'sim', ...args], { env, timeout }, (_err, stdout, stderr) => resolve({ code: child.exitCode, stdout, stderr }));
    child.stdin!.end();
  });
}
function doc(r: Run): any {
  const d = JSON.parse(r.stdout);
  expect(d.schemaVersion).toBe(1);
  return d;
}
/** Paths and load tags vary between machines and runs: the golden files mask the temporary folder. */
function golden(name: string, actual: string): void {
  const masked = actual.split(b.dir).join('<bundles>');
  const file = path.join(GOLDEN, name);
  if (process.env.UPDATE_GOLDEN === '1') fs.writeFileSync(file, masked);
  expect(masked).toBe(fs.readFileSync(file, 'utf8'));
}

describe('kextbridge load / unload', () => {
  test('load: the tag and started, text and JSON', async () => {
    const t = await cli(['load', b.driver]);
    expect(t).toMatchObject({ code: 0, stdout: 'com.example.driver (1.2.0) loaded: tag 9, started\n' });
    const j = await cli(['load', b.driverBinary, '--json']);
    expect(j.code).toBe(0);
    golden('load.json', j.stdout);
  });

  test('load failures: exit codes and nextStep on stderr', async () => {
    const dep = await cli(['load', b.missingDependency, '--json']);
    expect(dep.code).toBe(3);
    expect(doc(dep)).toMatchObject({ ok: false, result: { name: 'kOSKextReturnDependencies' }, error: { name: 'kOSKextReturnDependencies', code: 0xdc00800e, exitCode: 3 } });
    expect(dep.stderr).toMatch(/next: load com\.example\.family/);
    golden('load-missing-dependency.json', dep.stdout);
    for (const [p, name] of [
      [b.notABundle, 'kOSKextReturnNotAKext'],
      [b.unparsable, 'kOSKextReturnBadData'],
      [b.noIdentifier, 'kOSKextReturnValidation'],
    ]) {
      const r = await cli(['load', p, '--json']);
      expect(r.code).toBe(64);
      expect(doc(r).error.name).toBe(name);
      expect(r.stderr).not.toMatch(/xmldom/);
    }
    expect((await cli(['load', b.driver, '--timeout', 'soon'])).code).toBe(64);
  });

  test('load <bundle-id>: already loaded (exit 0, same tag), text and JSON', async () => {
    const t = await cli(['load', 'org.kextbridge.sample']);
    expect(t).toMatchObject({ code: 0, stdout: 'org.kextbridge.sample was already loaded: tag 8\n', stderr: '' });
    const j = await cli(['load', 'org.kextbridge.sample', '--json']);
    expect(j.code).toBe(0);
    expect(doc(j).result).toEqual({ bundleId: 'org.kextbridge.sample', alreadyLoaded: true, loaded: true, deferred: false, loadTag: 8, name: 'kOSReturnSuccess', code: 0 });
    golden('load-id.json', j.stdout);
  });

  test('load <bundle-id>: deferred and never loaded is exit 75 at --timeout; --no-wait is exit 0 (loaded: false); not privileged 2; a bad id 64', async () => {
    const late = await cli(['load', 'com.example.nowhere', '--timeout', '5s', '--json']);
    expect(late.code).toBe(75);
    expect(doc(late)).toMatchObject({ ok: false, result: { ok: false, reason: 'timeout', waitedMs: 5000 }, error: { name: 'Timeout', exitCode: 75 } });
    expect(late.stderr).toMatch(/deferred the load to user space \(kOSKextReturnDeferred\) and it was not loaded within 5000 ms/);
    golden('load-id-deferred-timeout.json', late.stdout);
    const noWait = await cli(['load', 'com.example.nowhere', '--no-wait', '--json']);
    expect(noWait.code).toBe(0);
    expect(doc(noWait).result).toMatchObject({ loaded: false, deferred: true, loadTag: null, name: 'kOSKextReturnDeferred' });
    golden('load-id-no-wait.json', noWait.stdout);
    const user = await new Promise<Run>((resolve) => {
      const child = execFile(process.execPath, [CLI, '--backend', 'sim', 'load', 'com.example.x', '--json'], { env: { ...process.env, KEXTBRIDGE_SIM_UNPRIVILEGED: '1' } }, (_e, stdout, stderr) => resolve({ code: child.exitCode, stdout, stderr }));
    });
    expect(user.code).toBe(2);
    expect(doc(user).error).toMatchObject({ name: 'kIOReturnNotPrivileged', exitCode: 2 });
    golden('load-id-not-privileged.json', user.stdout);
    for (const bad of ['a'.repeat(64), '']) { // (argv cannot carry a NUL or a lone surrogate)
      const r = await cli(['load', bad, '--json']);
      expect(r.code).toBe(64);
      expect(doc(r).error.name).toBe('UsageError');
    }
  });

  test('unload: not loaded is exit 1; the sample kext is held by the verb\'s own connection (exit 3, its pid named)', async () => {
    const r = await cli(['unload', 'com.example.driver', '--json']);
    expect(r.code).toBe(1);
    expect(doc(r).result).toMatchObject({ ok: false, name: 'kOSKextReturnNotFound' });
    const s = await cli(['unload', 'org.kextbridge.sample', '--timeout', '2s', '--json']);
    expect(s.code).toBe(3);
    expect(doc(s).result).toMatchObject({ name: 'kOSKextReturnInUse', blockers: [{ kind: 'userClients' }] });
    expect((await cli(['unload', '-1'])).code).toBe(64);
  });
});

describe('kextbridge cycle', () => {
  test('-n 20 on a clean fixture: zero drift, nothing left loaded', async () => {
    const r = await cli(['cycle', b.driver, '-n', '20', '--json']);
    expect(r.code).toBe(0);
    const d = doc(r);
    expect(d).toMatchObject({ ok: true, bundleId: 'com.example.driver', count: 20, completed: 20, drift: [], left: [] });
    expect(d.cycles).toHaveLength(20);
    expect(d.cycles.map((c: { loadTag: number }) => c.loadTag)).toEqual(Array.from({ length: 20 }, (_, i) => 9 + i)); // tags are never reused
    // The kext's libraries are counted before and after each cycle, and the kext while loaded.
    expect(Object.keys(d.cycles[0].before).sort()).toEqual(['com.apple.kpi.iokit', 'com.apple.kpi.libkern']);
    expect(d.cycles[0].loaded['com.example.driver'].instances).toEqual({ com_example_Driver: 1, com_example_PCIDriver: 0 });
    expect(d.cycles[19].after).toEqual(d.cycles[0].before);
    const text = await cli(['cycle', b.driver, '-n', '3']);
    expect(text).toMatchObject({ code: 0, stdout: 'cycle 1/3 tag 9: no drift\ncycle 2/3 tag 10: no drift\ncycle 3/3 tag 11: no drift\n3 cycles of com.example.driver: no drift\n' });
  });

  test('a kext that leaks one library instance per load: caught in cycle 1 with the class, exit 3', async () => {
    const r = await cli(['cycle', b.leaky, '-n', '20', '--library', b.family, '--json']);
    expect(r.code).toBe(3);
    const d = doc(r);
    expect(d.drift).toEqual([{ cycle: 1, bundleId: 'com.example.family', what: 'instances', className: 'com_example_FamilyBuffer', before: 0, after: 1 }]);
    expect(d).toMatchObject({ ok: false, completed: 1, error: { name: 'Drift', exitCode: 3 } });
    expect(d.error.message).toMatch(/cycle 1: com\.example\.family: live instances of com_example_FamilyBuffer 0 → 1/);
    // The leaked instance is live in the library, so the library cycle loaded cannot unload
    // afterwards (as on a Mac: classes have instances); cycle says so.
    expect(d.left).toEqual(['com.example.family']);
    expect(r.stderr).toMatch(/could not unload com\.example\.family afterwards: .*live instances of com_example_FamilyBuffer|could not unload com\.example\.family afterwards/);
    golden('cycle-leak.json', r.stdout);
    const t = await cli(['cycle', b.leaky, '-n', '5', '--library', b.family]);
    expect(t.stdout).toBe('cycle 1/5 tag 10: DRIFT com.example.family: live instances of com_example_FamilyBuffer 0 → 1\n');
  });

  test('a command runs each cycle with the load tag; its failure stops the cycles with its status', async () => {
    const ok = await cli(['cycle', b.driver, '-n', '2', '--json', '--', process.execPath, '-e', 'process.exit(Number(process.env.KEXTBRIDGE_LOAD_TAG) > 0 ? 0 : 9)']);
    expect(ok.code).toBe(0);
    expect(doc(ok).cycles.map((c: { commandStatus: number }) => c.commandStatus)).toEqual([0, 0]);
    const bad = await cli(['cycle', b.driver, '-n', '5', '--json', '--', process.execPath, '-e', 'process.exit(process.env.KEXTBRIDGE_CYCLE === "2" ? 4 : 0)']);
    expect(bad.code).toBe(4);
    expect(doc(bad)).toMatchObject({ ok: false, completed: 2, commandStatus: 4, left: [] });
  });

  test('a command that hangs: killed at the timeout, exit 75, nothing left loaded', async () => {
    const t0 = Date.now();
    const r = await cli(['cycle', b.driver, '-n', '3', '--timeout', '500ms', '--json', '--', process.execPath, '-e', 'setInterval(() => {}, 1000)']);
    expect(r.code).toBe(75);
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(doc(r)).toMatchObject({ ok: false, completed: 1, left: [], error: { name: 'Timeout', exitCode: 75 } });
  });

  test('bad input: N = 0 or 10^9, no -n, a non-bundle, a failing dependency', async () => {
    for (const n of ['0', '1000000000', '-3', '2.5']) {
      const r = await cli(['cycle', b.driver, '-n', n, '--json']);
      expect(r.code).toBe(64);
      expect(doc(r).error.name).toBe('UsageError');
    }
    expect((await cli(['cycle', b.driver])).code).toBe(64);
    expect((await cli(['cycle', b.notABundle, '-n', '2'])).code).toBe(64);
    const dep = await cli(['cycle', b.missingDependency, '-n', '2', '--json']);
    expect(dep.code).toBe(3);
    expect(doc(dep)).toMatchObject({ completed: 0, left: [], error: { name: 'kOSKextReturnDependencies' } });
  });
});
