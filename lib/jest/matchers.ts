// The matchers of kextbridge/jest. They read the kernel through the same public API a test
// uses (loadedKexts, explain), so what they print is what the test could have asked itself.
import { CodeName, codeValue, describeReturn, isCodeName } from '../codes';
import type { KextBridge } from '../kextbridge';
import type { SimKernel } from '../sim';
import { describeBlocker, Explanation } from '../workflow/explain';
import type { KextHandle } from '../workflow/handle';
import type { Target } from '../workflow/target';

/** The subset of jest's matcher context these matchers use (no dependency on @types/jest). */
export interface MatcherContext {
  isNot: boolean;
  promise?: string;
  utils?: { printReceived(v: unknown): string; printExpected(v: unknown): string };
}
export interface MatcherResult {
  pass: boolean;
  message(): string;
}

/** A kext named on a connection or a simulated kernel, loaded or not (kextRef(kb, 'com.example.driver')). */
export interface KextRef {
  readonly on: KextBridge | SimKernel;
  readonly target: Target;
  readonly [KEXT_REF]: true;
}
const KEXT_REF: unique symbol = Symbol.for('kextbridge.kextRef') as never;

/** What toBeLoaded, toBeUnloadable and toHaveRetainCount accept. */
export type KextSubject = KextHandle | KextRef;

export function kextRef(on: KextBridge | SimKernel, target: Target): KextRef {
  if (!isBridge(on) && !isKernel(on)) throw new TypeError('kextRef(on, target): on must be a KextBridge (from open()) or a SimKernel');
  if (typeof target !== 'number' && typeof target !== 'string') throw new TypeError('kextRef(on, target): target must be a load tag or a bundle id');
  return { on, target, [KEXT_REF]: true };
}

// Duck typing, not instanceof: a test may hold objects from another copy of the library.
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
const isBridge = (v: unknown): v is KextBridge => isObj(v) && typeof v.retain === 'function' && typeof v.backend === 'string' && typeof v.explain === 'function';
const isKernel = (v: unknown): v is SimKernel => isObj(v) && isObj(v.kpi) && typeof v.advance === 'function';
const isHandle = (v: unknown): v is KextHandle => isObj(v) && typeof v.staleness === 'function' && typeof v.loadTag === 'number';
const isRef = (v: unknown): v is KextRef => isObj(v) && (v as Record<symbol, unknown>)[KEXT_REF] === true;

function nameOf(s: KextSubject): string {
  if (isHandle(s)) return `${s.bundleId} (tag ${s.loadTag})`;
  return typeof s.target === 'number' ? `tag ${s.target}` : s.target;
}

async function explainSubject(s: KextSubject): Promise<Explanation> {
  if (isHandle(s)) return s.explain();
  return isBridge(s.on) ? s.on.explain(s.target) : s.on.explain(s.target);
}

function checkSubject(matcher: string, received: unknown): KextSubject {
  if (isHandle(received) || isRef(received)) return received;
  throw new TypeError(
    `${matcher}: expect() needs a KextHandle (await kb.kext(target)) or kextRef(kbOrKernel, target), got ${show(received)}` +
      (isBridge(received) || isKernel(received) ? `; for a connection or a kernel use expect(kb).toHaveLoaded(target)` : ''),
  );
}

function show(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return `an object with keys ${Object.keys(v as object).slice(0, 6).join(', ') || '(none)'}`;
  return `${typeof v} ${String(v).slice(0, 60)}`;
}

/** "kOSKextReturnNotFound (0xDC008006)" with layer and message when known. */
function describeCode(code: number, layer?: string, message?: string): string {
  const d = describeReturn(code >>> 0);
  const where = layer ? `, ${layer} layer` : `, system ${d.systemName}`;
  return `${d.name} (${d.hex}${where}): ${message ?? d.message}`;
}

function expectedCode(expected: unknown): number {
  if (typeof expected === 'string') {
    if (!isCodeName(expected)) throw new TypeError(`toBeOSReturn: ${JSON.stringify(expected)} is not a known return code name (e.g. 'kOSKextReturnNotFound')`);
    return codeValue(expected);
  }
  if (typeof expected === 'number' && Number.isInteger(expected) && expected >= -0x80000000 && expected <= 0xffffffff) return expected >>> 0;
  throw new TypeError(`toBeOSReturn: expected must be a code name or a 32-bit code, got ${show(expected)}`);
}

