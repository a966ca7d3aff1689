// The kernel log window: `log stream --style ndjson --predicate 'sender == "<executable>"'`,
// started once per test file, its lines kept with their timestamps so each test's window
// (its start to its end) can be cut out and attached to that test's failure. The command is
// injectable (a fixture stream on Linux); nothing is kept beyond the file's run.
import { ChildProcess, spawn } from 'child_process';

export interface LogOptions {
  /** The predicate for `log stream`; default `sender == "<executable>"` of the sample kext. */
  predicate?: string;
  /** The kext executable for the default predicate (CFBundleExecutable), e.g. 'MyDriver'. */
  sender?: string;
  /** Instead of `log stream …`: [command, ...args] printing ndjson lines (tests use a fixture). */
  command?: string[];
  /** How long a failed test waits for its last lines to arrive (ms); default 250. */
  graceMs?: number;
  /** At most this many lines attached to one failure (the last ones); default 200. */
  maxLines?: number;
}

export interface LogLine {
  /** ms since the epoch, from the entry's timestamp. */
  at: number;
  text: string;
}

/**
 * `log` prints "2024-01-15 10:23:45.123456-0800" in ndjson (from Apple's `log stream` output;
 * the format is documented by example only, this parser is inferred from it), ISO 8601 too.
 */
export function parseLogTimestamp(s: string): number | null {
  const m = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.(\d+))?\s*(Z|[+-]\d{2}:?\d{2})?$/.exec(s.trim());
  if (!m) return null;
  const ms = (m[3] ?? '0').padEnd(3, '0').slice(0, 3);
  let tz = m[4] ?? 'Z';
  if (/^[+-]\d{4}$/.test(tz)) tz = `${tz.slice(0, 3)}:${tz.slice(3)}`;
  const t = Date.parse(`${m[1]}T${m[2]}.${ms}${tz}`);
  return Number.isNaN(t) ? null : t;
}

/** One ndjson line of `log stream`, or null for anything else (its "Filtering the log data…" banner). */
export function parseLogLine(line: string): LogLine | null {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return null;
  }
  const e = v as { timestamp?: unknown; eventMessage?: unknown; messageType?: unknown; processImagePath?: unknown; senderImagePath?: unknown };
  if (typeof e !== 'object' || e === null || typeof e.timestamp !== 'string') return null;
  const at = parseLogTimestamp(e.timestamp);
  if (at === null) return null;
  const type = typeof e.messageType === 'string' && e.messageType !== 'Default' ? ` <${e.messageType}>` : '';
  return { at, text: `${e.timestamp}${type} ${typeof e.eventMessage === 'string' ? e.eventMessage : JSON.stringify(v)}` };
}

export class LogWindow {
  private readonly lines: LogLine[] = [];
  private child: ChildProcess | null = null;
  private partial = '';
  private failure: string | null = null;

  constructor(private readonly options: LogOptions & { defaultSender: string }) {}

  get argv(): string[] {
    if (this.options.command) return this.options.command;
    const predicate = this.options.predicate ?? `sender == ${JSON.stringify(this.options.sender ?? this.options.defaultSender)}`;
    return ['/usr/bin/log', 'stream', '--style', 'ndjson', '--predicate', predicate];
  }

  start(): void {
    const [cmd, ...args] = this.argv;
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      const parts = (this.partial + chunk).split('\n');
      this.partial = parts.pop()!;
      for (const p of parts) {
        const l = parseLogLine(p);
        if (l) this.lines.push(l);
      }
    });
    child.on('error', (e) => (this.failure = `${cmd} could not be started: ${e.message}`));
    child.on('exit', (code, signal) => {
      if (this.child) this.failure ??= `${cmd} ended early (${signal ?? `status ${code}`})`;
    });
    // Never keeps jest alive.
    child.unref();
    (child.stdout as unknown as { unref?: () => void }).unref?.();
    (child.stderr as unknown as { unref?: () => void }).unref?.();
  }

  /** The lines stamped within [from, to], after the grace period for late ones. */
  async window(from: number, to: number): Promise<{ lines: LogLine[]; note: string | null }> {
    await new Promise((r) => setTimeout(r, this.options.graceMs ?? 250));
    const lines = this.lines.filter((l) => l.at >= from && l.at <= to);
    const max = this.options.maxLines ?? 200;
    return { lines: lines.slice(-max), note: this.failure };
  }

  /** Lines before `t` are no longer needed (every later test starts after it). */
  forgetBefore(t: number): void {
    let i = 0;
    while (i < this.lines.length && this.lines[i].at < t) i++;
    this.lines.splice(0, i);
  }

  stop(): void {
    const c = this.child;
    this.child = null;
    if (c && c.exitCode === null) c.kill('SIGTERM');
  }
}

export function formatWindow(test: string, w: { lines: LogLine[]; note: string | null }, argv: string[]): string {
  const head = `kernel log during "${test}" (${w.lines.length} line${w.lines.length === 1 ? '' : 's'} from ${argv.join(' ')}):`;
  const body = w.lines.length ? w.lines.map((l) => `  ${l.text}`).join('\n') : '  (none)';
  return `${head}\n${body}${w.note ? `\n  (${w.note})` : ''}`;
}
