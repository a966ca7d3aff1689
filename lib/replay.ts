// Replay: a recording (lib/record.ts, docs/recording.md) run again on a fresh simulated
// kernel. The world is built from each machine's first snapshot (the kexts, their classes and
// instances, their retain counts), the connections are opened as recorded, each call is made
// again with its load tags mapped onto the new world, and every answer that differs from the
// recorded one is a divergence. A recording made on a Mac is thereby a regression test of
// the simulator.
import * as fs from 'fs';
import { open } from './open';
import { RECORDING_SCHEMA, RECORDING_VERSION } from './record';
import type { LoadedKext } from './results';
import { createSimKernel, SimKernel } from './sim';
import type { KextBridge } from './kextbridge';

export interface Divergence {
  /** 1-based line of the call in the recording. */
  line: number;
  conn: number;
  method: string;
  /** As recorded (the recording's load tags). */
  args: unknown[];
  /** The recorded answer and the replayed one, in the comparable form (docs/recording.md). */
  expected: unknown;
  got: unknown;
}

export interface ReplayReport {
  calls: number;
  connections: number;
  divergences: Divergence[];
  /** Recorded kexts the new world could not load (the reason), by bundle id. */
  worldNotes: string[];
}

export class RecordingError extends Error {
  constructor(message: string, readonly line?: number) {
    super(line !== undefined ? `line ${line}: ${message}` : message);
    this.name = 'RecordingError';
  }
}

type Line = Record<string, unknown> & { kind: string };

export function parseRecording(text: string): Line[] {
  const lines: Line[] = [];
  text.split('\n').forEach((s, i) => {
    if (s.trim() === '') return;
    let v: unknown;
    try {
      v = JSON.parse(s);
    } catch (e) {
      throw new RecordingError(`not JSON (${(e as Error).message})`, i + 1);
    }
    if (typeof v !== 'object' || v === null || typeof (v as Line).kind !== 'string') throw new RecordingError('not a recording line (no "kind")', i + 1);
    (v as Line).__line = i + 1;
    lines.push(v as Line);
  });
  const h = lines[0];
  if (!h || h.kind !== 'header' || h.schema !== RECORDING_SCHEMA) throw new RecordingError(`the first line must be the ${RECORDING_SCHEMA} header`, h ? (h.__line as number) : 1);
  if (typeof h.version !== 'number' || h.version > RECORDING_VERSION || h.version < 1)
    throw new RecordingError(`schema version ${String(h.version)} is not one this kextbridge reads (1…${RECORDING_VERSION})`, 1);
  return lines;
}

interface Machine {
  kernel: SimKernel;
  /** recorded tag → replay tag, and back */
  fwd: Map<number, number>;
  back: Map<number, number>;
  /** recorded virtual time − replay virtual time (sim recordings) */
  offset: number | null;
}

/** Builds a sim world like the snapshot: maps kexts by bundle id, loads the missing ones, sets retain counts. */
function buildWorld(kexts: LoadedKext[], notes: string[]): Machine {
  const kernel = createSimKernel();
  const fwd = new Map<number, number>();
  const byTag = new Map(kexts.map((k) => [k.loadTag, k]));
  for (const k of [...kexts].sort((a, b) => a.loadTag - b.loadTag)) {
    let tag = kernel.lookup(k.bundleId);
    if (tag === null) {
      try {
        tag = kernel.loadKext({
          bundleId: k.bundleId,
          version: k.version || undefined,
          uuid: /^[0-9A-Fa-f-]{36}$/.test(k.uuid) ? k.uuid : undefined,
          dependencies: k.dependencies.map((d) => byTag.get(d)?.bundleId).filter((d): d is string => d !== undefined),
          classes: k.classes.map((c) => ({ name: c.name, superclass: c.superclass || undefined, instances: c.instances })),
          started: k.started,
        });
      } catch (e) {
        notes.push(`${k.bundleId}: not loaded in the replay world (${(e as Error).message})`);
        continue;
      }
    }
    fwd.set(k.loadTag, tag);
  }
  // Outside retains: the recorded count less what the new world already has (its dependents).
  for (const k of kexts) {
    const tag = fwd.get(k.loadTag);
    if (tag === undefined) continue;
    const now = kernel.loadedKexts().find((x) => x.loadTag === tag)!.retainCount;
    for (let i = now; i < k.retainCount; i++) kernel.kpi.retainKextWithLoadTag(tag);
    if (now > k.retainCount) notes.push(`${k.bundleId}: retain count ${k.retainCount} recorded, ${now} in the replay world (its dependents)`);
  }
  return { kernel, fwd, back: new Map([...fwd].map(([a, b]) => [b, a])), offset: null };
}

const mapTag = (m: Map<number, number>, t: unknown) => (typeof t === 'number' && m.has(t) ? m.get(t)! : t);

