// What kb.loadBundle() and kb.unloadKext() answer, on the sim and on a Mac.
import type { Blocker } from '../workflow/explain';

/** Options for kb.loadBundle() and kb.unloadKext(). */
export interface LifecycleOptions {
  /** Milliseconds for the whole operation (virtual on the sim, real on a Mac); default 90,000. */
  timeout?: number;
  /** When it aborts, the operation ends with a LifecycleFailure named 'Aborted'. */
  signal?: AbortSignal;
}

/** A load that happened (or found the same version loaded already). */
export interface LoadSuccess {
  /** Always true: the kext is loaded. */
  ok: true;
  /** The loaded kext's bundle id. */
  bundleId: string;
  /** The loaded kext's version (CFBundleVersion). */
  version: string;
  /** The loaded kext's load tag. */
  loadTag: number;
  /** The same version was loaded already (the kernel answers success with its tag). */
  alreadyLoaded: boolean;
  /** OSBundleStarted: the kext's start routine ran. */
  started: boolean;
}

/** An unload that happened. */
export interface UnloadSuccess {
  /** Always true: the kext is no longer loaded. */
  ok: true;
  /** The unloaded kext's bundle id. */
  bundleId: string;
  /** The load tag it had. */
  loadTag: number;
  /** Unload requests made (more than 1 when it was busy and retried). */
  attempts: number;
}

/**
 * A load or unload that did not happen. `name` is the OSReturn the kernel (or the tool) gave
 * when there was one (kOSKextReturnDependencies, kOSKextReturnInUse, …); otherwise one of:
 * 'ApprovalRequired' (kmutil's approval text, which carries no code), 'RebootRequired',
 * 'NotPrivileged' (not root, checked before kmutil runs), 'ToolFailed' (kmutil failed and
 * printed no code we know), 'Timeout', 'Aborted'.
 */
export interface LifecycleFailure {
  /** Always false: the load or unload did not happen. */
  ok: false;
  /** The OSReturn name, or one of the names above when there was no code. */
  name: string;
  /** That OSReturn's value (unsigned 32-bit), or null when there is none. */
  code: number | null;
  /** What went wrong, as one line. */
  message: string;
  /** What to do about it, as one sentence. */
  nextStep: string;
  /** The kext's bundle id, or null when it is not known. */
  bundleId: string | null;
  /** The kext's load tag, or null when it is not (or not yet) loaded. */
  loadTag: number | null;
  /** kmutil's NSError code (KMErrorDomain Code=N), when it printed one. No source says what the numbers mean. */
  kmErrorDomainCode?: number;
  /** kmutil's exit status (null: killed). Mac only. */
  exitStatus?: number | null;
  /** kmutil's stderr, trimmed to 2,000 characters. Mac only. */
  stderr?: string;
  /** Unload: why the kext stayed (from explain()). */
  blockers?: Blocker[];
  /** Unload: the unload requests made before it gave up. */
  attempts?: number;
}

/** What kb.loadBundle() answers. */
export type LoadResult = LoadSuccess | LifecycleFailure;
/** What kb.unloadKext() answers. */
export type UnloadResult = UnloadSuccess | LifecycleFailure;

/** Bounded back-off between unload attempts while the kext is merely busy. */
export const RETRY_FIRST_MS = 250;
export const RETRY_MAX_MS = 2000;

/** The kinds of blocker that go away by themselves (a process closing its connections, IOKit finishing termination). */
export const isBusyOnly = (blockers: readonly Blocker[]) => blockers.length > 0 && blockers.every((b) => b.kind === 'instances' || b.kind === 'userClients');

/** The next step for an unload that was refused, from its blockers. */
export function unloadNextStep(blockers: readonly Blocker[], name: string): string {
  const steps: string[] = [];
  for (const b of blockers) {
    if (b.kind === 'dependents') steps.push(`unload its dependents first (${b.kexts.map((k) => k.bundleId).join(', ')})`);
    if (b.kind === 'retained') steps.push(`release its retains (${b.heldByThisConnection} held by this connection; a kextbridge hold or another process holds the rest)`);
    if (b.kind === 'instances') steps.push(`free the live instances of ${b.classes.map((c) => c.name).join(', ')} (close the connections or stop the clients that use them; a count that never drops is a leak in the kext)`);
    if (b.kind === 'userClients') steps.push(`close the connections (or end the processes: pids ${b.clients.map((c) => c.pid).join(', ')})`);
    if (b.kind === 'pendingRequests') steps.push('wait for its resource requests to finish');
    if (b.kind === 'notUnloadable') steps.push(b.reason === 'unloadDisabled' ? 'unloading is switched off on this machine' : 'it cannot be unloaded at all');
  }
  if (steps.length) return steps.join('; ') + ', then unload again';
  if (name === 'kOSKextReturnNotFound') return 'it is not loaded: kextbridge list shows what is';
  if (name === 'NotPrivileged') return 'run it as root (sudo)';
  return 'read the kernel log (log show --last 5m --predicate \'process == "kernelmanagerd"\') for why';
}
