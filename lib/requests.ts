// Load by identifier (selector 6) and resource requests (selectors 7–9): the result types, the
// byte layouts, and the life of one request — the async call, its completion, the fetch of the
// delivery, and an abort that really cancels in the kernel (OSKextCancelRequest).
import { abortError, CallOptions, isAbortSignal, reasonOf, subscribe } from './abortable';
import { codeValue, describeReturn } from './codes';
import { CallSite, KextBridgeError } from './errors';
import type { NativeCallResult, NativeConnection } from './native';
import { COMPLETION, LIMITS, OUT, SELECTORS, UNIVERSAL_REFUSALS } from './protocol.gen';
import type { SimKernel } from './sim';
import { checkCString } from './validate';

const sel = SELECTORS;
type Sel = typeof SELECTORS;

/** The most bytes of UTF-8 a bundle id may have (the field holds a NUL too). */
export const BUNDLE_ID_MAX_BYTES = LIMITS.bundleIdSize - 1;
/** The most bytes of UTF-8 a resource name may have (the field holds a NUL too). */
export const RESOURCE_NAME_MAX_BYTES = LIMITS.resourceNameSize - 1;

// ---- loadKext ----

/** kb.loadKext() succeeded: the kext is loaded (now, or it already was). */
export interface LoadKextSuccess {
  /** Always true: the kext is loaded. */
  ok: true;
  /** The kernel answered (OSKextLoadKextWithIdentifier's OSReturn). */
  layer: 'kernel';
  /** The code's name. */
  name: 'kOSReturnSuccess';
  /** The code's value: 0. */
  code: 0;
  /** The code's message. */
  message: string;
  /** The bundle id asked for. */
  bundleId: string;
  /**
   * Its load tag, read from the loaded-kext table right after the call (the selector answers
   * only the OSReturn): the same tag when it was already loaded, a new one when this call
   * loaded it. null in the rare case it was unloaded again before the table was read.
   */
  loadTag: number | null;
}

/**
 * The kernel did not load it now. `kOSKextReturnDeferred`: the id is not known to the kernel,
 * which asked user space (kernelmanagerd) to load it; follow with `kb.waitForLoad(bundleId)`.
 */
export interface LoadKextKernelFailure {
  /** Always false: it is not loaded (yet). */
  ok: false;
  /** The kernel answered. */
  layer: 'kernel';
  /** The OSReturn's name. */
  name: Exclude<Sel['loadKextWithIdentifier']['kernelCodes'][number], 'kOSReturnSuccess'>;
  /** The OSReturn's value, unsigned 32-bit. */
  code: number;
  /** The code's message. */
  message: string;
  /** The bundle id asked for. */
  bundleId: string;
  /** Always null: not loaded by this call. */
  loadTag: null;
}

/**
 * The user client refused before the kernel was asked: `kIOReturnNotPrivileged` (not an
 * administrator). `kIOReturnBadArgument` (an id that is empty, too long or not NUL-terminated)
 * only reaches callers that bypass the library: kb.loadKext throws TypeError/RangeError first.
 */
export interface LoadKextRefusal {
  /** Always false: the user client refused. */
  ok: false;
  /** The sample kext's user client answered. */
  layer: 'userclient';
  /** The IOReturn's name. */
  name: Sel['loadKextWithIdentifier']['userClientCodes'][number] | 'kIOReturnBadArgument';
  /** The IOReturn's value, unsigned 32-bit. */
  code: number;
  /** The code's message. */
  message: string;
  /** The bundle id asked for. */
  bundleId: string;
  /** Always null. */
  loadTag: null;
}

/** What kb.loadKext() answers. */
export type LoadKextResult = LoadKextSuccess | LoadKextKernelFailure | LoadKextRefusal;

/**
 * A bundle id as the kernel keeps it: a string, 1 to 63 bytes of UTF-8, no NUL, no lone
 * surrogate. TypeError / RangeError (quoting at most 100 characters) otherwise.
 */
export function checkBundleId(value: unknown, name = 'bundleId'): string {
  return checkCString(name, value, BUNDLE_ID_MAX_BYTES);
}

/** Selector 6's struct: the id and its NUL. */
export function encodeBundleId(bundleId: string): Buffer {
  return Buffer.from(bundleId + '\0', 'utf8');
}

