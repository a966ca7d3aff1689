/**
 * kextbridge: drive macOS kext retain/release from Node with typed OSReturn answers, on the
 * real kext or the simulated kernel. Start with {@link open}.
 * @module kextbridge
 */
export { open } from './open';
export type { OpenOptions } from './open';
export { KextBridge } from './kextbridge';
export type { Backend, SyncApi } from './kextbridge';
export type { CallOptions } from './abortable';
export { createSimKernel, defaultSimKernel, SimKernel } from './sim';
export type { KernelEvent, KernelEvents, KextSpec, LoadRequestedEvent, OSReturnResult, PanicRecord, RequestEvent, SimKernelOptions, SimPendingRequest } from './sim-types';
export type { InstallOptions } from './sim';
export type {
  LoadKextKernelFailure, LoadKextRefusal, LoadKextResult, LoadKextSuccess, OwnRequest, RequestOptions,
  ResourceAborted, ResourceDelivered, ResourceKernelFailure, ResourceRefusal, ResourceResult,
} from './requests';
export { describeReturn, codeValue, isCodeName, toHex } from './codes';
export type { CodeName, ReturnDescription } from './codes';
export { KextBridgeError } from './errors';
export type { BatchTagFailure, Held, Info, KernelFailure, KernelSuccess, LoadedKext, ReleaseResult, RetainResult, UserClientRefusal } from './results';
export { CODES, LIMITS, PROTOCOL_VERSION, SAMPLE_KEXT, SELECTORS } from './protocol.gen';
export { decodeText } from './decode-text';
export type { TextCode, TextCodeKind } from './decode-text';
export { doctor } from './doctor';
export type { Check, DoctorOptions, RunResult } from './doctor';
export { KextHandle } from './workflow/handle';
export type { StaleResult, Staleness } from './workflow/handle';
export type { Blocker, Explanation, UserClient } from './workflow/explain';
export type { Target } from './workflow/target';
export type { WaitOptions, WaitResult } from './workflow/wait';
export type { WatchEvent, WatchOptions } from './workflow/watch';
export type { LifecycleFailure, LifecycleOptions, LoadResult, LoadSuccess, UnloadResult, UnloadSuccess } from './lifecycle/results';
