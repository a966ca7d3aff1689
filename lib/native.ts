// The one place the native addon is loaded, and the exact surface it exposes.
import * as fs from 'fs';
import * as path from 'path';
import type { LoadedKext } from './results';
import type { KernelEvents, KextSpec, PanicRecord, SimKernelOptions, SimKextFlags, SimPendingRequest } from './sim-types';

export interface NativeCallResult {
  kr: number;
  scalars: (number | bigint)[];
  struct: Buffer;
  /** retain/release refused by the user client: the ledger's count on the tag, asked right after. */
  held?: number;
}
export interface NativeManyResult {
  kr: number;
  /** Per tag: [kr, scalar0, scalar1]. */
  results: Float64Array;
}
/** A user client open on the sample kext's service: its creator's pid and short process name. */
export interface NativeUserClient {
  pid: number;
  process: string;
}
/** The loaded-kext table crosses the boundary already in its public shape. */
export type NativeKext = LoadedKext;
export interface NativeConnection {
  call(selector: number, scalars: (number | bigint)[], structIn: Uint8Array | null, outScalars: number, outStructSize: number): Promise<NativeCallResult>;
  callSync(selector: number, scalars: (number | bigint)[], structIn: Uint8Array | null, outScalars: number, outStructSize: number): NativeCallResult;
  /**
   * The sync retain/release fast path: functions bound to this connection that take a load
   * tag and answer one Number, packed (native/connection.h): r >= 0, the user client answered
   * (held = r % heldSpan, osReturn = (r - held) / heldSpan); r < 0, it refused
   * (-1 - r = kr * heldSpan + (held + 1, or 0 when unknown)). decodeSync unpacks it.
   */
  bindSync(): { heldSpan: number; retain(loadTag: number): number; release(loadTag: number): number };
  /**
   * IOConnectCallAsyncMethod: as call(), with a refcon the native side picks and registers
   * before the call is queued. onCompletion(result, args) runs on the JS thread at most once,
   * possibly before the promise settles, never after close. A call answering kr ≠ 0 gets no
   * completion (forgotten natively); for one the kernel refused, call forgetAsync(refcon).
   */
  callAsync(selector: number, scalars: (number | bigint)[], structIn: Uint8Array | null, outScalars: number, outStructSize: number, onCompletion: (result: number, args: (number | bigint)[]) => void): Promise<NativeCallResult & { refcon: number }>;
  /** Stops awaiting a completion (no event-loop reference left for it); true when it was awaited. */
  forgetAsync(refcon: number): boolean;
  /** The whole delivery of a request (fetchResource in fetchChunkSize pieces, one job). */
  fetchResource(requestTag: number): Promise<{ kr: number; length: number; data: Buffer }>;
  /** Test seam: async calls awaiting their completion. */
  readonly _asyncPending: number;
  callMany(selector: number, loadTags: Uint32Array): Promise<NativeManyResult>;
  callManySync(selector: number, loadTags: Uint32Array): NativeManyResult;
  loadedKexts(): Promise<{ kr: number; kexts: NativeKext[] }>;
  loadedKextsSync(): { kr: number; kexts: NativeKext[] };
  /** The transport's user clients on the sample kext's service (IOUserClientCreator on a Mac). */
  userClients(): Promise<{ kr: number; clients: NativeUserClient[] }>;
  /** unreleased: retains the user client could not release at close (the kernel refused them). */
  close(): Promise<{ kr: number; unreleased?: number }>;
  /**
   * True once a close was accepted (queued, or the environment is shutting down), not once
   * it finished: later calls answer MACH_SEND_INVALID_DEST.
   */
  readonly closing: boolean;
  /** Test seam: user-client calls (IOConnectCallMethod) this connection has made. */
  readonly _userClientCalls: number;
  /** Test seam: calls made to this object's methods (each counts once, valid or not). */
  readonly _nativeCalls: number;
}
export interface NativeSimKernel {
  loadKext(spec: KextSpec): { kr: number; loadTag: number };
  unloadKext(loadTag: number): number;
  setInstances(loadTag: number, className: string, count: number): number;
  advance(ms: number): void;
  now(): number;
  autounloadDeadline(): number | null;
  /** The record of the call that would have panicked the Mac, or null. */
  panicRecord(): PanicRecord | null;
  loadedKexts(): NativeKext[];
  retainCount(loadTag: number): number;
  lookupLoadTag(bundleId: string): number;
  sampleLoadTag(): number;
  kpiRetain(loadTag: number): number;
  kpiRelease(loadTag: number): number;
  injectFault(kpi: 'retain' | 'release', code: number, times: number): void;
  delayCalls(microseconds: number, count: number): void;
  eventsSince(cursor: number): KernelEvents;
  nextDueMs(): number | null;
  kextFlags(loadTag: number): SimKextFlags | null;
  /** The kernel's open user clients of the sample kext, as SimTransport::userClients reports them. */
  userClients(): NativeUserClient[];
  unloadEnabled(): { unload: boolean; autounload: boolean };
  installKext(spec: KextSpec, resources?: Record<string, Uint8Array | string>): number;
  setResourceDelay(ms: number): void;
  setLoadReplyDelay(ms: number): void;
  withholdResources(on: boolean): void;
  failResources(code: number, times: number): void;
  setStopping(loadTag: number, stopping: boolean): number;
  armAutounloadScan(): void;
  pendingRequests(): SimPendingRequest[];
}
/** Why a connection did not open; `why` says what to do. */
export type OpenFailure = { kr: number; why: string };
export interface NativeBinding {
  Connection: new (...args: never[]) => NativeConnection;
  SimKernel: new (...args: never[]) => NativeSimKernel;
  createSimKernel(options?: SimKernelOptions): NativeSimKernel;
  defaultSimKernel(): NativeSimKernel;
  /** Changes whenever the default machine is replaced (by a reset, from any module instance). */
  _defaultSimKernelGeneration(): number;
  _resetDefaultSimKernel(): void;
  /** Test seam: the next n worker-thread starts fail (only while the shared pool has no thread). */
  _failThreadStarts(n: number): void;
  openSim(kernel: NativeSimKernel, privileged: boolean): NativeConnection | OpenFailure;
  openIOKit(): NativeConnection | OpenFailure;
  iokitAvailable: boolean;
  _codes(): { name: string; value: number; message: string }[];
  _selectors(): { name: string; selector: number; scalarInputs: number; structInputSize: number; scalarOutputs: number; structOutputSize: number; admin: boolean }[];
  _noop(): void;
  _asyncWorkerNoop(): Promise<void>;
}

export function isOpenFailure(v: NativeConnection | OpenFailure): v is OpenFailure {
  return !(v as object instanceof binding().Connection);
}

let loaded: NativeBinding | undefined;

/** The addon, loaded on first use (prebuilt when present, else the local build). */
export function binding(): NativeBinding {
  if (loaded) return loaded;
  const root = packageRoot();
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    loaded = require('node-gyp-build')(root) as NativeBinding;
  } catch (err) {
    throw new Error(
      `kextbridge: the native addon could not be loaded from ${root} ` +
        `(${(err as Error).message.split('\n')[0]}). ` +
        'Build it with `npm run build:native` (needs python3, make and a C++17 compiler), ' +
        'or reinstall the package so its install step builds it.',
    );
  }
  return loaded;
}

function packageRoot(): string {
  // lib/ when run from source (jest), dist/lib/ when compiled.
  for (const dir of [path.join(__dirname, '..'), path.join(__dirname, '..', '..')])
    if (fs.existsSync(path.join(dir, 'binding.gyp'))) return dir;
  return path.join(__dirname, '..');
}
