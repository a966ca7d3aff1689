// The simulated kernel as users and tests see it: a machine to open connections on, with
// controls a real Mac does not have (load your own kexts, advance the clock, read a panic).
import { codeValue, describeReturn, isCodeName, CodeName } from './codes';
import { KextBridgeError } from './errors';
import { binding, NativeSimKernel } from './native';
import { LoadedKext } from './results';
import { KextSpec, OSReturnResult, PanicRecord, SimKernelOptions } from './sim-types';
import { checkBoolean, checkCString, checkLoadTag, checkNonNegativeInteger, checkOneOf, checkOptions, checkUint32, checkUuid } from './validate';

/** KMOD_MAX_NAME − 1: kmod_info's name and version fields hold 63 bytes and a NUL. */
const KMOD_NAME_BYTES = 63;

// Their home is sim-types.ts (below native.ts); they read naturally from here too.
export type { KextSpec, OSReturnResult, PanicRecord, SimKernelOptions };

const SPEC_KEYS = ['bundleId', 'version', 'uuid', 'dependencies', 'classes', 'autounload', 'unloadUnsupported', 'started'] as const;

function osReturn(code: number): OSReturnResult {
  const d = describeReturn(code);
  return { ok: d.value === 0, name: d.name, code: d.value, message: d.message };
}

/**
 * A simulated machine: a model of the libkern kext registry (load tags, retain counts,
 * autounload, the kext lock) with the sample kext loaded. Make one with
 * {@link createSimKernel}, or use the process's own through {@link defaultSimKernel}.
 */
export class SimKernel {
  /** @internal the addon's kernel object; open() hands it to the native sim transport. */
  readonly _native: NativeSimKernel;

  /**
   * The KPIs themselves, called as a kext would call them: no ledger, no guard. Driving
   * release past the kernel's baseline records the panic a Mac would have.
   */
  readonly kpi = {
    /** OSKextRetainKextWithLoadTag, straight to the kernel model. */
    retainKextWithLoadTag: (loadTag: number): OSReturnResult => osReturn(this._native.kpiRetain(checkLoadTag(loadTag))),
    /** OSKextReleaseKextWithLoadTag, straight to the kernel model: an over-release records a panic. */
    releaseKextWithLoadTag: (loadTag: number): OSReturnResult => osReturn(this._native.kpiRelease(checkLoadTag(loadTag))),
  };

  /** @internal use createSimKernel() */
  constructor(native: NativeSimKernel) {
    this._native = native;
  }

  /** Loads a kext and returns its load tag. Throws KextBridgeError with the kernel's OSReturn. */
  loadKext(spec: KextSpec): number {
    const s = checkOptions('spec', spec, SPEC_KEYS);
    if (spec === undefined) throw new TypeError('spec must be an object with a bundleId');
    checkCString('spec.bundleId', s.bundleId, KMOD_NAME_BYTES);
    if (s.version !== undefined) checkCString('spec.version', s.version, KMOD_NAME_BYTES);
    if (s.uuid !== undefined) checkUuid('spec.uuid', s.uuid);
    for (const k of ['autounload', 'unloadUnsupported', 'started'] as const) if (s[k] !== undefined) checkBoolean(`spec.${k}`, s[k]);
    if (s.dependencies !== undefined) {
      if (!Array.isArray(s.dependencies)) throw new TypeError('spec.dependencies must be an array of bundle ids');
      s.dependencies.forEach((d, i) => checkCString(`spec.dependencies[${i}]`, d, KMOD_NAME_BYTES));
    }
    if (s.classes !== undefined) {
      if (!Array.isArray(s.classes)) throw new TypeError('spec.classes must be an array');
      const names = new Set<string>();
      s.classes.forEach((c, i) => {
        const o = checkOptions(`spec.classes[${i}]`, c, ['name', 'superclass', 'instances']);
        if (c === undefined) throw new TypeError(`spec.classes[${i}] must be an object`);
        const name = checkCString(`spec.classes[${i}].name`, o.name);
        // One metaclass per name (a second would be kOSMetaClassDuplicateClass).
        if (names.has(name)) throw new RangeError(`spec.classes[${i}].name ${JSON.stringify(name)} is declared twice`);
        names.add(name);
        if (o.superclass !== undefined && typeof o.superclass !== 'string') throw new TypeError(`spec.classes[${i}].superclass must be a string`);
        if (typeof o.superclass === 'string' && o.superclass.includes('\0')) throw new RangeError(`spec.classes[${i}].superclass must not contain a NUL character`);
        if (o.instances !== undefined) checkUint32(`spec.classes[${i}].instances`, o.instances);
      });
    }
    this.alive('loadKext');
    const r = this._native.loadKext(s as unknown as KextSpec);
    if (r.kr !== 0) throw new KextBridgeError('sim.loadKext', r.kr);
    return r.loadTag;
  }

