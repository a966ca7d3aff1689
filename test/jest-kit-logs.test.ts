// The kernel log window and the panic journal of kextbridge/jest/environment, on Linux with
// the Mac's sources replaced by fixtures: an ndjson stream and a folder of .panic reports.
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { formatWindow, LogWindow, parseLogLine, parseLogTimestamp } from '../lib/jest/kernel-log';
import { parsePanicReport, PanicJournal } from '../lib/jest/panic';
import { buildPackage, ROOT, userProject } from './kit-package';

const FIX = path.join(__dirname, 'fixtures');

describe('log stream ndjson', () => {
  test('timestamps as log prints them, and ISO; anything else is not a log line', () => {
    expect(parseLogTimestamp('2024-01-15 10:23:45.123456-0800')).toBe(Date.parse('2024-01-15T10:23:45.123-08:00'));
    expect(parseLogTimestamp('2024-01-15T18:23:45Z')).toBe(Date.parse('2024-01-15T18:23:45Z'));
    expect(parseLogTimestamp('yesterday')).toBeNull();
    const lines = fs.readFileSync(path.join(FIX, 'kernel-log', 'stream.ndjson'), 'utf8').split('\n').map(parseLogLine);
    expect(lines.filter(Boolean).map((l) => l!.text)).toEqual([
      '2024-01-15 10:23:45.100000-0800 KextBridgeSample: start',
      '2024-01-15 10:23:46.250000-0800 KextBridgeSample: retain tag 142',
      '2024-01-15 10:23:47.999999-0800 <Error> KextBridgeSample: release refused',
      '2024-01-15 10:23:49.000000-0800 KextBridgeSample: stop',
    ]);
  });

  test('the default command is log stream with the kext executable as sender; a window holds only its lines', async () => {
    expect(new LogWindow({ defaultSender: 'KextBridgeSample' }).argv).toEqual(['/usr/bin/log', 'stream', '--style', 'ndjson', '--predicate', 'sender == "KextBridgeSample"']);
    expect(new LogWindow({ defaultSender: 'x', sender: 'MyDriver' }).argv.at(-1)).toBe('sender == "MyDriver"');
    expect(new LogWindow({ defaultSender: 'x', predicate: 'subsystem == "com.example"' }).argv.at(-1)).toBe('subsystem == "com.example"');
    const w = new LogWindow({ defaultSender: 'x', command: ['cat', path.join(FIX, 'kernel-log', 'stream.ndjson')], graceMs: 200 });
    w.start();
    const cut = await w.window(Date.parse('2024-01-15T10:23:46-08:00'), Date.parse('2024-01-15T10:23:48-08:00'));
    w.stop();
    expect(cut.lines.map((l) => l.text)).toEqual(['2024-01-15 10:23:46.250000-0800 KextBridgeSample: retain tag 142', '2024-01-15 10:23:47.999999-0800 <Error> KextBridgeSample: release refused']);
    expect(formatWindow('t', cut, ['log'])).toMatch(/^kernel log during "t" \(2 lines from log\):\n {2}2024/);
  });

  test('a log command that cannot start is said in the window, not thrown', async () => {
    const w = new LogWindow({ defaultSender: 'x', command: ['/nonexistent/log'], graceMs: 50 });
    w.start();
    const cut = await w.window(0, Date.now());
    expect(cut.note).toMatch(/could not be started/);
  });
});

