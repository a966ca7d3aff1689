// The Mac paths of loadBundle / unloadKext (kmutil load -p / kmutil unload -b), on any machine:
// a fake `kmutil` first on PATH answers from a script of responses — texts copied from the
// published outputs in test/fixtures/kmutil/ (exit statuses and the busy-unload text are
// inferred, docs/mac.md says which) — and records its argv. The loaded-kext table is a JSON
// file the fake updates, as the kernel would.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { interpretKmutil, MacDeps, macLoadBundle, macUnloadKext } from '../lib/lifecycle/kmutil';
import { waitPolling } from '../lib/workflow/wait';
import type { LoadedKext } from '../lib/results';
import { Bundles, makeBundles } from './helpers/bundles';

const FIXTURES = path.join(__dirname, 'fixtures', 'kmutil');
const fixture = (name: string) => fs.readFileSync(path.join(FIXTURES, name), 'utf8').split('\n').slice(1).join('\n');

interface Response {
  status: number;
  stdout?: string;
  stderr?: string;
  sleepMs?: number;
  add?: { bundleId: string; loadTag: number; started?: boolean };
  remove?: string;
}

let b: Bundles;
let dir: string;
beforeAll(() => (b = makeBundles()));
afterAll(() => b.cleanup());
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kextbridge-kmutil-'));
  fs.writeFileSync(
    path.join(dir, 'kmutil'),
    `#!${process.execPath}
const fs = require('fs'), dir = ${JSON.stringify(dir)};
fs.appendFileSync(dir + '/argv.log', JSON.stringify(process.argv.slice(2)) + '\\n');
const script = JSON.parse(fs.readFileSync(dir + '/script.json', 'utf8'));
const n = fs.existsSync(dir + '/n') ? Number(fs.readFileSync(dir + '/n', 'utf8')) : 0;
fs.writeFileSync(dir + '/n', String(n + 1));
const r = script[Math.min(n, script.length - 1)];
const table = JSON.parse(fs.readFileSync(dir + '/table.json', 'utf8'));
if (r.add) table.push({ bundleId: r.add.bundleId, loadTag: r.add.loadTag, retainCount: 0, started: r.add.started !== false, version: '1.2.0', uuid: '', dependencies: [], classes: [] });
fs.writeFileSync(dir + '/table.json', JSON.stringify(r.remove ? table.filter((k) => k.bundleId !== r.remove) : table));
setTimeout(() => { process.stdout.write(r.stdout || ''); process.stderr.write(r.stderr || ''); process.exitCode = r.status; }, r.sleepMs || 0);
`,
    { mode: 0o755 },
  );
  fs.writeFileSync(path.join(dir, 'table.json'), '[]');
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function script(rs: Response[]): void {
  fs.writeFileSync(path.join(dir, 'script.json'), JSON.stringify(rs));
}
const argv = (): string[][] =>
  fs
    .readFileSync(path.join(dir, 'argv.log'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));

function deps(extra: Partial<MacDeps> = {}): MacDeps {
  const table = async () => JSON.parse(fs.readFileSync(path.join(dir, 'table.json'), 'utf8')) as LoadedKext[];
  const src = (id: string) => ({ read: table, explain: async () => ({ bundleId: id, loadTag: null, loaded: false, started: false, unloadable: false, autounload: { enabled: null }, blockers: [] }) });
  return {
    env: { ...process.env, PATH: `${dir}:${process.env.PATH}` },
    euid: () => 0,
    loadedKexts: table,
    waitForLoad: (id, o) => waitPolling(src(id), (k) => k.some((x) => x.bundleId === id), o),
    waitForUnload: (id, o) => waitPolling(src(id), (k) => !k.some((x) => x.bundleId === id), o),
    retryFirstMs: 5,
    retryMaxMs: 20,
    ...extra,
  };
}

