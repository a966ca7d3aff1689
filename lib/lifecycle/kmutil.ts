// loadBundle / unloadKext on a Mac: `kmutil load -p <path>` and `kmutil unload -b <id>`
// (macOS 11+), run with execFile and an argv array (never a shell), as root. kmutil's answer
// is read with decodeText: the OSReturn it printed, its KMErrorDomain code, its exit status,
// and the approval and reboot texts (docs/mac.md lists where each text comes from, and which
// are inferred). Success is confirmed in the loaded-kext table.
import { execFile } from 'child_process';
import { decodeText } from '../decode-text';
import type { LoadedKext } from '../results';
import type { WaitResult } from '../workflow/wait';
import { readBundle } from './bundle';
import { LifecycleFailure, LoadResult, RETRY_FIRST_MS, RETRY_MAX_MS, UnloadResult } from './results';

export interface MacDeps {
  /** The kmutil to run (default 'kmutil', found on PATH; /usr/bin/kmutil on macOS 11+). */
  kmutil?: string;
  env?: NodeJS.ProcessEnv;
  /** Effective uid (default process.geteuid()). */
  euid?: () => number;
  /** The loaded-kext table. */
  loadedKexts(): Promise<LoadedKext[]>;
  /** Waits on that table (kb.waitForLoad / waitForUnload: polling with back-off on a Mac). */
  waitForLoad(bundleId: string, o: { timeout: number; signal?: AbortSignal }): Promise<WaitResult>;
  waitForUnload(bundleId: string, o: { timeout: number; signal?: AbortSignal }): Promise<WaitResult>;
  /** Back-off between unload attempts (tests shorten it). */
  retryFirstMs?: number;
  retryMaxMs?: number;
}

export interface ToolRun {
  status: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  aborted: boolean;
  /** ENOENT and friends: kmutil could not be started. */
  spawnError?: string;
}

export function runTool(file: string, args: string[], o: { timeout: number; signal?: AbortSignal; env?: NodeJS.ProcessEnv }): Promise<ToolRun> {
  return new Promise((resolve) => {
    if (o.signal?.aborted) return resolve({ status: null, signal: null, stdout: '', stderr: '', timedOut: false, aborted: true });
    const child = execFile(file, args, { timeout: Math.max(1, o.timeout), signal: o.signal, env: o.env, encoding: 'utf8', maxBuffer: 4 << 20 }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { killed?: boolean; signal?: string }) | null;
      const aborted = e?.name === 'AbortError';
      const spawnError = e && typeof e.code === 'string' && !aborted ? `${e.code}: ${e.message}` : undefined;
      resolve({
        status: child.exitCode,
        signal: child.signalCode,
        stdout: String(stdout ?? ''),
        stderr: String(stderr ?? ''),
        timedOut: !aborted && e?.killed === true && child.signalCode === 'SIGTERM',
        aborted,
        spawnError,
      });
    });
  });
}

const trim = (s: string) => (s.trim().length > 2000 ? s.trim().slice(0, 2000) + '…' : s.trim());

/**
 * kmutil's failure, read. Texts recognised (docs/mac.md, "kmutil's answers"):
 * - "not approved to load … Please approve using System Settings" (published, no code) → ApprovalRequired;
 * - "reboot"/"restart" required (inferred wording) → RebootRequired;
 * - any OSReturn decodeText finds (hex, signed decimal, libkern message) → that name;
 * - KMErrorDomain Code=N → kmErrorDomainCode, with no meaning attached.
 */
