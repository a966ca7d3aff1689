// watch(): the machine's events as an async iterator. On the simulator they come from the
// kernel's own event ring, exact and in order; on a Mac from diffs of the loaded-kext table,
// polled. Both add this connection's own calls. A slow consumer never makes the kernel side
// block or grow: the kernel keeps a bounded ring, this side a bounded queue, and whatever
// either had to drop is reported as one 'dropped' event with the count.
import type { LoadedKext } from '../results';
import type { KernelEvent, SimKernel } from '../sim';
import { checkCString, checkOptions, checkNonNegativeInteger } from '../validate';

interface Base {
  /** Virtual ms since boot on the sim; Date.now() on a Mac. */
  at: number;
}
type Kext = {
  /** The load tag of the kext the event is about. */
  loadTag: number;
  /** The bundle id of the kext the event is about. */
  bundleId: string;
};

/** One event from watch(): a change to a loaded kext, one of this connection's calls, or a count of events dropped. */
export type WatchEvent =
  | (Base & Kext & {
      /** The kext was loaded. */
      type: 'loaded';
    })
  /** cause 'unknown' on a Mac: a table diff cannot tell kmutil unload from autounload. */
  | (Base & Kext & {
      /** The kext was unloaded. */
      type: 'unloaded';
      /** What unloaded it: an explicit unload, the autounload scan, or 'unknown' on a Mac. */
      cause: 'explicit' | 'autounload' | 'unknown';
    })
  | (Base & Kext & {
      /** The kext's OSBundleRetainCount changed. */
      type: 'retainCount';
      /** OSBundleRetainCount before the change. */
      from: number;
      /** OSBundleRetainCount after the change. */
      to: number;
    })
  | (Base & Kext & {
      /** The live instance count (OSMetaClassTrackingCount) of one of the kext's classes changed. */
      type: 'instances';
      /** The class whose instance count changed. */
      className: string;
      /** Live instances before the change. */
      from: number;
      /** Live instances after the change. */
      to: number;
    })
  | (Base & Kext & {
      /** The simulated kernel panicked (in this kext). */
      type: 'panic';
      /** The panic string. */
      message: string;
    })
  /** One of this connection's own retains or releases (a batch gives one per tag), with its answer. */
  | (Base & {
      /** A retain or release made on this connection. */
      type: 'call';
      /** Which call it was. */
      op: 'retain' | 'release';
      /** The load tag the call was made on. */
      loadTag: number;
      /** The bundle id of that load tag, or null when no loaded kext was known under it. */
      bundleId: string | null;
      /** Whether the call succeeded. */
      ok: boolean;
      /** The call's result name (the OSReturn or IOReturn name, e.g. kOSReturnSuccess). */
      name: string;
      /** Retains this connection holds on the tag after the call, when the answer says. */
      held?: number;
    })
  /**
   * A resource request's life in the kernel (sim: from the kernel; a Mac: not observable
   * there). loadTag is the requesting kext; bundleId and resourceName what it asked for.
   */
  | (Base & Kext & {
      /** A resource request was queued, delivered, timed out or cancelled. */
      type: 'request';
      /** What happened to the request. */
      phase: 'queued' | 'delivered' | 'timedOut' | 'cancelled';
      /** The kernel's tag for the request. */
      requestTag: number;
      /** The resource's name. */
      resourceName: string;
      /** delivered / timedOut: the OSReturn the callback got. */
      code?: number;
      /** delivered: the bytes delivered. */
      length?: number;
    })
  /** Sim: OSKextLoadKextWithIdentifier of an unknown id was queued to user space (kernelmanagerd). */
  | (Base & {
      /** A load request went to user space. */
      type: 'loadRequested';
      /** Always null: nothing is loaded yet. */
      loadTag: null;
      /** The bundle id asked for. */
      bundleId: string;
    })
  /** Events lost because the consumer fell behind (kernel ring or this queue): how many. */
  | (Base & {
      /** Some events were lost because the consumer fell behind. */
      type: 'dropped';
      /** How many events were lost. */
      count: number;
    });

/** Options for watch(). */
export interface WatchOptions {
  /** When it aborts, the watch ends (the iterator returns). */
  signal?: AbortSignal;
  /** Only events about these kexts (calls included); dropped events always come. */
  bundleIds?: string[];
  /** @internal the sim replays from boot (the CLI shows a fresh process's world this way). */
  fromBoot?: boolean;
  /** How often to look (real ms): the sim's ring, or the Mac's table. Default 10 on the sim, 500 on a Mac. */
  intervalMs?: number;
}

export interface CallRecord {
  op: 'retain' | 'release';
  loadTag: number;
  ok: boolean;
  name: string;
  held?: number;
}

export interface ConnectionListener {
  call(c: CallRecord): void;
  closing(): void;
}

/** What a watch needs from the connection. */
export interface WatchSource {
  sim: SimKernel | undefined;
  closed(): boolean;
  loadedKexts(): Promise<LoadedKext[]>;
  /** Subscribes to this connection's call results and its close; returns the unsubscribe. */
  subscribe(l: ConnectionListener): () => void;
}

/** The most events kept for a consumer that is not reading (as the kernel's ring). */
export const WATCH_QUEUE = 4096;

export function checkWatchOptions(options: unknown): WatchOptions {
  const o = checkOptions('options', options, ['signal', 'bundleIds', 'fromBoot', 'intervalMs']);
  if (o.signal !== undefined && (o.signal === null || typeof o.signal !== 'object' || typeof (o.signal as AbortSignal).aborted !== 'boolean'))
    throw new TypeError('options.signal must be an AbortSignal');
  if (o.bundleIds !== undefined) {
    if (!Array.isArray(o.bundleIds)) throw new TypeError('options.bundleIds must be an array of bundle ids');
    o.bundleIds.forEach((b, i) => checkCString(`options.bundleIds[${i}]`, b, 63));
  }
  if (o.fromBoot !== undefined && typeof o.fromBoot !== 'boolean') throw new TypeError('options.fromBoot must be a boolean');
  if (o.intervalMs !== undefined && checkNonNegativeInteger('options.intervalMs', o.intervalMs) > 60_000)
    throw new RangeError(`options.intervalMs must be at most 60000, got ${o.intervalMs}`);
  return o as WatchOptions;
}

