import { codeValue, describeReturn } from './codes';
import { callSite, CallSite, KextBridgeError } from './errors';
import { binding, isOpenFailure, NativeCallResult, NativeConnection, NativeKext, NativeManyResult } from './native';
import { LIMITS, PROTOCOL_VERSION, SELECTORS } from './protocol.gen';
import { Held, Info, LoadedKext, ReleaseResult, RetainResult } from './results';
import { defaultSimKernel, SimKernel } from './sim';
import { checkBoolean, checkLoadTag, checkLoadTags, checkOneOf, checkOptions } from './validate';

export type Backend = 'sim' | 'iokit';

export interface OpenOptions {
  /** 'auto' (default): iokit where the sample kext answers, else the simulator. */
  backend?: 'auto' | Backend;
  /** sim only: the simulated machine to open on (default: the process's own). */
  kernel?: SimKernel;
  /** sim only: open as an administrator (default true), like running as root. */
  privileged?: boolean;
}

/**
 * Per-call options of KextBridge's async methods.
 *
 * Aborting stops the wait, not the kernel call: a call already queued still runs on the
 * connection's worker (calls keep their order, and a kernel call cannot be interrupted), so
 * an aborted retain may still take effect. The ledger lives in the user client: held()
 * tells the truth, and close() releases whatever the connection holds. A signal that is
 * already aborted rejects before anything is queued.
 */
export interface CallOptions {
  /** When it aborts, the call rejects with an Error named 'AbortError' whose cause is signal.reason. */
  signal?: AbortSignal;
  /** Milliseconds (finite, ≥ 0) to wait before rejecting with an 'AbortError' (cause: a 'TimeoutError'). */
  timeout?: number;
}

type Counted = 'retain' | 'release';
type ResultFor<S extends Counted> = S extends 'retain' ? RetainResult : ReleaseResult;
type Call = { selector: number; scalars: number[]; outScalars: number; outStruct: number };

const sel = SELECTORS;
const shape = (s: (typeof SELECTORS)[keyof typeof SELECTORS], scalars: number[] = []): Call => ({
  selector: s.selector,
  scalars,
  outScalars: s.scalarOutputs,
  outStruct: s.structOutputSize,
});

/** The same operations as KextBridge, run on the calling thread (after anything queued). */
export interface SyncApi {
  info(): Info;
  retain(loadTag?: number): RetainResult;
  release(loadTag?: number): ReleaseResult;
  retainMany(loadTags: readonly number[] | Uint32Array): RetainResult[];
  releaseMany(loadTags: readonly number[] | Uint32Array): ReleaseResult[];
  held(): Held[];
  loadedKexts(): LoadedKext[];
}

export class KextBridge {
  readonly backend: Backend;
  /** The simulated machine this connection runs on; undefined on the iokit backend. */
  readonly sim: SimKernel | undefined;
  readonly sync: SyncApi;
  private readonly conn: NativeConnection;
  private readonly ownLoadTag: number;
  private closing: Promise<void> | undefined;
  /** Output scalars of the sync retain/release fast path (osReturn, heldAfter). */
  private readonly scalarsOut = new Float64Array(2);

  /** @internal use open() */
  constructor(conn: NativeConnection, backend: Backend, sim: SimKernel | undefined, ownLoadTag: number) {
    this.conn = conn;
    this.backend = backend;
    this.sim = sim;
    this.ownLoadTag = ownLoadTag;
    this.sync = {
      info: () => decodeInfo(this.callSync('getInfo', shape(sel.getInfo))),
      retain: (...a: [number?]) => this.countedSync('retain', this.tagOf(a[0], a.length)),
      release: (...a: [number?]) => this.countedSync('release', this.tagOf(a[0], a.length)),
      retainMany: (tags) => this.manySync('retain', checkLoadTags(tags)),
      releaseMany: (tags) => this.manySync('release', checkLoadTags(tags)),
      held: () => decodeHeld(this.callSync('held', shape(sel.held))),
      loadedKexts: () => decodeKexts(this.conn.loadedKextsSync()),
    };
  }

