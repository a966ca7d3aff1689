// loadBundle / unloadKext on the simulated kernel: a real bundle's Info.plist becomes a
// kernel.loadKext() spec, its IOResources personalities get their instances, and unload goes
// through the kernel model (kernel.unloadKext) with a bounded back-off in virtual time.
import { codeValue, describeReturn } from '../codes';
import { KextBridgeError } from '../errors';
import type { LoadedKext } from '../results';
import type { SimKernel } from '../sim';
import type { Explanation } from '../workflow/explain';
import type { WaitResult } from '../workflow/wait';
import { BundleInfo, readBundle } from './bundle';
import { isCompatible, parseKextVersion } from './kext-version';
import { isBusyOnly, LifecycleFailure, LoadResult, RETRY_FIRST_MS, RETRY_MAX_MS, unloadNextStep, UnloadResult } from './results';

/** What loadBundle remembers of a kext it loaded (load tags are never reused, so the tag is the key). */
export interface SimBundleRecord {
  path: string;
  compatibleVersion: string | null;
  /** Instances IOKit matched from its personalities, by class: an unload's termination frees them. */
  matched: Map<string, number>;
}

/**
 * OSBundleCompatibleVersion of the default world's interface kexts: iokit 7.0 and libkern
 * 8.0.0d0 as kext-sample/kext/gen-bundle.js records them; the other com.apple.kpi.* are
 * given 8.0.0 (inferred, not read from a Mac).
 */
const KPI_COMPATIBLE: Record<string, string> = {
  'com.apple.kpi.iokit': '7.0',
  'com.apple.kpi.libkern': '8.0.0d0',
  'com.apple.kpi.bsd': '8.0.0',
  'com.apple.kpi.dsep': '8.0.0',
  'com.apple.kpi.mach': '8.0.0',
  'com.apple.kpi.private': '8.0.0',
  'com.apple.kpi.unsupported': '8.0.0',
};

function fail(name: string, message: string, nextStep: string, extra: Partial<LifecycleFailure> = {}): LifecycleFailure {
  let code: number | null = null;
  try {
    code = codeValue(name as never);
  } catch {
    code = null;
  }
  return { ok: false, name, code, message, nextStep, bundleId: null, loadTag: null, ...extra };
}

/** The compatible-back-to version of a loaded library, or undefined when the sim does not know it. */
function compatibleOf(kernel: SimKernel, k: LoadedKext): string | null | undefined {
  const rec = kernel._bundles.get(k.loadTag);
  if (rec) return rec.compatibleVersion;
  return KPI_COMPATIBLE[k.bundleId];
}

export async function simLoadBundle(kernel: SimKernel, bundlePath: string, o: { signal?: AbortSignal }): Promise<LoadResult> {
  const read = await readBundle(bundlePath);
  if (o.signal?.aborted) return fail('Aborted', `loading ${bundlePath} was aborted`, 'nothing was loaded; run it again');
  if (!read.ok) return fail(read.name, read.message, read.nextStep);
  const b = read.bundle;
  const ids = { bundleId: b.bundleId };
  const loaded = kernel.loadedKexts();

  const existing = loaded.find((k) => k.bundleId === b.bundleId);
  if (existing && existing.version !== b.version)
    return fail('kOSKextReturnLoadedVersionDiffers', `${b.bundleId} is already loaded at version ${existing.version} (tag ${existing.loadTag}); this bundle is ${b.version}`, `unload the loaded version first: kextbridge unload ${b.bundleId}`, { ...ids, loadTag: existing.loadTag });
  if (existing) return { ok: true, bundleId: b.bundleId, version: existing.version, loadTag: existing.loadTag, alreadyLoaded: true, started: existing.started };

  // OSBundleLibraries: each must be loaded (the sim has no kext repository to load one from)
  // and compatible with the version asked for.
  for (const lib of b.libraries) {
    const k = loaded.find((x) => x.bundleId === lib.bundleId);
    if (!k)
      return fail('kOSKextReturnDependencies', `${b.bundleId} needs ${lib.bundleId} ${lib.version}, which is not loaded`, `load ${lib.bundleId} (version ${lib.version} or later) first, or correct OSBundleLibraries`, ids);
    const compat = compatibleOf(kernel, k);
    const have = parseKextVersion(k.version);
    const want = parseKextVersion(lib.version)!;
    // A kext loaded with kernel.loadKext() has no recorded OSBundleCompatibleVersion: any
    // request up to its version is accepted.
    const ok = have !== null && (compat === undefined ? want <= have : isCompatible(have, compat === null ? null : parseKextVersion(compat), want));
    if (!ok)
      return fail(
        'kOSKextReturnDependencies',
        compat === null
          ? `${b.bundleId} needs ${lib.bundleId} ${lib.version}; the loaded ${lib.bundleId} ${k.version} has no OSBundleCompatibleVersion, so nothing can link against it`
          : `${b.bundleId} needs ${lib.bundleId} ${lib.version}; the loaded ${lib.bundleId} is ${k.version}${compat ? ` (compatible back to ${compat})` : ''}`,
        `load a ${lib.bundleId} compatible with ${lib.version}, or change the version ${b.bundleId} asks for in OSBundleLibraries`,
        ids,
      );
  }

  const classes = new Map<string, string>();
  for (const p of b.personalities) classes.set(p.ioClass, 'IOService');
  for (const c of b.sim.classes) if (!classes.has(c.name)) classes.set(c.name, c.superclass);
  let tag: number;
  try {
    tag = kernel.loadKext({
      bundleId: b.bundleId,
      version: b.version,
      dependencies: b.libraries.map((l) => l.bundleId),
      classes: [...classes].map(([name, superclass]) => ({ name, superclass, instances: 0 })),
      started: true,
    });
  } catch (e) {
    if (!(e instanceof KextBridgeError)) throw e;
    const d = describeReturn(e.code);
    return fail(d.name, `the kernel refused ${b.bundleId}: ${d.message}`, 'see the kernel code\'s meaning: kextbridge decode ' + d.hex, ids);
  }
  const record: SimBundleRecord = { path: b.path, compatibleVersion: b.compatibleVersion, matched: new Map() };
  kernel._bundles.set(tag, record);
  // IOResources personalities match as soon as the kext is loaded: one live instance each.
  for (const p of b.personalities.filter((x) => x.matchesAtOnce)) {
    addInstance(kernel, tag, p.ioClass);
    record.matched.set(p.ioClass, (record.matched.get(p.ioClass) ?? 0) + 1);
  }
  applyLeaks(kernel, b, tag);
  return { ok: true, bundleId: b.bundleId, version: b.version, loadTag: tag, alreadyLoaded: false, started: true };
}

