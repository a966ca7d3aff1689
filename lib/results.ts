// Result types. Each method's union lists exactly the codes that method can produce (from
// the selector table), so a `switch (r.name)` is checked by the compiler.
import { SELECTORS } from './protocol.gen';

type Sel = typeof SELECTORS;
type KernelNames<S extends keyof Sel> = Sel[S]['kernelCodes'][number];
type UserClientNames<S extends keyof Sel> = Sel[S]['userClientCodes'][number];

/** The kernel KPI ran and succeeded. */
export interface KernelSuccess {
  /** Always true: the call succeeded. */
  ok: true;
  /** The kernel answered (the OSReturn in scalar output 0). */
  layer: 'kernel';
  /** The code's name. */
  name: 'kOSReturnSuccess';
  /** The code's value: 0. */
  code: 0;
  /** The code's message, from protocol/kextbridge.json. */
  message: string;
  /** The load tag the call was for. */
  loadTag: number;
  /** How many retains this connection holds on the tag after the call. */
  held: number;
}

/** The kernel KPI ran and answered this (scalar output 0 of the user-client call). */
export interface KernelFailure<N extends string> {
  /** Always false: the kernel refused. */
  ok: false;
  /** The kernel answered (the OSReturn in scalar output 0). */
  layer: 'kernel';
  /** The OSReturn's name: one of the codes this method's KPI can return. */
  name: N;
  /** The OSReturn's value, unsigned 32-bit. */
  code: number;
  /** The code's message, from protocol/kextbridge.json. */
  message: string;
  /** The load tag the call was for. */
  loadTag: number;
  /** How many retains this connection holds on the tag after the call (unchanged by a failure). */
  held: number;
}

/** The user client refused before reaching the kernel (the externalMethod IOReturn). */
export interface UserClientRefusal<N extends string> {
  /** Always false: the user client refused. */
  ok: false;
  /** The sample kext's user client answered, not the kernel. */
  layer: 'userclient';
  /** The IOReturn's name: one of the refusals this method's selector can answer. */
  name: N;
  /** The IOReturn's value, unsigned 32-bit. */
  code: number;
  /** The code's message, from protocol/kextbridge.json. */
  message: string;
  /** The load tag the call was for. */
  loadTag: number;
  /**
   * How many retains this connection holds on the tag after the refusal (unchanged by it):
   * the ledger's real count, e.g. a held tag refused by a full ledger (kIOReturnNoResources).
   * A single call's refusal carries no outputs (MIG drops them on an error), so the addon asks
   * the user client (the held selector) right after, in the same turn on the connection's
   * queue; a batch's entry carries it. Absent when the user client could not say (stopped).
   */
  held?: number;
}

/**
 * One tag of an interrupted retainMany/releaseMany (in `KextBridgeError.results`) that has no
 * typed result. The error carries every tag's outcome in order: the typed results of what
 * happened, and one of these for each other tag.
 */
export interface BatchTagFailure {
  /** Always false. */
  ok: false;
  /**
   * 'not-run': the tag never reached the kernel (the user client stopped before it, e.g. its
   * service was terminated, or the call carrying it failed, e.g. a panicked or closed
   * connection): nothing changed for it. 'unexpected': the kernel answered a code this KPI
   * cannot produce (on the sim only an injected fault does, and a fault changes nothing).
   */
  layer: 'not-run' | 'unexpected';
  /** The code's name: why the tag did not run, or what the kernel answered. */
  name: string;
  /** The code's value, unsigned 32-bit. */
  code: number;
  /** What the code means. */
  message: string;
  /** The load tag. */
  loadTag: number;
}

type ResultOf<S extends 'retain' | 'release'> =
  | KernelSuccess
  | KernelFailure<Exclude<KernelNames<S>, 'kOSReturnSuccess'>>
  | UserClientRefusal<UserClientNames<S>>;

/** What `retain()` answers: success, a kernel failure or a user-client refusal, each code typed. */
export type RetainResult = ResultOf<'retain'>;
/** What `release()` answers: success, a kernel failure or a user-client refusal, each code typed. */
export type ReleaseResult = ResultOf<'release'>;

/** What `info()` answers: the sample kext's identity and this connection's rights and limits. */
export interface Info {
  /** The sample kext's own load tag (OSKextGetCurrentLoadTag). */
  loadTag: number;
  /** The sample kext's bundle identifier. */
  identifier: string;
  /** The sample kext's version (CFBundleVersion). */
  version: string;
  /** The user-client protocol version the kext speaks. */
  protocolVersion: number;
  /** Whether this connection may retain and release (administrator). */
  privileged: boolean;
  /** The most retains one connection may hold at once. */
  ledgerCap: number;
  /** Why open() chose this connection's backend (the same as kb.backendReason). */
  backendReason: string;
}

/** One entry of `held()`: a load tag and how many retains this connection holds on it. */
export interface Held {
  /** The load tag. */
  loadTag: number;
  /** Retains this connection holds on it (at least 1). */
  count: number;
}

/** One row of the loaded-kext table (`loadedKexts()`), from the kernel's OSBundle* keys. */
export interface LoadedKext {
  /** CFBundleIdentifier. */
  bundleId: string;
  /** OSBundleLoadTag. */
  loadTag: number;
  /** OSBundleRetainCount: outside references (retains and dependents), 0 when idle. */
  retainCount: number;
  /** OSBundleStarted: the kext's start routine ran. */
  started: boolean;
  /** CFBundleVersion. */
  version: string;
  /** OSBundleUUID. */
  uuid: string;
  /** Load tags of direct dependencies, descending. */
  dependencies: number[];
  /** OSBundleClasses: the IOKit classes the kext defines. */
  classes: {
    /** The class name. */
    name: string;
    /** Its superclass's name. */
    superclass: string;
    /** Live instances of the class. */
    instances: number;
  }[];
}
