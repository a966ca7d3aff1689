// Recording: every call of a connection, its decoded and raw answer, with wall and (on the
// sim) virtual timestamps, and loaded-kext snapshots at open and close, as JSONL
// (docs/recording.md). A wrapper at the library level: the connection's own methods are
// shadowed on the instance, so calls made through kb.kext() handles, explain() and the waits
// (which call the same methods) are recorded too. Nothing below the library changes.
import * as fs from 'fs';
import * as path from 'path';
import type { KextBridge } from './kextbridge';
import { observers } from './observe';
import type { ReleaseResult, RetainResult } from './results';
import type { SimKernel } from './sim';

export const RECORDING_SCHEMA = 'kextbridge-recording';
export const RECORDING_VERSION = 1;

/** The methods recorded, async and (under kb.sync) sync. */
export const RECORDED_METHODS = ['info', 'retain', 'release', 'retainMany', 'releaseMany', 'held', 'loadedKexts'] as const;
export type RecordedMethod = (typeof RECORDED_METHODS)[number];

interface FileState {
  conns: number;
  seq: number;
  machines: WeakMap<SimKernel, number>;
  machineCount: number;
}
/** Files this module instance started (truncated and headed); in jest, one per test file. */
const files = new Map<string, FileState>();

function fileState(file: string): FileState {
  let st = files.get(file);
  if (!st) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const header = {
      kind: 'header', schema: RECORDING_SCHEMA, version: RECORDING_VERSION, created: new Date().toISOString(),
      kextbridge: packageVersion(), platform: process.platform, arch: process.arch, node: process.version, pid: process.pid,
    };
    fs.writeFileSync(file, JSON.stringify(header) + '\n');
    st = { conns: 0, seq: 0, machines: new WeakMap(), machineCount: 0 };
    files.set(file, st);
  }
  return st;
}

/** Where KEXTBRIDGE_RECORD=dir puts this connection's calls: one file per jest test file, else per process. */
export function recordFileFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const dir = env.KEXTBRIDGE_RECORD;
  if (!dir) return undefined;
  for (const o of observers()) {
    const f = o.recordFile?.(dir);
    if (f) return f;
  }
  const testPath = (globalThis as { expect?: { getState?: () => { testPath?: string } } }).expect?.getState?.().testPath;
  if (testPath) return path.join(dir, recordingName(testPath));
  return path.join(dir, `kextbridge-${process.pid}.jsonl`);
}

/** test/foo/bar.test.ts → test__foo__bar.test.ts.jsonl (relative to the working directory). */
export function recordingName(testPath: string): string {
  const rel = path.relative(process.cwd(), testPath);
  const safe = (rel.startsWith('..') ? path.basename(testPath) : rel).split(path.sep).join('__').replace(/[^A-Za-z0-9._-]/g, '_');
  return `${safe}.jsonl`;
}

/** The ledger-level answer a decoded retain/release came from (kr, the KPI's OSReturn, held after). */
export function rawOf(r: RetainResult | ReleaseResult): { kr: number; osReturn: number | null; heldAfter: number | null } {
  return r.layer === 'userclient' ? { kr: r.code, osReturn: null, heldAfter: null } : { kr: 0, osReturn: r.code, heldAfter: r.held };
}

function errorOf(e: unknown) {
  const x = e as { name?: unknown; code?: unknown; codeName?: unknown; message?: unknown };
  return { name: String(x?.name ?? 'Error'), code: typeof x?.code === 'number' ? x.code : null, codeName: typeof x?.codeName === 'string' ? x.codeName : null, message: String(x?.message ?? e) };
}

/** What the first argument of a recorded method was, as JSON (tags; options are not recorded). */
function argsOf(method: RecordedMethod, args: unknown[]): unknown[] {
  if (method === 'retain' || method === 'release') return args.length > 0 && args[0] !== undefined ? [args[0]] : [];
  if (method === 'retainMany' || method === 'releaseMany') return [Array.from(args[0] as ArrayLike<number>)];
  return [];
}

export function startRecording(kb: KextBridge, file: string): void {
  const st = fileState(path.resolve(file));
  const write = (line: object) => fs.appendFileSync(path.resolve(file), JSON.stringify(line) + '\n');
  const conn = ++st.conns;
  const kernel = kb.sim;
  let machine: number | 'iokit' = 'iokit';
  if (kernel) {
    machine = st.machines.get(kernel) ?? ++st.machineCount;
    st.machines.set(kernel, machine);
  }
  const vt = () => (kernel ? { vt: kernel.now } : {});
  write({ kind: 'open', conn, machine, t: Date.now(), ...vt(), backend: kb.backend, backendReason: kb.backendReason, info: kb.sync.info(), kexts: kb.sync.loadedKexts() });

  const record = (method: RecordedMethod, sync: boolean, args: unknown[], t0: number, vt0: number | undefined, outcome: { result: unknown } | { error: unknown }) => {
    const line: Record<string, unknown> = { kind: 'call', conn, seq: ++st.seq, method, sync, args: argsOf(method, args), t0, t1: Date.now() };
    if (vt0 !== undefined) line.vt = vt0;
    if ('result' in outcome) {
      line.result = outcome.result;
      if (method === 'retain' || method === 'release') line.raw = rawOf(outcome.result as RetainResult);
      if (method === 'retainMany' || method === 'releaseMany') line.raw = (outcome.result as RetainResult[]).map(rawOf);
    } else line.error = errorOf(outcome.error);
    write(line);
  };

  const target = kb as unknown as Record<string, (...a: unknown[]) => unknown>;
  const unrecorded = { ...kb.sync };
  for (const m of RECORDED_METHODS) {
    const f = target[m].bind(kb);
    target[m] = async function (...args: unknown[]) {
      const t0 = Date.now();
      const vt0 = kernel?.now;
      try {
        const result = await f(...args);
        record(m, false, args, t0, vt0, { result });
        return result;
      } catch (error) {
        record(m, false, args, t0, vt0, { error });
        throw error;
      }
    };
    const sync = kb.sync as unknown as Record<string, (...a: unknown[]) => unknown>;
    const g = sync[m];
    sync[m] = (...args: unknown[]) => {
      const t0 = Date.now();
      const vt0 = kernel?.now;
      try {
        const result = g(...args);
        record(m, true, args, t0, vt0, { result });
        return result;
      } catch (error) {
        record(m, true, args, t0, vt0, { error });
        throw error;
      }
    };
  }
  const close = kb.close.bind(kb);
  let closeRecorded = false;
  (kb as { close: () => Promise<void> }).close = () => {
    if (closeRecorded || kb.closed) return close();
    closeRecorded = true;
    const t0 = Date.now();
    // Read through the connection before it goes (the Mac's table needs it); the sim's after too.
    let before: unknown = null;
    try {
      before = unrecorded.loadedKexts();
    } catch {
      before = null;
    }
    const vt0 = kernel?.now;
    return close().then(
      () => write({ kind: 'close', conn, t0, t1: Date.now(), ...(vt0 !== undefined ? { vt: vt0 } : {}), kextsBefore: before, ...(kernel ? { kextsAfter: kernel.loadedKexts() } : {}) }),
      (e) => {
        write({ kind: 'close', conn, t0, t1: Date.now(), kextsBefore: before, error: errorOf(e) });
        throw e;
      },
    );
  };
}

function packageVersion(): string {
  for (const up of ['..', '../..']) {
    try {
      return JSON.parse(fs.readFileSync(path.join(__dirname, up, 'package.json'), 'utf8')).version;
    } catch {
      /* next */
    }
  }
  return 'unknown';
}
