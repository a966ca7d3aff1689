// The panic journal: which test is running, in a small file written before each test starts,
// so that after a kernel panic (the Mac restarts; jest never reports anything) the next run
// can say "the previous run panicked during <test>", with what the panic report says about
// kexts. Reports are `*.panic` files in /Library/Logs/DiagnosticReports (injectable).
//
// Report format. Since macOS 12 a .panic file is JSON: a one-line header object
// ({"bug_type":"210","timestamp":"…","os_version":"…",…}) followed by a second JSON object
// whose "panicString" holds the classic panic text; older reports are that text alone. From
// the text this reads: the first line ("panic(cpu N caller 0x…): …"), "last started kext at
// T: <id>\t<version> (addr …)" (also "last loaded kext"), "last stopped kext at T: <id>…"
// (also "last unloaded kext"), and the kexts listed under "Kernel Extensions in backtrace:"
// ("<id>(<version>)[<UUID>]@0x…->0x…", dependencies indented under them). These shapes are
// taken from published reports and Apple's xnu (the strings kext code prints); no report from
// this project's own kext exists yet, so the fixtures are written from those shapes.
import * as fs from 'fs';
import * as path from 'path';

export interface PanicOptions {
  /** Where `*.panic` reports appear; default /Library/Logs/DiagnosticReports. */
  reportsDir?: string;
  /** The journal folder (one file per test file); default <rootDir>/.kextbridge/journal. */
  journalDir?: string;
}

export interface PanicReport {
  file: string;
  /** ms since the epoch: the header's timestamp, else the file's mtime. */
  at: number;
  panic: string;
  lastStarted: string | null;
  lastStopped: string | null;
  backtraceKexts: string[];
  osVersion: string | null;
}

interface Journal {
  testPath: string;
  /** The test running, or null between tests and after the file finished. */
  running: { test: string; startedAt: number } | null;
  /** Reports already told, so one panic is reported once. */
  reported: string[];
}

export function parsePanicText(text: string): Omit<PanicReport, 'file' | 'at' | 'osVersion'> {
  const lines = text.split(/\r?\n/);
  const panic = lines.find((l) => l.trim() !== '')?.trim() ?? '';
  const kextOf = (re: RegExp) => {
    for (const l of lines) {
      const m = re.exec(l);
      if (m) return m[1];
    }
    return null;
  };
  const lastStarted = kextOf(/last (?:started|loaded) kext at \d+:\s*([A-Za-z0-9_.-]+)/);
  const lastStopped = kextOf(/last (?:stopped|unloaded) kext at \d+:\s*([A-Za-z0-9_.-]+)/);
  const backtraceKexts: string[] = [];
  const start = lines.findIndex((l) => /Kernel Extensions in backtrace:/.test(l));
  if (start >= 0) {
    for (const l of lines.slice(start + 1)) {
      const m = /^\s*([A-Za-z0-9_.-]+)\([^)]*\)\[[0-9A-Fa-f-]+\]@0x/.exec(l);
      if (m) backtraceKexts.push(m[1]);
      else if (/^\s*dependency:/.test(l)) continue;
      else break;
    }
  }
  return { panic, lastStarted, lastStopped, backtraceKexts };
}

export function parsePanicReport(file: string, content: string, mtimeMs: number): PanicReport {
  const nl = content.indexOf('\n');
  const json = (s: string): Record<string, unknown> | null => {
    try {
      const v = JSON.parse(s);
      return typeof v === 'object' && v !== null ? v : null;
    } catch {
      return null;
    }
  };
  const header = json(nl < 0 ? content : content.slice(0, nl));
  const body = header && nl >= 0 ? json(content.slice(nl + 1)) : null;
  const text = typeof body?.panicString === 'string' ? body.panicString : header && typeof header.panicString === 'string' ? header.panicString : content;
  const stamp = typeof header?.timestamp === 'string' ? Date.parse(header.timestamp.replace(' ', 'T').replace(/ ([+-]\d{2})(\d{2})$/, '$1:$2')) : NaN;
  return {
    file,
    at: Number.isNaN(stamp) ? mtimeMs : stamp,
    osVersion: typeof header?.os_version === 'string' ? header.os_version : null,
    ...parsePanicText(text),
  };
}

const journalName = (rootDir: string, testPath: string) =>
  (path.relative(rootDir, testPath) || path.basename(testPath)).split(path.sep).join('__').replace(/[^A-Za-z0-9._-]/g, '_') + '.json';

export class PanicJournal {
  private readonly file: string;
  private journal: Journal;

  constructor(
    private readonly testPath: string,
    rootDir: string,
    private readonly options: PanicOptions = {},
  ) {
    const dir = options.journalDir ?? path.join(rootDir, '.kextbridge', 'journal');
    this.file = path.join(dir, journalName(rootDir, testPath));
    this.journal = { testPath, running: null, reported: [] };
  }

  /**
   * At the start of a test file: if the previous run of this file stopped during a test and
   * a panic report newer than that test's start exists (and was not reported before), what
   * to tell; otherwise null. Either way the journal is ready for this run.
   */
  checkPrevious(): string | null {
    let prev: Journal | null = null;
    try {
      prev = JSON.parse(fs.readFileSync(this.file, 'utf8'));
    } catch {
      prev = null;
    }
    this.journal = { testPath: this.testPath, running: null, reported: prev?.reported ?? [] };
    let message: string | null = null;
    if (prev?.running) {
      const reports = this.reports().filter((r) => r.at >= prev!.running!.startedAt && !this.journal.reported.includes(r.file));
      const r = reports.sort((a, b) => a.at - b.at)[0];
      if (r) {
        this.journal.reported.push(r.file);
        message = formatPanic(prev.running.test, r);
      }
    }
    this.write();
    return message;
  }

  started(test: string): void {
    this.journal.running = { test, startedAt: Date.now() };
    this.write();
  }

  finished(): void {
    this.journal.running = null;
    this.write();
  }

  private reports(): PanicReport[] {
    const dir = this.options.reportsDir ?? '/Library/Logs/DiagnosticReports';
    let names: string[];
    try {
      names = fs.readdirSync(dir).filter((n) => n.endsWith('.panic'));
    } catch {
      return [];
    }
    const out: PanicReport[] = [];
    for (const n of names) {
      const file = path.join(dir, n);
      try {
        out.push(parsePanicReport(file, fs.readFileSync(file, 'utf8'), fs.statSync(file).mtimeMs));
      } catch {
        // unreadable (root-only, or being written): not ours to report
      }
    }
    return out;
  }

  /** Durable before the test runs: the panic comes without warning. */
  private write(): void {
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    const fd = fs.openSync(tmp, 'w');
    try {
      fs.writeSync(fd, JSON.stringify(this.journal));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, this.file);
  }
}

export function formatPanic(test: string, r: PanicReport): string {
  return [
    `kextbridge: the previous run panicked during "${test}"`,
    `  report: ${r.file}${r.osVersion ? ` (${r.osVersion})` : ''}, ${new Date(r.at).toISOString()}`,
    `  panic: ${r.panic}`,
    `  kexts in backtrace: ${r.backtraceKexts.length ? r.backtraceKexts.join(', ') : '(none listed)'}`,
    `  last started kext: ${r.lastStarted ?? '(not in the report)'}; last stopped kext: ${r.lastStopped ?? '(not in the report)'}`,
  ].join('\n');
}