/** Table diff → events, in load-tag order: loads, unloads, then count and instance changes. */
export function diffKexts(prev: readonly LoadedKext[], next: readonly LoadedKext[], at: number): WatchEvent[] {
  const before = new Map(prev.map((k) => [k.loadTag, k]));
  const after = new Map(next.map((k) => [k.loadTag, k]));
  const out: WatchEvent[] = [];
  for (const k of next) if (!before.has(k.loadTag)) out.push({ type: 'loaded', at, loadTag: k.loadTag, bundleId: k.bundleId });
  for (const k of prev) if (!after.has(k.loadTag)) out.push({ type: 'unloaded', at, loadTag: k.loadTag, bundleId: k.bundleId, cause: 'unknown' });
  for (const k of next) {
    const p = before.get(k.loadTag);
    if (!p) continue;
    if (p.retainCount !== k.retainCount) out.push({ type: 'retainCount', at, loadTag: k.loadTag, bundleId: k.bundleId, from: p.retainCount, to: k.retainCount });
    const was = new Map(p.classes.map((c) => [c.name, c.instances]));
    for (const c of k.classes) {
      const from = was.get(c.name) ?? 0;
      if (from !== c.instances) out.push({ type: 'instances', at, loadTag: k.loadTag, bundleId: k.bundleId, className: c.name, from, to: c.instances });
    }
  }
  return out;
}

function fromKernel(e: KernelEvent): WatchEvent {
  // seq is the ring's business; a watcher sees 'dropped' instead of gaps.
  const { seq: _seq, ...rest } = e;
  return rest as WatchEvent;
}

/**
 * The sim's events count from the moment watch() is called (a generator's body would only
 * start at the first next()); this connection's calls, and a Mac's baseline table, from the
 * first next(), so a watch that is never iterated holds nothing.
 */
export function watch(src: WatchSource, o: WatchOptions): AsyncGenerator<WatchEvent, void, undefined> {
  const start = src.sim ? (o.fromBoot ? 0 : src.sim.eventCursor) : 0;
  return run(src, o, start);
}

async function* run(src: WatchSource, o: WatchOptions, start: number): AsyncGenerator<WatchEvent, void, undefined> {
  const kernel = src.sim;
  const only = o.bundleIds ? new Set(o.bundleIds) : null;
  const interval = o.intervalMs ?? (kernel ? 10 : 500);
  const queue: WatchEvent[] = [];
  let lost = 0;
  const now = () => (kernel ? kernel.now : Date.now());
  const push = (e: WatchEvent) => {
    if (only && e.type !== 'dropped' && !(e.type === 'call' ? e.bundleId !== null && only.has(e.bundleId) : only.has(e.bundleId))) return;
    if (queue.length >= WATCH_QUEUE) {
      const old = queue.shift()!;
      lost += old.type === 'dropped' ? old.count : 1; // one report for both kinds of loss
    }
    queue.push(e);
  };

  // The sim's ring, from here (or from boot).
  let cursor = start;
  const names = new Map<number, string>(); // tag → bundle id, for calls and the Mac's diffs
  let table: LoadedKext[] | undefined;
  const drain = () => {
    if (!kernel) return;
    const r = kernel.events(cursor);
    cursor = r.cursor;
    if (r.dropped > 0) push({ type: 'dropped', at: now(), count: r.dropped });
    for (const e of r.events) {
      if (e.type === 'loaded') names.set(e.loadTag, e.bundleId);
      push(fromKernel(e));
    }
  };
  const poll = async () => {
    const next = await src.loadedKexts();
    for (const k of next) names.set(k.loadTag, k.bundleId);
    if (table) for (const e of diffKexts(table, next, now())) push(e);
    table = next;
  };

  let wake: (() => void) | undefined;
  const unsubscribe = src.subscribe({
    call: (c) => {
      drain(); // the kernel's events caused by the call come before the call's answer
      const bundleId = names.get(c.loadTag) ?? kernel?.loadedKexts().find((k) => k.loadTag === c.loadTag)?.bundleId ?? null;
      push({ type: 'call', at: now(), op: c.op, loadTag: c.loadTag, bundleId, ok: c.ok, name: c.name, ...(c.held !== undefined ? { held: c.held } : {}) });
      wake?.();
    },
    closing: () => wake?.(),
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const onAbort = () => wake?.();
  o.signal?.addEventListener('abort', onAbort);
  try {
    if (kernel) for (const k of kernel.loadedKexts()) names.set(k.loadTag, k.bundleId);
    else await poll(); // the baseline the diffs start from
    for (;;) {
      if (o.signal?.aborted || src.closed()) return;
      if (kernel) drain();
      if (lost > 0) {
        queue.unshift({ type: 'dropped', at: now(), count: lost });
        lost = 0;
      }
      if (queue.length > 0) {
        yield queue.shift()!;
        continue;
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(resolve, interval);
      });
      clearTimeout(timer);
      wake = undefined;
      if (!kernel && !src.closed() && !o.signal?.aborted) await poll().catch((e) => {
        if (!src.closed()) throw e; // closed while polling: the watch ends
      });
    }
  } finally {
    clearTimeout(timer);
    o.signal?.removeEventListener('abort', onAbort);
    unsubscribe();
  }
}