describe('loadBundle on a Mac (fake kmutil)', () => {
  test('argv is kmutil load -p <path>, no shell; success is confirmed in the table', async () => {
    script([{ status: 0, add: { bundleId: 'com.example.driver', loadTag: 142 } }]);
    const r = await macLoadBundle(deps(), b.driver, { timeout: 10_000 });
    expect(r).toEqual({ ok: true, bundleId: 'com.example.driver', version: '1.2.0', loadTag: 142, alreadyLoaded: false, started: true });
    expect(argv()).toEqual([['load', '-p', b.driver]]);
  });

  test('listed but never started: a Timeout failure with the tag, not success', async () => {
    script([{ status: 0, add: { bundleId: 'com.example.driver', loadTag: 142, started: false } }]);
    const r = await macLoadBundle(deps(), b.driver, { timeout: 400 });
    expect(r).toMatchObject({ ok: false, name: 'Timeout', loadTag: 142, exitStatus: 0 });
    if (!r.ok) expect(r.message).toMatch(/did not start/);
  });

  test('a path with spaces and shell characters reaches kmutil as one argument', async () => {
    const odd = path.join(b.dir, 'My $(Driver) ;.kext');
    fs.cpSync(b.driver, odd, { recursive: true });
    script([{ status: 0, add: { bundleId: 'com.example.driver', loadTag: 142 } }]);
    expect(await macLoadBundle(deps(), odd, { timeout: 10_000 })).toMatchObject({ ok: true });
    expect(argv()).toEqual([['load', '-p', odd]]);
  });

  test('not approved (published text, no code): ApprovalRequired, approve and restart', async () => {
    script([{ status: 1, stderr: fixture('kmutil-not-approved.txt') }]);
    const r = await macLoadBundle(deps(), b.driver, { timeout: 10_000 });
    expect(r).toMatchObject({ ok: false, name: 'ApprovalRequired', code: null, exitStatus: 1, bundleId: 'com.example.driver' });
    if (!r.ok) {
      expect(r.nextStep).toMatch(/System Settings → Privacy & Security.*restart/);
      expect(r.stderr).toMatch(/not approved to load/);
    }
  });

  test('not loadable (-603946989): the OSReturn, approve if asked and restart', async () => {
    script([{ status: 1, stderr: fixture('kmutil-not-loadable.txt') }]);
    const r = await macLoadBundle(deps(), b.driver, { timeout: 10_000 });
    expect(r).toMatchObject({ ok: false, name: 'kOSKextReturnNotLoadable', code: 0xdc008013 });
    if (!r.ok) expect(r.nextStep).toMatch(/restart/);
  });

  test('KMErrorDomain Code=71: the number, with kmutil\'s own description', async () => {
    script([{ status: 1, stderr: fixture('kmutil-71-architecture.txt') }]);
    const r = await macLoadBundle(deps(), b.driver, { timeout: 10_000 });
    expect(r).toMatchObject({ ok: false, name: 'ToolFailed', kmErrorDomainCode: 71 });
    if (!r.ok) expect(r.message).toMatch(/Incompatible architecture/);
  });

  test('not root: said so, kmutil never runs', async () => {
    script([{ status: 0 }]);
    const r = await macLoadBundle(deps({ euid: () => 501 }), b.driver, { timeout: 10_000 });
    expect(r).toMatchObject({ ok: false, name: 'NotPrivileged', nextStep: 'run it as root (sudo)' });
    expect(fs.existsSync(path.join(dir, 'argv.log'))).toBe(false);
  });

  test('a bad bundle is refused before kmutil runs', async () => {
    script([{ status: 0 }]);
    expect(await macLoadBundle(deps(), b.noIdentifier, { timeout: 10_000 })).toMatchObject({ ok: false, name: 'kOSKextReturnValidation' });
    expect(fs.existsSync(path.join(dir, 'argv.log'))).toBe(false);
  });

  test('kmutil that hangs: killed at the timeout', async () => {
    script([{ status: 0, sleepMs: 30_000 }]);
    const t0 = Date.now();
    const r = await macLoadBundle(deps(), b.driver, { timeout: 300 });
    expect(r).toMatchObject({ ok: false, name: 'Timeout' });
    expect(Date.now() - t0).toBeLessThan(5_000);
  });

  test('no kmutil at all', async () => {
    const r = await macLoadBundle(deps({ kmutil: path.join(dir, 'absent') }), b.driver, { timeout: 10_000 });
    expect(r).toMatchObject({ ok: false, name: 'ToolFailed' });
    if (!r.ok) expect(r.message).toMatch(/ENOENT/);
  });
});