/** A user-client refusal this selector may answer (its table, or a universal refusal). */
function isRefusal(s: 'loadKextWithIdentifier' | 'requestResource' | 'cancelRequest', kr: number): boolean {
  const name = describeReturn(kr).name;
  return (sel[s].userClientCodes as readonly string[]).includes(name) || (UNIVERSAL_REFUSALS as readonly string[]).includes(name);
}

/** Selector 6's answer as a typed result (loadTag filled in by the caller for a success). */
export function decodeLoadKext(bundleId: string, r: NativeCallResult, site?: CallSite): LoadKextResult {
  if (r.kr !== 0) {
    if (!isRefusal('loadKextWithIdentifier', r.kr)) throw new KextBridgeError('loadKext', r.kr, undefined, site);
    const d = describeReturn(r.kr);
    return { ok: false, layer: 'userclient', name: d.name as LoadKextRefusal['name'], code: d.value, message: d.message, bundleId, loadTag: null };
  }
  if (r.scalars.length !== sel.loadKextWithIdentifier.scalarOutputs)
    throw new KextBridgeError('loadKext', codeValue('kIOReturnBadArgument'), `the user client answered ${r.scalars.length} scalars, expected 1`, site);
  const d = describeReturn(Number(r.scalars[OUT.loadKextWithIdentifier.osReturn]));
  if (!(sel.loadKextWithIdentifier.kernelCodes as readonly string[]).includes(d.name))
    throw new KextBridgeError('loadKext', d.value, `the kernel answered ${d.name}, which OSKextLoadKextWithIdentifier cannot produce: ${d.message}`, site);
  if (d.value === 0) return { ok: true, layer: 'kernel', name: 'kOSReturnSuccess', code: 0, message: d.message, bundleId, loadTag: null };
  return { ok: false, layer: 'kernel', name: d.name as LoadKextKernelFailure['name'], code: d.value, message: d.message, bundleId, loadTag: null };
}

// ---- requestResource ----

/**
 * Options of kb.requestResource(). Unlike the other calls' options, aborting (the signal, or
 * the timeout passing) really cancels the request in the kernel (cancelRequest →
 * OSKextCancelRequest) and the result says whether the cancel or the delivery won.
 */
export interface RequestOptions {
  /** When it aborts, the request is cancelled in the kernel (unless the delivery won the race). */
  signal?: AbortSignal;
  /**
   * Milliseconds (0 to 2^31 − 1) until the request is cancelled as with the signal; virtual
   * milliseconds on the sim (the request's wait jumps the clock as kb.waitForLoad does),
   * real ones on a Mac. Default: none (the kernel itself answers kOSKextReturnTimeout after
   * its autounload scans if nobody delivers).
   */
  timeout?: number;
}

/** The resource was delivered: its bytes, intact. */
export interface ResourceDelivered {
  /** Always true: the bytes are here. */
  ok: true;
  /** The kernel delivered it (the callback's OSReturn). */
  layer: 'kernel';
  /** The code's name. */
  name: 'kOSReturnSuccess';
  /** The code's value: 0. */
  code: 0;
  /** The code's message. */
  message: string;
  /** The kernel's tag for the request (OSKextRequestResource's requestTag). */
  requestTag: number;
  /** The delivered bytes (0 to LIMITS.maxResourceSize), fetched from the user client once. */
  data: Buffer;
  /** The signal or timeout fired, but the delivery had already won: the cancel found nothing to cancel. */
  abortedAfterDelivery: boolean;
}

/**
 * The kernel refused the request (`stage: 'request'`: OSKextRequestResource's own answer, e.g.
 * kOSKextReturnStopping) or answered it with a failure and no data (`stage: 'delivery'`:
 * kOSKextReturnNotFound for a resource the bundle does not have, kOSKextReturnTimeout when
 * nobody answered before the autounload scans, or what kernelmanagerd sent).
 */
