// A reference model of the kernel the sample kext talks to, and of the sample kext's
// per-connection ledger, written from docs/kernel-facts.md (§2 codes, §3 kernel behaviour,
// §4–5 IOUserClient/IOKit edges) and docs/design.md (user-client protocol, ledger, sim controls).
// It is plain TypeScript with no link to the C++: the model-based test runs the same command
// sequences against this and against the real stack and compares every answer.
//
// Where the reference leaves a choice open, the model makes the choice docs/design.md or the
// public API documents, and says so in a comment marked (choice).

/** Return codes, written out from docs/kernel-facts.md §2 (not taken from the library's tables). */
export const CODES = {
  kOSReturnSuccess: 0,
  kOSReturnError: 0xdc000001,
  kOSKextReturnInvalidArgument: 0xdc008005,
  kOSKextReturnNotFound: 0xdc008006,
  kOSKextReturnDependencies: 0xdc00800e,
  kOSKextReturnLoadedVersionDiffers: 0xdc008014,
  kOSKextReturnInUse: 0xdc008018,
  kIOReturnNoResources: 0xe00002be,
  kIOReturnNotPrivileged: 0xe00002c1,
  kIOReturnNotPermitted: 0xe00002e2,
  kIOReturnNotFound: 0xe00002f0,
  kIOReturnNotOpen: 0xe00002cd,
  MACH_SEND_INVALID_DEST: 0x10000003,
} as const;
export type ModelCodeName = keyof typeof CODES;

/** kOSKextInvalidLoadTag (§1.1). */
export const INVALID_TAG = 0xffffffff;
/** kOSKextMinLoadedRetainCount (§3.3): sKextsByID + sLoadedKexts. */
export const BASELINE = 2;
/** sConsiderUnloadDelay (§3.3), in virtual milliseconds. */
export const UNLOAD_DELAY_MS = 60_000;

/** What a call threw: the error's class and, for KextBridgeError, its code name. */
export interface ModelThrow {
  error: string;
  codeName?: string;
}
export type Outcome<T> = { value: T } | ModelThrow;
const fail = (codeName: ModelCodeName): ModelThrow => ({ error: 'KextBridgeError', codeName });

/** The comparable part of a RetainResult / ReleaseResult. */
export interface ModelCounted {
  ok: boolean;
  layer: 'kernel' | 'userclient';
  name: string;
  code: number;
  loadTag: number;
  /** Present for kernel answers only (a user-client refusal carries no outputs, §5.3). */
  held?: number;
}

export interface ModelOSReturn {
  ok: boolean;
  name: string;
  code: number;
}

export interface ModelLoadedKext {
  bundleId: string;
  loadTag: number;
  retainCount: number;
  started: boolean;
  version: string;
  dependencies: number[];
  classes: { name: string; superclass: string; instances: number }[];
}

export interface ModelInfo {
  loadTag: number;
  identifier: string;
  version: string;
  protocolVersion: number;
  privileged: boolean;
  ledgerCap: number;
  backendReason: string;
}

export interface ModelKextSpec {
  bundleId: string;
  version: string;
  dependencies?: string[];
  classes?: { name: string; superclass?: string; instances?: number }[];
  autounload?: boolean;
  unloadUnsupported?: boolean;
}

interface Kext {
  bundleId: string;
  loadTag: number;
  version: string;
  /** OSObject retain count, including the kernel's BASELINE. */
  raw: number;
  autounload: boolean;
  unloadUnsupported: boolean;
  kernelComponent: boolean;
  started: boolean;
  /** Load tags of direct dependencies (each holds one reference on the library). */
  deps: number[];
  classes: { name: string; superclass: string; instances: number }[];
}

export interface ModelConnection {
  readonly id: number;
  readonly privileged: boolean;
  closed: boolean;
  /** Its service was terminated (IOUserClient::stop): user-client calls answer kIOReturnNotOpen; the ledger is released at close. */
  stopped: boolean;
  /** loadTag → retains this connection holds. */
  readonly ledger: Map<number, number>;
}

