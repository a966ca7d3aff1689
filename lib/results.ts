// Result types. Each method's union lists exactly the codes that method can produce (from
// the selector table), so a `switch (r.name)` is checked by the compiler.
import { SELECTORS } from './protocol.gen';

type Sel = typeof SELECTORS;
type KernelNames<S extends keyof Sel> = Sel[S]['kernelCodes'][number];
type UserClientNames<S extends keyof Sel> = Sel[S]['userClientCodes'][number];

export interface KernelSuccess {
  ok: true;
  layer: 'kernel';
  name: 'kOSReturnSuccess';
  code: 0;
  message: string;
  loadTag: number;
  /** How many retains this connection holds on the tag after the call. */
  held: number;
}

/** The kernel KPI ran and answered this (scalar output 0 of the user-client call). */
export interface KernelFailure<N extends string> {
  ok: false;
  layer: 'kernel';
  name: N;
  code: number;
  message: string;
  loadTag: number;
  held: number;
}

/** The user client refused before reaching the kernel (the externalMethod IOReturn). */
export interface UserClientRefusal<N extends string> {
  ok: false;
  layer: 'userclient';
  name: N;
  code: number;
  message: string;
  loadTag: number;
}

type ResultOf<S extends 'retain' | 'release'> =
  | KernelSuccess
  | KernelFailure<Exclude<KernelNames<S>, 'kOSReturnSuccess'>>
  | UserClientRefusal<UserClientNames<S>>;

export type RetainResult = ResultOf<'retain'>;
export type ReleaseResult = ResultOf<'release'>;

export interface Info {
  /** The sample kext's own load tag (OSKextGetCurrentLoadTag). */
  loadTag: number;
  identifier: string;
  version: string;
  protocolVersion: number;
  /** Whether this connection may retain and release (administrator). */
  privileged: boolean;
  /** The most retains one connection may hold at once. */
  ledgerCap: number;
  /** Why open() chose this connection's backend (the same as kb.backendReason). */
  backendReason: string;
}

export interface Held {
  loadTag: number;
  count: number;
}

export interface LoadedKext {
  bundleId: string;
  loadTag: number;
  /** OSBundleRetainCount: outside references (retains and dependents), 0 when idle. */
  retainCount: number;
  started: boolean;
  version: string;
  uuid: string;
  /** Load tags of direct dependencies, descending. */
  dependencies: number[];
  classes: { name: string; superclass: string; instances: number }[];
}