export function interpretKmutil(run: ToolRun, what: { op: 'load' | 'unload'; bundleId: string | null; loadTag: number | null }): LifecycleFailure {
  const text = `${run.stderr}\n${run.stdout}`;
  const found = decodeText(text);
  const os = found.find((f) => f.code && f.code.value !== 0)?.code;
  const km = found.find((f) => f.kind === 'KMErrorDomain');
  const base = {
    ok: false as const,
    bundleId: what.bundleId,
    loadTag: what.loadTag,
    exitStatus: run.status,
    stderr: trim(run.stderr || run.stdout),
    ...(km?.domainCode !== undefined ? { kmErrorDomainCode: km.domainCode } : {}),
  };
  const summary = trim(km?.description ?? (run.stderr || run.stdout)).split('\n').filter(Boolean).pop() ?? '';
  const described = `kmutil ${what.op} failed (exit ${run.status ?? run.signal})${summary ? `: ${summary}` : ''}`;
  if (/not approved to load|approve using System Settings|user approval/i.test(text) || os?.name === 'kOSKextReturnSystemPolicy')
    return {
      ...base,
      name: os?.name ?? 'ApprovalRequired',
      code: os?.value ?? null,
      message: described,
      nextStep: 'approve it in System Settings → Privacy & Security (Allow), restart the Mac, then load again (an ad-hoc signed build needs this after every rebuild)',
    };
  if (/reboot|restart/i.test(text))
    return { ...base, name: os?.name ?? 'RebootRequired', code: os?.value ?? null, message: described, nextStep: 'restart the Mac (the new auxiliary kernel collection is read at boot), then load again' };
  if (os) return { ...base, name: os.name, code: os.value, message: described, nextStep: nextStepFor(os.name, what.op) };
  return { ...base, name: 'ToolFailed', code: null, message: described, nextStep: 'read kmutil\'s message above and the kernel log (log show --last 5m --predicate \'process == "kernelmanagerd"\')' };
}

function nextStepFor(name: string, op: 'load' | 'unload'): string {
  switch (name) {
    case 'kOSKextReturnNotLoadable':
      return 'approve it in System Settings if asked, then restart: a build not in this boot\'s auxiliary collection cannot load';
    case 'kOSKextReturnInUse':
      return 'close the connections to it and release its retains (kextbridge explain shows who), unload its dependents first, then unload again';
    case 'kOSKextReturnDependencies':
    case 'kOSKextReturnDependencyLoadError':
      return 'install or load the libraries in its OSBundleLibraries first, at compatible versions';
    case 'kOSKextReturnLoadedVersionDiffers':
      return 'unload the version that is loaded first (kextbridge unload <bundle id>)';
    case 'kOSKextReturnAuthentication':
    case 'kOSKextReturnValidation':
      return 'check the signature and ownership (root:wheel, no group/other write), and that SIP allows unsigned kexts (csrutil status)';
    case 'kOSKextReturnStartStopError':
      return op === 'load' ? 'its start routine failed: read the kernel log for the kext\'s own messages' : 'its stop routine refused: read the kernel log for the kext\'s own messages';
    case 'kOSKextReturnNotFound':
      return 'it is not loaded: kextbridge list shows what is';
    default:
      return 'read kmutil\'s message and the kernel log (log show --last 5m --predicate \'process == "kernelmanagerd"\')';
  }
}

function notRoot(op: string, ids: { bundleId: string | null; loadTag: number | null }): LifecycleFailure {
  return { ok: false, name: 'NotPrivileged', code: null, message: `kmutil ${op} needs root`, nextStep: 'run it as root (sudo)', ...ids };
}

function toolProblem(run: ToolRun, op: string, ids: { bundleId: string | null; loadTag: number | null }, timeout: number): LifecycleFailure | null {
  if (run.aborted) return { ok: false, name: 'Aborted', code: null, message: `kmutil ${op} was aborted`, nextStep: 'run it again; kextbridge list shows whether it happened', ...ids };
  if (run.timedOut) return { ok: false, name: 'Timeout', code: null, message: `kmutil ${op} did not finish within ${timeout} ms (killed)`, nextStep: 'run it again with a longer --timeout; kextbridge list shows whether it happened', ...ids };
  if (run.spawnError)
    return { ok: false, name: 'ToolFailed', code: null, message: `kmutil could not be run (${run.spawnError})`, nextStep: 'kmutil ships with macOS 11 and later (/usr/bin/kmutil); earlier macOS is not supported', ...ids };
  return null;
}