export interface ResourceKernelFailure {
  /** Always false: no data. */
  ok: false;
  /** The kernel answered. */
  layer: 'kernel';
  /** Whether the request was refused at once, or answered later with this failure. */
  stage: 'request' | 'delivery';
  /** The OSReturn's name. */
  name: string;
  /** The OSReturn's value, unsigned 32-bit. */
  code: number;
  /** The code's message. */
  message: string;
  /** The request's tag (null when the kernel refused it before giving one). */
  requestTag: number | null;
  /** As for ResourceDelivered: the abort came after the kernel's answer. */
  abortedAfterDelivery: boolean;
}

/**
 * The user client refused: `kIOReturnNotPrivileged` (not an administrator),
 * `kIOReturnNoResources` (this client has LIMITS.requestCapacity requests outstanding), or,
 * after the kernel delivered, `kIOReturnNoSpace`: the resource was bigger than
 * LIMITS.maxResourceSize bytes and the user client refused to keep it (`length` says how big).
 */
export interface ResourceRefusal {
  /** Always false: no data. */
  ok: false;
  /** The sample kext's user client answered. */
  layer: 'userclient';
  /** The IOReturn's name. */
  name: Sel['requestResource']['userClientCodes'][number] | 'kIOReturnNoSpace' | (typeof UNIVERSAL_REFUSALS)[number];
  /** The IOReturn's value, unsigned 32-bit. */
  code: number;
  /** The code's message (for kIOReturnNoSpace: the sizes). */
  message: string;
  /** The request's tag, when the kernel had given one. */
  requestTag: number | null;
  /** kIOReturnNoSpace: the bytes the kernel delivered. */
  length?: number;
}

/**
 * The request ended without an answer from the kernel: the signal aborted, the timeout passed,
 * or the connection closed. `cancelled: true` means it was really cancelled in the kernel
 * (cancelRequest answered kOSReturnSuccess, or close() cancelled it): no delivery will come.
 * `cancelled: false` only when the kernel's answer had come in but the connection closed
 * before its bytes were fetched (they are gone with the user client), or when cancelRequest
 * failed in another way (`cancel` says how).
 */
export interface ResourceAborted {
  /** Always false: no data. */
  ok: false;
  /** No layer answered: the caller ended it. */
  layer: 'caller';
  /** What ended it. */
  reason: 'aborted' | 'timeout' | 'closed';
  /** 'Aborted', 'Timeout' or 'Closed' (there is no OSReturn). */
  name: 'Aborted' | 'Timeout' | 'Closed';
  /** Always null: there is no OSReturn for it. */
  code: null;
  /** What happened, as one line. */
  message: string;
  /** The request's tag (null when it ended before the kernel gave one). */
  requestTag: number | null;
  /** Whether the kernel cancelled it (no delivery will ever come). */
  cancelled: boolean;
  /** cancelRequest's answer, when it was called (abort and timeout; not close). */
  cancel: {
    /** The code's name (kOSReturnSuccess: cancelled in the kernel). */
    name: string;
    /** The code's value, unsigned 32-bit. */
    code: number;
  } | null;
}

/** What kb.requestResource() answers. */
export type ResourceResult = ResourceDelivered | ResourceKernelFailure | ResourceRefusal | ResourceAborted;

/** One resource request the library is waiting for (explain() lists them on a Mac). */
export interface OwnRequest {
  /** The kernel's tag, once the request was accepted. */
  requestTag: number | null;
  /** The bundle the resource is asked from. */
  bundleId: string;
  /** The resource's name. */
  resourceName: string;
}

/** Selector 7's struct: the bundle id field, then the resource name field, each NUL-padded. */
export function encodeRequest(bundleId: string, resourceName: string): Buffer {
  const b = Buffer.alloc(LIMITS.bundleIdSize + LIMITS.resourceNameSize);
  b.write(bundleId, 0, LIMITS.bundleIdSize - 1, 'utf8');
  b.write(resourceName, LIMITS.bundleIdSize, LIMITS.resourceNameSize - 1, 'utf8');
  return b;
}

/** What one request needs from its connection. */
export interface RequestHost {
  readonly conn: NativeConnection;
  readonly sim: SimKernel | undefined;
  /** Pending requests, settled as 'closed' when the connection closes. */
  readonly requests: Set<PendingRequest>;
}

const MAX_TIMEOUT = 0x7fffffff;
/** On the sim with nothing due: how often (real ms) a request looks again (as watch() does). */
const SIM_LOOK_MS = 10;

