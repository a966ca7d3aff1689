// The kextbridge CLI, run as users run it: a separate node process per command, on the sim's
// default world (each CLI process has its own simulated kernel). Golden files for that world
// are in test/fixtures/cli; UPDATE_GOLDEN=1 rewrites them.
import { execFile, spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { main } from '../lib/cli/main';
import type { Io } from '../lib/cli/common';
import { LibTree, makeLibTree } from './helpers/lib-tree';

const ROOT = path.join(__dirname, '..');
const GOLDEN = path.join(__dirname, 'fixtures', 'cli');
const KMUTIL_FIXTURES = path.join(__dirname, 'fixtures', 'kmutil');
let tree: string;
let CLI: string;

/** The CLI needs compiled JavaScript: lib/ transpiled into a private tree (helpers/lib-tree). */
let libTree: LibTree;
beforeAll(() => {
  libTree = makeLibTree('kextbridge-cli-');
  tree = libTree.dir;
  CLI = path.join(tree, 'lib', 'cli', 'main.js');
}, 60_000);

afterAll(() => libTree.cleanup());

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const BASE_ENV = (() => {
  const env = { ...process.env };
  delete env.KEXTBRIDGE_SIM_UNPRIVILEGED;
  delete env.NO_COLOR;
  return env;
})();

function cli(args: string[], opts: { env?: Record<string, string>; input?: string } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [CLI, ...args], { env: { ...BASE_ENV, ...opts.env }, timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: child.exitCode, signal: child.signalCode, stdout, stderr });
    });
    child.stdin!.end(opts.input ?? '');
  });
}

/** Exactly one JSON document on stdout, schemaVersion 1. */
function doc(run: Run): any {
  const d = JSON.parse(run.stdout);
  expect(d.schemaVersion).toBe(1);
  return d;
}

function golden(name: string, actual: string): void {
  const file = path.join(GOLDEN, name);
  if (process.env.UPDATE_GOLDEN === '1') fs.writeFileSync(file, actual);
  expect(actual).toBe(fs.readFileSync(file, 'utf8'));
}

const SAMPLE = 'org.kextbridge.sample';
const UNPRIVILEGED = { KEXTBRIDGE_SIM_UNPRIVILEGED: '1' };