/** What the default world looks like, read through the public API of a fresh sim. */
export interface Observation {
  kexts: ModelLoadedKext[];
  sampleLoadTag: number;
  ledgerCap: number;
  protocolVersion: number;
  now: number;
}

/**
 * Kernel components cannot be unloaded (§3.3 autounloadKext, explicit unload): in the default
 * world, the kernel itself and its KPI pseudo-kexts. (choice) A kext a test loads is never one,
 * whatever its name: on a Mac that is the OSKernelResource key, which such a kext lacks.
 */
function isKernelComponent(bundleId: string): boolean {
  return bundleId === '__kernel__' || bundleId.startsWith('com.apple.kpi.');
}

function osReturn(name: ModelCodeName): ModelOSReturn {
  return { ok: CODES[name] === 0, name, code: CODES[name] };
}

export class KernelModel {
  /** Loaded kexts in load order (sLoadedKexts). */
  private readonly kexts = new Map<number, Kext>();
  private nextTag: number;
  private clock: number;
  private deadline: number | null = null;
  private readonly ledgerCap: number;
  private readonly protocolVersion: number;
  readonly sampleLoadTag: number;
  private readonly sampleIdentifier: string;
  private readonly sampleVersion: string;
  private readonly connections: ModelConnection[] = [];
  /** Tags that were loaded once and are gone (tags are never reused). */
  readonly unloadedTags: number[] = [];
  /** Bundle ids that have ever been loaded in this world. */
  readonly knownBundleIds = new Set<string>();
  panicked: string | null = null;
  private readonly globalAutounload: boolean;

  constructor(world: Observation, options: { autounload?: boolean } = {}) {
    this.globalAutounload = options.autounload ?? true;
    this.clock = world.now;
    this.ledgerCap = world.ledgerCap;
    this.protocolVersion = world.protocolVersion;
    this.sampleLoadTag = world.sampleLoadTag;
    let maxTag = -1;
    for (const k of [...world.kexts].sort((a, b) => a.loadTag - b.loadTag)) {
      const classes = k.classes.map((c) => ({ ...c }));
      this.kexts.set(k.loadTag, {
        bundleId: k.bundleId,
        loadTag: k.loadTag,
        version: k.version,
        raw: k.retainCount + BASELINE,
        // §3.1: a class whose superclass is IOService turns the kext's autounload flag on.
        autounload: classes.some((c) => c.superclass === 'IOService'),
        unloadUnsupported: false,
        kernelComponent: isKernelComponent(k.bundleId),
        started: k.started,
        deps: [...k.dependencies],
        classes,
      });
      this.knownBundleIds.add(k.bundleId);
      maxTag = Math.max(maxTag, k.loadTag);
    }
    // §1.1: tags come from a counter starting at 0 that only increments.
    this.nextTag = maxTag + 1;
    const sample = this.kexts.get(this.sampleLoadTag);
    if (!sample) throw new Error('the observed world has no sample kext');
    this.sampleIdentifier = sample.bundleId;
    this.sampleVersion = sample.version;
  }

  // ---------------------------------------------------------------- kernel (KPIs, §3.1–3.3)

  /** OSKextRetainKextWithLoadTag (§3.1). */
  private kpiRetain(tag: number): ModelCodeName {
    if (tag === INVALID_TAG) return 'kOSKextReturnInvalidArgument';
    const k = this.kexts.get(tag);
    if (!k) return 'kOSKextReturnNotFound';
    k.raw++;
    if (!k.unloadUnsupported) k.autounload = true;
    return 'kOSReturnSuccess';
  }

  /** OSKextReleaseKextWithLoadTag (§3.2): considerUnloads() re-arms the scan, then release. */
  private kpiRelease(tag: number): ModelCodeName {
    if (tag === INVALID_TAG) return 'kOSKextReturnInvalidArgument';
    const k = this.kexts.get(tag);
    if (!k) return 'kOSKextReturnNotFound';
    this.considerUnloads();
    k.raw--;
    if (k.raw < BASELINE) this.panicked ??= `release of ${k.bundleId} (tag ${tag}) below the baseline`;
    return 'kOSReturnSuccess';
  }

