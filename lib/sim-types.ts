// The simulated kernel's data types: what it is created with, what a kext is loaded from,
// what its calls answer and what a panic records. Both sim.ts and the native surface use
// them, so they live below both.

/** How `createSimKernel()` sets up a new simulated machine. */
export interface SimKernelOptions {
  /** Global autounload (default true): released kexts unload 60 s of virtual time later. */
  autounload?: boolean;
  /** Unloading allowed at all, explicit or automatic (default true); off, unloadKext answers kOSKextReturnDisabled. */
  unloadEnabled?: boolean;
}

/** A kext for `SimKernel.loadKext()`: its identity, dependencies, classes and flags. */
export interface KextSpec {
  /** CFBundleIdentifier; loading a bundle id that is already loaded answers with its tag. */
  bundleId: string;
  /** CFBundleVersion (default '1.0.0'). */
  version?: string;
  /** OSBundleUUID (default: derived from the bundle id and the load tag). */
  uuid?: string;
  /** Bundle ids of loaded kexts this one links against; each holds a reference. */
  dependencies?: string[];
  /** Classes and their live instances; a subclass of IOService turns autounload on. */
  classes?: {
    /** The class name. */
    name: string;
    /** Its superclass's name. */
    superclass?: string;
    /** Live instances at load (default 0); a kext with live instances does not autounload. */
    instances?: number;
  }[];
  /** Autounload flag at load (xnu also sets it on the first retain). Default false. */
  autounload?: boolean;
  /** Never unloads (some kext-collection layouts). */
  unloadUnsupported?: boolean;
  /** OSBundleStarted (default true). */
  started?: boolean;
}

/** An OSReturn as a typed answer. */
export interface OSReturnResult {
  /** True for kOSReturnSuccess. */
  ok: boolean;
  /** The code's name. */
  name: string;
  /** The code's value, unsigned 32-bit. */
  code: number;
  /** The code's message, from protocol/kextbridge.json. */
  message: string;
}

/** The call that would have panicked the Mac (an over-release below the kernel's baseline). */
export interface PanicRecord {
  /** The kernel function that dropped the count (e.g. OSKextReleaseKextWithLoadTag). */
  call: string;
  /** The kext's load tag. */
  loadTag: number;
  /** The kext's bundle identifier. */
  bundleId: string;
  /** The kext's raw OSObject retain count after the call (as `rawRetainCount`), below the baseline of 2. */
  retainCountAfter: number;
  /** When, in the kernel's virtual milliseconds. */
  timeMs: number;
  /** A panic string in the style of the Mac's. */
  message: string;
}

interface EventBase {
  /** Position in the kernel's event stream (0 at boot); consecutive unless events were dropped. */
  seq: number;
  /** Virtual milliseconds since boot. */
  at: number;
  /** The load tag of the kext the event is about. */
  loadTag: number;
  /** The bundle id of the kext the event is about. */
  bundleId: string;
}

/** What happened to the simulated machine, in order (SimKernel.events()). */
export type KernelEvent =
  | (EventBase & {
      /** The kext was loaded. */
      type: 'loaded';
    })
  | (EventBase & {
      /** The kext was unloaded. */
      type: 'unloaded';
      /** Whether an explicit unload request or the autounload scan unloaded it. */
      cause: 'explicit' | 'autounload';
    })
  /** OSBundleRetainCount before and after (retains and dependents; 0 when idle). */
  | (EventBase & {
      /** The kext's OSBundleRetainCount changed. */
      type: 'retainCount';
      /** OSBundleRetainCount before the change. */
      from: number;
      /** OSBundleRetainCount after the change. */
      to: number;
    })
  /** Live instances of one of the kext's classes (OSMetaClassTrackingCount). */
  | (EventBase & {
      /** The live instance count of one of the kext's classes changed. */
      type: 'instances';
      /** The class whose instance count changed. */
      className: string;
      /** Live instances before the change. */
      from: number;
      /** Live instances after the change. */
      to: number;
    })
  | (EventBase & {
      /** The simulated kernel panicked (in this kext). */
      type: 'panic';
      /** The panic string. */
      message: string;
    })
  | RequestEvent
  | LoadRequestedEvent;

/**
 * A resource request's life in the kernel (OSKextRequestResource): queued, then delivered,
 * timed out (at the autounload scans) or cancelled. `loadTag` is the requesting kext (whose
 * callback it is: the sample kext for kb.requestResource), `bundleId` and `resourceName` what
 * it asked for.
 */
export interface RequestEvent {
  /** A resource request event. */
  type: 'request';
  /** What happened to the request. */
  phase: 'queued' | 'delivered' | 'timedOut' | 'cancelled';
  /** Position in the kernel's event stream. */
  seq: number;
  /** Virtual milliseconds since boot. */
  at: number;
  /** The requesting kext's load tag. */
  loadTag: number;
  /** The bundle the resource was asked from. */
  bundleId: string;
  /** The resource's name. */
  resourceName: string;
  /** The kernel's tag for the request. */
  requestTag: number;
  /** delivered / timedOut: the OSReturn the callback got (kOSKextReturnNotFound: no such resource). */
  code?: number;
  /** delivered: the bytes delivered. */
  length?: number;
}

/** OSKextLoadKextWithIdentifier of an id the kernel does not know: queued to kernelmanagerd. */
export interface LoadRequestedEvent {
  /** A load request went to user space. */
  type: 'loadRequested';
  /** Position in the kernel's event stream. */
  seq: number;
  /** Virtual milliseconds since boot. */
  at: number;
  /** Always null: nothing is loaded yet. */
  loadTag: null;
  /** The bundle id asked for. */
  bundleId: string;
}

/** A resource request the simulated kernel holds (SimKernel.pendingRequests()). */
export interface SimPendingRequest {
  /** The kernel's tag for the request. */
  requestTag: number;
  /** The requesting kext's load tag. */
  loadTag: number;
  /** The requesting kext's bundle id. */
  callerBundleId: string;
  /** The bundle the resource is asked from. */
  bundleId: string;
  /** The resource's name. */
  resourceName: string;
  /** Virtual ms when it was requested. */
  requestedAt: number;
  /** Virtual ms when kernelmanagerd answers it, or null while resources are withheld. */
  dueAt: number | null;
  /** kernelmanagerd will not answer it (withholdResources): it times out at the scans. */
  withheld: boolean;
  /** One autounload scan has seen it: the next one times it out. */
  stale: boolean;
}

/** A read of the kernel's event ring. */
export interface KernelEvents {
  /** Pass this to the next events() call. */
  cursor: number;
  /** Events that fell out of the ring before this reader asked (the ring keeps the last 4096). */
  dropped: number;
  /** The events read, oldest first. */
  events: KernelEvent[];
}

/** @internal what explain() needs from the sim beyond the loaded-kext table. */
export interface SimKextFlags {
  autounload: boolean;
  unloadUnsupported: boolean;
  kernelComponent: boolean;
  /** Resource requests with this kext's callback (they block its unload). */
  pendingRequests: number;
  /** Its stop routine is running (setStopping): new requests answer kOSKextReturnStopping. */
  stopping: boolean;
}
