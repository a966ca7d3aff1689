// The KextBridge class: one connection to the sample kext's user client, real or
// simulated. Each method is one native call; decoding lives in decode.ts, abort handling
// in abortable.ts, and choosing and opening a backend in open.ts.
import { abortable, CallOptions, checkCallOptions } from './abortable';
import { codeValue } from './codes';
import { checkTransport, Counted, counted, decodeHeld, decodeInfo, decodeKexts, decodeMany, decodeManyAsync, decodeSync, ResultFor } from './decode';
import { callSite, KextBridgeError } from './errors';
import { binding, NativeCallResult, NativeConnection } from './native';
import { OUT, SELECTORS } from './protocol.gen';
import { BatchTagFailure, Held, Info, LoadedKext, ReleaseResult, RetainResult } from './results';
import { SimKernel } from './sim';
import { checkLoadTag, checkLoadTags } from './validate';
import type { Explanation, UserClient } from './workflow/explain';
import type { KextHandle } from './workflow/handle';
import type { WaitOptions, WaitResult } from './workflow/wait';
import type { WatchEvent, WatchOptions } from './workflow/watch';
import { Workflow } from './workflow/workflow';
import type { LifecycleOptions, LoadResult, UnloadResult } from './lifecycle/results';
import { checkWaitOptions } from './workflow/wait';
import { checkTarget } from './workflow/target';
import { checkBundleId, checkRequestOptions, decodeLoadKext, encodeBundleId, LoadKextResult, OwnRequest, PendingRequest, RequestOptions, ResourceResult } from './requests';
import { checkCString } from './validate';
import { LIMITS } from './protocol.gen';

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
  /** As {@link KextBridge.loadKext}, on the calling thread. */
  loadKext(bundleId: string): LoadKextResult;
}

/** Objects the KextBridge constructor made: methods check it, so a detached method or an object
 * posing as a connection gets a clear TypeError instead of "Cannot read properties of …". */
const made = new WeakSet<object>();