  /** The sample kext's identity and this connection's rights. */
  async info(options?: CallOptions): Promise<Info> {
    return decodeInfo(await this.call('getInfo', shape(sel.getInfo), checkCallOptions(options)));
  }

  /** OSKextRetainKextWithLoadTag, counted in this connection's ledger. Default: the sample kext. */
  async retain(loadTag?: number, options?: CallOptions): Promise<RetainResult> {
    const tag = this.tagOf(loadTag, arguments.length);
    const o = checkCallOptions(options);
    return counted('retain', tag, await this.call('retain', shape(sel.retain, [tag]), o)) as RetainResult;
  }

  /** OSKextReleaseKextWithLoadTag, only for what this connection retained. Default: the sample kext. */
  async release(loadTag?: number, options?: CallOptions): Promise<ReleaseResult> {
    const tag = this.tagOf(loadTag, arguments.length);
    const o = checkCallOptions(options);
    return counted('release', tag, await this.call('release', shape(sel.release, [tag]), o)) as ReleaseResult;
  }

  /** Many retains in one trip to the worker thread; one typed result per tag, in order. */
  async retainMany(loadTags: readonly number[] | Uint32Array, options?: CallOptions): Promise<RetainResult[]> {
    const tags = checkLoadTags(loadTags);
    const o = checkCallOptions(options);
    const site = callSite(this.retainMany);
    return this.decodeMany('retain', tags, await abortable('retainMany', o, site, () => this.conn.callMany(sel.retainBatch.selector, tags)), site);
  }

  async releaseMany(loadTags: readonly number[] | Uint32Array, options?: CallOptions): Promise<ReleaseResult[]> {
    const tags = checkLoadTags(loadTags);
    const o = checkCallOptions(options);
    const site = callSite(this.releaseMany);
    return this.decodeMany('release', tags, await abortable('releaseMany', o, site, () => this.conn.callMany(sel.releaseBatch.selector, tags)), site);
  }

  /** What this connection holds: [{ loadTag, count }]. */
  async held(options?: CallOptions): Promise<Held[]> {
    return decodeHeld(await this.call('held', shape(sel.held), checkCallOptions(options)));
  }

  /** The loaded-kext table (KextManagerCopyLoadedKextInfo on a Mac). */
  async loadedKexts(options?: CallOptions): Promise<LoadedKext[]> {
    const o = checkCallOptions(options);
    const site = callSite(this.loadedKexts);
    return decodeKexts(await abortable('loadedKexts', o, site, () => this.conn.loadedKexts()), site);
  }