  /** §3.3: cancel and re-arm the scan 60 s from now (only with global autounload on). */
  private considerUnloads(): void {
    if (this.globalAutounload) this.deadline = this.clock + UNLOAD_DELAY_MS;
  }

  private hasInstances(k: Kext): boolean {
    return k.classes.some((c) => c.instances > 0);
  }

  /** §3.3 autounloadKext: every condition that makes the scan skip a kext. */
  private autounloadable(k: Kext): boolean {
    return k.raw <= BASELINE && k.autounload && !k.kernelComponent && !this.hasInstances(k) && !k.unloadUnsupported;
  }

  /** Unloading drops the references this kext's dependencies array held on its libraries. */
  private remove(k: Kext): void {
    this.kexts.delete(k.loadTag);
    for (const d of k.deps) {
      const lib = this.kexts.get(d);
      if (lib) lib.raw--;
    }
    this.unloadedTags.push(k.loadTag);
  }

  /** _OSKextConsiderUnloads: walk sLoadedKexts backwards; repeat until a pass unloads nothing. */
  private scan(): void {
    for (;;) {
      let unloaded = false;
      for (const k of [...this.kexts.values()].reverse()) {
        if (this.kexts.has(k.loadTag) && this.autounloadable(k)) {
          this.remove(k);
          unloaded = true;
        }
      }
      if (!unloaded) return;
    }
  }

  // ---------------------------------------------------------------- sim controls (docs/design.md)

  get now(): number {
    return this.clock;
  }

  get autounloadDeadline(): number | null {
    return this.deadline;
  }

  /** Virtual time passes; a due scan runs at its deadline (one thread call, then disarmed). */
  advance(ms: number): void {
    const target = this.clock + ms;
    if (this.deadline !== null && this.deadline <= target) {
      this.clock = this.deadline;
      this.deadline = null;
      this.scan();
    }
    this.clock = target;
  }

  /**
   * (choice) Loading an already-loaded bundle id answers its tag when the version matches and
   * kOSKextReturnLoadedVersionDiffers otherwise, before dependencies are looked at (§3.5: load()
   * of a loaded kext succeeds at once). A dependency that is not loaded fails the load with
   * kOSKextReturnDependencies; a failed load takes no tag (the tag is assigned late in load()).
   */
  loadKext(spec: ModelKextSpec): Outcome<number> {
    if (this.panicked) return fail('kOSReturnError');
    const existing = this.lookup(spec.bundleId);
    if (existing !== null) {
      return this.kexts.get(existing)!.version === spec.version ? { value: existing } : fail('kOSKextReturnLoadedVersionDiffers');
    }
    const deps: number[] = [];
    for (const id of spec.dependencies ?? []) {
      const t = id === spec.bundleId ? null : this.lookup(id);
      if (t === null) return fail('kOSKextReturnDependencies');
      if (!deps.includes(t)) deps.push(t);
    }
    const classes = (spec.classes ?? []).map((c) => ({ name: c.name, superclass: c.superclass ?? '', instances: c.instances ?? 0 }));
    const unloadUnsupported = spec.unloadUnsupported ?? false;
    const tag = this.nextTag++;
    for (const d of deps) this.kexts.get(d)!.raw++;
    this.kexts.set(tag, {
      bundleId: spec.bundleId,
      loadTag: tag,
      version: spec.version,
      raw: BASELINE,
      autounload: !unloadUnsupported && ((spec.autounload ?? false) || classes.some((c) => c.superclass === 'IOService')),
      unloadUnsupported,
      kernelComponent: false,
      started: true,
      deps,
      classes,
    });
    this.knownBundleIds.add(spec.bundleId);
    return { value: tag };
  }

