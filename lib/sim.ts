// The simulated kernel as users and tests see it: a machine to open connections on, with
// controls a real Mac does not have (load your own kexts, advance the clock, read a panic).
import { codeValue, describeReturn, isCodeName, CodeName } from './codes';
import { KextBridgeError } from './errors';
import { binding, NativeSimKernel, NativeUserClient } from './native';
import { LoadedKext } from './results';
import { KernelEvents, KextSpec, OSReturnResult, PanicRecord, SimKernelOptions, SimKextFlags, SimPendingRequest } from './sim-types';
import { LIMITS } from './protocol.gen';
import { explainFrom, Explanation } from './workflow/explain';
import { checkTarget } from './workflow/target';
import { simFacts, simRequests } from './workflow/workflow';
import type { SimBundleRecord } from './lifecycle/sim-lifecycle';
import { checkBoolean, checkCString, checkLoadTag, checkNonNegativeInteger, checkOneOf, checkOptions, checkUint32, checkUuid, isWellFormed, quote, readArray } from './validate';

/** KMOD_MAX_NAME − 1: kmod_info's name and version fields hold 63 bytes and a NUL. */
const KMOD_NAME_BYTES = 63;

// Their home is sim-types.ts (below native.ts); they read naturally from here too.
export type { KernelEvent, KernelEvents, LoadRequestedEvent, RequestEvent, SimPendingRequest } from './sim-types';
export type { KextSpec, OSReturnResult, PanicRecord, SimKernelOptions };

const SPEC_KEYS = ['bundleId', 'version', 'uuid', 'dependencies', 'classes', 'autounload', 'unloadUnsupported', 'started'] as const;

function osReturn(code: number): OSReturnResult {
  const d = describeReturn(code);
  return { ok: d.value === 0, name: d.name, code: d.value, message: d.message };
}

/**
 * A kext spec read once, field by field, into a plain copy that is checked and is what native
 * code reads (which checks again): a getter cannot answer the check one thing and the kernel
 * another.
 */
