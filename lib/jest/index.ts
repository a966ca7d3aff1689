// kextbridge/jest: matchers for kext tests, typed for TypeScript (ts-jest) users.
//
//   // jest.config.js
//   setupFilesAfterEnv: ['kextbridge/jest'],            // registers the matchers
//   testEnvironment: 'kextbridge/jest/environment',     // the per-test leak check (optional)
//
// Importing this module (in a setup file or a test) calls expect.extend() on jest's global
// expect and brings the matcher types below into the program.
import type { CodeName } from '../codes';
import { observers } from '../observe';
import { matchers } from './matchers';

export { kextRef, matchers } from './matchers';
export type { KextRef, KextSubject, MatcherContext, MatcherResult } from './matchers';

/** Leaves the running test out of the leak check (kextbridge/jest/environment). */
export function skipLeakCheck(): void {
  for (const o of observers()) o.skipLeakCheck?.();
}

interface KextbridgeMatchers<R> {
  /**
   * The result (or the bare code) is this return code: a name such as 'kOSReturnSuccess' or a
   * 32-bit number. The failure shows the name, hex, layer and message received.
   */
  toBeOSReturn(expected: CodeName | number): R;
  /** A KextHandle, or kextRef(kb | kernel, target): that kext is loaded. Async: `await expect(…)…`. */
  toBeLoaded(): Promise<R>;
  /** On a KextBridge or SimKernel: a kext with this load tag or bundle id is loaded. Async. */
  toHaveLoaded(target: number | string): Promise<R>;
  /** An explicit unload would succeed now; the failure lists every blocker (explain()). Async. */
  toBeUnloadable(): Promise<R>;
  /** OSBundleRetainCount (retains and dependents; 0 when idle) is n. Async. */
  toHaveRetainCount(n: number): Promise<R>;
}

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace jest {
    // eslint-disable-next-line @typescript-eslint/no-empty-object-type
    interface Matchers<R, T = {}> extends KextbridgeMatchers<R> {}
  }
}

const g = globalThis as { expect?: { extend?: (m: object) => void } };
if (typeof g.expect?.extend === 'function') g.expect.extend(matchers);