/** Checks requestResource's options: each property read once. */
export function checkRequestOptions(options: unknown): RequestOptions {
  if (options === undefined) return {};
  if (options === null || typeof options !== 'object') throw new TypeError(`options must be an object, got ${options === null ? 'null' : typeof options}`);
  const { signal, timeout } = options as Record<string, unknown>;
  for (const k of Object.keys(options)) if (k !== 'signal' && k !== 'timeout') throw new TypeError(`options.${k.slice(0, 100)} is not an option of requestResource (signal, timeout)`);
  if (signal !== undefined && !isAbortSignal(signal)) throw new TypeError(`options.signal must be an AbortSignal, got ${signal === null ? 'null' : typeof signal}`);
  if (timeout !== undefined) {
    if (typeof timeout !== 'number') throw new TypeError(`options.timeout must be a number of milliseconds, got ${typeof timeout}`);
    if (!Number.isInteger(timeout) || timeout < 0 || timeout > MAX_TIMEOUT)
      throw new RangeError(`options.timeout must be an integer number of milliseconds from 0 to ${MAX_TIMEOUT}, got ${timeout}`);
  }
  return { signal: signal as AbortSignal | undefined, timeout: timeout as number | undefined };
}

/**
 * One request from start to result. Every path settles exactly once; after it settles the
 * request holds no timer, no listener, and nothing awaited in native code.
 */
export class PendingRequest {
  readonly own: OwnRequest;
  private settled = false;
  private resolve!: (r: ResourceResult) => void;
  readonly result: Promise<ResourceResult>;
  private refcon = 0;
  private accepted = false;
  private completion: { result: number; args: (number | bigint)[] } | undefined;
  private ended: 'aborted' | 'timeout' | undefined;
  private closed = false;
  /** close() was called before this request: it fails as every call on a closed connection. */
  private lateForClose = false;
  private wake: (() => void) | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private unsubscribe = () => {};

  constructor(
    private readonly host: RequestHost,
    bundleId: string,
    resourceName: string,
    private readonly o: RequestOptions,
    private readonly site: CallSite,
  ) {
    this.own = { requestTag: null, bundleId, resourceName };
    this.result = new Promise((resolve) => (this.resolve = resolve));
  }

  /** Starts the request; rejects (nothing started) for an already-aborted or hostile signal. */
  start(): Promise<ResourceResult> {
    const { signal } = this.o;
    if (signal !== undefined) {
      let aborted: unknown;
      try {
        aborted = signal.aborted;
      } catch (e) {
        return Promise.reject(new TypeError('requestResource: options.signal.aborted threw; nothing was started', { cause: e }));
      }
      if (aborted) return Promise.reject(abortError('requestResource', reasonOf(signal), this.site));
      try {
        this.unsubscribe = subscribe(signal, () => this.abort('aborted'));
      } catch (e) {
        return Promise.reject(new TypeError("requestResource: options.signal refused an 'abort' listener; nothing was started", { cause: e }));
      }
    }
    const { conn } = this.host;
    this.lateForClose = conn.closing;
    const s = sel.requestResource;
    let reply: Promise<NativeCallResult & { refcon: number }>;
    try {
      reply = conn.callAsync(s.selector, [], encodeRequest(this.own.bundleId, this.own.resourceName), s.scalarOutputs, 0, (result, args) => {
        this.completion = { result, args };
        this.kick();
      });
    } catch (e) {
      this.unsubscribe();
      return Promise.reject(e);
    }
    this.host.requests.add(this);
    if (this.o.timeout !== undefined && !this.host.sim) {
      this.timer = setTimeout(() => this.abort('timeout'), this.o.timeout);
      this.timer.unref?.(); // the request itself keeps the process alive, not its deadline
    }
    reply.then(
      (r) => this.replied(r),
      (e: unknown) => this.fail(e),
    );
    return this.result;
  }

  /** close() finished: the user client cancelled what was pending; nothing more will come. */
  connectionClosed(): void {
    this.closed = true;
    this.kick();
  }

  private abort(why: 'aborted' | 'timeout'): void {
    if (this.ended || this.settled) return;
    this.ended = why;
    this.kick();
  }