  /**
   * Explicit unload (kernel-facts §3.3): NotFound when not loaded; InUse at once while retained
   * or depended on (nothing terminated); InUse when unloadUnsupported; otherwise the sample's
   * service is terminated (its clients stopped), whatever follows; then InvalidArgument for a
   * kernel component; InUse with live instances (open user clients are instances).
   */
  unloadKext(tag: number): Outcome<ModelOSReturn> {
    if (this.panicked) return fail('kOSReturnError');
    const k = this.kexts.get(tag);
    if (!k) return { value: osReturn('kOSKextReturnNotFound') };
    if (k.raw > BASELINE) return { value: osReturn('kOSKextReturnInUse') };
    if (k.unloadUnsupported) return { value: osReturn('kOSKextReturnInUse') };
    if (tag === this.sampleLoadTag) this.terminateSampleService();
    if (k.kernelComponent) return { value: osReturn('kOSKextReturnInvalidArgument') };
    if (this.hasInstances(k) || k.unloadUnsupported) return { value: osReturn('kOSKextReturnInUse') };
    this.remove(k);
    return { value: osReturn('kOSReturnSuccess') };
  }

  /** Sets the live instances of one of a kext's own classes. Not loaded: kOSKextReturnNotFound. */
  setInstances(tag: number, className: string, count: number): Outcome<undefined> {
    if (this.panicked) return fail('kOSReturnError');
    const k = this.kexts.get(tag);
    if (!k) return fail('kOSKextReturnNotFound');
    const c = k.classes.find((x) => x.name === className);
    if (!c) return { error: 'RangeError' };
    if (tag === this.sampleLoadTag && c.superclass === 'IOService' && count === 0) this.terminateSampleService();
    c.instances = count;
    return { value: undefined };
  }

  /**
   * The sample's service is terminated: every open client is stopped (IOUserClient::stop). It
   * runs with the kernel's kext lock held and may call no KPI, so what a client holds stays
   * held until it closes.
   */
  private terminateSampleService(): void {
    const service = this.classOfSample('IOService');
    if (!service || service.instances === 0) return;
    service.instances = 0;
    for (const conn of this.connections) if (!conn.closed) conn.stopped = true;
  }

  lookup(bundleId: string): number | null {
    for (const k of this.kexts.values()) if (k.bundleId === bundleId) return k.loadTag;
    return null;
  }

  rawRetainCount(tag: number): number | null {
    return this.kexts.get(tag)?.raw ?? null;
  }

  /** The loaded-kext table (§3.9): OSBundleRetainCount = raw − baseline; dependencies descending. */
  kernelLoadedKexts(): ModelLoadedKext[] {
    return [...this.kexts.values()]
      .sort((a, b) => a.loadTag - b.loadTag)
      .map((k) => ({
        bundleId: k.bundleId,
        loadTag: k.loadTag,
        retainCount: k.raw - BASELINE,
        started: k.started,
        version: k.version,
        dependencies: [...k.deps].sort((a, b) => b - a),
        classes: k.classes.map((c) => ({ ...c })),
      }));
  }

  /** Tags currently loaded, in tag order. */
  loadedTags(): number[] {
    return [...this.kexts.keys()].sort((a, b) => a - b);
  }

  classesOf(tag: number): string[] {
    return this.kexts.get(tag)?.classes.map((c) => c.name) ?? [];
  }

  // ---------------------------------------------------------------- the sample kext's user client

  private sample(): Kext | undefined {
    return this.kexts.get(this.sampleLoadTag);
  }

  private classOfSample(superclass: string) {
    return this.sample()?.classes.find((c) => c.superclass === superclass);
  }

  /**
   * IOServiceGetMatchingService + IOServiceOpen (§5.2, §4.4). Anyone may open (privilege only
   * gates retain/release). (choice) With no live instance of the sample's service there is
   * nothing to match, and the sim answers kIOReturnNotFound. Each open client is a live
   * instance of the sample's IOUserClient class.
   */
  open(privileged: boolean): Outcome<ModelConnection> {
    if (this.panicked) return { error: 'KextBridgeError', codeName: 'MIG_SERVER_DIED' };
    const service = this.classOfSample('IOService');
    if (!service || service.instances === 0) return fail('kIOReturnNotFound');
    const uc = this.classOfSample('IOUserClient');
    if (uc) uc.instances++;
    const c: ModelConnection = { id: this.connections.length, privileged, closed: false, stopped: false, ledger: new Map() };
    this.connections.push(c);
    return { value: c };
  }

