// Native answers into typed results: which codes are refusals and which are transport
// failures, per the selector table, and the byte layouts of the struct outputs.
import { codeValue, describeReturn } from './codes';
import { CallSite, KextBridgeError } from './errors';
import { NativeCallResult, NativeKext, NativeManyResult } from './native';
import { BATCH_RESULT, HELD_ENTRY, LIMITS, OUT, SELECTORS } from './protocol.gen';
import { BatchTagFailure, Held, Info, LoadedKext, ReleaseResult, RetainResult } from './results';

const sel = SELECTORS;

/** The selectors whose answers count in the ledger. */
export type Counted = 'retain' | 'release';
export type ResultFor<S extends Counted> = S extends 'retain' ? RetainResult : ReleaseResult;

/**
 * describeReturn, computed once per code: it builds strings, and every retain/release result
 * (each tag of a batch too) decodes one. Internal only: callers never see the shared object.
 */
const described = new Map<number, ReturnType<typeof describeReturn>>();
function describeCached(code: number): ReturnType<typeof describeReturn> {
  let d = described.get(code);
  if (d === undefined) {
    d = describeReturn(code);
    if (described.size < 256) described.set(code, d); // bounded: any 32-bit code may arrive
  }
  return d;
}

/** Refusals the user client may answer for this selector, per the selector table. */
export function refusable(op: Counted, kr: number): boolean {
  return (sel[op].userClientCodes as readonly string[]).includes(describeCached(kr).name);
}

/** The answer itself, or a KextBridgeError for a transport failure or a malformed answer. */
export function checkTransport(op: string, r: NativeCallResult, outScalars: number, site?: CallSite): NativeCallResult {
  if (r.kr === 0) {
    if (r.scalars.length !== outScalars)
      throw new KextBridgeError(op, codeValue('kIOReturnBadArgument'), `the user client answered ${r.scalars.length} scalars, expected ${outScalars}`, site);
    return r;
  }
  if ((op === 'retain' || op === 'release') && refusable(op, r.kr)) return r;
  throw new KextBridgeError(op, r.kr, undefined, site);
}

export function counted(op: Counted, loadTag: number, r: NativeCallResult): RetainResult | ReleaseResult {
  const o = OUT[op];
  // A refusal has no outputs (MIG drops them): its held count is the one the addon asked the
  // user client for right after, in the same turn on the connection's queue.
  if (r.kr !== 0) return decode(op, loadTag, r.kr, 0, r.held ?? NaN);
  return decode(op, loadTag, r.kr, Number(r.scalars[o.osReturn] ?? 0), Number(r.scalars[o.heldAfter] ?? 0));
}

/**
 * kb.sync's retain or release: the fast path's packed answer (NativeConnection.bindSync)
 * unpacked into its typed result, or a KextBridgeError for a refusal the op cannot have.
 */
export function decodeSync<S extends Counted>(op: S, loadTag: number, r: number, heldSpan: number): ResultFor<S> {
  if (r >= 0 && r < heldSpan) return succeeded(loadTag, r) as ResultFor<S>; // kOSReturnSuccess, held r
  if (r >= 0) {
    const held = r % heldSpan;
    return decode(op, loadTag, 0, (r - held) / heldSpan, held) as ResultFor<S>;
  }
  const v = -1 - r;
  const h = v % heldSpan;
  const kr = (v - h) / heldSpan;
  if (!refusable(op, kr)) throw new KextBridgeError(op, kr);
  return decode(op, loadTag, kr, 0, h === 0 ? NaN : h - 1) as ResultFor<S>;
}

let successMessage: string | undefined;

/** The common answer, without the code table (kOSReturnSuccess is in both KPIs' kernelCodes). */
function succeeded(loadTag: number, held: number): RetainResult | ReleaseResult {
  return { ok: true, layer: 'kernel', name: 'kOSReturnSuccess', code: 0, message: (successMessage ??= describeReturn(0).message), loadTag, held };
}

/**
 * A user-client refusal (kr), or the kernel's answer (osReturn) with the held count. For a
 * refusal `held` is the ledger's count on the tag when the user client said it, NaN when not
 * (then the result has no `held`).
 */
export function decode(op: Counted, loadTag: number, kr: number, osReturn: number, held: number): RetainResult | ReleaseResult {
  if (kr !== 0) {
    const d = describeCached(kr);
    const r = { ok: false, layer: 'userclient', name: d.name, code: d.value, message: d.message, loadTag } as RetainResult | ReleaseResult;
    if (!Number.isNaN(held)) r.held = held;
    return r;
  }
  if (osReturn === 0) return succeeded(loadTag, held);
  const d = describeCached(osReturn);
  if (!(sel[op].kernelCodes as readonly string[]).includes(d.name))
    throw new KextBridgeError(op, d.value, `the kernel answered ${d.name}, which ${op} cannot produce: ${d.message}`);
  if (d.value === 0) return { ok: true, layer: 'kernel', name: 'kOSReturnSuccess', code: 0, message: d.message, loadTag, held };
  return { ok: false, layer: 'kernel', name: d.name, code: d.value, message: d.message, loadTag, held } as RetainResult | ReleaseResult;
}

/** What one tag of a batch came to: its typed result, or why it has none. */
function decodeTag(op: Counted, loadTag: number, kr: number, osReturn: number, held: number): RetainResult | ReleaseResult | BatchTagFailure {
  if (kr !== 0 && !refusable(op, kr)) {
    // The chunk carrying the tag failed, or the user client stopped before it: never run.
    const d = describeCached(kr);
    return { ok: false, layer: 'not-run', name: d.name, code: d.value, message: d.message, loadTag };
  }
  if (kr === 0 && osReturn !== 0 && !(sel[op].kernelCodes as readonly string[]).includes(describeCached(osReturn).name)) {
    const d = describeCached(osReturn);
    return { ok: false, layer: 'unexpected', name: d.name, code: d.value, message: `the kernel answered ${d.name}, which ${op} cannot produce: ${d.message}`, loadTag };
  }
  return decode(op, loadTag, kr, osReturn, held);
}

