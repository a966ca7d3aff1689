// kextbridge cycle <bundle> -n N [-- cmd args…]: N times load, (run the command,) unload,
// and compare the retain counts and live instances of the kext and its libraries each time.
// Everything happens in this one process (on the sim, its kernel is this process's own).
import { spawn } from 'child_process';
import * as os from 'os';
import type { KextBridge, LoadedKext } from '../index';
import { CliError, clip, errorDocument, EXIT, Globals, Io, printJson, usage } from './common';
import { parseDuration } from './common';
import { connectForLifecycle, failureError } from './lifecycle-common';

/** At most this many cycles: a leak hunt of 10,000 loads is already hours on a Mac. */
export const MAX_CYCLES = 10_000;

export interface CycleOptions {
  count: string;
  timeout: string;
  library: string[];
}

/** One kext's counts at a moment: OSBundleRetainCount and the live instances of each class. */
interface Counts {
  loadTag: number;
  retainCount: number;
  instances: Record<string, number>;
}
type Snapshot = Record<string, Counts>;

export interface Drift {
  cycle: number;
  bundleId: string;
  what: 'retainCount' | 'instances' | 'loaded';
  className?: string;
  before: number | null;
  after: number | null;
}

interface CycleRecord {
  cycle: number;
  loadTag: number | null;
  commandStatus?: number;
  /** The libraries before the load, and the kext itself while loaded (and its libraries then). */
  before: Snapshot;
  loaded: Snapshot;
  /** The libraries after the unload. */
  after: Snapshot;
  drift: Drift[];
}

const counts = (k: LoadedKext): Counts => ({ loadTag: k.loadTag, retainCount: k.retainCount, instances: Object.fromEntries(k.classes.map((c) => [c.name, c.instances])) });

function snapshot(kexts: LoadedKext[], ids: string[]): Snapshot {
  const s: Snapshot = {};
  for (const id of ids) {
    const k = kexts.find((x) => x.bundleId === id);
    if (k) s[id] = counts(k);
  }
  return s;
}

/** What differs between two snapshots of the same kexts (a kext gone or new counts as 'loaded'). */
export function diff(cycle: number, a: Snapshot, b: Snapshot): Drift[] {
  const out: Drift[] = [];
  for (const id of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const x = a[id];
    const y = b[id];
    if (!x || !y) {
      out.push({ cycle, bundleId: id, what: 'loaded', before: x ? x.loadTag : null, after: y ? y.loadTag : null });
      continue;
    }
    if (x.retainCount !== y.retainCount) out.push({ cycle, bundleId: id, what: 'retainCount', before: x.retainCount, after: y.retainCount });
    for (const cls of new Set([...Object.keys(x.instances), ...Object.keys(y.instances)]))
      if ((x.instances[cls] ?? 0) !== (y.instances[cls] ?? 0)) out.push({ cycle, bundleId: id, what: 'instances', className: cls, before: x.instances[cls] ?? 0, after: y.instances[cls] ?? 0 });
  }
  return out;
}

export const describeDrift = (d: Drift) =>
  d.what === 'instances'
    ? `${d.bundleId}: live instances of ${d.className} ${d.before} → ${d.after}`
    : d.what === 'retainCount'
      ? `${d.bundleId}: retain count ${d.before} → ${d.after}`
      : `${d.bundleId}: ${d.before === null ? 'loaded' : 'no longer loaded'}`;

function parseCount(s: string): number {
  if (!/^[0-9]+$/.test(s)) throw usage(`-n ${JSON.stringify(clip(s))} must be a whole number of cycles`);
  const n = Number(s);
  if (n < 1 || n > MAX_CYCLES) throw usage(`-n must be 1…${MAX_CYCLES}, got ${clip(s)}`);
  return n;
}

