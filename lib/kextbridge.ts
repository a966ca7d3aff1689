// The KextBridge class: one connection to the sample kext's user client, real or
// simulated. Each method is one native call; decoding lives in decode.ts, abort handling
// in abortable.ts, and choosing and opening a backend in open.ts.
import { abortable, CallOptions, checkCallOptions } from './abortable';
import { codeValue } from './codes';
import { checkTransport, Counted, counted, decode, decodeHeld, decodeInfo, decodeKexts, decodeMany, refusable, ResultFor } from './decode';
import { callSite, KextBridgeError } from './errors';
import { NativeCallResult, NativeConnection } from './native';
import { OUT, SELECTORS } from './protocol.gen';
import { Held, Info, LoadedKext, ReleaseResult, RetainResult } from './results';
import { SimKernel } from './sim';
import { checkLoadTag, checkLoadTags } from './validate';

/** Which kernel a connection talks to: the simulated one, or the real kext through IOKit (macOS). */
export type Backend = 'sim' | 'iokit';

/** One user-client call: what goes in, and how many outputs to expect. */
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
  /** As {@link KextBridge.info}, on the calling thread. */
  info(): Info;
  /** As {@link KextBridge.retain}, on the calling thread. */
  retain(loadTag?: number): RetainResult;
  /** As {@link KextBridge.release}, on the calling thread. */
  release(loadTag?: number): ReleaseResult;
  /** As {@link KextBridge.retainMany}, on the calling thread. */
  retainMany(loadTags: readonly number[] | Uint32Array): RetainResult[];
  /** As {@link KextBridge.releaseMany}, on the calling thread. */
  releaseMany(loadTags: readonly number[] | Uint32Array): ReleaseResult[];
  /** As {@link KextBridge.held}, on the calling thread. */
  held(): Held[];
  /** As {@link KextBridge.loadedKexts}, on the calling thread. */
  loadedKexts(): LoadedKext[];
}

/**
 * One connection to the sample kext's user client, real (iokit) or simulated (sim). Get one
 * from {@link open}. Calls on a connection run in order on its own worker thread.
 */
export class KextBridge {
  /** Which kernel this connection talks to. */
  readonly backend: Backend;
  /**
   * Why open() chose this backend: 'explicitly requested', or what 'auto' found, e.g. 'no
   * sample kext answers on this machine (kIOReturnNotFound); using the simulated kernel'.
   */
  readonly backendReason: string;
  /** The simulated machine this connection runs on; undefined on the iokit backend. */
  readonly sim: SimKernel | undefined;
  /** The same calls, synchronous: they run on the calling thread after anything already queued. */
  readonly sync: SyncApi;
  /** @internal the addon connection; lifetime tests queue work on it below the library. */
  private readonly conn: NativeConnection;
  private readonly ownLoadTag: number;
  private closing: Promise<void> | undefined;
  /** Output scalars of the sync retain/release fast path (osReturn, heldAfter). */
  private readonly scalarsOut = new Float64Array(SELECTORS.retain.scalarOutputs);

  /** @internal use open() */
  constructor(conn: NativeConnection, backend: Backend, backendReason: string, sim: SimKernel | undefined, ownLoadTag: number) {
    this.conn = conn;
    this.backend = backend;
    this.backendReason = backendReason;
    this.sim = sim;
    this.ownLoadTag = ownLoadTag;
    this.sync = {
      info: () => decodeInfo(this.callSync('getInfo', shape(sel.getInfo)), this.backendReason),
      retain: (...a: [number?]) => this.countedSync('retain', this.tagOf(a[0], a.length)),
      release: (...a: [number?]) => this.countedSync('release', this.tagOf(a[0], a.length)),
      retainMany: (tags) => this.manySync('retain', checkLoadTags(tags)),
      releaseMany: (tags) => this.manySync('release', checkLoadTags(tags)),
      held: () => decodeHeld(this.callSync('held', shape(sel.held))),
      loadedKexts: () => decodeKexts(this.conn.loadedKextsSync()),
    };
  }

  /** The sample kext's identity, this connection's rights, and why open() chose its backend. */
  async info(options?: CallOptions): Promise<Info> {
    return decodeInfo(await this.call('getInfo', shape(sel.getInfo), checkCallOptions(options)), this.backendReason);
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
    return decodeMany('retain', tags, await abortable('retainMany', o, site, () => this.conn.callMany(sel.retainBatch.selector, tags)), site);
  }

  /** Many releases in one trip to the worker thread; one typed result per tag, in order. */
  async releaseMany(loadTags: readonly number[] | Uint32Array, options?: CallOptions): Promise<ReleaseResult[]> {
    const tags = checkLoadTags(loadTags);
    const o = checkCallOptions(options);
    const site = callSite(this.releaseMany);
    return decodeMany('release', tags, await abortable('releaseMany', o, site, () => this.conn.callMany(sel.releaseBatch.selector, tags)), site);
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

  /** @internal test seam: calls that reached the native connection (any method). */
  get _nativeCalls(): number {
    return this.conn._nativeCalls;
  }

  /** @internal test seam: user-client calls (IOConnectCallMethod) this connection has made. */
  get _userClientCalls(): number {
    return this.conn._userClientCalls;
  }

  /**
   * True once close() was called, not once it finished: from then on every call fails
   * with a KextBridgeError (MACH_SEND_INVALID_DEST). Await close() to know calls in flight
   * were answered and what this connection held was released.
   */
  get closed(): boolean {
    return this.conn.closing;
  }

  private tagOf(loadTag: unknown, argc: number): number {
    return argc === 0 || loadTag === undefined ? this.ownLoadTag : checkLoadTag(loadTag);
  }

  private async call(op: string, c: Call, o: CallOptions | undefined): Promise<NativeCallResult> {
    const site = callSite(this.call);
    const start = () => this.conn.call(c.selector, c.scalars, null, c.outScalars, c.outStruct);
    return checkTransport(op, await abortable(op, o, site, start), c.outScalars, site);
  }

  private callSync(op: string, c: Call): NativeCallResult {
    return checkTransport(op, this.conn.callSync(c.selector, c.scalars, null, c.outScalars, c.outStruct), c.outScalars);
  }

  private countedSync<S extends Counted>(op: S, loadTag: number): ResultFor<S> {
    const kr = this.conn.callScalarSync(sel[op].selector, loadTag, this.scalarsOut);
    if (kr !== 0 && !refusable(op, kr)) throw new KextBridgeError(op, kr);
    return decode(op, loadTag, kr, this.scalarsOut[OUT[op].osReturn], this.scalarsOut[OUT[op].heldAfter]) as ResultFor<S>;
  }

  private manySync<S extends Counted>(op: S, tags: Uint32Array): ResultFor<S>[] {
    return decodeMany(op, tags, this.conn.callManySync(sel[`${op}Batch` as const].selector, tags));
  }
}