  private kick(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private next(): Promise<void> {
    return new Promise((resolve) => (this.wake = resolve));
  }

  private finish(r: ResourceResult): void {
    if (this.settled) return;
    this.settled = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.unsubscribe();
    this.host.requests.delete(this);
    if (this.refcon !== 0) this.host.conn.forgetAsync(this.refcon); // no completion will be awaited
    this.resolve(r);
  }

  private fail(e: unknown): void {
    if (this.settled) return;
    this.settled = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.unsubscribe();
    this.host.requests.delete(this);
    if (this.refcon !== 0) this.host.conn.forgetAsync(this.refcon);
    // The promise is the caller's: reject it through the same settle path.
    this.resolve(Promise.reject(e) as unknown as ResourceResult);
  }

  private aborted(reason: 'aborted' | 'timeout' | 'closed', cancelled: boolean, cancel: ResourceAborted['cancel'], message: string): ResourceAborted {
    return { ok: false, layer: 'caller', reason, name: reason === 'aborted' ? 'Aborted' : reason === 'timeout' ? 'Timeout' : 'Closed', code: null, message, requestTag: this.own.requestTag, cancelled, cancel };
  }

  private async replied(r: NativeCallResult & { refcon: number }): Promise<void> {
    try {
      await this.run(r);
    } catch (e) {
      this.fail(e);
    }
  }

  private async run(r: NativeCallResult & { refcon: number }): Promise<void> {
    if (r.kr !== 0) {
      if (r.kr === codeValue('MACH_SEND_INVALID_DEST') && !this.lateForClose && (this.closed || this.host.conn.closing))
        return this.finish(this.aborted('closed', true, null, 'requestResource: the connection was closed before the request reached the kernel'));
      if (!isRefusal('requestResource', r.kr)) throw new KextBridgeError('requestResource', r.kr, undefined, this.site);
      const d = describeReturn(r.kr);
      return this.finish({ ok: false, layer: 'userclient', name: d.name as ResourceRefusal['name'], code: d.value, message: d.message, requestTag: null });
    }
    this.refcon = r.refcon;
    const osReturn = Number(r.scalars[OUT.requestResource.osReturn]);
    if (osReturn !== 0) {
      const d = describeReturn(osReturn);
      return this.finish({ ok: false, layer: 'kernel', stage: 'request', name: d.name, code: d.value, message: d.message, requestTag: null, abortedAfterDelivery: false });
    }
    this.accepted = true;
    this.own.requestTag = Number(r.scalars[OUT.requestResource.requestTag]);
    await this.await();
  }

  /** Until the completion, an abort, or close; on the sim the wait drives the virtual clock. */
  private async await(): Promise<void> {
    const kernel = this.host.sim;
    const start = kernel?.now ?? 0;
    const deadline = kernel && this.o.timeout !== undefined ? start + this.o.timeout : undefined;
    for (;;) {
      if (this.completion) return this.delivered();
      if (this.closed) return this.finish(this.aborted('closed', true, null, 'requestResource: the connection closed; the user client cancelled the request in the kernel'));
      if (this.ended) return this.cancel(this.ended);
      if (kernel && !this.host.conn.closing && this.pendingInKernel(kernel)) {
        // Virtual time, as the waits: jump to the next due event (the answer, a scan) or to
        // the deadline, then let the completion (queued on the event loop) come in.
        const now = kernel.now;
        if (deadline !== undefined && now >= deadline) {
          this.ended = 'timeout';
          continue;
        }
        const due = kernel.nextDueMs;
        if (due !== null && (deadline === undefined || due <= deadline)) kernel.advance(Math.max(0, due - now));
        else if (deadline !== undefined) kernel.advance(deadline - now);
        else await this.idle(); // nothing due, no deadline: someone else must move the clock
        await new Promise<void>((resolve) => setImmediate(resolve));
        continue;
      }
      await this.next(); // the completion is on its way (or the clock is someone else's)
    }
  }

  /**
   * Until a kick (completion, abort, close) or SIM_LOOK_MS of real time: a control such as
   * withholdResources(false) or armAutounloadScan() makes something due without telling us.
   */
  private idle(): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, SIM_LOOK_MS);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  private pendingInKernel(kernel: SimKernel): boolean {
    return kernel.pendingRequests().some((p) => p.requestTag === this.own.requestTag && p.loadTag === kernel.sampleLoadTag);
  }