describe('unloadKext on a Mac (fake kmutil)', () => {
  const loaded = () => fs.writeFileSync(path.join(dir, 'table.json'), JSON.stringify([{ bundleId: 'com.example.driver', loadTag: 142, retainCount: 0, started: true, version: '1.2.0', uuid: '', dependencies: [], classes: [] }]));

  test('busy twice (classes have instances), then gone: retried, argv kmutil unload -b <id>', async () => {
    loaded();
    const busy = { status: 1, stderr: fixture('kextunload-classes-have-instances.txt') };
    script([busy, busy, { status: 0, remove: 'com.example.driver' }]);
    const r = await macUnloadKext(deps(), 142, { timeout: 10_000 });
    expect(r).toEqual({ ok: true, bundleId: 'com.example.driver', loadTag: 142, attempts: 3 });
    expect(argv()).toEqual(Array(3).fill(['unload', '-b', 'com.example.driver']));
  });

  test('busy until the timeout: kOSKextReturnInUse with the attempts, the table unchanged', async () => {
    loaded();
    script([{ status: 1, stderr: fixture('kextunload-classes-have-instances.txt') }]);
    const r = await macUnloadKext(deps(), 'com.example.driver', { timeout: 1500 });
    expect(r).toMatchObject({ ok: false, name: 'kOSKextReturnInUse', code: 0xdc008018, exitStatus: 1 });
    if (!r.ok) {
      expect(r.attempts).toBeGreaterThanOrEqual(2);
      expect(r.nextStep).toMatch(/close the connections/);
    }
  });

  test('a refusal that is not busy is not retried', async () => {
    loaded();
    script([{ status: 1, stderr: fixture('kextunload-stop-failed.txt') }]);
    const r = await macUnloadKext(deps(), 142, { timeout: 10_000 });
    expect(r).toMatchObject({ ok: false, name: 'kOSKextReturnStartStopError', attempts: 1 });
  });

  test('not loaded: kOSKextReturnNotFound without running kmutil; not root: said so', async () => {
    script([{ status: 0 }]);
    expect(await macUnloadKext(deps(), 'com.example.driver', { timeout: 1000 })).toMatchObject({ ok: false, name: 'kOSKextReturnNotFound' });
    loaded();
    expect(await macUnloadKext(deps({ euid: () => 501 }), 142, { timeout: 1000 })).toMatchObject({ ok: false, name: 'NotPrivileged' });
    expect(fs.existsSync(path.join(dir, 'argv.log'))).toBe(false);
  });

  test('exit 0 but still in the table: not success', async () => {
    loaded();
    script([{ status: 0 }]);
    const r = await macUnloadKext(deps(), 142, { timeout: 300 });
    expect(r).toMatchObject({ ok: false, name: 'Timeout' });
  });
});

test('interpretKmutil: the reboot text (inferred wording) and an unknown text', () => {
  const run = { status: 1, signal: null, stdout: '', timedOut: false, aborted: false };
  expect(interpretKmutil({ ...run, stderr: 'Extension staged; a reboot is required to load it' }, { op: 'load', bundleId: 'x', loadTag: null })).toMatchObject({ name: 'RebootRequired' });
  expect(interpretKmutil({ ...run, stderr: 'something else' }, { op: 'load', bundleId: 'x', loadTag: null })).toMatchObject({ name: 'ToolFailed', code: null, stderr: 'something else' });
});
