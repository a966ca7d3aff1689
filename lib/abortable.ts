// Per-call abort and timeout: checking CallOptions, and waiting for a native call that can
// be given up on but not interrupted.
import { CallSite } from './errors';
import { checkOptions } from './validate';

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

/** Longest timer Node keeps (2^31 - 1 ms, about 24.8 days); beyond it setTimeout fires at once. */
const MAX_TIMEOUT = 0x7fffffff;

export function checkCallOptions(options: unknown): CallOptions | undefined {
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

/** Node's AbortSignal, or one from another realm or a polyfill with the same surface. Never throws. */
export function isAbortSignal(v: unknown): v is AbortSignal {
  try {
    if (typeof AbortSignal === 'function' && v instanceof AbortSignal) return true;
    if (v === null || typeof v !== 'object') return false;
    const s = v as Partial<AbortSignal>;
    return typeof s.addEventListener === 'function' && typeof s.removeEventListener === 'function' && 'aborted' in s;
  } catch {
    return false; // a Proxy whose traps throw is no signal
  }
}

/** A property of a value the caller gave us, or `fallback` when reading it throws. */
function tryRead(read: () => unknown, fallback: unknown): unknown {
  try {
    return read();
  } catch {
    return fallback;
  }
}

/** Like Node's own APIs: name 'AbortError', code 'ABORT_ERR', cause the abort's reason. Never throws. */
export function abortError(op: string, reason: unknown, site: CallSite): Error {
  // Duck-typed: a DOMException may come from another realm (vm contexts, jest). The reason is
  // the caller's: its getters (or a Proxy's traps) may throw, and must not escape from here.
  const r = reason as { name?: unknown; message?: unknown } | null;
  const isObject = (typeof r === 'object' || typeof r === 'function') && r !== null;
  const name = isObject ? tryRead(() => r.name, undefined) : undefined;
  const message = name === 'TimeoutError' ? tryRead(() => r!.message, undefined) : undefined;
  const err = new Error(`${op}: ${typeof message === 'string' ? message : 'the operation was aborted'}`, { cause: reason });
  err.name = 'AbortError';
  (err as Error & { code: string }).code = 'ABORT_ERR';
  if (site.stack) err.stack = `${err.name}: ${err.message}\n${site.stack.slice(site.stack.indexOf('\n') + 1)}`;
  return err;
}

function timeoutReason(ms: number): Error {
  return new DOMException(`timed out after ${ms} ms`, 'TimeoutError');
}

/** The waits on one signal share one 'abort' listener, so many calls add no MaxListeners warning. */
interface Waiters {
  calls: Set<(reason: unknown) => void>;
  listener: () => void;
}
const waiting = new WeakMap<object, Waiters>();

/** The signal's reason, or a TypeError (caused by what was thrown) when reading it throws. */
export function reasonOf(signal: AbortSignal): unknown {
  try {
    return signal.reason;
  } catch (e) {
    return new TypeError('the signal aborted, but reading its reason threw', { cause: e });
  }
}

/**
 * Calls `onAbort(reason)` once the signal aborts; returns the unsubscribe function (which
 * never throws). Throws only when the signal refuses the listener, before anything started.
 */
export function subscribe(signal: AbortSignal, onAbort: (reason: unknown) => void): () => void {
  let w = waiting.get(signal);
  if (w === undefined) {
    const calls = new Set<(reason: unknown) => void>();
    const listener = () => {
      if (waiting.get(signal)?.calls === calls) waiting.delete(signal);
      const reason = reasonOf(signal);
      for (const call of [...calls]) call(reason);
    };
    signal.addEventListener('abort', listener, { once: true });
    w = { calls, listener };
    waiting.set(signal, w);
  }
  const mine = w;
  mine.calls.add(onAbort);
  return () => {
    mine.calls.delete(onAbort);
    if (mine.calls.size === 0 && waiting.get(signal) === mine) {
      waiting.delete(signal);
      try {
        signal.removeEventListener('abort', mine.listener);
      } catch {
        // a hostile signal: the listener stays, with no calls left to wake
      }
    }
  };
}

/**
 * Starts a native call unless `o.signal` is already aborted; stops waiting for it when the
 * signal aborts or the timeout passes. The native call itself runs to completion either way
 * (its answer is then dropped): what it did is visible in held().
 *
 * The signal and its reason are the caller's and treated as hostile: a throwing `aborted`
 * getter or `addEventListener` rejects with a TypeError before anything is started (so no
 * answer is lost), and nothing they throw later can escape as an uncaught exception.
 */
export function abortable<T>(op: string, o: CallOptions | undefined, site: CallSite, start: () => Promise<T>): Promise<T> {
  if (o === undefined) return start();
  const { signal, timeout } = o;
  let unsubscribe = () => {};
  let settle: { resolve: (v: T) => void; reject: (e: unknown) => void } | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const done = () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    unsubscribe();
  };
  if (signal !== undefined) {
    let aborted: unknown;
    try {
      aborted = signal.aborted;
    } catch (e) {
      return Promise.reject(new TypeError(`${op}: options.signal.aborted threw; nothing was started`, { cause: e }));
    }
    if (aborted) return Promise.reject(abortError(op, reasonOf(signal), site));
    try {
      unsubscribe = subscribe(signal, (reason) => {
        done();
        settle?.reject(abortError(op, reason, site));
      });
    } catch (e) {
      return Promise.reject(new TypeError(`${op}: options.signal refused an 'abort' listener; nothing was started`, { cause: e }));
    }
  }
  let started: Promise<T>;
  try {
    started = start();
  } catch (e) {
    done();
    return Promise.reject(e);
  }
  return new Promise<T>((resolve, reject) => {
    settle = { resolve, reject };
    started.then(
      (v) => {
        done();
        resolve(v);
      },
      (e: unknown) => {
        done();
        reject(e);
      },
    );
    if (timeout !== undefined) {
      timer = setTimeout(() => {
        done();
        reject(abortError(op, timeoutReason(timeout), site));
      }, timeout);
      timer.unref?.(); // the call in flight keeps the process alive, not its deadline
    }
  });
}