  /** The abort won the race to the kernel, or the delivery did: cancelRequest decides. */
  private async cancel(why: 'aborted' | 'timeout'): Promise<void> {
    const s = sel.cancelRequest;
    const r = await this.host.conn.call(s.selector, [this.own.requestTag!], null, s.scalarOutputs, 0);
    if (r.kr === codeValue('MACH_SEND_INVALID_DEST') && this.host.conn.closing) {
      this.closed = true;
      return this.await();
    }
    const code = r.kr !== 0 ? r.kr : Number(r.scalars[OUT.cancelRequest.osReturn]);
    const d = describeReturn(code);
    const cancel = { name: d.name, code: d.value };
    if (r.kr === 0 && code === 0)
      return this.finish(this.aborted(why, true, cancel, `requestResource: ${why === 'timeout' ? `timed out after ${this.o.timeout} ms` : 'aborted'}; the request was cancelled in the kernel (OSKextCancelRequest answered kOSReturnSuccess)`));
    // kOSKextReturnNotFound (kernel) or kIOReturnNotFound (user client): the delivery won and
    // its completion has been sent; take it.
    if (d.name === 'kOSKextReturnNotFound' || d.name === 'kIOReturnNotFound') {
      while (!this.completion && !this.closed) await this.next();
      if (this.completion) return this.delivered();
      return this.finish(this.aborted('closed', false, cancel, 'requestResource: the delivery won the race with the cancel, but the connection closed before it was fetched'));
    }
    if (r.kr !== 0 && !isRefusal('cancelRequest', r.kr)) throw new KextBridgeError('cancelRequest', r.kr, undefined, this.site);
    return this.finish(this.aborted(why, false, cancel, `requestResource: ${why}; cancelRequest answered ${d.name} (${d.message}): the request may still be answered, and its bytes are dropped when the connection closes`));
  }

  private async delivered(): Promise<void> {
    // The abort may come while the bytes are being fetched: it lost the race either way.
    const after = () => this.ended !== undefined;
    const { result, args } = this.completion!;
    const tag = Number(args[COMPLETION.requestTag]);
    const osReturn = Number(args[COMPLETION.osReturn]);
    const length = Number(args[COMPLETION.length]);
    if (result !== 0) {
      const d = describeReturn(result);
      const message = d.name === 'kIOReturnNoSpace' ? `the kernel delivered ${length} bytes, more than the ${LIMITS.maxResourceSize} the user client keeps; refused` : d.message;
      return this.finish({ ok: false, layer: 'userclient', name: d.name as ResourceRefusal['name'], code: d.value, message, requestTag: tag, length });
    }
    if (osReturn !== 0) {
      const d = describeReturn(osReturn);
      return this.finish({ ok: false, layer: 'kernel', stage: 'delivery', name: d.name, code: d.value, message: d.message, requestTag: tag, abortedAfterDelivery: after() });
    }
    const ok = (data: Buffer): ResourceDelivered => ({ ok: true, layer: 'kernel', name: 'kOSReturnSuccess', code: 0, message: describeReturn(0).message, requestTag: tag, data, abortedAfterDelivery: after() });
    if (length === 0) return this.finish(ok(Buffer.alloc(0))); // nothing is kept for 0 bytes
    const f = await this.host.conn.fetchResource(tag);
    if (f.kr === codeValue('MACH_SEND_INVALID_DEST') && this.host.conn.closing)
      return this.finish(this.aborted('closed', false, null, 'requestResource: the delivery arrived, but the connection closed before its bytes were fetched'));
    if (f.kr !== 0) throw new KextBridgeError('fetchResource', f.kr, undefined, this.site);
    if (f.data.length !== length || f.length !== length)
      throw new KextBridgeError('fetchResource', codeValue('kIOReturnInternalError'), `the completion said ${length} bytes, the user client handed over ${f.data.length}`, this.site);
    this.finish(ok(f.data));
  }

  /** Test seam: whether the request was accepted by the kernel. */
  get _accepted(): boolean {
    return this.accepted;
  }
}