describe('list', () => {
  test('success: the kextstat table of the default world', async () => {
    const r = await cli(['--backend', 'sim', 'list']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    golden('list.txt', r.stdout);
    expect(r.stdout.split('\n')[0]).toBe('Index Refs Address            Size       Wired      Name (Version) UUID <Linked Against>');
  });

  test('--json: the table as one document', async () => {
    const r = await cli(['list', '--json']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    golden('list.json', r.stdout);
    const d = doc(r);
    expect(d).toMatchObject({ ok: true, backend: 'sim' });
    expect(d.kexts.find((k: { bundleId: string }) => k.bundleId === SAMPLE)).toMatchObject({ loadTag: 8, retainCount: 0, started: true, dependencies: [5, 4, 3, 1] });
  });

  test('-k leaves out kernel components, -l the header, -b filters (and names a kernel component back in)', async () => {
    const r = await cli(['list', '-k', '-l']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('    8    0 ????               ????       ????       org.kextbridge.sample (0.1.0) 1D0B01DA-E90B-D066-5FFD-D1BC6250953D <5 4 3 1>\n');
    const b = await cli(['list', '-k', '-l', '-b', '__kernel__', '--bundle-id', 'com.apple.kpi.mach']);
    expect(b.stdout.split('\n').filter(Boolean).map((l) => l.trim().split(/\s+/)[5])).toEqual(['__kernel__', 'com.apple.kpi.mach']);
  });

  test('not found: a -b that is not loaded is exit 1, with the rest still listed', async () => {
    const r = await cli(['list', '-b', SAMPLE, '-b', 'com.example.absent']);
    expect(r).toMatchObject({ code: 1, stderr: 'kextbridge list: not loaded: com.example.absent\n' });
    expect(r.stdout).toContain(SAMPLE);
    const j = await cli(['list', '-b', 'com.example.absent', '--json']);
    expect(j.code).toBe(1);
    expect(doc(j)).toEqual({
      schemaVersion: 1, ok: false, backend: 'sim', kexts: [], notFound: ['com.example.absent'],
      error: { name: 'NotFound', code: null, message: 'not loaded: com.example.absent', exitCode: 1 },
    });
  });

  test('not privileged: reading the table needs no privilege (as KextManagerCopyLoadedKextInfo)', async () => {
    const r = await cli(['list', '--json'], { env: UNPRIVILEGED });
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(doc(r).kexts).toHaveLength(9);
  });

  test('usage errors are exit 64, with the document under --json', async () => {
    for (const args of [['list', '--refs', 'x', '--json'], ['list', 'extra', '--json'], ['--backend', 'bogus', 'list', '--json']]) {
      const r = await cli(args);
      expect({ args, code: r.code }).toEqual({ args, code: 64 });
      expect(doc(r)).toMatchObject({ ok: false, error: { name: 'UsageError', code: null, exitCode: 64 } });
      expect(r.stderr).toMatch(/^error: /);
    }
  });

  test('unavailable: the iokit backend off macOS is exit 69', async () => {
    if (process.platform === 'darwin') return;
    const r = await cli(['--backend', 'iokit', 'list', '--json']);
    expect(r.code).toBe(69);
    expect(doc(r)).toMatchObject({ ok: false, error: { name: 'Unavailable', code: 0xe00002c7, exitCode: 69, message: expect.stringContaining('only on macOS') } });
    expect(r.stderr).toMatch(/^kextbridge: open: kIOReturnUnsupported/);
  });
});

describe('decode', () => {
  test('success: codes in every form, one line each', async () => {
    const r = await cli(['decode', '0xDC008017', '-603946985', '3691020311', 'kOSKextReturnInUse', '0', '0xE00002C1', '-307', '0xDC008020']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    golden('decode.txt', r.stdout);
  });

  test('--json: each input with what was found in it', async () => {
    const r = await cli(['decode', '--json', '0xDC008017', 'kextunload said (-603946984) and Error Domain=KMErrorDomain Code=71 "Could not find"']);
    expect(r.code).toBe(0);
    golden('decode.json', r.stdout);
    const d = doc(r);
    expect(d.inputs.map((i: { found: { kind: string }[] }) => i.found.map((f) => f.kind))).toEqual([['hex'], ['decimal', 'KMErrorDomain']]);
  });

  test('- reads a whole kmutil text from stdin', async () => {
    const text = fs.readFileSync(path.join(KMUTIL_FIXTURES, 'kextunload-stop-failed.txt'), 'utf8');
    const r = await cli(['decode', '-', '--json'], { input: text });
    expect(r.code).toBe(0);
    expect(doc(r).inputs[0].found.map((f: { code: { name: string } }) => f.code.name)).toEqual(Array(3).fill('kOSKextReturnStartStopError'));
    const plain = await cli(['decode', '-'], { input: text });
    expect(plain.stdout.split('\n').filter(Boolean)).toHaveLength(3);
  });

  test('not found: nothing that decodes is exit 1', async () => {
    const r = await cli(['decode', 'not a code at all']);
    expect(r).toMatchObject({ code: 1, stdout: '', stderr: 'kextbridge decode: no return code found in the input\n' });
    const j = await cli(['decode', '--json', '-'], { input: 'Extension not approved to load.' });
    expect(doc(j)).toEqual({ schemaVersion: 1, ok: false, inputs: [{ input: '-', found: [] }], error: { name: 'NotFound', code: null, message: 'no return code found in the input', exitCode: 1 } });
  });

  test('not privileged: decode needs no kernel, so the unprivileged sim changes nothing', async () => {
    expect(await cli(['decode', '0xDC008006'], { env: UNPRIVILEGED })).toMatchObject({ code: 0, stderr: '' });
  });

  test('usage: a number that is not 32-bit, or nothing to decode, is exit 64', async () => {
    const big = await cli(['decode', '4294967296', '--json']);
    expect(big.code).toBe(64);
    expect(doc(big).error).toMatchObject({ name: 'UsageError', message: expect.stringMatching(/^code must be a 32-bit integer/) });
    expect(big.stderr).toBe('kextbridge: code must be a 32-bit integer, got a string ("4294967296")\n');
    expect((await cli(['decode'])).code).toBe(64);
    expect((await cli(['decode', '0x'])).code).toBe(64);
  });
});

describe('hold', () => {
  // The sim kernel lives in the hold process, so a second process cannot see the retain.
  // hold reports every retain and release with the ledger's count on stderr: the test reads that.
  const retained = (held: number, who = `${SAMPLE} (tag 8)`) => `kextbridge hold: retained ${who}, held ${held}\n`;
  const released = (held: number, who = `${SAMPLE} (tag 8)`) => `kextbridge hold: released ${who}, held ${held}\n`;

  test('success: retains, runs the command with our stdio (never a shell), releases, exits with its status', async () => {
    const r = await cli(['hold', SAMPLE, '8', '--', process.execPath, '-e', 'console.log(process.argv.slice(1).join("|"))', 'a b', '$HOME', '--json']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('a b|$HOME|--json\n'); // arguments verbatim: no shell, no option parsing
    expect(r.stderr).toBe(retained(1) + retained(2) + 'kextbridge hold: command exited with status 0\n' + released(1) + released(0));
  });

  test("the command's failure is hold's exit status, and the release still happens", async () => {
    const r = await cli(['hold', '8', '--', process.execPath, '-e', 'process.exit(3)']);
    expect(r.code).toBe(3);
    expect(r.stderr).toBe(retained(1) + 'kextbridge hold: command exited with status 3\n' + released(0));
  });

  test('a command killed by a signal: released, exit 128 + signal number', async () => {
    const r = await cli(['hold', '8', '--', process.execPath, '-e', 'process.kill(process.pid, "SIGKILL")']);
    expect(r.code).toBe(137);
    expect(r.stderr).toBe(retained(1) + 'kextbridge hold: command was killed by SIGKILL (exit 137)\n' + released(0));
  });

  test('SIGTERM to hold is forwarded to the command; released after it ends', async () => {
    const child = spawn(process.execPath, [CLI, 'hold', '8', '--', process.execPath, '-e', 'console.log("up"); setTimeout(() => {}, 60000)'], { env: BASE_ENV });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    await new Promise<void>((res) => child.stdout.once('data', () => res()));
    child.kill('SIGTERM');
    const [code] = await new Promise<[number | null]>((res) => child.on('close', (c) => res([c])));
    expect(code).toBe(143);
    expect(stderr).toBe(retained(1) + 'kextbridge hold: command was killed by SIGTERM (exit 143)\n' + released(0));
  });

  test('without a command: holds until SIGINT or SIGTERM, then releases and exits 0', async () => {
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      const child = spawn(process.execPath, [CLI, 'hold', SAMPLE], { env: BASE_ENV });
      let stderr = '';
      await new Promise<void>((res) => child.stderr.on('data', (d) => {
        stderr += d;
        if (stderr.includes('until SIGINT')) res();
      }));
      child.kill(sig);
      const code = await new Promise<number | null>((res) => child.on('close', (c) => res(c)));
      expect({ sig, code }).toEqual({ sig, code: 0 });
      expect(stderr).toBe(retained(1) + `kextbridge hold: holding 1 retain until SIGINT (Ctrl-C) or SIGTERM (pid ${child.pid})\n` + `kextbridge hold: ${sig}: releasing\n` + released(0));
    }
  });

  test('a command that cannot be started: released, exit 127', async () => {
    const r = await cli(['hold', '8', '--', '/nonexistent/command']);
    expect(r.code).toBe(127);
    expect(r.stderr).toBe(retained(1) + 'kextbridge hold: cannot run "/nonexistent/command": spawn /nonexistent/command ENOENT\n' + released(0));
  });

  test('not found: an unloaded tag (the kernel says so) or bundle id is exit 1; what was retained before is released', async () => {
    const tag = await cli(['hold', '8', '99', '--', 'true']);
    expect(tag.code).toBe(1);
    expect(tag.stderr).toBe(retained(1) + 'kextbridge hold: retain tag 99 refused: kOSKextReturnNotFound (0xDC008006): no loaded kext has that load tag or identifier\n' + released(0));
    const id = await cli(['hold', 'com.example.absent', '--', 'true']);
    expect(id).toMatchObject({ code: 1, stdout: '', stderr: 'kextbridge hold: no loaded kext has the bundle id "com.example.absent"\n' });
  });

  test('not privileged: exit 2', async () => {
    const r = await cli(['hold', '8', '--', 'true'], { env: UNPRIVILEGED });
    expect(r).toMatchObject({ code: 2, stdout: '' });
    expect(r.stderr).toBe('kextbridge hold: retain org.kextbridge.sample (tag 8) refused: kIOReturnNotPrivileged (0xE00002C1): privilege violation (kextbridge: retain and release need an administrator)\n');
  });

  test('refused: kOSKextInvalidLoadTag by the kernel, a full ledger by the user client, both exit 3', async () => {
    const invalid = await cli(['hold', '4294967295', '--', 'true']);
    expect(invalid.code).toBe(3);
    expect(invalid.stderr).toContain('kOSKextReturnInvalidArgument (0xDC008005)');
    const full = await cli(['hold', ...Array(257).fill('8'), '--', 'true']);
    expect(full.code).toBe(3);
    expect(full.stderr).toContain(retained(256));
    expect(full.stderr).toContain('refused: kIOReturnNoResources (0xE00002BE)');
    expect(full.stderr.endsWith(released(0))).toBe(true);
  });

  test('usage: tag 2^32, a negative or malformed tag, no target, an empty command: exit 64, nothing retained', async () => {
    for (const args of [['hold', '4294967296'], ['hold', '-1'], ['hold', '1.5'], ['hold', '0x8'], ['hold'], ['hold', '8', '--']]) {
      const r = await cli(args);
      expect({ args, code: r.code, stdout: r.stdout }).toEqual({ args, code: 64, stdout: '' });
      expect(r.stderr).not.toContain('retained');
    }
    expect((await cli(['hold', '4294967296'])).stderr).toBe('kextbridge: load tag 4294967296 is out of range (0…4294967295)\n');
  });
});

describe('explain', () => {
  // Each CLI process has its own sim kernel, and its own connection is a user client of the
  // sample kext: that is the one blocker the default world shows. pids vary: masked.
  const maskPid = (s: string) => s.replace(/pid \d+/g, 'pid N').replace(/"pid": \d+/g, '"pid": 0');

  test('success: a loaded kext and why it will not unload', async () => {
    const r = await cli(['explain', SAMPLE]);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    golden('explain.txt', maskPid(r.stdout));
    expect(r.stdout).toContain(`user clients open by ${'node'} (pid ${r.stdout.match(/pid (\d+)/)![1]})`);
  });

  test('--json: the explanation as one document', async () => {
    const r = await cli(['explain', '8', '--json']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    golden('explain.json', maskPid(r.stdout));
    expect(doc(r)).toMatchObject({ ok: true, backend: 'sim', explanation: { bundleId: SAMPLE, loadTag: 8, loaded: true, unloadable: false, blockers: [{ kind: 'userClients' }] } });
    const kernel = await cli(['explain', '0', '--json']);
    expect(doc(kernel).explanation.blockers).toEqual([{ kind: 'notUnloadable', reason: 'kernelComponent' }]);
  });

  test('not found: exit 1, with the (not loaded) explanation under --json', async () => {
    const r = await cli(['explain', 'com.example.absent']);
    expect(r).toMatchObject({ code: 1, stdout: '', stderr: 'kextbridge explain: no loaded kext has the bundle id "com.example.absent"\n' });
    const j = await cli(['explain', '99', '--json']);
    expect(j.code).toBe(1);
    expect(doc(j)).toEqual({
      schemaVersion: 1, ok: false, backend: 'sim',
      explanation: { bundleId: null, loadTag: 99, loaded: false, started: false, unloadable: false, autounload: { enabled: false }, blockers: [] },
      error: { name: 'NotFound', code: null, message: 'no loaded kext has the load tag 99', exitCode: 1 },
    });
  });

  test('not privileged: explaining needs no privilege', async () => {
    const r = await cli(['explain', '8', '--json'], { env: UNPRIVILEGED });
    expect(r.code).toBe(0);
    expect(doc(r).explanation.blockers).toEqual([{ kind: 'userClients', clients: [{ pid: expect.any(Number), process: 'node' }] }]);
  });

  test('usage: tag 2^32, a malformed target, none, two: exit 64', async () => {
    for (const args of [['explain', '4294967296'], ['explain', '-1'], ['explain'], ['explain', '8', '9'], ['explain', '1.5', '--json']]) {
      const r = await cli(args);
      expect({ args, code: r.code }).toEqual({ args, code: 64 });
    }
    expect(doc(await cli(['explain', '4294967296', '--json']))).toMatchObject({ ok: false, error: { name: 'UsageError', exitCode: 64, message: 'load tag 4294967296 is out of range (0…4294967295)' } });
  });
});

describe('wait', () => {
  test('success: a condition that holds is at once (waitedMs 0)', async () => {
    const r = await cli(['wait', '8', '--refs', '0']);
    expect(r).toMatchObject({ code: 0, stdout: 'tag 8: retain count 0 after 0 ms (virtual)\n', stderr: '' });
    const j = await cli(['wait', SAMPLE, '--loaded', '--json']);
    expect(j.code).toBe(0);
    expect(doc(j)).toEqual({ schemaVersion: 1, ok: true, backend: 'sim', target: SAMPLE, condition: { loaded: true }, waitedMs: 0 });
  });

  test('timeout: exit 75 after the virtual timeout, with the explanation; never success', async () => {
    const r = await cli(['wait', '8', '--unloaded', '--timeout', '5s', '--json']);
    expect(r.code).toBe(75);
    const d = doc(r);
    expect(d).toMatchObject({
      ok: false, backend: 'sim', target: 8, condition: { unloaded: true }, waitedMs: 5000, reason: 'timeout',
      explanation: { loaded: true, unloadable: false, blockers: [{ kind: 'userClients' }] },
      error: { name: 'Timeout', code: null, exitCode: 75 },
    });
    expect(r.stderr).toBe(`kextbridge wait: ${d.error.message}\n`);
    expect(r.stderr).toMatch(/^kextbridge wait: timed out after 5000 ms waiting for tag 8 to be unloaded: org\.kextbridge\.sample \(tag 8\) cannot be unloaded: user clients open by node \(pid \d+\)\n$/);
    const loaded = await cli(['wait', 'com.example.later', '--loaded']);
    expect(loaded).toMatchObject({ code: 75, stdout: '', stderr: 'kextbridge wait: timed out after 90000 ms waiting for com.example.later to be loaded: com.example.later is not loaded\n' });
    expect((await cli(['wait', '8', '--refs', '1', '--timeout', '1500ms'])).stderr).toContain('timed out after 1500 ms');
  });

  test('not privileged: waiting needs no privilege', async () => {
    expect((await cli(['wait', '8', '--refs', '0'], { env: UNPRIVILEGED })).code).toBe(0);
  });

  test('usage: --refs x, --timeout -1, tag 2^32, no condition or two: exit 64 with the reason', async () => {
    const cases: [string[], string][] = [
      [['wait', '8', '--refs', 'x'], '--refs "x" is not a retain count (0…4294967295)'],
      [['wait', '8', '--refs', '-1'], '--refs "-1" is not a retain count (0…4294967295)'],
      [['wait', '8', '--loaded', '--timeout', '-1'], '--timeout "-1" is not a duration (90s, 1500ms, 2m, or seconds)'],
      [['wait', '8', '--loaded', '--timeout', '30d'], '--timeout "30d" is not a duration (90s, 1500ms, 2m, or seconds)'],
      [['wait', '8', '--loaded', '--timeout', '25000000s'], '--timeout 25000000s is too long (at most 2147483647ms, about 24.8 days)'],
      [['wait', '4294967296', '--loaded'], 'load tag 4294967296 is out of range (0…4294967295)'],
      [['wait', '8'], 'give exactly one of --unloaded, --loaded or --refs N'],
      [['wait', '8', '--loaded', '--unloaded'], 'give exactly one of --unloaded, --loaded or --refs N'],
    ];
    for (const [args, message] of cases) {
      const r = await cli([...args, '--json']);
      expect({ args, code: r.code, error: doc(r).error }).toEqual({ args, code: 64, error: { name: 'UsageError', code: null, message, exitCode: 64 } });
      expect(r.stderr).toBe(`kextbridge: ${message}\n`);
    }
  });
});

describe('watch', () => {
  /** Runs watch until it has printed `lines` lines, then sends `sig`. */
  async function watchFor(args: string[], lines: number, sig: NodeJS.Signals = 'SIGINT', env: Record<string, string> = {}) {
    const child = spawn(process.execPath, [CLI, 'watch', ...args], { env: { ...BASE_ENV, ...env } });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    await new Promise<void>((res) => child.stdout.on('data', (d) => {
      stdout += d;
      if (stdout.split('\n').length > lines) res();
    }));
    await new Promise((r) => setTimeout(r, 100)); // nothing more comes
    child.kill(sig);
    const code = await new Promise<number | null>((res) => child.on('close', (c) => res(c)));
    return { code, stdout, stderr };
  }

  test('--jsonl on the sim: its freshly booted world, one document per line, until SIGINT (exit 0)', async () => {
    const r = await watchFor(['--jsonl'], 13);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    golden('watch.jsonl', r.stdout);
    const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(events.every((e) => e.schemaVersion === 1)).toBe(true);
    expect(events[events.length - 1]).toEqual({ schemaVersion: 1, at: 0, type: 'instances', loadTag: 8, bundleId: SAMPLE, className: 'org_kextbridge_SampleUserClient', from: 0, to: 1 });
  });

  test('-b filters; a line each; SIGTERM ends it too', async () => {
    const r = await watchFor(['-b', SAMPLE], 2, 'SIGTERM');
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toBe(
      '        0 ms  loaded       org.kextbridge.sample (tag 8)\n' +
      '        0 ms  instances    org.kextbridge.sample (tag 8) org_kextbridge_SampleUserClient 0 → 1\n');
  });

  test('not privileged: watching needs no privilege', async () => {
    expect((await watchFor(['-b', SAMPLE, '--jsonl'], 2, 'SIGINT', UNPRIVILEGED)).code).toBe(0);
  });

  test('usage: an unknown option, -b without an id: exit 64', async () => {
    for (const args of [['watch', '--bogus'], ['watch', '-b'], ['watch', 'extra']]) {
      const r = await cli(args);
      expect({ args, code: r.code }).toEqual({ args, code: 64 });
    }
  });
});

describe('doctor', () => {
  // platform and root depend on the machine running the tests.
  const normalise = (d: any) => ({ ...d, checks: d.checks.map((c: any) => (['platform', 'root'].includes(c.id) ? { ...c, detail: '<machine>' } : c)) });

  test('success on the sim: exit 0, every check listed', async () => {
    if (process.platform !== 'linux') return; // the golden file is Linux's: the Mac checks say "not applicable"
    const r = await cli(['--backend', 'sim', 'doctor', '--json']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    golden('doctor.json', JSON.stringify(normalise(doc(r)), null, 2) + '\n');
    const text = await cli(['--backend', 'sim', 'doctor']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^sampleKext +ok +org\.kextbridge\.sample 0\.1\.0 loaded and started, load tag 8$/m);
  });

  test('not privileged: exit 2, the failed check named', async () => {
    const r = await cli(['doctor', '--json'], { env: UNPRIVILEGED });
    expect(r.code).toBe(2);
    const d = doc(r);
    expect(d).toMatchObject({ ok: false, error: { name: 'NotPrivileged', code: null, message: '1 check failed: privileged', exitCode: 2 } });
    expect(d.checks.find((c: { id: string }) => c.id === 'privileged')).toMatchObject({ ok: false, fix: expect.stringContaining('KEXTBRIDGE_SIM_UNPRIVILEGED') });
    expect(r.stderr).toBe('kextbridge doctor: 1 check failed: privileged\n');
  });

  test('unavailable: no backend is exit 69', async () => {
    if (process.platform === 'darwin') return;
    const r = await cli(['--backend', 'iokit', 'doctor', '--json']);
    expect(r.code).toBe(69);
    expect(doc(r).error).toMatchObject({ name: 'Unavailable', message: '2 checks failed: backend, clientOpens' });
  });

  test('usage: exit 64', async () => {
    const r = await cli(['doctor', 'now', '--json']);
    expect(r.code).toBe(64);
    expect(doc(r).error.name).toBe('UsageError');
  });
});

describe('the program', () => {
  test('an unknown verb, or none, is exit 64 (with the document under --json)', async () => {
    const r = await cli(['frobnicate', 'x', '--json']);
    expect(r.code).toBe(64);
    expect(doc(r).error).toEqual({ name: 'UsageError', code: null, message: "unknown command 'frobnicate'", exitCode: 64 });
    expect(r.stderr).toContain("error: unknown command 'frobnicate'");
    const none = await cli([]);
    expect(none.code).toBe(64);
    expect(none.stderr).toContain('Usage: kextbridge');
  });

  test.each(['list', 'decode', 'hold', 'doctor', 'explain', 'wait', 'watch', 'replay'])('%s --help: exit 0, with an example', async (verb) => {
    const r = await cli([verb, '--help']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toMatch(new RegExp(`^Usage: kextbridge ${verb} `));
    expect(r.stdout).toMatch(/\nExamples?:\n {2}\$ (sudo )?kextbridge /);
  });

  test('--help and --version', async () => {
    const help = await cli(['--help']);
    expect(help.code).toBe(0);
    for (const verb of ['list', 'decode', 'hold', 'doctor', 'explain', 'wait', 'watch', 'load', 'unload', 'cycle', 'replay']) expect(help.stdout).toContain(`  ${verb} `);
    const v = await cli(['--version']);
    expect(v).toMatchObject({ code: 0, stdout: JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version + '\n' });
  });

  test('no ANSI escapes when stdout is not a terminal', async () => {
    for (const args of [['list'], ['decode', '0xDC008017'], ['doctor'], ['list', '--json']]) {
      const r = await cli(args, { env: { FORCE_COLOR: '1' } });
      expect(r.stdout + r.stderr).not.toContain('\x1b');
    }
  });

  test('a reader that goes away early (| head -1) ends the CLI quietly', async () => {
    const codes = Array.from({ length: 4000 }, (_, i) => `0xDC0080${(i % 32).toString(16).padStart(2, '0')}`);
    const child = spawn(process.execPath, [CLI, 'decode', ...codes], { env: BASE_ENV });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    await new Promise<void>((res) => child.stdout.once('data', () => res()));
    child.stdout.destroy();
    const code = await new Promise<number | null>((res) => child.on('close', (c) => res(c)));
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
  });

  test('a verb loads only what it needs: decode and --help never load the addon or the connection code', async () => {
    const probe = (args: string[]) =>
      new Promise<string[]>((resolve, reject) => {
        const script = `const m = require(${JSON.stringify(CLI)}); m.main(${JSON.stringify(args)}, { stdout: { write() {} }, stderr: { write() {} }, stdin: process.stdin, env: {} })` +
          `.then(() => console.log(JSON.stringify(Object.keys(require.cache))))`;
        execFile(process.execPath, ['-e', script], { env: BASE_ENV }, (err, stdout) => (err ? reject(err) : resolve(JSON.parse(stdout).map((f: string) => path.relative(tree, f)))));
      });
    const mine = (files: string[]) => files.filter((f) => f.startsWith('lib')).sort();
    expect(mine(await probe(['--help']))).toEqual(['lib/cli/common.js', 'lib/cli/main.js']);
    expect(mine(await probe(['decode', '0xDC008017']))).toEqual(['lib/cli/common.js', 'lib/cli/decode.js', 'lib/cli/main.js', 'lib/codes.js', 'lib/decode-text.js', 'lib/protocol.gen.js']);
    const list = mine(await probe(['list', '--json']));
    expect(list).toContain('lib/native.js');
    for (const other of ['lib/cli/hold.js', 'lib/cli/decode.js', 'lib/cli/doctor.js']) expect(list).not.toContain(other);
    const verbs = ['list', 'decode', 'hold', 'doctor', 'explain', 'wait', 'watch'].map((v) => `lib/cli/${v}.js`);
    for (const [args, own] of [[['explain', '8', '--json'], 'explain'], [['wait', '8', '--refs', '0', '--json'], 'wait']] as const) {
      const loaded = mine(await probe([...args]));
      expect(loaded.filter((f) => verbs.includes(f))).toEqual([`lib/cli/${own}.js`]);
    }
  });
});

describe('colour, in-process', () => {
  function io(isTTY: boolean, env: Record<string, string> = {}): Io & { out: () => string } {
    let out = '';
    return { stdout: { isTTY, write: (s: string) => ((out += s), true) } as never, stderr: { write: () => true } as never, stdin: process.stdin, env, out: () => out };
  }

  test('colour on a terminal, none with NO_COLOR', async () => {
    const tty = io(true);
    expect(await main(['decode', '0xDC008017'], tty)).toBe(0);
    expect(tty.out()).toContain('\x1b[1mkOSKextReturnStartStopError\x1b[22m');
    const noColor = io(true, { NO_COLOR: '1' });
    await main(['decode', '0xDC008017'], noColor);
    expect(noColor.out()).not.toContain('\x1b');
    expect(noColor.out()).toBe(tty.out().replace(/\x1b\[\d+m/g, ''));
  });

  test('a bug is exit 70 with its stack on stderr', async () => {
    let err = '';
    const broken: Io = { stdout: { write: () => { throw new Error('boom'); } } as never, stderr: { write: (t: string) => ((err += t), true) } as never, stdin: process.stdin, env: {} };
    expect(await main(['decode', '0xDC008017'], broken)).toBe(70);
    expect(err).toMatch(/^kextbridge: Error: boom\n +at /);
  });
});
