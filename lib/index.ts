export { open, KextBridge } from './bridge';
export type { Backend, CallOptions, OpenOptions, SyncApi } from './bridge';
export { createSimKernel, defaultSimKernel, SimKernel } from './sim';
export type { KextSpec, OSReturnResult, PanicRecord, SimKernelOptions } from './sim-types';
export { describeReturn, codeValue, isCodeName, toHex } from './codes';
export type { CodeName, ReturnDescription } from './codes';
export { KextBridgeError } from './errors';
export type { Held, Info, KernelFailure, KernelSuccess, LoadedKext, ReleaseResult, RetainResult, UserClientRefusal } from './results';
export { CODES, LIMITS, PROTOCOL_VERSION, SAMPLE_KEXT, SELECTORS } from './protocol.gen';
