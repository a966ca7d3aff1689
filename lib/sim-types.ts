// The simulated kernel's data types: what it is created with, what a kext is loaded from,
// what its calls answer and what a panic records. Both sim.ts and the native surface use
// them, so they live below both.

export interface SimKernelOptions {
  /** Global autounload (default true): released kexts unload 60 s of virtual time later. */
  autounload?: boolean;
  /** Unloading allowed at all, explicit or automatic (default true); off, unloadKext answers kOSKextReturnDisabled. */
  unloadEnabled?: boolean;
}

export interface KextSpec {
  bundleId: string;
  version?: string;
  uuid?: string;
  /** Bundle ids of loaded kexts this one links against; each holds a reference. */
  dependencies?: string[];
  /** Classes and their live instances; a subclass of IOService turns autounload on. */
  classes?: { name: string; superclass?: string; instances?: number }[];
  /** Autounload flag at load (xnu also sets it on the first retain). Default false. */
  autounload?: boolean;
  /** Never unloads (some kext-collection layouts). */
  unloadUnsupported?: boolean;
  started?: boolean;
}

/** An OSReturn as a typed answer. */
export interface OSReturnResult {
  ok: boolean;
  name: string;
  code: number;
  message: string;
}

/** The call that would have panicked the Mac (an over-release below the kernel's baseline). */
export interface PanicRecord {
  call: string;
  loadTag: number;
  bundleId: string;
  retainCountAfter: number;
  timeMs: number;
  message: string;
}

interface EventBase {
  /** Position in the kernel's event stream (0 at boot); consecutive unless events were dropped. */
  seq: number;
  /** Virtual milliseconds since boot. */
  at: number;
  loadTag: number;
  bundleId: string;
}

/** What happened to the simulated machine, in order (SimKernel.events()). */
export type KernelEvent =
  | (EventBase & { type: 'loaded' })
  | (EventBase & { type: 'unloaded'; cause: 'explicit' | 'autounload' })
  /** OSBundleRetainCount before and after (retains and dependents; 0 when idle). */
  | (EventBase & { type: 'retainCount'; from: number; to: number })
  /** Live instances of one of the kext's classes (OSMetaClassTrackingCount). */
  | (EventBase & { type: 'instances'; className: string; from: number; to: number })
  | (EventBase & { type: 'panic'; message: string });

/** A read of the kernel's event ring. */
export interface KernelEvents {
  /** Pass this to the next events() call. */
  cursor: number;
  /** Events that fell out of the ring before this reader asked (the ring keeps the last 4096). */
  dropped: number;
  events: KernelEvent[];
}

/** @internal what explain() needs from the sim beyond the loaded-kext table. */
export interface SimKextFlags {
  autounload: boolean;
  unloadUnsupported: boolean;
  kernelComponent: boolean;
}