  /** Explicit unload (kmutil unload): kOSKextReturnInUse while retained, depended on or instantiated. */
  unloadKext(loadTag: number): OSReturnResult {
    checkLoadTag(loadTag);
    this.alive('unloadKext');
    return osReturn(this._native.unloadKext(loadTag));
  }

  /** Sets the live instances of one of a kext's classes (instances block autounload). */
  setInstances(loadTag: number, className: string, count: number): void {
    checkLoadTag(loadTag);
    checkCString('className', className);
    checkUint32('count', count);
    this.alive('setInstances');
    const kr = this._native.setInstances(loadTag, className, count);
    // The sim refuses a class the kext does not declare, and the sample's user-client class
    // (its instances are the open connections).
    if (kr === codeValue('kOSKextReturnInvalidArgument'))
      throw new RangeError(`className ${JSON.stringify(className)} is not a class of the kext with tag ${loadTag} whose instances can be set (the sample's user-client instances are its open connections)`);
    if (kr !== 0) throw new KextBridgeError('sim.setInstances', kr);
  }

  /** Advances virtual time; runs the autounload scan when it falls due. */
  advance(ms: number): void {
    checkNonNegativeInteger('ms', ms);
    if (ms > Number.MAX_SAFE_INTEGER - this._native.now())
      throw new RangeError(`ms must keep the clock a safe integer: at most ${Number.MAX_SAFE_INTEGER - this._native.now()} from now, got ${ms}`);
    this.alive('advance');
    this._native.advance(ms);
  }

  /** Virtual milliseconds since the machine booted. */
  get now(): number {
    return this._native.now();
  }

  /** When the pending autounload scan runs (virtual ms), or null when none is armed. */
  get autounloadDeadline(): number | null {
    return this._native.autounloadDeadline();
  }

  /** null, or the record of the call that would have panicked the Mac. */
  get panicked(): PanicRecord | null {
    return this._native.panicRecord();
  }

  /** The loaded-kext table, as `KextBridge.loadedKexts()` reads it (retainCount is OSBundleRetainCount). */
  loadedKexts(): LoadedKext[] {
    return this._native.loadedKexts();
  }

  /** The load tag of a loaded kext, or null. */
  lookup(bundleId: string): number | null {
    const tag = this._native.lookupLoadTag(checkCString('bundleId', bundleId));
    return tag === 0xffffffff ? null : tag;
  }

  /** The OSObject retain count including the kernel's baseline of 2, or null if not loaded. */
  rawRetainCount(loadTag: number): number | null {
    const n = this._native.retainCount(checkLoadTag(loadTag));
    return n < 0 ? null : n;
  }

  /** The sample kext's load tag on this machine. */
  get sampleLoadTag(): number {
    return this._native.sampleLoadTag();
  }

  /** The next `times` calls of a KPI answer `code` (a failure) and change nothing. */
  injectFault(kpi: 'retain' | 'release', code: CodeName | number, times = 1): void {
    checkOneOf('kpi', kpi, ['retain', 'release'] as const);
    if (typeof code === 'string' && !isCodeName(code)) throw new RangeError(`code must be a code name such as 'kOSKextReturnNotFound' or an unsigned 32-bit number, got ${JSON.stringify(code)}`);
    const value = typeof code === 'string' ? codeValue(code) : checkUint32('code', code);
    // A "successful" fault would be a kernel that lies: the ledger would count a retain the
    // kernel never took, and releasing it would take one the kernel's own.
    if (value === 0) throw new RangeError('code must be a failure: a fault that answers kOSReturnSuccess would make the kernel lie');
    this._native.injectFault(kpi, value, checkUint32('times', times));
  }

  /**
   * A slow Mac: each of the next `count` user-client calls (on any connection to this
   * kernel) takes `ms` longer before it reaches the user client. 0 clears it.
   */
  delayCalls(ms: number, count = 1): void {
    checkNonNegativeInteger('ms', ms);
    if (ms > 60_000) throw new RangeError(`ms must be at most 60000, got ${ms}`);
    this._native.delayCalls(ms * 1000, checkUint32('count', count));
  }

  private alive(op: string): void {
    const p = this.panicked;
    if (p) throw new KextBridgeError(`sim.${op}`, codeValue('kOSReturnError'), `the simulated kernel panicked earlier: ${p.message}`);
  }
}

/** A fresh, isolated simulated machine (each test should use its own). */
export function createSimKernel(options?: SimKernelOptions): SimKernel {
  const o = checkOptions('options', options, ['autounload', 'unloadEnabled']);
  if (o.autounload !== undefined) checkBoolean('options.autounload', o.autounload);
  if (o.unloadEnabled !== undefined) checkBoolean('options.unloadEnabled', o.unloadEnabled);
  return new SimKernel(binding().createSimKernel(o as SimKernelOptions));
}

let processKernel: SimKernel | undefined;

/** The process's own simulated machine, used by open({ backend: 'sim' }) without a kernel. */
export function defaultSimKernel(): SimKernel {
  processKernel ??= new SimKernel(binding().defaultSimKernel());
  return processKernel;
}
