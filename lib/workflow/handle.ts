// KextHandle: one loaded kext, pinned by its load tag. Load tags are never reused, so a handle
// can never act on another kext; when its kext is gone it answers kOSKextReturnNotFound and
// says whether the bundle id was unloaded or reloaded under a new tag.
import { codeValue, describeReturn } from '../codes';
import type { CallOptions } from '../abortable';
import type { ReleaseResult, RetainResult, LoadedKext } from '../results';
import type { Explanation } from './explain';
import type { WaitOptions, WaitResult } from './wait';

export type Staleness = { stale: 'unloaded' } | { stale: 'reloaded'; currentLoadTag: number };

/** What a stale handle's retain/release answers (nothing reached the kernel). */
export type StaleResult = {
  ok: false;
  layer: 'kernel';
  name: 'kOSKextReturnNotFound';
  code: number;
  message: string;
  loadTag: number;
  held: number;
} & Staleness;

/** What a handle needs from its connection. */
export interface HandleHost {
  loadedKexts(): Promise<LoadedKext[]>;
  retain(loadTag: number, options?: CallOptions): Promise<RetainResult>;
  release(loadTag: number, options?: CallOptions): Promise<ReleaseResult>;
  explain(target: number): Promise<Explanation>;
  waitForUnload(target: number, options?: WaitOptions): Promise<WaitResult>;
  waitForRetainCount(target: number, n: number, options?: WaitOptions): Promise<WaitResult>;
  heldCount(loadTag: number): Promise<number>;
}

export class KextHandle {
  readonly bundleId: string;
  readonly loadTag: number;
  readonly uuid: string;
  readonly #host: HandleHost;

  /** @internal use kb.kext(target) */
  constructor(host: HandleHost, k: LoadedKext) {
    this.#host = host;
    this.bundleId = k.bundleId;
    this.loadTag = k.loadTag;
    this.uuid = k.uuid;
  }

  /** null while this handle's kext is loaded; otherwise whether it was unloaded or reloaded. */
  async staleness(): Promise<Staleness | null> {
    return stalenessIn(await this.#host.loadedKexts(), this);
  }

  async retain(options?: CallOptions): Promise<RetainResult | StaleResult> {
    return this.act((o) => this.#host.retain(this.loadTag, o), options);
  }

  async release(options?: CallOptions): Promise<ReleaseResult | StaleResult> {
    return this.act((o) => this.#host.release(this.loadTag, o), options);
  }

  explain(): Promise<Explanation> {
    return this.#host.explain(this.loadTag);
  }

  /** Resolves at once when the kext is already gone (unloaded or reloaded: this tag is). */
  waitForUnload(options?: WaitOptions): Promise<WaitResult> {
    return this.#host.waitForUnload(this.loadTag, options);
  }

  waitForRetainCount(n: number, options?: WaitOptions): Promise<WaitResult> {
    return this.#host.waitForRetainCount(this.loadTag, n, options);
  }

  toJSON() {
    return { bundleId: this.bundleId, loadTag: this.loadTag, uuid: this.uuid };
  }

  private async act<R extends RetainResult | ReleaseResult>(call: (o?: CallOptions) => Promise<R>, options?: CallOptions): Promise<R | StaleResult> {
    const before = await this.staleness();
    if (before) return this.staleResult(before);
    const r = await call(options);
    // Unloaded between the look and the call: the old tag answers NotFound, and says why.
    if (!r.ok && r.name === 'kOSKextReturnNotFound') {
      const after = await this.staleness();
      if (after) return this.staleResult(after);
    }
    return r;
  }

  private async staleResult(s: Staleness): Promise<StaleResult> {
    const code = codeValue('kOSKextReturnNotFound');
    const why = s.stale === 'reloaded' ? `${this.bundleId} was unloaded and loaded again under tag ${s.currentLoadTag}` : `${this.bundleId} was unloaded`;
    return {
      ok: false, layer: 'kernel', name: 'kOSKextReturnNotFound', code,
      message: `${describeReturn(code).message}: this handle's kext (tag ${this.loadTag}) is gone; ${why}`,
      loadTag: this.loadTag, held: await this.#host.heldCount(this.loadTag), ...s,
    };
  }
}

export function stalenessIn(kexts: readonly LoadedKext[], h: { loadTag: number; bundleId: string; uuid: string }): Staleness | null {
  if (kexts.some((k) => k.loadTag === h.loadTag && k.bundleId === h.bundleId)) return null;
  const now = kexts.find((k) => k.bundleId === h.bundleId);
  return now ? { stale: 'reloaded', currentLoadTag: now.loadTag } : { stale: 'unloaded' };
}