export function toBeOSReturn(this: MatcherContext, received: unknown, expected: CodeName | number): MatcherResult {
  const want = expectedCode(expected);
  let got: number;
  let layer: string | undefined;
  let message: string | undefined;
  let loadTag: number | undefined;
  if (typeof received === 'number' && Number.isInteger(received) && received >= -0x80000000 && received <= 0xffffffff) got = received >>> 0;
  else if (isObj(received) && typeof received.code === 'number') {
    got = received.code >>> 0;
    layer = typeof received.layer === 'string' ? received.layer : undefined;
    message = typeof received.message === 'string' ? received.message : undefined;
    loadTag = typeof received.loadTag === 'number' ? received.loadTag : undefined;
  } else
    return { pass: false, message: () => `expect(received).toBeOSReturn(expected)\n\nreceived must be a kextbridge result ({ name, code, layer, … }) or a return code, got ${show(received)}` };
  const pass = got === want;
  const wantText = `${describeReturn(want).name} (${describeReturn(want).hex})`;
  const gotText = describeCode(got, layer, message) + (loadTag !== undefined ? ` [tag ${loadTag}]` : '');
  return {
    pass,
    message: () =>
      `expect(received)${this.isNot ? '.not' : ''}.toBeOSReturn(expected)\n\n` +
      `Expected: ${this.isNot ? 'not ' : ''}${wantText}\nReceived: ${gotText}`,
  };
}

export async function toBeLoaded(this: MatcherContext, received: unknown): Promise<MatcherResult> {
  const s = checkSubject('toBeLoaded', received);
  let loaded: boolean;
  let detail: string;
  if (isHandle(s)) {
    const st = await s.staleness();
    loaded = st === null;
    detail = st === null ? 'it is loaded' : st.stale === 'reloaded' ? `it was unloaded and loaded again under tag ${st.currentLoadTag}` : 'it was unloaded';
  } else {
    const e = await explainSubject(s);
    loaded = e.loaded;
    detail = e.loaded ? `it is loaded at tag ${e.loadTag}` : 'no loaded kext has that ' + (typeof s.target === 'number' ? 'load tag' : 'bundle id');
  }
  return { pass: loaded, message: () => `expected ${nameOf(s)} ${this.isNot ? 'not ' : ''}to be loaded, but ${detail}` };
}

/** expect(kbOrKernel).toHaveLoaded(target): the same as toBeLoaded on kextRef(kbOrKernel, target). */
export async function toHaveLoaded(this: MatcherContext, received: unknown, target: Target): Promise<MatcherResult> {
  if (!isBridge(received) && !isKernel(received))
    throw new TypeError(`toHaveLoaded: expect() needs a KextBridge or a SimKernel, got ${show(received)}`);
  return toBeLoaded.call(this, kextRef(received, target));
}

export async function toBeUnloadable(this: MatcherContext, received: unknown): Promise<MatcherResult> {
  const s = checkSubject('toBeUnloadable', received);
  const e = await explainSubject(s);
  const name = nameOf(s);
  return {
    pass: e.unloadable,
    message: () =>
      !e.loaded
        ? `expected ${name} ${this.isNot ? 'not ' : ''}to be unloadable, but it is not loaded`
        : e.unloadable
          ? `expected ${name} not to be unloadable, but nothing holds it (an explicit unload would succeed)`
          : `expected ${name} to be unloadable, but ${e.blockers.length} blocker${e.blockers.length === 1 ? '' : 's'}:\n` +
            e.blockers.map((b) => `  - ${describeBlocker(b)}`).join('\n'),
  };
}

export async function toHaveRetainCount(this: MatcherContext, received: unknown, n: number): Promise<MatcherResult> {
  const s = checkSubject('toHaveRetainCount', received);
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) throw new TypeError(`toHaveRetainCount: n must be a non-negative integer, got ${show(n)}`);
  const e = await explainSubject(s);
  const name = nameOf(s);
  if (!e.loaded) return { pass: false, message: () => `expected ${name} to have retain count ${this.isNot ? 'other than ' : ''}${n}, but it is not loaded` };
  // OSBundleRetainCount is the outside retains plus the dependents (explain splits them).
  let retained = 0;
  let dependents = 0;
  for (const b of e.blockers) {
    if (b.kind === 'retained') retained = b.count;
    if (b.kind === 'dependents') dependents = b.kexts.length;
  }
  const count = retained + dependents;
  const held = e.blockers.find((b) => b.kind === 'retained');
  const why = count === 0 ? '' : ` (${[retained ? `${retained} retain${retained === 1 ? '' : 's'}${held && held.kind === 'retained' ? `, ${held.heldByThisConnection} by this connection` : ''}` : '', dependents ? `${dependents} dependent${dependents === 1 ? '' : 's'}` : ''].filter(Boolean).join('; ')})`;
  return {
    pass: count === n,
    message: () => `expected ${name} to have retain count (OSBundleRetainCount) ${this.isNot ? 'other than ' : ''}${n}, but it has ${count}${why}`,
  };
}

export const matchers = { toBeOSReturn, toBeLoaded, toHaveLoaded, toBeUnloadable, toHaveRetainCount };
