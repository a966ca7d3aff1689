// Who wants to know about connections as they open: the test kit's environment (leak check,
// recording per test file). The observers live on a global symbol, not in this module, so a
// jest environment (in the runner's realm) sees the connections a test (in its own module
// registry) opens. Nothing is observed unless someone installed an observer.
import type { KextBridge } from './kextbridge';

export interface OpenObserver {
  /** Called once per open() that succeeded, before open() resolves. Must not throw. */
  opened(kb: KextBridge): void;
  /** Where this test file's recording goes under KEXTBRIDGE_RECORD, if the observer knows. */
  recordFile?(dir: string): string | undefined;
  /** The kit's per-test opt-out (skipLeakCheck()). */
  skipLeakCheck?(): void;
}

export const OBSERVERS = Symbol.for('kextbridge.observers');

export function observers(): OpenObserver[] {
  const g = globalThis as unknown as Record<symbol, OpenObserver[] | undefined>;
  return g[OBSERVERS] ?? [];
}

export function notifyOpened(kb: KextBridge): void {
  for (const o of observers()) {
    try {
      o.opened(kb);
    } catch {
      // an observer's bug must never fail the user's open()
    }
  }
}