function checkSpec(spec: unknown): KextSpec {
  const s = checkOptions('spec', spec, SPEC_KEYS);
  if (spec === undefined) throw new TypeError('spec must be an object with a bundleId');
  const { bundleId, version, uuid, dependencies, classes, autounload, unloadUnsupported, started } = s; // each read once
  const copy: KextSpec = { bundleId: checkCString('spec.bundleId', bundleId, KMOD_NAME_BYTES) };
  if (version !== undefined) copy.version = checkCString('spec.version', version, KMOD_NAME_BYTES);
  if (uuid !== undefined) copy.uuid = checkUuid('spec.uuid', uuid);
  if (autounload !== undefined) copy.autounload = checkBoolean('spec.autounload', autounload);
  if (unloadUnsupported !== undefined) copy.unloadUnsupported = checkBoolean('spec.unloadUnsupported', unloadUnsupported);
  if (started !== undefined) copy.started = checkBoolean('spec.started', started);
  if (dependencies !== undefined) {
    if (!Array.isArray(dependencies)) throw new TypeError('spec.dependencies must be an array of bundle ids');
    copy.dependencies = readArray('spec.dependencies', dependencies).map((d, i) => checkCString(`spec.dependencies[${i}]`, d, KMOD_NAME_BYTES));
  }
  if (classes !== undefined) {
    if (!Array.isArray(classes)) throw new TypeError('spec.classes must be an array');
    const names = new Set<string>();
    copy.classes = readArray('spec.classes', classes).map((c, i) => {
      const o = checkOptions(`spec.classes[${i}]`, c, ['name', 'superclass', 'instances']);
      if (c === undefined) throw new TypeError(`spec.classes[${i}] must be an object`);
      const { name: n, superclass, instances } = o; // each read once
      const name = checkCString(`spec.classes[${i}].name`, n);
      // One metaclass per name (a second would be kOSMetaClassDuplicateClass).
      if (names.has(name)) throw new RangeError(`spec.classes[${i}].name ${quote(name)} is declared twice`);
      names.add(name);
      const cls: NonNullable<KextSpec['classes']>[number] = { name };
      if (superclass !== undefined) {
        if (typeof superclass !== 'string') throw new TypeError(`spec.classes[${i}].superclass must be a string`);
        if (superclass.includes('\0')) throw new RangeError(`spec.classes[${i}].superclass must not contain a NUL character`);
        if (!isWellFormed(superclass)) throw new RangeError(`spec.classes[${i}].superclass must be well-formed Unicode (it has a lone UTF-16 surrogate)`);
        cls.superclass = superclass;
      }
      if (instances !== undefined) cls.instances = checkUint32(`spec.classes[${i}].instances`, instances);
      return cls;
    });
  }
  return copy;
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
    retainKextWithLoadTag: (loadTag: number): OSReturnResult => this.kpiCall('retainKextWithLoadTag', checkLoadTag(loadTag), (t) => this._native.kpiRetain(t)),
    /** Throws KextBridgeError when this very call panics the machine (and on every call after). */
    releaseKextWithLoadTag: (loadTag: number): OSReturnResult => this.kpiCall('releaseKextWithLoadTag', checkLoadTag(loadTag), (t) => this._native.kpiRelease(t)),
  };

  /** @internal loadBundle's records of the kexts it loaded, by load tag (tags are never reused). */
  readonly _bundles = new Map<number, SimBundleRecord>();

  /** A KPI call: refused loudly after a panic, and the call that panics says so. */
  private kpiCall(name: string, loadTag: number, call: (loadTag: number) => number): OSReturnResult {
    this.alive(`kpi.${name}`);
    const r = osReturn(call(loadTag));
    const p = this.panicked;
    if (p) throw new KextBridgeError(`sim.kpi.${name}`, codeValue('kOSReturnError'), `this call panicked the simulated kernel (the KPI answered ${r.name}, as the real one does before the Mac goes down): ${p.message}`);
    return r;
  }

  /** @internal use createSimKernel() */
  constructor(native: NativeSimKernel) {
    this._native = native;
  }

  /**
   * Loads a kext and returns its load tag. Throws KextBridgeError with the kernel's OSReturn.
   * The spec is read once, field by field, into a plain copy that is checked and is what native
   * code reads (which checks again): a getter cannot answer the check one thing and the kernel
   * another.
   */
  loadKext(spec: KextSpec): number {
    const copy = checkSpec(spec);
    this.alive('loadKext');
    const r = this._native.loadKext(copy);
    if (r.kr !== 0) throw new KextBridgeError('sim.loadKext', r.kr);
    return r.loadTag;
  }

  /**
   * kernelmanagerd's disk: installs (or reinstalls) a kext bundle, loadable by identifier
   * (kb.loadKext) but not loaded, with the resources its bundle carries (name → bytes; a string
   * is stored as its UTF-8). kb.requestResource(spec.bundleId, name) is answered with those
   * bytes, or kOSKextReturnNotFound for a name it does not have. The spec is checked as for
   * loadKext; resource names as the user client's field holds them (1–127 bytes of UTF-8, no
   * NUL, no lone surrogate), at most 1024 of them, each at most 16 MiB.
   */
  installKext(spec: KextSpec, options?: InstallOptions): void {
    const copy = checkSpec(spec);
    const o = checkOptions('options', options, ['resources']);
    const resources = o.resources; // read once
    let bytes: Record<string, Uint8Array | string> | undefined;
    if (resources !== undefined) {
      if (resources === null || typeof resources !== 'object' || Array.isArray(resources))
        throw new TypeError('options.resources must be an object of resource name: Buffer | Uint8Array | string');
      const names = Object.keys(resources);
      if (names.length > 1024) throw new RangeError(`options.resources: at most 1024 resources, got ${names.length}`);
      bytes = Object.create(null) as Record<string, Uint8Array | string>;
      for (const name of names) {
        checkCString('a resource name', name, LIMITS.resourceNameSize - 1);
        const v: unknown = (resources as Record<string, unknown>)[name]; // read once
        const at = `options.resources[${quote(name)}]`;
        if (typeof v === 'string') {
          if (!isWellFormed(v)) throw new RangeError(`${at} must be well-formed Unicode (it has a lone UTF-16 surrogate)`);
          bytes[name] = v;
        } else if (v instanceof Uint8Array) {
          if (v.byteLength > 16 << 20) throw new RangeError(`${at}: at most 16 MiB, got ${v.byteLength} bytes`);
          bytes[name] = Buffer.from(v); // a copy: later writes to the caller's array change nothing
        } else throw new TypeError(`${at} must be a Buffer, a Uint8Array or a string`);
      }
    }
    this.alive('installKext');
    const kr = this._native.installKext(copy, bytes);
    if (kr !== 0) throw new KextBridgeError('sim.installKext', kr);
  }

  /** Virtual ms before kernelmanagerd answers a resource request (default 10). */
  setResourceDelay(ms: number): void {
    checkNonNegativeInteger('ms', ms);
    this._native.setResourceDelay(ms);
  }

  /** Virtual ms before kernelmanagerd picks up deferred load requests (default 10). */
  setLoadReplyDelay(ms: number): void {
    checkNonNegativeInteger('ms', ms);
    this._native.setLoadReplyDelay(ms);
  }

  /** While on, kernelmanagerd answers no resource request: they time out at the autounload scans. */
  withholdResources(on: boolean): void {
    this._native.withholdResources(checkBoolean('on', on));
  }

  /** The next `times` answers of kernelmanagerd deliver `code` (a failure) and no data. */
  failResources(code: CodeName | number, times = 1): void {
    if (typeof code === 'string' && !isCodeName(code)) throw new RangeError(`code must be a code name such as 'kOSKextReturnNotFound' or an unsigned 32-bit number, got ${quote(code)}`);
    const value = typeof code === 'string' ? codeValue(code) : checkUint32('code', code);
    if (value === 0) throw new RangeError('code must be a failure, not kOSReturnSuccess');
    this._native.failResources(value, checkUint32('times', times));
  }

  /**
   * Marks a loaded kext as stopping (its stop routine running) or not: its new resource
   * requests answer kOSKextReturnStopping. Throws RangeError when no kext answers to the target.
   */
  setStopping(target: number | string, stopping: boolean): void {
    const t = checkTarget(target);
    const on = checkBoolean('stopping', stopping);
    const tag = typeof t === 'number' ? t : this.lookup(t);
    if (tag === null || this._native.setStopping(tag, on) !== 0)
      throw new RangeError(`no loaded kext answers to ${typeof t === 'number' ? `load tag ${t}` : quote(t)}`);
  }

  /** Arms the autounload scan as a release does (tests that wait for a request's timeout). */
  armAutounloadScan(): void {
    this.alive('armAutounloadScan');
    this._native.armAutounloadScan();
  }

  /** The resource requests the kernel holds (pending: neither answered, timed out nor cancelled). */
  pendingRequests(): SimPendingRequest[] {
    return this._native.pendingRequests();
  }

  /** Explicit unload (kmutil unload): kOSKextReturnInUse while retained, depended on or instantiated. */
  unloadKext(loadTag: number): OSReturnResult {
    checkLoadTag(loadTag);
    this.alive('unloadKext');
    const r = osReturn(this._native.unloadKext(loadTag));
    // __kernel__ and the com.apple.kpi.* interfaces are kernel components: OSKext::unload()
    // refuses them (kOSKextReturnInvalidArgument, or kOSKextReturnInUse first while something
    // links against them). Say that, not the generic invalid-tag text.
    const k = r.ok ? undefined : this._native.loadedKexts().find((x) => x.loadTag === loadTag);
    if (k && (loadTag === 0 || k.bundleId.startsWith('com.apple.kpi.')))
      return { ...r, message: `${k.bundleId} (tag ${loadTag}) is a kernel component${loadTag === 0 ? ' (the kernel itself)' : ' (a KPI interface)'} and never unloads${r.name === 'kOSKextReturnInUse' ? '; kexts also link against it' : ''}` };
    return r;
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
      throw new RangeError(`className ${quote(className)} is not a class of the kext with tag ${loadTag} whose instances can be set (the sample's user-client instances are its open connections)`);
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

  /** When the pending autounload scan runs (virtual ms), or null when none is armed; Infinity past the clock's end. */
  get autounloadDeadline(): number | null {
    const d = this._native.autounloadDeadline();
    // Beyond the clock's range (2^53 - 1 ms) a deadline cannot be a safe number, and the clock
    // can never reach it: Infinity, never a rounded time.
    return d !== null && d > Number.MAX_SAFE_INTEGER ? Infinity : d;
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
    if (typeof code === 'string' && !isCodeName(code)) throw new RangeError(`code must be a code name such as 'kOSKextReturnNotFound' or an unsigned 32-bit number, got ${quote(code)}`);
    const value = typeof code === 'string' ? codeValue(code) : checkUint32('code', code);
    // A "successful" fault would be a kernel that lies: the ledger would count a retain the
    // kernel never took, and releasing it would take one the kernel's own.
    if (value === 0) throw new RangeError('code must be a failure: a fault that answers kOSReturnSuccess would make the kernel lie');
    const n = checkUint32('times', times);
    this.alive('injectFault');
    this._native.injectFault(kpi, value, n);
  }

  /**
   * A slow Mac: each of the next `count` user-client calls (on any connection to this
   * kernel) takes `ms` longer before it reaches the user client. 0 clears it.
   */
  delayCalls(ms: number, count = 1): void {
    checkNonNegativeInteger('ms', ms);
    if (ms > 60_000) throw new RangeError(`ms must be at most 60000, got ${ms}`);
    const n = checkUint32('count', count);
    this.alive('delayCalls');
    this._native.delayCalls(ms * 1000, n);
  }

  /**
   * The kernel's events from `cursor` on (0: from boot): every load, unload (with its cause),
   * retain-count change, instance change and panic, stamped with virtual time, in order. The
   * kernel keeps the last 4096 in a ring and never blocks: a reader that fell further behind
   * gets `dropped` (how many it missed) and the rest.
   */
  events(cursor = 0): KernelEvents {
    return this._native.eventsSince(checkNonNegativeInteger('cursor', cursor));
  }

  /** The cursor of the next event: events(kernel.eventCursor) returns only what happens from now on. */
  get eventCursor(): number {
    return this._native.eventsSince(Number.MAX_SAFE_INTEGER).cursor;
  }

  /**
   * When the clock would next make something happen (virtual ms): the armed autounload scan,
   * or null when nothing is due. Waits on the sim jump the clock here.
   */
  get nextDueMs(): number | null {
    return this._native.nextDueMs();
  }

  /**
   * explain(target) as the kernel sees it, with no connection of your own: the same answer
   * as kb.explain() with heldByThisConnection 0. Lets a test check a kext is unloadable after
   * it closed every connection (the sample kext's open user clients block its unload).
   */
  explain(target: number | string): Explanation {
    const t = checkTarget(target);
    return explainFrom({ kexts: this.loadedKexts(), held: [], userClients: this._userClients(), sim: simFacts(this), requests: simRequests(this) }, t);
  }

  /** @internal explain(): the per-kext flags the loaded-kext table does not carry, or null. */
  _kextFlags(loadTag: number): SimKextFlags | null {
    return this._native.kextFlags(checkLoadTag(loadTag));
  }

  /** @internal explain(): each open user client of the sample kext (pid, process name). */
  _userClients(): NativeUserClient[] {
    return this._native.userClients();
  }

  /** @internal explain(): whether unloading (explicit or auto) and the autounload scan are on. */
  _unloadEnabled(): { unload: boolean; autounload: boolean } {
    return this._native.unloadEnabled();
  }

  private alive(op: string): void {
    const p = this.panicked;
    if (p) throw new KextBridgeError(`sim.${op}`, codeValue('kOSReturnError'), `the simulated kernel panicked earlier: ${p.message}`);
  }
}

