// The workflow methods of KextBridge (kext, explain, the waits, watch), over the connection's
// own calls. KextBridge delegates here; nothing here reaches past the connection and its
// SimKernel.
import type { CallOptions } from '../abortable';
import type { Held, LoadedKext, ReleaseResult, RetainResult } from '../results';
import type { SimKernel } from '../sim';
import { checkUint32 } from '../validate';
import { explainFrom, Explanation, Facts, RequestFact, SimFacts, UserClient } from './explain';
import type { OwnRequest } from '../requests';
import { SAMPLE_KEXT } from '../protocol.gen';
import { KextHandle } from './handle';
import { checkTarget, findTarget, Target } from './target';
import { checkWaitOptions, hasRetainCount, isLoaded, isUnloaded, WaitOptions, WaitResult, waitPolling, waitVirtual, WaitSource } from './wait';
import { checkWatchOptions, ConnectionListener, watch, WatchEvent, WatchOptions } from './watch';

/** What the workflow needs from its KextBridge. */
export interface WorkflowHost {
  readonly sim: SimKernel | undefined;
  readonly closed: boolean;
  loadedKexts(options?: CallOptions): Promise<LoadedKext[]>;
  held(options?: CallOptions): Promise<Held[]>;
  retain(loadTag: number, options?: CallOptions): Promise<RetainResult>;
  release(loadTag: number, options?: CallOptions): Promise<ReleaseResult>;
  /** The transport's user clients on the sample kext's service (both backends). */
  _userClients(): Promise<UserClient[]>;
  /** This connection's resource requests the kernel accepted and has not answered. */
  _ownRequests?(): OwnRequest[];
}

/** The pending resource requests explain() reports: the kernel's on the sim. */
export function simRequests(kernel: SimKernel): RequestFact[] {
  return kernel.pendingRequests().map((p) => ({ requestTag: p.requestTag, loadTag: p.loadTag, bundleId: p.bundleId, resourceName: p.resourceName }));
}

/** The simulated kernel's facts beyond the loaded-kext table, read now. */
export function simFacts(kernel: SimKernel): SimFacts {
  const enabled = kernel._unloadEnabled();
  return {
    flags: (tag) => kernel._kextFlags(tag),
    unloadEnabled: enabled.unload,
    autounloadEnabled: enabled.autounload,
    nextDueMs: kernel.nextDueMs,
    now: kernel.now,
    sampleLoadTag: kernel.sampleLoadTag,
  };
}

export class Workflow {
  private readonly listeners = new Set<ConnectionListener>();

  constructor(private readonly host: WorkflowHost) {}

  /** A handle on the loaded kext the target names, or null when none is loaded. */
  async kext(target: unknown): Promise<KextHandle | null> {
    const t = checkTarget(target);
    const k = findTarget(await this.host.loadedKexts(), t);
    if (!k) return null;
    return new KextHandle(
      {
        loadedKexts: () => this.host.loadedKexts(),
        retain: (tag, o) => this.host.retain(tag, o),
        release: (tag, o) => this.host.release(tag, o),
        explain: (tag) => this.explain(tag),
        waitForUnload: (tag, o) => this.waitForUnload(tag, o),
        waitForRetainCount: (tag, n, o) => this.waitForRetainCount(tag, n, o),
        heldCount: async (tag) => (await this.host.held()).find((h) => h.loadTag === tag)?.count ?? 0,
      },
      k,
    );
  }

  async explain(target: unknown): Promise<Explanation> {
    return this.explainChecked(checkTarget(target));
  }

  async waitForUnload(target: unknown, options?: WaitOptions): Promise<WaitResult> {
    const t = checkTarget(target);
    return this.wait(t, isUnloaded((k) => findTarget(k, t)), checkWaitOptions(options));
  }

  async waitForLoad(target: unknown, options?: WaitOptions): Promise<WaitResult> {
    const t = checkTarget(target);
    return this.wait(t, isLoaded((k) => findTarget(k, t)), checkWaitOptions(options));
  }

  /** Until the kext is loaded with this OSBundleRetainCount (retains and dependents). */
  async waitForRetainCount(target: unknown, n: unknown, options?: WaitOptions): Promise<WaitResult> {
    const t = checkTarget(target);
    const count = checkUint32('n', n);
    return this.wait(t, hasRetainCount((k) => findTarget(k, t), count), checkWaitOptions(options));
  }

  watch(options?: WatchOptions): AsyncGenerator<WatchEvent, void, undefined> {
    const o = checkWatchOptions(options);
    return watch(
      {
        sim: this.host.sim,
        closed: () => this.host.closed,
        loadedKexts: () => this.host.loadedKexts(),
        subscribe: (l) => {
          this.listeners.add(l);
          return () => this.listeners.delete(l);
        },
      },
      o,
    );
  }

  /** KextBridge reports each retain/release answer (one per tag of a batch). */
  reportCall(op: 'retain' | 'release', r: RetainResult | ReleaseResult): void {
    // Small enough to be inlined into the sync path, which nobody watches as a rule.
    if (this.listeners.size !== 0) this.deliverCall(op, r);
  }

  private deliverCall(op: 'retain' | 'release', r: RetainResult | ReleaseResult): void {
    const c = { op, loadTag: r.loadTag, ok: r.ok, name: r.name, ...('held' in r ? { held: r.held } : {}) };
    for (const l of this.listeners) l.call(c);
  }

  reportClosing(): void {
    for (const l of this.listeners) l.closing();
  }

  private async facts(): Promise<Facts> {
    // held() first: it waits for this connection's calls in flight, so the table after it
    // includes what they did.
    const held = await this.host.held();
    const kexts = await this.host.loadedKexts();
    const userClients = await this.host._userClients();
    const sim = this.host.sim;
    // On a Mac user space cannot list the kernel's requests: this connection's own, all made
    // through the sample kext (its callback).
    const sample = kexts.find((k) => k.bundleId === SAMPLE_KEXT.bundleId)?.loadTag;
    const requests = sim
      ? simRequests(sim)
      : sample === undefined
        ? []
        : (this.host._ownRequests?.() ?? []).map((r) => ({ requestTag: r.requestTag!, loadTag: sample, bundleId: r.bundleId, resourceName: r.resourceName }));
    return { kexts, held, userClients, sim: sim ? simFacts(sim) : undefined, requests };
  }

  private async explainChecked(t: Target): Promise<Explanation> {
    return explainFrom(await this.facts(), t);
  }

  private wait(t: Target, cond: (k: readonly LoadedKext[]) => boolean, o: { timeout: number; signal?: AbortSignal }): Promise<WaitResult> {
    const src: WaitSource = {
      read: async () => {
        await this.host.held(); // a barrier: this connection's calls in flight are done
        return this.host.loadedKexts();
      },
      explain: () => this.explainChecked(t),
    };
    return this.host.sim ? waitVirtual(this.host.sim, src, cond, o) : waitPolling(src, cond, o);
  }
}