export async function cycle(bundlePath: string, command: string[] | undefined, opts: CycleOptions, globals: Globals, io: Io): Promise<number> {
  const n = parseCount(opts.count);
  const timeout = parseDuration(opts.timeout);
  const say = (s: string) => io.stderr.write(`kextbridge cycle: ${s}\n`);
  const kb = await connectForLifecycle(globals, io);
  const cycles: CycleRecord[] = [];
  let bundleId: string | null = null;
  let failure: CliError | null = null;
  let status: number = EXIT.ok;
  const startIds = new Set((await kb.loadedKexts()).map((k) => k.bundleId));
  const weLoaded: string[] = []; // libraries, in load order
  let left: string[] = [];
  let completed = 0;
  try {
    for (const lib of opts.library) {
      const r = await kb.loadBundle(lib, { timeout });
      if (!r.ok) throw failureError(`load library ${lib}`, r);
      if (!r.alreadyLoaded) weLoaded.push(r.bundleId);
    }
    for (let i = 1; i <= n; i++) {
      const pre = await kb.loadedKexts();
      const r = await kb.loadBundle(bundlePath, { timeout });
      if (!r.ok) throw failureError(`cycle ${i}: load`, r);
      bundleId = r.bundleId;
      if (r.alreadyLoaded) throw new CliError(EXIT.refused, 'AlreadyLoaded', `${r.bundleId} was loaded before cycle ${i} (tag ${r.loadTag}): unload it first, cycle needs to load it itself`);
      const loadedTable = await kb.loadedKexts();
      const me = loadedTable.find((k) => k.loadTag === r.loadTag)!;
      const libs = loadedTable.filter((k) => me.dependencies.includes(k.loadTag)).map((k) => k.bundleId);
      const rec: CycleRecord = { cycle: i, loadTag: r.loadTag, before: snapshot(pre, libs), loaded: snapshot(loadedTable, [r.bundleId, ...libs]), after: {}, drift: [] };
      cycles.push(rec);
      if (command) {
        const c = await runCommand(command, timeout, { KEXTBRIDGE_CYCLE: String(i), KEXTBRIDGE_LOAD_TAG: String(r.loadTag) });
        rec.commandStatus = c.status;
        if (c.timedOut) failure = new CliError(EXIT.timeout, 'Timeout', `cycle ${i}: the command did not finish within ${timeout} ms; it was killed`);
        else if (c.status !== 0) {
          status = c.status;
          say(`cycle ${i}: the command ${c.error ?? `exited with status ${c.status}`}`);
        }
      }
      const u = await kb.unloadKext(r.loadTag, { timeout });
      rec.after = snapshot(await kb.loadedKexts(), libs);
      if (!u.ok) throw failureError(`cycle ${i}: unload`, u);
      completed++;
      if (failure || status !== EXIT.ok) break;
      // The libraries must be as they were before the load; the kext as it was the first time.
      rec.drift = [...diff(i, rec.before, rec.after), ...(i > 1 ? diff(i, cycles[0].loaded, rec.loaded).filter((d) => d.bundleId === r.bundleId && d.what === 'instances') : [])];
      if (!globals.json) io.stdout.write(`cycle ${i}/${n} tag ${r.loadTag}: ${rec.drift.length ? 'DRIFT ' + rec.drift.map(describeDrift).join('; ') : 'no drift'}\n`);
      if (rec.drift.length) {
        failure = new CliError(EXIT.refused, 'Drift', `cycle ${i}: ${rec.drift.map(describeDrift).join('; ')}`);
        break;
      }
    }
  } catch (e) {
    if (!(e instanceof CliError)) throw e;
    failure = e;
  } finally {
    left = await cleanUp(kb, startIds, bundleId, weLoaded, timeout, say);
    await kb.close();
  }
  if (!failure && left.length) failure = new CliError(EXIT.internal, 'InternalError', `still loaded after cycle, and not before it: ${left.join(', ')}`);
  const body = { backend: kb.backend, bundleId, count: n, completed, cycles, drift: cycles.flatMap((c) => c.drift), left };
  if (failure) say(failure.message);
  else if (!globals.json && status === EXIT.ok) io.stdout.write(`${n} cycle${n === 1 ? '' : 's'} of ${bundleId}: no drift\n`);
  if (globals.json) printJson(io, failure ? errorDocument(failure, body) : { schemaVersion: 1, ok: status === EXIT.ok, ...body, ...(status !== EXIT.ok ? { commandStatus: status } : {}) });
  return failure ? failure.exitCode : status;
}

/** Nothing stays loaded that was not loaded before: the kext, then the libraries cycle loaded. */
async function cleanUp(kb: KextBridge, startIds: Set<string>, bundleId: string | null, libs: string[], timeout: number, say: (s: string) => void): Promise<string[]> {
  for (const id of [...(bundleId ? [bundleId] : []), ...[...libs].reverse()]) {
    const loaded = (await kb.loadedKexts()).some((k) => k.bundleId === id);
    if (!loaded || startIds.has(id)) continue;
    const u = await kb.unloadKext(id, { timeout });
    if (!u.ok) say(`could not unload ${id} afterwards: ${u.message}; next: ${u.nextStep}`);
  }
  return (await kb.loadedKexts()).map((k) => k.bundleId).filter((id) => !startIds.has(id));
}

/** The command, never through a shell, with our stdio; killed (TERM, then KILL) at the timeout. */
function runCommand(command: string[], timeout: number, env: Record<string, string>): Promise<{ status: number; timedOut: boolean; error?: string }> {
  return new Promise((resolve) => {
    const child = spawn(command[0], command.slice(1), { stdio: 'inherit', env: { ...process.env, ...env } });
    let timedOut = false;
    let kill: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGTERM');
      kill = setTimeout(() => child.kill('SIGKILL'), 2000);
    }, timeout);
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve({ status: e.code === 'ENOENT' ? 127 : 126, timedOut: false, error: `could not be run: ${e.message}` });
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (kill) clearTimeout(kill);
      resolve({ status: signal ? 128 + (os.constants.signals[signal] ?? 0) : (code ?? EXIT.internal), timedOut, ...(signal ? { error: `was killed by ${signal}` } : {}) });
    });
  });
}
