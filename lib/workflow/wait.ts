// Waiting for a kext to unload, load, or reach a retain count. On the simulator the wait runs
// in virtual time: it jumps the clock to the next due event (the autounload scan) until the
// condition holds or the virtual deadline passes, so a 60 s autounload takes milliseconds. On
// a Mac it polls the loaded-kext table with back-off on real timers. Never success on timeout.
import type { LoadedKext } from '../results';
import type { SimKernel } from '../sim';
import { checkNonNegativeInteger, checkOptions } from '../validate';
import { Explanation, summarize } from './explain';

/** Options for the waits (waitForUnload, waitForLoad, waitForRetainCount). */
export interface WaitOptions {
  /** Milliseconds (virtual on the sim, real on a Mac); default 90,000: autounload is ≥ 60 s after the last release. */
  timeout?: number;
  /** When it aborts, the wait ends with `{ ok: false, reason: 'aborted' }`. */
  signal?: AbortSignal;
}

/** What a wait answers: the condition held, or it timed out or was aborted (never success on timeout). */
export type WaitResult =
  | {
      /** The condition held. */
      ok: true;
      /** How long it waited, in ms (virtual on the sim, real on a Mac). */
      waitedMs: number;
    }
  | {
      /** The condition did not hold before the wait gave up. */
      ok: false;
      /** Why it gave up: the timeout passed, or the signal aborted. */
      reason: 'timeout' | 'aborted';
      /** How long it waited, in ms (virtual on the sim, real on a Mac). */
      waitedMs: number;
      /** The target's state when the wait gave up. */
      explanation: Explanation;
      /** The same, as one line. */
      message: string;
    };

export const DEFAULT_WAIT_TIMEOUT = 90_000;
/** setTimeout's limit (2^31 − 1 ms); the same bound on the sim keeps one meaning per number. */
const MAX_WAIT = 0x7fffffff;

export function checkWaitOptions(options: unknown): { timeout: number; signal?: AbortSignal } {
  const o = checkOptions('options', options, ['timeout', 'signal']);
  const timeout = o.timeout === undefined ? DEFAULT_WAIT_TIMEOUT : checkNonNegativeInteger('options.timeout', o.timeout);
  if (timeout > MAX_WAIT) throw new RangeError(`options.timeout must be at most ${MAX_WAIT} ms, got ${timeout}`);
  const signal = o.signal;
  if (signal !== undefined && (signal === null || typeof signal !== 'object' || typeof (signal as AbortSignal).aborted !== 'boolean'))
    throw new TypeError('options.signal must be an AbortSignal');
  return { timeout, signal: signal as AbortSignal | undefined };
}

/** What a wait needs from its backend. */
export interface WaitSource {
  /** Waits for this connection's calls in flight, then reads the loaded-kext table. */
  read(): Promise<readonly LoadedKext[]>;
  explain(): Promise<Explanation>;
}

type Condition = (kexts: readonly LoadedKext[]) => boolean;

/** On the sim: virtual time, jumping to each due event up to the virtual deadline. */
export async function waitVirtual(kernel: SimKernel, src: WaitSource, cond: Condition, o: { timeout: number; signal?: AbortSignal }): Promise<WaitResult> {
  const start = kernel.now;
  const deadline = start + o.timeout;
  const fail = async (reason: 'timeout' | 'aborted'): Promise<WaitResult> => {
    const explanation = await src.explain();
    return { ok: false, reason, waitedMs: kernel.now - start, explanation, message: summarize(explanation) };
  };
  for (;;) {
    if (cond(await src.read())) return { ok: true, waitedMs: kernel.now - start };
    if (o.signal?.aborted) return fail('aborted');
    const now = kernel.now;
    if (now >= deadline || kernel.panicked) return fail('timeout');
    const due = kernel.nextDueMs;
    // Nothing will happen before the deadline: the rest of the wait passes with nothing done.
    kernel.advance(due !== null && due <= deadline ? Math.max(0, due - now) : deadline - now);
  }
}

/** Real time: the first look at once, then after 25 ms, doubling to at most 1 s between looks. */
export const POLL_FIRST_MS = 25;
export const POLL_MAX_MS = 1000;

export interface Clock {
  now(): number;
}

/**
 * On a Mac: polls with back-off until the condition holds, the timeout passes or the signal
 * aborts. Its one timer is cleared whichever way it ends (none is left behind); while it waits
 * it keeps the process alive, as the caller is waiting for it.
 */
export async function waitPolling(src: WaitSource, cond: Condition, o: { timeout: number; signal?: AbortSignal }, clock: Clock = Date): Promise<WaitResult> {
  const start = clock.now();
  const deadline = start + o.timeout;
  const fail = async (reason: 'timeout' | 'aborted'): Promise<WaitResult> => {
    const explanation = await src.explain();
    return { ok: false, reason, waitedMs: clock.now() - start, explanation, message: summarize(explanation) };
  };
  let delay = POLL_FIRST_MS;
  for (;;) {
    if (cond(await src.read())) return { ok: true, waitedMs: clock.now() - start };
    if (o.signal?.aborted) return fail('aborted');
    const left = deadline - clock.now();
    if (left <= 0) return fail('timeout');
    if (!(await sleep(Math.min(delay, left), o.signal))) return fail('aborted');
    delay = Math.min(delay * 2, POLL_MAX_MS);
  }
}

/** Resolves true after `ms`, or false as soon as the signal aborts; leaves no timer or listener. */
function sleep(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

// The conditions, on the loaded-kext table.
export const isUnloaded = (find: (k: readonly LoadedKext[]) => LoadedKext | undefined): Condition => (k) => find(k) === undefined;
export const isLoaded = (find: (k: readonly LoadedKext[]) => LoadedKext | undefined): Condition => (k) => find(k) !== undefined;
export const hasRetainCount = (find: (k: readonly LoadedKext[]) => LoadedKext | undefined, n: number): Condition => (k) => find(k)?.retainCount === n;