  /** Waits for calls in flight, then closes, releasing what this connection holds. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.conn.close().then(({ kr }) => {
      if (kr !== 0 && kr !== codeValue('MACH_SEND_INVALID_DEST')) throw new KextBridgeError('close', kr);
    });
    return this.closing;
  }

  get closed(): boolean {
    return this.conn.closed;
  }

  private tagOf(loadTag: unknown, argc: number): number {
    return argc === 0 || loadTag === undefined ? this.ownLoadTag : checkLoadTag(loadTag);
  }

  private async call(op: string, c: Call, o: CallOptions | undefined): Promise<NativeCallResult> {
    const site = callSite(this.call);
    const start = () => this.conn.call(c.selector, c.scalars, null, c.outScalars, c.outStruct);
    return checkTransport(op, await abortable(op, o, site, start), c, site);
  }

  private callSync(op: string, c: Call): NativeCallResult {
    return checkTransport(op, this.conn.callSync(c.selector, c.scalars, null, c.outScalars, c.outStruct), c);
  }

  private countedSync<S extends Counted>(op: S, loadTag: number): ResultFor<S> {
    const kr = this.conn.callScalarSync(sel[op].selector, loadTag, this.scalarsOut);
    if (kr !== 0 && !refusable(op, kr)) throw new KextBridgeError(op, kr);
    return decode(op, loadTag, kr, this.scalarsOut[0], this.scalarsOut[1]) as ResultFor<S>;
  }

  private manySync<S extends Counted>(op: S, tags: Uint32Array): ResultFor<S>[] {
    return this.decodeMany(op, tags, this.conn.callManySync(sel[`${op}Batch` as const].selector, tags));
  }

  private decodeMany<S extends Counted>(op: S, tags: Uint32Array, r: NativeManyResult, site?: CallSite): ResultFor<S>[] {
    if (r.kr !== 0) throw new KextBridgeError(`${op}Many`, r.kr, undefined, site);
    const out: (RetainResult | ReleaseResult)[] = [];
    for (let i = 0; i < tags.length; i++) {
      const kr = r.results[i * 3];
      if (kr !== 0 && !refusable(op, kr)) throw new KextBridgeError(`${op}Many`, kr, `${describeReturn(kr).message} (tag ${tags[i]})`, site);
      out.push(decode(op, tags[i], kr, r.results[i * 3 + 1], r.results[i * 3 + 2]));
    }
    return out as ResultFor<S>[];
  }
}

/** Longest timer Node keeps (2^31 - 1 ms, about 24.8 days); beyond it setTimeout fires at once. */
const MAX_TIMEOUT = 0x7fffffff;

function checkCallOptions(options: unknown): CallOptions | undefined {
  if (options === undefined) return undefined;
  const o = checkOptions('options', options, ['signal', 'timeout']);
  const { signal, timeout } = o; // each read once
  if (signal !== undefined && !isAbortSignal(signal))
    throw new TypeError(`options.signal must be an AbortSignal, got ${signal === null ? 'null' : typeof signal}`);
  if (timeout !== undefined) {
    if (typeof timeout !== 'number') throw new TypeError(`options.timeout must be a number of milliseconds, got ${typeof timeout}`);
    if (!Number.isFinite(timeout) || timeout < 0 || timeout > MAX_TIMEOUT)
      throw new RangeError(`options.timeout must be a finite number of milliseconds from 0 to ${MAX_TIMEOUT}, got ${timeout}`);
  }
  return signal === undefined && timeout === undefined ? undefined : { signal, timeout } as CallOptions;
}

/** Node's AbortSignal, or one from another realm or a polyfill with the same surface. */
function isAbortSignal(v: unknown): v is AbortSignal {
  if (typeof AbortSignal === 'function' && v instanceof AbortSignal) return true;
  if (v === null || typeof v !== 'object') return false;
  const s = v as Partial<AbortSignal>;
  return typeof s.aborted === 'boolean' && typeof s.addEventListener === 'function' && typeof s.removeEventListener === 'function';
}

/** Like Node's own APIs: name 'AbortError', code 'ABORT_ERR', cause the abort's reason. */
function abortError(op: string, reason: unknown, site: CallSite): Error {
  // Duck-typed: a DOMException may come from another realm (vm contexts, jest).
  const r = reason as { name?: unknown; message?: unknown } | null;
  const timedOut = typeof r === 'object' && r !== null && r.name === 'TimeoutError' && typeof r.message === 'string';
  const err = new Error(`${op}: ${timedOut ? r.message : 'the operation was aborted'}`, { cause: reason });
  err.name = 'AbortError';
  (err as Error & { code: string }).code = 'ABORT_ERR';
  if (site.stack) err.stack = `${err.name}: ${err.message}\n${site.stack.slice(site.stack.indexOf('\n') + 1)}`;
  return err;
}

function timeoutReason(ms: number): Error {
  return new DOMException(`timed out after ${ms} ms`, 'TimeoutError');
}

/**
 * Starts a native call unless `o.signal` is already aborted; stops waiting for it when the
 * signal aborts or the timeout passes. The native call itself runs to completion either way
 * (its answer is then dropped): what it did is visible in held().
 */
function abortable<T>(op: string, o: CallOptions | undefined, site: CallSite, start: () => Promise<T>): Promise<T> {
  if (o === undefined) return start();
  const { signal, timeout } = o;
  if (signal?.aborted) return Promise.reject(abortError(op, signal.reason, site));
  return new Promise<T>((resolve, reject) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const onAbort = () => {
      done();
      reject(abortError(op, signal!.reason, site));
    };
    const done = () => {
      if (timer !== undefined) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    start().then(
      (v) => {
        done();
        resolve(v);
      },
      (e: unknown) => {
        done();
        reject(e);
      },
    );
    signal?.addEventListener('abort', onAbort, { once: true });
    if (timeout !== undefined) {
      timer = setTimeout(() => {
        done();
        reject(abortError(op, timeoutReason(timeout), site));
      }, timeout);
      timer.unref?.(); // the call in flight keeps the process alive, not its deadline
    }
  });
}

/**
 * describeReturn, computed once per code: it builds strings, and every retain/release result
 * (each tag of a batch too) decodes one. Internal only: callers never see the shared object.
 */
const described = new Map<number, ReturnType<typeof describeReturn>>();
function describe(code: number): ReturnType<typeof describeReturn> {
  let d = described.get(code);
  if (d === undefined) {
    d = describeReturn(code);
    if (described.size < 256) described.set(code, d); // bounded: any 32-bit code may arrive
  }
  return d;
}

/** Refusals the user client may answer for this selector, per the selector table. */
function refusable(op: Counted, kr: number): boolean {
  return (sel[op].userClientCodes as readonly string[]).includes(describe(kr).name);
}

function checkTransport(op: string, r: NativeCallResult, c: Call, site?: CallSite): NativeCallResult {
  if (r.kr === 0) {
    if (r.scalars.length !== c.outScalars)
      throw new KextBridgeError(op, codeValue('kIOReturnBadArgument'), `the user client answered ${r.scalars.length} scalars, expected ${c.outScalars}`, site);
    return r;
  }
  if ((op === 'retain' || op === 'release') && refusable(op, r.kr)) return r;
  throw new KextBridgeError(op, r.kr, undefined, site);
}

function counted(op: Counted, loadTag: number, r: NativeCallResult): RetainResult | ReleaseResult {
  return decode(op, loadTag, r.kr, Number(r.scalars[0] ?? 0), Number(r.scalars[1] ?? 0));
}

/** A user-client refusal (kr), or the kernel's answer (osReturn) with the held count. */
function decode(op: Counted, loadTag: number, kr: number, osReturn: number, held: number): RetainResult | ReleaseResult {
  if (kr !== 0) {
    const d = describe(kr);
    return { ok: false, layer: 'userclient', name: d.name, code: d.value, message: d.message, loadTag } as RetainResult | ReleaseResult;
  }
  const d = describe(osReturn);
  if (!(sel[op].kernelCodes as readonly string[]).includes(d.name))
    throw new KextBridgeError(op, d.value, `the kernel answered ${d.name}, which ${op} cannot produce: ${d.message}`);
  if (d.value === 0) return { ok: true, layer: 'kernel', name: 'kOSReturnSuccess', code: 0, message: d.message, loadTag, held };
  return { ok: false, layer: 'kernel', name: d.name, code: d.value, message: d.message, loadTag, held } as RetainResult | ReleaseResult;
}

function cString(bytes: Buffer): string {
  const end = bytes.indexOf(0);
  return bytes.subarray(0, end < 0 ? bytes.length : end).toString('utf8');
}

function decodeInfo(r: NativeCallResult): Info {
  const n = LIMITS.infoStringSize;
  return {
    protocolVersion: Number(r.scalars[0]),
    loadTag: Number(r.scalars[1]),
    privileged: r.scalars[2] === 1,
    ledgerCap: Number(r.scalars[3]),
    identifier: cString(r.struct.subarray(0, n)),
    version: cString(r.struct.subarray(n, 2 * n)),
  };
}

function decodeHeld(r: NativeCallResult): Held[] {
  const held: Held[] = [];
  for (let off = 0; off + 8 <= r.struct.length; off += 8)
    held.push({ loadTag: r.struct.readUInt32LE(off), count: r.struct.readUInt32LE(off + 4) });
  return held.sort((a, b) => a.loadTag - b.loadTag);
}

function decodeKexts(r: { kr: number; kexts: NativeKext[] }, site?: CallSite): LoadedKext[] {
  if (r.kr !== 0) throw new KextBridgeError('loadedKexts', r.kr, undefined, site);
  return r.kexts;
}

/** Opens a connection to the sample kext's user client, real or simulated. */
export async function open(options?: OpenOptions): Promise<KextBridge> {
  const o = checkOptions('options', options, ['backend', 'kernel', 'privileged']);
  const backend = o.backend === undefined ? 'auto' : checkOneOf('options.backend', o.backend, ['auto', 'sim', 'iokit'] as const);
  if (o.kernel !== undefined && !(o.kernel instanceof SimKernel))
    throw new TypeError('options.kernel must be a SimKernel from createSimKernel()');
  const privileged = o.privileged === undefined ? true : checkBoolean('options.privileged', o.privileged);
  const simOnly = o.kernel !== undefined || o.privileged !== undefined;
  if (backend === 'iokit' && simOnly)
    throw new TypeError('options.kernel and options.privileged apply to the sim backend only');

  const native = binding();
  if (backend === 'iokit' || (backend === 'auto' && !simOnly && native.iokitAvailable)) {
    const conn = native.openIOKit();
    if (!isOpenFailure(conn)) return connect(conn, 'iokit', undefined);
    // 'auto' falls back only where no sample kext is loaded. A kext that is there but does
    // not open (wrong class, sandbox, policy) is an error to see, not a reason to simulate.
    const absent = !native.iokitAvailable || conn.kr === codeValue('kIOReturnNotFound');
    if (backend === 'iokit' || !absent) throw new KextBridgeError('open', conn.kr, iokitHelp(conn.why, native.iokitAvailable));
  }
  const kernel = (o.kernel as SimKernel | undefined) ?? defaultSimKernel();
  const conn = native.openSim(kernel.native, privileged);
  if (isOpenFailure(conn)) throw new KextBridgeError('open', conn.kr, kernel.panicked?.message ?? conn.why);
  return connect(conn, 'sim', kernel);
}

async function connect(conn: NativeConnection, backend: Backend, sim: SimKernel | undefined): Promise<KextBridge> {
  const r = await conn.call(sel.getInfo.selector, [], null, sel.getInfo.scalarOutputs, sel.getInfo.structOutputSize);
  if (r.kr !== 0) {
    await conn.close();
    throw new KextBridgeError('open', r.kr, `the user client did not answer getInfo: ${describeReturn(r.kr).message}`);
  }
  const info = decodeInfo(r);
  if (info.protocolVersion !== PROTOCOL_VERSION) {
    await conn.close();
    throw new KextBridgeError('open', codeValue('kIOReturnUnsupported'),
      `the sample kext speaks protocol ${info.protocolVersion}, this kextbridge speaks ${PROTOCOL_VERSION}: rebuild and reload the kext`);
  }
  return new KextBridge(conn, backend, sim, info.loadTag);
}

/** The native reason already says what to do on a Mac; elsewhere, say where to go. */
function iokitHelp(why: string, available: boolean): string {
  return available ? why : `${why}. Use open({ backend: 'sim' }) here, or run on the test Mac (docs/mac.md).`;
}