describe('panic reports', () => {
  test('macOS 12+ JSON: the panic string, last started/stopped kext, the kexts in backtrace (not their dependencies)', () => {
    const text = fs.readFileSync(path.join(FIX, 'panic', 'new.panic.json'), 'utf8').replace(/__TIMESTAMP__/g, '2026-12-01 22:00:00.00 +0000');
    const r = parsePanicReport('x.panic', text, 0);
    expect(r).toEqual({
      file: 'x.panic', at: Date.parse('2026-12-01T22:00:00Z'), osVersion: 'macOS 13.4 (22F66)',
      panic: 'panic(cpu 2 caller 0xfffffe0013f2a8b4): OSKext::release: over-release of com.example.driver @OSKext.cpp:1234',
      lastStarted: 'com.example.driver', lastStopped: 'com.example.old', backtraceKexts: ['com.example.driver', 'org.kextbridge.sample'],
    });
  });

  test('a text report (before macOS 12): the same fields, last loaded/unloaded wording, the file time', () => {
    const r = parsePanicReport('l.panic', fs.readFileSync(path.join(FIX, 'panic', 'legacy.panic'), 'utf8'), 1234);
    expect(r).toMatchObject({ at: 1234, osVersion: null, lastStarted: 'org.kextbridge.sample', lastStopped: 'com.example.gone', backtraceKexts: ['org.kextbridge.sample'] });
    expect(r.panic).toMatch(/^panic\(cpu 1 caller/);
  });

  test('the journal: one report for one panic, once; none for an older report; none after a clean finish', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kextbridge-journal-'));
    const reports = path.join(dir, 'reports');
    fs.mkdirSync(reports);
    fs.copyFileSync(path.join(FIX, 'panic', 'old.panic'), path.join(reports, 'Kernel-2021-10-25-090000.panic'));
    const journal = () => new PanicJournal(path.join(dir, 'a.test.js'), dir, { reportsDir: reports, journalDir: path.join(dir, 'j') });
    try {
      const run1 = journal();
      expect(run1.checkPrevious()).toBeNull();
      run1.started('dies here'); // …and the machine panics
      const run2 = journal();
      expect(run2.checkPrevious()).toBeNull(); // only the 2021 report: older than the test
      run2.started('dies again');
      const at = new Date(Date.now() + 1000).toISOString().replace('T', ' ').replace('Z', ' +0000');
      fs.writeFileSync(path.join(reports, 'Kernel-now.panic'), fs.readFileSync(path.join(FIX, 'panic', 'new.panic.json'), 'utf8').replace(/__TIMESTAMP__/g, at));
      const run3 = journal();
      const told = run3.checkPrevious();
      expect(told).toContain('kextbridge: the previous run panicked during "dies again"');
      expect(told).toContain('kexts in backtrace: com.example.driver, org.kextbridge.sample');
      expect(told).toContain('last started kext: com.example.driver; last stopped kext: com.example.old');
      expect(told).not.toContain('ancient');
      run3.started('and again'); // the same report is still there, and newer than nothing new
      expect(journal().checkPrevious()).toBeNull();
      const run5 = journal();
      run5.checkPrevious();
      run5.started('fine');
      run5.finished();
      expect(journal().checkPrevious()).toBeNull();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('in a jest project (child processes)', () => {
  let pkg: string;
  let proj: string;
  let tmp: string;
  beforeAll(() => {
    pkg = buildPackage();
    proj = userProject('jest-logs', pkg);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kextbridge-logs-'));
    fs.mkdirSync(path.join(tmp, 'reports'));
    fs.copyFileSync(path.join(FIX, 'panic', 'old.panic'), path.join(tmp, 'reports', 'Kernel-2021-10-25-090000.panic'));
  }, 120_000);
  afterAll(() => {
    for (const d of [pkg, proj, tmp]) if (d) fs.rmSync(d, { recursive: true, force: true });
  });

  let runs = 0;
  function runJest(env: Record<string, string> = {}): Promise<{ code: number | null; signal: string | null; report: any; stderr: string }> {
    const out = path.join(tmp, `report-${++runs}.json`);
    return new Promise((resolve) => {
      const child = execFile(
        process.execPath,
        [path.join(ROOT, 'node_modules', 'jest', 'bin', 'jest.js'), '--rootDir', proj, '--config', path.join(proj, 'jest.config.js'), '--json', `--outputFile=${out}`, '--ci', '--runInBand'],
        {
          cwd: proj, timeout: 60_000,
          env: { ...process.env, NODE_OPTIONS: '', KB_FAKE_LOG: path.join(FIX, 'kernel-log', 'fake-log-stream.js'), KB_LOG_FILE: path.join(tmp, 'kernel.log'), KB_REPORTS: path.join(tmp, 'reports'), ...env },
        },
        (_e, _o, stderr) => resolve({ code: child.exitCode, signal: child.signalCode, report: fs.existsSync(out) ? JSON.parse(fs.readFileSync(out, 'utf8')) : null, stderr }),
      );
    });
  }
  const byTitle = (report: any) => Object.fromEntries(report.testResults[0].assertionResults.map((a: any) => [a.title, a.failureMessages.join('\n')]));

  test('the log window: only the failing test gets lines, and only its own', async () => {
    const { code, report } = await runJest();
    expect(code).toBe(1);
    const m = byTitle(report);
    expect(m['passes and logs']).toBe('');
    expect(m['passes after the failure']).toBe('');
    expect(m['fails and logs']).toMatch(/kernel log during "fails and logs" \(1 line from .*fake-log-stream\.js\):\n {2}\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}[+-]\d{4} from the failing test/);
    expect(m['fails and logs']).not.toMatch(/from the passing test|after the failure/);
  }, 90_000);

  test('the panic journal: a run killed mid-test, a new report: told once on the next run; an old report never', async () => {
    const dead = await runJest({ PANIC: '1' });
    expect(dead.signal).toBe('SIGKILL');
    const after = await runJest(); // only the 2021 report: nothing to tell
    expect(byTitle(after.report)['passes and logs']).toBe('');
    expect(after.stderr).not.toContain('previous run panicked');

    const killed = await runJest({ PANIC: '1' });
    expect(killed.signal).toBe('SIGKILL');
    const at = new Date(Date.now() + 1000).toISOString().replace('T', ' ').replace('Z', ' +0000');
    fs.writeFileSync(path.join(tmp, 'reports', 'Kernel-now.panic'), fs.readFileSync(path.join(FIX, 'panic', 'new.panic.json'), 'utf8').replace(/__TIMESTAMP__/g, at));
    const told = await runJest();
    const first = byTitle(told.report)['passes and logs'];
    expect(first).toContain('kextbridge: the previous run panicked during "fails and logs"');
    expect(first).toContain('kexts in backtrace: com.example.driver, org.kextbridge.sample');
    expect(told.stderr).toContain('the previous run panicked during "fails and logs"');
    const again = await runJest();
    expect(byTitle(again.report)['passes and logs']).toBe('');
    expect(again.stderr).not.toContain('previous run panicked');
  }, 120_000);
});