function decodeRange(op: Counted, tags: Uint32Array, results: Float64Array, from: number, to: number, out: (RetainResult | ReleaseResult | BatchTagFailure)[]): number {
  let firstFailure = -1;
  for (let i = from; i < to; i++) {
    const at = i * BATCH_RESULT.stride;
    const t = decodeTag(op, tags[i], results[at + BATCH_RESULT.kr], results[at + BATCH_RESULT.osReturn], results[at + BATCH_RESULT.heldAfter]);
    if (firstFailure < 0 && (t.layer === 'not-run' || t.layer === 'unexpected')) firstFailure = i;
    out[i] = t;
  }
  return firstFailure;
}

/**
 * The batch's answer once every tag is decoded: the typed results, or (when some tag has none:
 * the batch was interrupted by a stopped user client, a failed chunk or a kernel answer the KPI
 * cannot produce) a KextBridgeError whose `results` still carries every tag's outcome in
 * order, so nothing that already happened is lost.
 */
function finish<S extends Counted>(op: S, out: (RetainResult | ReleaseResult | BatchTagFailure)[], failure: number, site?: CallSite): ResultFor<S>[] {
  if (failure < 0) return out as ResultFor<S>[];
  const f = out[failure] as BatchTagFailure;
  const answered = out.filter((r) => r.layer !== 'not-run').length;
  throw new KextBridgeError(
    `${op}Many`,
    f.code,
    `${f.layer === 'not-run' ? f.message : f.message} (tag ${f.loadTag}, index ${failure}); ${answered} of ${out.length} tags were answered, ${out.length - answered} never ran: error.results has each tag's outcome`,
    site,
    out,
  );
}

/** Tags decoded per turn of the event loop for a big batch (decodeManyAsync). */
export const DECODE_CHUNK = 4096;
// Captured at load: a test's fake timers must not be able to stall a batch's decoding.
const yieldTurn: () => Promise<void> = ((si) => () => new Promise<void>((resolve) => si(resolve)))(setImmediate);

/** Every tag not run, for a batch refused as a whole (a closed connection). */
function notRun<S extends Counted>(op: S, tags: Uint32Array, kr: number, site?: CallSite): never {
  const d = describeCached(kr);
  const out = Array.from(tags, (loadTag): BatchTagFailure => ({ ok: false, layer: 'not-run', name: d.name, code: d.value, message: d.message, loadTag }));
  throw new KextBridgeError(`${op}Many`, kr, undefined, site, out);
}

/** One typed result per tag, in order (sync: all at once). See finish() for an interrupted batch. */
export function decodeMany<S extends Counted>(op: S, tags: Uint32Array, r: NativeManyResult, site?: CallSite): ResultFor<S>[] {
  if (r.kr !== 0) notRun(op, tags, r.kr, site);
  const out = new Array<RetainResult | ReleaseResult | BatchTagFailure>(tags.length);
  return finish(op, out, decodeRange(op, tags, r.results, 0, tags.length, out), site);
}

/**
 * As decodeMany, for the async calls: a batch above DECODE_CHUNK tags is decoded a chunk per
 * turn of the event loop (setImmediate between chunks), so timers and I/O run meanwhile.
 */
export async function decodeManyAsync<S extends Counted>(op: S, tags: Uint32Array, r: NativeManyResult, site?: CallSite): Promise<ResultFor<S>[]> {
  if (r.kr !== 0) notRun(op, tags, r.kr, site);
  const out = new Array<RetainResult | ReleaseResult | BatchTagFailure>(tags.length);
  let failure = -1;
  for (let from = 0; from < tags.length; from += DECODE_CHUNK) {
    if (from > 0) await yieldTurn();
    const f = decodeRange(op, tags, r.results, from, Math.min(tags.length, from + DECODE_CHUNK), out);
    if (failure < 0) failure = f;
  }
  return finish(op, out, failure, site);
}

function cString(bytes: Buffer): string {
  const end = bytes.indexOf(0);
  return bytes.subarray(0, end < 0 ? bytes.length : end).toString('utf8');
}

/** getInfo's answer, with the connection's backend reason (which the kext cannot know). */
export function decodeInfo(r: NativeCallResult, backendReason: string): Info {
  const n = LIMITS.infoStringSize;
  const o = OUT.getInfo;
  return {
    protocolVersion: Number(r.scalars[o.protocolVersion]),
    loadTag: Number(r.scalars[o.ownLoadTag]),
    privileged: r.scalars[o.privileged] === 1,
    ledgerCap: Number(r.scalars[o.ledgerCap]),
    identifier: cString(r.struct.subarray(0, n)),
    version: cString(r.struct.subarray(n, 2 * n)),
    backendReason,
  };
}

export function decodeHeld(r: NativeCallResult): Held[] {
  const held: Held[] = [];
  const { size, loadTag, count } = HELD_ENTRY;
  for (let off = 0; off + size <= r.struct.length; off += size)
    held.push({ loadTag: r.struct.readUInt32LE(off + 4 * loadTag), count: r.struct.readUInt32LE(off + 4 * count) });
  return held.sort((a, b) => a.loadTag - b.loadTag);
}

export function decodeKexts(r: { kr: number; kexts: NativeKext[] }, site?: CallSite): LoadedKext[] {
  if (r.kr !== 0) throw new KextBridgeError('loadedKexts', r.kr, undefined, site);
  return r.kexts;
}
