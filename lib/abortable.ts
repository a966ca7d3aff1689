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

/** Node's AbortSignal, or one from another realm or a polyfill with the same surface. */
function isAbortSignal(v: unknown): v is AbortSignal {
  if (typeof AbortSignal === 'function' && v instanceof AbortSignal) return true;
  if (v === null || typeof v !== 'object') return false;
  const s = v as Partial<AbortSignal>;
  return typeof s.aborted === 'boolean' && typeof s.addEventListener === 'function' && typeof s.removeEventListener === 'function';
}

/** Like Node's own APIs: name 'AbortError', code 'ABORT_ERR', cause the abort's reason. */
export function abortError(op: string, reason: unknown, site: CallSite): Error {
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
export function abortable<T>(op: string, o: CallOptions | undefined, site: CallSite, start: () => Promise<T>): Promise<T> {
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
