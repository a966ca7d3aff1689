// KextHandle: one loaded kext, pinned by its load tag. Load tags are never reused, so a handle
// can never act on another kext; when its kext is gone it answers kOSKextReturnNotFound and
// says whether the bundle id was unloaded or reloaded under a new tag.
import { codeValue, describeReturn } from '../codes';
import type { CallOptions } from '../abortable';
import type { ReleaseResult, RetainResult, LoadedKext } from '../results';
import type { Explanation } from './explain';
import type { WaitOptions, WaitResult } from './wait';

/** Why a handle is stale: its kext was unloaded, or unloaded and loaded again under a new tag. */
export type Staleness =
  | {
      /** The bundle id is no longer loaded. */
      stale: 'unloaded';
    }
  | {
      /** The bundle id was loaded again under a new load tag. */
      stale: 'reloaded';
      /** The load tag it is loaded under now. */
      currentLoadTag: number;
    };

/** What a stale handle's retain/release answers (nothing reached the kernel). */
export type StaleResult = {
  /** Always false: the call did not happen. */
  ok: false;
  /** The layer the answer is attributed to: the kernel (as a call on a gone tag would be). */
  layer: 'kernel';
  /** The OSReturn name: the tag is not found. */
  name: 'kOSKextReturnNotFound';
  /** kOSKextReturnNotFound's value. */
  code: number;
  /** What happened, including whether the kext was unloaded or reloaded. */
  message: string;
  /** The handle's (gone) load tag. */
  loadTag: number;
  /** Retains this connection still holds on that tag. */
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

/** One loaded kext, pinned by its load tag (from kb.kext(target)); once its kext is gone it answers as stale. */
export class KextHandle {
  /** The kext's bundle id. */
  readonly bundleId: string;
  /** The kext's load tag, which this handle is pinned to. */
  readonly loadTag: number;
  /** The kext's UUID, as the loaded-kext table gave it. */
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

  /** Retains the kext through this connection, or answers a StaleResult when its kext is gone. */
  async retain(options?: CallOptions): Promise<RetainResult | StaleResult> {
    return this.act((o) => this.#host.retain(this.loadTag, o), options);
  }

  /** Releases one of this connection's retains on the kext, or answers a StaleResult when its kext is gone. */
  async release(options?: CallOptions): Promise<ReleaseResult | StaleResult> {
    return this.act((o) => this.#host.release(this.loadTag, o), options);
  }

  /** Why this kext will not unload (or that it is no longer loaded), as kb.explain(loadTag). */
  explain(): Promise<Explanation> {
    return this.#host.explain(this.loadTag);
  }

  /** Resolves at once when the kext is already gone (unloaded or reloaded: this tag is). */
  waitForUnload(options?: WaitOptions): Promise<WaitResult> {
    return this.#host.waitForUnload(this.loadTag, options);
  }

  /** Until this kext is loaded under this tag with OSBundleRetainCount `n`. */
  waitForRetainCount(n: number, options?: WaitOptions): Promise<WaitResult> {
    return this.#host.waitForRetainCount(this.loadTag, n, options);
  }

  /** The handle as plain data: bundle id, load tag and UUID. */
  toJSON() {
    return {
      /** The kext's bundle id. */
      bundleId: this.bundleId,
      /** The kext's load tag. */
      loadTag: this.loadTag,
      /** The kext's UUID. */
      uuid: this.uuid,
    };
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