  private total(c: ModelConnection): number {
    let n = 0;
    for (const v of c.ledger.values()) n += v;
    return n;
  }

  private kernelAnswer(name: ModelCodeName, tag: number, held: number): ModelCounted {
    return { ok: CODES[name] === 0, layer: 'kernel', name, code: CODES[name], loadTag: tag, held };
  }

  private refusal(name: ModelCodeName, tag: number): ModelCounted {
    return { ok: false, layer: 'userclient', name, code: CODES[name], loadTag: tag };
  }

  /** Selector 1: admin only; the ledger cap counts every retain this client holds. */
  retain(c: ModelConnection, tag: number): Outcome<ModelCounted> {
    if (c.closed) return fail('MACH_SEND_INVALID_DEST');
    if (!c.privileged) return { value: this.refusal('kIOReturnNotPrivileged', tag) };
    if (c.stopped) return fail('kIOReturnNotOpen');
    if (this.total(c) >= this.ledgerCap) return { value: this.refusal('kIOReturnNoResources', tag) };
    const kr = this.kpiRetain(tag);
    if (kr === 'kOSReturnSuccess') c.ledger.set(tag, (c.ledger.get(tag) ?? 0) + 1);
    return { value: this.kernelAnswer(kr, tag, c.ledger.get(tag) ?? 0) };
  }

  /**
   * Selector 2: admin only; a tag this client does not hold is refused with NotPermitted,
   * except kOSKextInvalidLoadTag, which reaches the kernel (kOSKextReturnInvalidArgument).
   */
  release(c: ModelConnection, tag: number): Outcome<ModelCounted> {
    if (c.closed) return fail('MACH_SEND_INVALID_DEST');
    if (!c.privileged) return { value: this.refusal('kIOReturnNotPrivileged', tag) };
    if (c.stopped) return fail('kIOReturnNotOpen');
    const held = c.ledger.get(tag) ?? 0;
    if (held === 0 && tag !== INVALID_TAG) return { value: this.refusal('kIOReturnNotPermitted', tag) };
    const kr = this.kpiRelease(tag);
    if (kr === 'kOSReturnSuccess') {
      if (held === 1) c.ledger.delete(tag);
      else c.ledger.set(tag, held - 1);
    }
    return { value: this.kernelAnswer(kr, tag, c.ledger.get(tag) ?? 0) };
  }

  held(c: ModelConnection): Outcome<{ loadTag: number; count: number }[]> {
    if (c.closed) return fail('MACH_SEND_INVALID_DEST');
    if (c.stopped) return fail('kIOReturnNotOpen');
    return { value: [...c.ledger].filter(([, n]) => n > 0).map(([loadTag, count]) => ({ loadTag, count })).sort((a, b) => a.loadTag - b.loadTag) };
  }

  info(c: ModelConnection): Outcome<ModelInfo> {
    if (c.closed) return fail('MACH_SEND_INVALID_DEST');
    if (c.stopped) return fail('kIOReturnNotOpen');
    return {
      value: {
        loadTag: this.sampleLoadTag,
        identifier: this.sampleIdentifier,
        version: this.sampleVersion,
        protocolVersion: this.protocolVersion,
        privileged: c.privileged,
        ledgerCap: this.ledgerCap,
        // (choice) not the kernel's: the test opens every connection with { backend: 'sim' }.
        backendReason: 'explicitly requested',
      },
    };
  }

  loadedKexts(c: ModelConnection): Outcome<ModelLoadedKext[]> {
    if (c.closed) return fail('MACH_SEND_INVALID_DEST');
    return { value: this.kernelLoadedKexts() };
  }

  /** clientClose: release everything still held (each a real KPI release), idempotent. */
  close(c: ModelConnection): Outcome<undefined> {
    if (c.closed) return { value: undefined };
    c.closed = true;
    for (const [tag, n] of [...c.ledger]) for (let i = 0; i < n; i++) this.kpiRelease(tag);
    c.ledger.clear();
    const uc = this.classOfSample('IOUserClient');
    if (uc) uc.instances--;
    return { value: undefined };
  }
}