function own(self: unknown, op: string): KextBridge {
  if (typeof self === 'object' && self !== null && made.has(self)) return self as KextBridge;
  throw new TypeError(`KextBridge.${op}() must be called on a connection from open(), got ${self === undefined ? 'undefined' : self === null ? 'null' : typeof self === 'object' ? 'another object' : typeof self} as this (methods are not bound: call kb.${op}(…), or pass kb.${op}.bind(kb))`);
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
  readonly conn: NativeConnection;
  private readonly ownLoadTag: number;
  private closing: Promise<void> | undefined;
  /** kext(), explain(), the waits and watch() (lib/workflow/). */
  private readonly wf: Workflow = new Workflow(this);

  /** @internal use open() */
  constructor(conn: NativeConnection, backend: Backend, backendReason: string, sim: SimKernel | undefined, ownLoadTag: number) {
    if (!(conn instanceof binding().Connection)) throw new TypeError('KextBridge cannot be constructed without a native connection: use open()');
    made.add(this);
    this.conn = conn;
    this.backend = backend;
    this.backendReason = backendReason;
    this.sim = sim;
    this.ownLoadTag = ownLoadTag;
    // The sync retain/release fast path: native functions bound to this connection, each
    // answering one packed Number (README "Performance").
    const fast = conn.bindSync();
    const span = fast.heldSpan;
    this.sync = {
      info: () => decodeInfo(this.callSync('getInfo', shape(sel.getInfo)), this.backendReason),
      retain: (loadTag?: number) => {
        const tag = loadTag === undefined ? this.ownLoadTag : checkLoadTag(loadTag);
        return this.reported('retain', decodeSync('retain', tag, fast.retain(tag), span));
      },
      release: (loadTag?: number) => {
        const tag = loadTag === undefined ? this.ownLoadTag : checkLoadTag(loadTag);
        return this.reported('release', decodeSync('release', tag, fast.release(tag), span));
      },
      retainMany: (tags) => this.manySync('retain', checkLoadTags(tags)),
      releaseMany: (tags) => this.manySync('release', checkLoadTags(tags)),
      held: () => decodeHeld(this.callSync('held', shape(sel.held))),
      loadedKexts: () => decodeKexts(this.conn.loadedKextsSync()),
      loadKext: (bundleId: string) => {
        own(this, 'sync.loadKext');
        const id = checkBundleId(bundleId);
        const r = decodeLoadKext(id, this.conn.callSync(sel.loadKextWithIdentifier.selector, [], encodeBundleId(id), sel.loadKextWithIdentifier.scalarOutputs, 0));
        return r.ok ? { ...r, loadTag: decodeKexts(this.conn.loadedKextsSync()).find((k) => k.bundleId === id)?.loadTag ?? null } : r;
      },
    };
  }

  /** The sample kext's identity, this connection's rights, and why open() chose its backend. */
  async info(options?: CallOptions): Promise<Info> {
    own(this, 'info');
    return decodeInfo(await this.call('getInfo', shape(sel.getInfo), checkCallOptions(options)), this.backendReason);
  }

  /** OSKextRetainKextWithLoadTag, counted in this connection's ledger. Default: the sample kext. */
  async retain(loadTag?: number, options?: CallOptions): Promise<RetainResult> {
    own(this, 'retain');
    const tag = this.tagOf(loadTag, arguments.length);
    const o = checkCallOptions(options);
    return this.reported('retain', counted('retain', tag, await this.call('retain', shape(sel.retain, [tag]), o)) as RetainResult);
  }

  /** OSKextReleaseKextWithLoadTag, only for what this connection retained. Default: the sample kext. */
  async release(loadTag?: number, options?: CallOptions): Promise<ReleaseResult> {
    own(this, 'release');
    const tag = this.tagOf(loadTag, arguments.length);
    const o = checkCallOptions(options);
    return this.reported('release', counted('release', tag, await this.call('release', shape(sel.release, [tag]), o)) as ReleaseResult);
  }

  /**
   * Many retains in one trip to the worker thread; one typed result per tag, in order. At most
   * 65,536 tags per call (a RangeError beyond; split longer lists).
   */
  async retainMany(loadTags: readonly number[] | Uint32Array, options?: CallOptions): Promise<RetainResult[]> {
    own(this, 'retainMany');
    const tags = checkLoadTags(loadTags);
    const o = checkCallOptions(options);
    const site = callSite(this.retainMany);
    const r = await abortable('retainMany', o, site, () => this.conn.callMany(sel.retainBatch.selector, tags));
    return this.reportedMany('retain', () => decodeManyAsync('retain', tags, r, site));
  }

  /** Many releases in one trip to the worker thread; one typed result per tag, in order. */
  async releaseMany(loadTags: readonly number[] | Uint32Array, options?: CallOptions): Promise<ReleaseResult[]> {
    own(this, 'releaseMany');
    const tags = checkLoadTags(loadTags);
    const o = checkCallOptions(options);
    const site = callSite(this.releaseMany);
    const r = await abortable('releaseMany', o, site, () => this.conn.callMany(sel.releaseBatch.selector, tags));
    return this.reportedMany('release', () => decodeManyAsync('release', tags, r, site));
  }

  /** What this connection holds: [{ loadTag, count }]. */
  async held(options?: CallOptions): Promise<Held[]> {
    own(this, 'held');
    return decodeHeld(await this.call('held', shape(sel.held), checkCallOptions(options)));
  }

  /** The loaded-kext table (KextManagerCopyLoadedKextInfo on a Mac). */
  async loadedKexts(options?: CallOptions): Promise<LoadedKext[]> {
    own(this, 'loadedKexts');
    const o = checkCallOptions(options);
    const site = callSite(this.loadedKexts);
    return decodeKexts(await abortable('loadedKexts', o, site, () => this.conn.loadedKexts()), site);
  }

  /** @internal explain(): the user clients open on the sample kext's service, from the transport. */
  async _userClients(): Promise<UserClient[]> {
    const r = await this.conn.userClients();
    if (r.kr !== 0) throw new KextBridgeError('userClients', r.kr);
    return r.clients;
  }

  /**
   * OSKextLoadKextWithIdentifier (admin only): loads a kext the kernel knows by its bundle id.
   * Already loaded: success with its tag. Installed but not loaded: loaded now, success with
   * the new tag. Unknown to the kernel: `kOSKextReturnDeferred` — the kernel asked user space
   * (kernelmanagerd) to load it; follow with `kb.waitForLoad(bundleId)`. Not an administrator:
   * `kIOReturnNotPrivileged`. A bundle id that is not a string throws TypeError; one that is
   * empty, longer than 63 bytes of UTF-8, or has a NUL or a lone surrogate throws RangeError
   * and nothing is sent (the user client would refuse it too, with kIOReturnBadArgument).
   */
  async loadKext(bundleId: string, options?: CallOptions): Promise<LoadKextResult> {
    own(this, 'loadKext');
    const id = checkBundleId(bundleId);
    const o = checkCallOptions(options);
    const site = callSite(this.loadKext);
    const s = sel.loadKextWithIdentifier;
    const r = decodeLoadKext(id, await abortable('loadKext', o, site, () => this.conn.call(s.selector, [], encodeBundleId(id), s.scalarOutputs, 0)), site);
    if (!r.ok) return r;
    return { ...r, loadTag: (await this.loadedKexts()).find((k) => k.bundleId === id)?.loadTag ?? null };
  }

  /**
   * OSKextRequestResource on behalf of the sample kext: the bytes of resource `resourceName`
   * in the bundle of `bundleId`, delivered later by user space (kernelmanagerd) through the
   * kext's callback and the connection's async completion, then fetched once.
   *
   * Resolves with a {@link ResourceResult}: `{ ok: true, data, requestTag }`; the kernel's
   * failure with no data (`kOSKextReturnNotFound` for a missing resource,
   * `kOSKextReturnTimeout` when nobody answered before the autounload scans); a user-client
   * refusal (`kIOReturnNoSpace` for a resource over 64 KiB). Aborting (options.signal, or
   * options.timeout passing) cancels the request in the kernel: `{ ok: false, reason:
   * 'aborted' | 'timeout', cancelled: true }` when the cancel won; when the delivery had
   * already won, its result with `abortedAfterDelivery: true`. close() cancels every pending
   * request (`reason: 'closed'`). A signal already aborted rejects with an AbortError and
   * nothing is sent; bad arguments throw TypeError / RangeError.
   *
   * On the sim the wait runs in virtual time: it jumps the clock to the next due event (the
   * delivery, an autounload scan) as the waits do, so it resolves in real milliseconds; a
   * timeout is in virtual ms. When nothing is due (resources withheld and no scan armed), it
   * waits for someone else to advance the clock, for the signal, or for close().
   */
  requestResource(bundleId: string, resourceName: string, options?: RequestOptions): Promise<ResourceResult> {
    own(this, 'requestResource');
    const id = checkBundleId(bundleId);
    const name = checkCString('resourceName', resourceName, LIMITS.resourceNameSize - 1);
    const o = checkRequestOptions(options);
    return new PendingRequest(this, id, name, o, callSite(this.requestResource)).start();
  }

  /** @internal the requests this connection waits for (explain() on a Mac; close() settles them). */
  readonly requests = new Set<PendingRequest>();

  /** @internal explain() on a Mac: this connection's pending requests. */
  _ownRequests(): OwnRequest[] {
    return [...this.requests].filter((r) => r.own.requestTag !== null).map((r) => ({ ...r.own }));
  }

  /** Waits for calls in flight, then closes, releasing what this connection holds. Idempotent. */
  close(): Promise<void> {
    own(this, 'close');
    if (!this.closing) queueMicrotask(() => this.wf.reportClosing());
    const settleRequests = () => {
      for (const r of [...this.requests]) r.connectionClosed();
    };
    this.closing ??= this.conn.close().finally(settleRequests).then(({ kr, unreleased }) => {
      // On a Mac a connection whose service was terminated is cut: IOServiceClose answers
      // kIOReturnBadArgument, still drops the handle, and the kext releases what the client
      // held when it is freed (docs/kernel-facts.md §4.4). That is a completed close.
      if (kr !== 0 && kr !== codeValue('MACH_SEND_INVALID_DEST') && !(this.backend === 'iokit' && kr === codeValue('kIOReturnBadArgument')))
        throw new KextBridgeError('close', kr);
      // Closed, but the kernel refused some releases: never resolve as if all was well.
      if (unreleased)
        throw new KextBridgeError('close', codeValue('kOSReturnError'),
          `closed, but ${unreleased} retain${unreleased === 1 ? '' : 's'} could not be released (the kernel refused); the user client still records ${unreleased === 1 ? 'it' : 'them'}`);
    });
    return this.closing;
  }

  /**
   * A handle on the loaded kext `target` names (a load tag or a bundle id), or null when none
   * is. The handle is pinned to that load tag: once the kext is gone it answers
   * kOSKextReturnNotFound with `stale: 'unloaded' | 'reloaded'` and never touches a new one.
   */
  kext(target: number | string): Promise<KextHandle | null> {
    return this.wf.kext(target);
  }

  /** Why the kext will not unload (or is not loaded): every blocker, and autounload's state. */
  explain(target: number | string): Promise<Explanation> {
    return this.wf.explain(target);
  }

  /** Until no kext answers to the target. Virtual time on the sim; polling on a Mac. */
  waitForUnload(target: number | string, options?: WaitOptions): Promise<WaitResult> {
    return this.wf.waitForUnload(target, options);
  }

  /** Until a kext answering to the target is loaded. Virtual time on the sim; polling on a Mac. */
  waitForLoad(target: number | string, options?: WaitOptions): Promise<WaitResult> {
    return this.wf.waitForLoad(target, options);
  }

  /** Until the kext is loaded with OSBundleRetainCount `n`. */
  waitForRetainCount(target: number | string, n: number, options?: WaitOptions): Promise<WaitResult> {
    return this.wf.waitForRetainCount(target, n, options);
  }

  /**
   * Loads a kext bundle: on the sim from its Contents/Info.plist (libraries must be loaded
   * and compatible; IOResources personalities get their instance), on a Mac with
   * `kmutil load -p` as root. Success carries the load tag; a failure the OSReturn (or
   * kmutil's answer) and a nextStep. Bad arguments throw.
   */
  async loadBundle(path: string, options?: LifecycleOptions): Promise<LoadResult> {
    if (typeof path !== 'string' || path === '' || path.includes('\0')) throw new TypeError('path must be a non-empty string: the .kext bundle');
    const o = checkWaitOptions(options);
    if (this.sim) return (await import('./lifecycle/sim-lifecycle')).simLoadBundle(this.sim, path, o);
    return (await import('./lifecycle/kmutil')).macLoadBundle(this.macDeps(), path, o);
  }

  /**
   * Unloads a kext (on the sim through the kernel model, on a Mac with `kmutil unload -b`),
   * retrying with a bounded back-off while it is merely busy (instances, user clients), then
   * waits until it is gone from the table: success means it is gone.
   */
  async unloadKext(target: number | string, options?: LifecycleOptions): Promise<UnloadResult> {
    const t = checkTarget(target);
    const o = checkWaitOptions(options);
    if (this.sim)
      return (await import('./lifecycle/sim-lifecycle')).simUnloadKext(
        {
          kernel: this.sim,
          // Unloading the sample kext stops this connection's own client (kmutil unload
          // terminates the service first): the kernel's view then, without this connection's ledger.
          explain: (tag) => this.explain(tag).catch((e) => (e instanceof KextBridgeError ? this.sim!.explain(tag) : Promise.reject(e))),
          waitForUnload: (tag, w) => this.waitForUnload(tag, w),
        },
        t,
        o,
      );
    return (await import('./lifecycle/kmutil')).macUnloadKext(this.macDeps(), t, o);
  }

  private macDeps() {
    return {
      loadedKexts: () => this.loadedKexts(),
      waitForLoad: (id: string, o: WaitOptions) => this.waitForLoad(id, o),
      waitForUnload: (id: string, o: WaitOptions) => this.waitForUnload(id, o),
    };
  }

  /**
   * The machine's events and this connection's calls, until the signal aborts or close().
   * On the sim, kernel events count from this call; calls (and a Mac's first table) from the
   * first next().
   */
  watch(options?: WatchOptions): AsyncGenerator<WatchEvent, void, undefined> {
    return this.wf.watch(options);
  }

  /**
   * True once close() was called, not once it finished: from then on every call fails
   * with a KextBridgeError (MACH_SEND_INVALID_DEST). Await close() to know calls in flight
   * were answered and what this connection held was released.
   */
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
    own(this, 'closed');
    return this.conn.closing;
  }

  private reported<R extends RetainResult | ReleaseResult>(op: 'retain' | 'release', r: R): R {
    this.wf.reportCall(op, r);
    return r;
  }

  /** Reports each tag's call to watch(): all of them, or (an interrupted batch) those that ran. */
  private reportAll(op: Counted, rs: readonly (RetainResult | ReleaseResult | BatchTagFailure)[]): void {
    for (const r of rs) if (r.layer !== 'not-run' && r.layer !== 'unexpected') this.wf.reportCall(op, r as RetainResult | ReleaseResult);
  }

  private async reportedMany<R extends RetainResult | ReleaseResult>(op: Counted, decoded: () => Promise<R[]>): Promise<R[]> {
    try {
      const rs = await decoded();
      this.reportAll(op, rs);
      return rs;
    } catch (e) {
      if (e instanceof KextBridgeError && e.results) this.reportAll(op, e.results);
      throw e;
    }
  }

  private reportedManySync<R extends RetainResult | ReleaseResult>(op: Counted, decoded: () => R[]): R[] {
    try {
      const rs = decoded();
      this.reportAll(op, rs);
      return rs;
    } catch (e) {
      if (e instanceof KextBridgeError && e.results) this.reportAll(op, e.results);
      throw e;
    }
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

  private manySync<S extends Counted>(op: S, tags: Uint32Array): ResultFor<S>[] {
    const r = this.conn.callManySync(sel[`${op}Batch` as const].selector, tags);
    return this.reportedManySync(op, () => decodeMany(op, tags, r));
  }
}