/** Options of SimKernel.installKext(). */
export interface InstallOptions {
  /** The resources the bundle carries: name → bytes (a string is stored as its UTF-8). */
  resources?: Record<string, Buffer | Uint8Array | string>;
}

/** A fresh, isolated simulated machine (each test should use its own). */
export function createSimKernel(options?: SimKernelOptions): SimKernel {
  const o = checkOptions('options', options, ['autounload', 'unloadEnabled']);
  if (o.autounload !== undefined) checkBoolean('options.autounload', o.autounload);
  if (o.unloadEnabled !== undefined) checkBoolean('options.unloadEnabled', o.unloadEnabled);
  return new SimKernel(binding().createSimKernel(o as SimKernelOptions));
}

let processKernel: { kernel: SimKernel; generation: number } | undefined;

/**
 * The process's own simulated machine, used by open({ backend: 'sim' }) without a kernel. There
 * is one per process: it lives in the addon, so it survives jest's module registry reset
 * (every test file in a worker shares it). Tests should not rely on it: use
 * `createSimKernel()` per test file (or per test) and pass it as `open({ kernel })`.
 */
export function defaultSimKernel(): SimKernel {
  const native = binding();
  const generation = native._defaultSimKernelGeneration();
  if (processKernel?.generation !== generation) processKernel = { kernel: new SimKernel(native.defaultSimKernel()), generation };
  return processKernel.kernel;
}

/**
 * Replaces the process's default machine with a fresh one (the default world, clock at 0).
 * Connections and SimKernel objects obtained before keep the old machine; defaultSimKernel()
 * and open({ backend: 'sim' }) use the new one. Prefer `createSimKernel()` per test file.
 */
defaultSimKernel.reset = function reset(): void {
  binding()._resetDefaultSimKernel();
  processKernel = undefined;
};