function instancesOf(kernel: SimKernel, tag: number, cls: string): number {
  return kernel.loadedKexts().find((k) => k.loadTag === tag)?.classes.find((c) => c.name === cls)?.instances ?? 0;
}

function addInstance(kernel: SimKernel, tag: number, cls: string): void {
  kernel.setInstances(tag, cls, instancesOf(kernel, tag, cls) + 1);
}

/** The LeakPerLoad test control: one instance per load that nothing frees. */
function applyLeaks(kernel: SimKernel, b: BundleInfo, tag: number): void {
  for (const leak of b.sim.leakPerLoad) {
    const owner = leak.bundleId === null || leak.bundleId === b.bundleId ? tag : kernel.lookup(leak.bundleId);
    if (owner === null) continue; // the library is not loaded: nothing to leak into
    try {
      addInstance(kernel, owner, leak.className);
    } catch (e) {
      if (!(e instanceof RangeError)) throw e; // a class that kext does not declare: no leak
    }
  }
}

/** What simUnloadKext needs from its connection. */
export interface SimUnloadHost {
  kernel: SimKernel;
  explain(tag: number): Promise<Explanation>;
  waitForUnload(tag: number, o: { timeout: number; signal?: AbortSignal }): Promise<WaitResult>;
}

export async function simUnloadKext(host: SimUnloadHost, target: number | string, o: { timeout: number; signal?: AbortSignal }): Promise<UnloadResult> {
  const { kernel } = host;
  const k = kernel.loadedKexts().find((x) => (typeof target === 'number' ? x.loadTag === target : x.bundleId === target));
  if (!k)
    return fail('kOSKextReturnNotFound', `${typeof target === 'number' ? `no kext has load tag ${target}` : `${target} is not loaded`}`, 'it is not loaded: kextbridge list shows what is', {
      bundleId: typeof target === 'string' ? target : null,
      loadTag: typeof target === 'number' ? target : null,
    });
  const ids = { bundleId: k.bundleId, loadTag: k.loadTag };
  const start = kernel.now;
  // kmutil unload terminates the kext's services first (IOCatalogue::terminateDriversForModule):
  // what IOKit matched goes; a leaked instance stays.
  const record = kernel._bundles.get(k.loadTag);
  if (record)
    for (const [cls, n] of record.matched) {
      kernel.setInstances(k.loadTag, cls, Math.max(0, instancesOf(kernel, k.loadTag, cls) - n));
      record.matched.set(cls, 0);
    }
  let delay = RETRY_FIRST_MS;
  for (let attempts = 1; ; attempts++) {
    const r = kernel.unloadKext(k.loadTag);
    if (r.ok) {
      const w = await host.waitForUnload(k.loadTag, { timeout: Math.max(0, o.timeout - (kernel.now - start)), signal: o.signal });
      if (!w.ok) return fail(w.reason === 'aborted' ? 'Aborted' : 'Timeout', `the kernel accepted the unload but ${k.bundleId} is still in the table: ${w.message}`, 'wait and look again: kextbridge list', { ...ids, attempts });
      kernel._bundles.delete(k.loadTag);
      return { ok: true, bundleId: k.bundleId, loadTag: k.loadTag, attempts };
    }
    if (r.name !== 'kOSKextReturnInUse') return fail(r.name, `the kernel refused to unload ${k.bundleId}: ${r.message}`, unloadNextStep([], r.name), { ...ids, attempts });
    const e = await host.explain(k.loadTag);
    const left = o.timeout - (kernel.now - start);
    // No blocker left: it changed between the refusal and the look; try again.
    const busy = e.blockers.length === 0 || isBusyOnly(e.blockers);
    if (o.signal?.aborted)
      return fail('Aborted', `unloading ${k.bundleId} was aborted after ${attempts} attempt${attempts === 1 ? '' : 's'}; it is still loaded`, unloadNextStep(e.blockers, r.name), { ...ids, attempts, blockers: e.blockers });
    if (!busy || left <= 0) {
      const why = e.blockers.length ? e.blockers.map((b) => b.kind).join(', ') : 'in use';
      return fail(r.name, `${k.bundleId} (tag ${k.loadTag}) is in use (${why}) after ${attempts} attempt${attempts === 1 ? '' : 's'}`, unloadNextStep(e.blockers, r.name), {
        ...ids,
        attempts,
        blockers: e.blockers,
      });
    }
    // Merely busy: wait (virtual time; other JavaScript, e.g. a connection closing, runs meanwhile).
    kernel.advance(Math.min(delay, left));
    await new Promise((resolve) => setImmediate(resolve));
    delay = Math.min(delay * 2, RETRY_MAX_MS);
  }
}