export async function macLoadBundle(deps: MacDeps, bundlePath: string, o: { timeout: number; signal?: AbortSignal }): Promise<LoadResult> {
  const started = Date.now();
  const read = await readBundle(bundlePath);
  if (!read.ok) return { ok: false, name: read.name, code: null, message: read.message, nextStep: read.nextStep, bundleId: null, loadTag: null };
  const { bundleId, version } = read.bundle;
  const ids = { bundleId, loadTag: null };
  if ((deps.euid ?? process.geteuid!)() !== 0) return notRoot('load', ids);
  const before = (await deps.loadedKexts()).find((k) => k.bundleId === bundleId);
  const run = await runTool(deps.kmutil ?? 'kmutil', ['load', '-p', bundlePath], { timeout: o.timeout, signal: o.signal, env: deps.env });
  const problem = toolProblem(run, 'load', ids, o.timeout);
  if (problem) return problem;
  if (run.status !== 0) return interpretKmutil(run, { op: 'load', ...ids });
  const w = await deps.waitForLoad(bundleId, { timeout: Math.max(0, o.timeout - (Date.now() - started)), signal: o.signal });
  let k = (await deps.loadedKexts()).find((x) => x.bundleId === bundleId);
  // Listed is not yet started (OSBundleStarted): wait for its start routine, with back-off.
  for (let delay = 25; w.ok && k && !k.started && o.timeout - (Date.now() - started) > 0; delay = Math.min(delay * 2, 1000)) {
    if (!(await sleep(Math.min(delay, o.timeout - (Date.now() - started)), o.signal))) break;
    k = (await deps.loadedKexts()).find((x) => x.bundleId === bundleId);
  }
  if (!w.ok || !k)
    return { ok: false, name: w.ok ? 'Timeout' : w.reason === 'aborted' ? 'Aborted' : 'Timeout', code: null, message: `kmutil load exited 0 but ${bundleId} is not in the loaded-kext table`, nextStep: 'read the kernel log; the kext may have been staged but not loaded (approval, restart)', ...ids, exitStatus: 0, stderr: trim(run.stderr) };
  if (!k.started)
    return { ok: false, name: 'Timeout', code: null, message: `${bundleId} is loaded (tag ${k.loadTag}) but did not start within ${o.timeout} ms`, nextStep: 'read the kernel log for its start routine; kextbridge unload it before trying again', ...ids, loadTag: k.loadTag, exitStatus: 0 };
  return { ok: true, bundleId, version: k.version || version, loadTag: k.loadTag, alreadyLoaded: before !== undefined, started: k.started };
}

export async function macUnloadKext(deps: MacDeps, target: number | string, o: { timeout: number; signal?: AbortSignal }): Promise<UnloadResult> {
  const started = Date.now();
  const k = (await deps.loadedKexts()).find((x) => (typeof target === 'number' ? x.loadTag === target : x.bundleId === target));
  if (!k)
    return {
      ok: false,
      name: 'kOSKextReturnNotFound',
      code: 0xdc008006,
      message: typeof target === 'number' ? `no kext has load tag ${target}` : `${target} is not loaded`,
      nextStep: 'it is not loaded: kextbridge list shows what is',
      bundleId: typeof target === 'string' ? target : null,
      loadTag: typeof target === 'number' ? target : null,
    };
  const ids = { bundleId: k.bundleId, loadTag: k.loadTag };
  if ((deps.euid ?? process.geteuid!)() !== 0) return notRoot('unload', ids);
  let delay = deps.retryFirstMs ?? RETRY_FIRST_MS;
  let last: LifecycleFailure | undefined; // the previous busy answer
  for (let attempts = 1; ; attempts++) {
    const left = o.timeout - (Date.now() - started);
    const run = await runTool(deps.kmutil ?? 'kmutil', ['unload', '-b', k.bundleId], { timeout: Math.max(1, left), signal: o.signal, env: deps.env });
    const problem = toolProblem(run, 'unload', ids, o.timeout);
    // Time ran out during a retry: the answer is still the busy one before it.
    if (problem) return last && problem.name === 'Timeout' ? last : { ...problem, attempts };
    if (run.status === 0) {
      const w = await deps.waitForUnload(k.bundleId, { timeout: Math.max(0, o.timeout - (Date.now() - started)), signal: o.signal });
      if (!w.ok) return { ok: false, name: w.reason === 'aborted' ? 'Aborted' : 'Timeout', code: null, message: `kmutil unload exited 0 but ${k.bundleId} is still loaded: ${w.message}`, nextStep: 'wait and look again: kextbridge list', ...ids, attempts };
      return { ok: true, bundleId: k.bundleId, loadTag: k.loadTag, attempts };
    }
    const f = { ...interpretKmutil(run, { op: 'unload', ...ids }), attempts };
    // Busy (in use, classes have instances): retry with back-off until the time is up.
    const busy = f.name === 'kOSKextReturnInUse' || /classes have instances/i.test(run.stderr + run.stdout);
    const remaining = o.timeout - (Date.now() - started);
    if (!busy || remaining <= 0 || o.signal?.aborted) return f;
    last = f;
    if (!(await sleep(Math.min(delay, remaining), o.signal))) return f;
    delay = Math.min(delay * 2, deps.retryMaxMs ?? RETRY_MAX_MS);
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(t);
      resolve(false);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