/** The comparable form of an answer: what must be the same on a faithful replay. */
function comparable(method: string, v: unknown, back: Map<number, number>): unknown {
  const x = v as Record<string, unknown>;
  if (x && typeof x === 'object' && 'error' in x && x.error) {
    const e = x.error as Record<string, unknown>;
    return { error: { name: e.name, code: e.code ?? null } };
  }
  const r = (x as { result: unknown }).result;
  const counted = (a: Record<string, unknown>) => ({ ok: a.ok, layer: a.layer, name: a.name, code: a.code, loadTag: mapTag(back, a.loadTag), ...('held' in a ? { held: a.held } : {}) });
  switch (method) {
    case 'retain':
    case 'release':
      return counted(r as Record<string, unknown>);
    case 'retainMany':
    case 'releaseMany':
      return (r as Record<string, unknown>[]).map(counted);
    case 'held':
      return (r as { loadTag: number; count: number }[]).map((h) => ({ loadTag: mapTag(back, h.loadTag), count: h.count })).sort((a, b) => Number(a.loadTag) - Number(b.loadTag));
    case 'info': {
      const i = r as Record<string, unknown>;
      return { identifier: i.identifier, version: i.version, protocolVersion: i.protocolVersion, privileged: i.privileged, ledgerCap: i.ledgerCap, loadTag: mapTag(back, i.loadTag) };
    }
    case 'loadedKexts':
      return (r as LoadedKext[])
        .map((k) => ({ bundleId: k.bundleId, loadTag: mapTag(back, k.loadTag), retainCount: k.retainCount, started: k.started, classes: k.classes.map((c) => ({ name: c.name, instances: c.instances })).sort((a, b) => (a.name < b.name ? -1 : 1)) }))
        .sort((a, b) => (a.bundleId < b.bundleId ? -1 : 1));
    default:
      return r;
  }
}

/** Kexts of the replay world that the recording never had (the sim's default world): left out of table comparisons. */
function dropUnrecorded(method: string, got: unknown, recordedIds: Set<string>): unknown {
  if (method !== 'loadedKexts' || !Array.isArray(got)) return got;
  return got.filter((k: { bundleId: string }) => recordedIds.has(k.bundleId));
}

export async function replayRecording(text: string): Promise<ReplayReport> {
  const lines = parseRecording(text);
  const machines = new Map<unknown, Machine>();
  const conns = new Map<number, { kb: KextBridge; m: Machine }>();
  const recordedIds = new Set<string>();
  const report: ReplayReport = { calls: 0, connections: 0, divergences: [], worldNotes: [] };
  try {
    for (const l of lines) {
      const at = l.__line as number;
      if (l.kind === 'open') {
        const kexts = l.kexts as LoadedKext[];
        for (const k of kexts) recordedIds.add(k.bundleId);
        let m = machines.get(l.machine);
        if (!m) {
          m = buildWorld(kexts, report.worldNotes);
          machines.set(l.machine, m);
        }
        if (typeof l.vt === 'number' && m.offset === null) m.offset = l.vt - m.kernel.now;
        const privileged = (l.info as { privileged?: unknown })?.privileged !== false;
        conns.set(l.conn as number, { kb: await open({ backend: 'sim', kernel: m.kernel, privileged, record: false }), m });
        report.connections++;
      } else if (l.kind === 'call') {
        const c = conns.get(l.conn as number);
        if (!c) throw new RecordingError(`a call on connection ${String(l.conn)}, which no "open" line opened`, at);
        const { kb, m } = c;
        if (typeof l.vt === 'number' && m.offset !== null) {
          const due = l.vt - m.offset;
          if (due > m.kernel.now) m.kernel.advance(due - m.kernel.now);
        }
        for (const k of (l.result && l.method === 'loadedKexts' ? (l.result as LoadedKext[]) : [])) recordedIds.add(k.bundleId);
        const method = String(l.method);
        const args = Array.isArray(l.args) ? l.args : [];
        const mapped = method.endsWith('Many') ? [(args[0] as number[]).map((t) => mapTag(m.fwd, t))] : args.map((t) => mapTag(m.fwd, t));
        const target = (l.sync ? kb.sync : kb) as unknown as Record<string, (...a: unknown[]) => unknown>;
        if (typeof target[method] !== 'function') throw new RecordingError(`unknown method ${JSON.stringify(method)}`, at);
        let got: unknown;
        try {
          got = { result: await target[method](...mapped) };
        } catch (e) {
          got = { error: { name: (e as Error).name, code: (e as { code?: number }).code ?? null } };
        }
        report.calls++;
        const expected = comparable(method, l, m.back);
        const actual = dropUnrecorded(method, comparable(method, got, m.back), recordedIds);
        if (JSON.stringify(expected) !== JSON.stringify(actual)) report.divergences.push({ line: at, conn: l.conn as number, method, args, expected, got: actual });
      } else if (l.kind === 'close') {
        const c = conns.get(l.conn as number);
        if (c) await c.kb.close();
      }
    }
  } finally {
    for (const { kb } of conns.values()) await kb.close();
  }
  return report;
}

export async function replayFile(file: string): Promise<ReplayReport> {
  return replayRecording(fs.readFileSync(file, 'utf8'));
}
