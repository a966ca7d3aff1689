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
  /** An interrupted batch's error carries every tag's outcome (README, batches). */
  results?: ModelCounted[];
}
export type Outcome<T> = { value: T } | ModelThrow;
const fail = (codeName: ModelCodeName): ModelThrow => ({ error: 'KextBridgeError', codeName });

/** The comparable part of a RetainResult / ReleaseResult. */
export interface ModelCounted {
  ok: boolean;
  /**
   * 'unexpected': the kernel answered a code the KPI cannot produce (§3.1/§3.2 list what it
   * can; only an injected fault answers anything else). Not a result the API returns as such:
   * a single call throws it, a batch rejects and lists it in error.results (README, batches).
   */
  layer: 'kernel' | 'userclient' | 'unexpected';
  name: string;
  code: number;
  loadTag: number;
  /**
   * The ledger's count on the tag after the call. Kernel answers carry it; a user-client
   * refusal carries no outputs (§5.3), so the library asks the held selector right after and
   * reports that count too (README: a refusal reports the real held count).
   */
  held?: number;
}

/** The KPIs' own answers (§3.1 retain, §3.2 release): anything else is an injected fault. */
export const KPI_CODES: readonly ModelCodeName[] = ['kOSReturnSuccess', 'kOSKextReturnNotFound', 'kOSKextReturnInvalidArgument'];

/** A handle from kb.kext(target): pinned to a load tag (docs/design.md, the kext engineer's day). */
export interface ModelHandle {
  bundleId: string;
  loadTag: number;
  /** The UUID the loaded-kext table gave it; undefined when the test did not choose it. */
  uuid?: string;
}

/** A stale handle's answer: NotFound, nothing reached the kernel, and why. */
export interface ModelStale {
  ok: false;
  layer: 'kernel';
  name: 'kOSKextReturnNotFound';
  code: number;
  loadTag: number;
  held: number;
  stale: 'unloaded' | 'reloaded';
  currentLoadTag?: number;
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
  uuid?: string;
  dependencies?: string[];
  classes?: { name: string; superclass?: string; instances?: number }[];
  autounload?: boolean;
  unloadUnsupported?: boolean;
}

interface Kext {
  bundleId: string;
  loadTag: number;
  version: string;
  /** OSBundleUUID when the test chose it (a reload gives the same bundle id a new one). */
  uuid?: string;
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
  /** What close() answered, once called: a later close() answers the same. */
  closeOutcome?: Outcome<undefined>;
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
  /**
   * kernel.injectFault (docs/design.md, sim controls): the next `times` calls of the KPI answer
   * `code` and change nothing. A new injection replaces the armed one.
   */
  private readonly faults = { retain: { code: 'kOSReturnError' as ModelCodeName, times: 0 }, release: { code: 'kOSReturnError' as ModelCodeName, times: 0 } };

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

  injectFault(kpi: 'retain' | 'release', code: ModelCodeName, times: number): void {
    this.faults[kpi] = { code, times };
  }

  /** An armed fault answers instead of the KPI (whatever the tag), and changes nothing. */
  private fault(kpi: 'retain' | 'release'): ModelCodeName | null {
    const f = this.faults[kpi];
    if (f.times === 0) return null;
    f.times--;
    return f.code;
  }

  /** OSKextRetainKextWithLoadTag (§3.1). */
  private kpiRetain(tag: number): ModelCodeName {
    const f = this.fault('retain');
    if (f) return f;
    if (tag === INVALID_TAG) return 'kOSKextReturnInvalidArgument';
    const k = this.kexts.get(tag);
    if (!k) return 'kOSKextReturnNotFound';
    k.raw++;
    if (!k.unloadUnsupported) k.autounload = true;
    return 'kOSReturnSuccess';
  }

  /** OSKextReleaseKextWithLoadTag (§3.2): considerUnloads() re-arms the scan, then release. */
  private kpiRelease(tag: number): ModelCodeName {
    const f = this.fault('release');
    if (f) return f;
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
   * (choice) Loading an already-loaded bundle id answers its tag when the version (and a given UUID) matches and
   * kOSKextReturnLoadedVersionDiffers otherwise, before dependencies are looked at (§3.5: load()
   * of a loaded kext succeeds at once). A dependency that is not loaded fails the load with
   * kOSKextReturnDependencies; a failed load takes no tag (the tag is assigned late in load()).
   */
  loadKext(spec: ModelKextSpec): Outcome<number> {
    if (this.panicked) return fail('kOSReturnError');
    const existing = this.lookup(spec.bundleId);
    if (existing !== null) {
      // §2 kOSKextReturnLoadedVersionDiffers: another version or UUID of it is loaded. (choice) A
      // spec without a UUID asks for none in particular; a UUID the test chose never equals one
      // the kernel gave a kext loaded without one.
      const k = this.kexts.get(existing)!;
      const sameBuild = k.version === spec.version && (spec.uuid === undefined || spec.uuid === k.uuid);
      return sameBuild ? { value: existing } : fail('kOSKextReturnLoadedVersionDiffers');
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
      ...(spec.uuid === undefined ? {} : { uuid: spec.uuid }),
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
    if (!KPI_CODES.includes(name)) return { ok: false, layer: 'unexpected', name, code: CODES[name], loadTag: tag };
    return { ok: CODES[name] === 0, layer: 'kernel', name, code: CODES[name], loadTag: tag, held };
  }

  /** A refusal changes nothing; it reports what the ledger holds on the tag. */
  private refusal(name: ModelCodeName, c: ModelConnection, tag: number): ModelCounted {
    // A stopped client cannot be asked (its held selector answers kIOReturnNotOpen): no count.
    const r: ModelCounted = { ok: false, layer: 'userclient', name, code: CODES[name], loadTag: tag };
    if (!c.stopped) r.held = c.ledger.get(tag) ?? 0;
    return r;
  }

  /** Selector 1: admin only; the ledger cap counts every retain this client holds. */
  retain(c: ModelConnection, tag: number): Outcome<ModelCounted> {
    if (c.closed) return fail('MACH_SEND_INVALID_DEST');
    if (!c.privileged) return { value: this.refusal('kIOReturnNotPrivileged', c, tag) };
    if (c.stopped) return fail('kIOReturnNotOpen');
    if (this.total(c) >= this.ledgerCap) return { value: this.refusal('kIOReturnNoResources', c, tag) };
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
    if (!c.privileged) return { value: this.refusal('kIOReturnNotPrivileged', c, tag) };
    if (c.stopped) return fail('kIOReturnNotOpen');
    const held = c.ledger.get(tag) ?? 0;
    if (held === 0 && tag !== INVALID_TAG) return { value: this.refusal('kIOReturnNotPermitted', c, tag) };
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

  /**
   * clientClose: release everything still held (each a real KPI release), idempotent. (choice,
   * README close()) A release the kernel refuses (an injected fault) stops the releasing: what
   * is left stays held in the kernel, and close() rejects saying so. With a release fault armed
   * the first release already fails, so nothing is released whatever the ledger's order.
   */
  close(c: ModelConnection): Outcome<undefined> {
    if (c.closeOutcome) return c.closeOutcome;
    c.closed = true;
    let refused = false;
    for (const [tag, n] of [...c.ledger]) {
      for (let i = 0; i < n && !refused; i++) {
        if (this.kpiRelease(tag) === 'kOSReturnSuccess') {
          const left = c.ledger.get(tag)! - 1;
          if (left) c.ledger.set(tag, left);
          else c.ledger.delete(tag);
        } else refused = true;
      }
    }
    const uc = this.classOfSample('IOUserClient');
    if (uc) uc.instances--;
    c.closeOutcome = refused ? fail('kOSReturnError') : { value: undefined };
    return c.closeOutcome;
  }

  /** kb.kext(tag): a handle on the loaded kext with that tag, or null. Closed: the table call throws. */
  handle(c: ModelConnection, tag: number): Outcome<ModelHandle | null> {
    if (c.closed) return fail('MACH_SEND_INVALID_DEST');
    const k = this.kexts.get(tag);
    return { value: k ? { bundleId: k.bundleId, loadTag: k.loadTag, ...(k.uuid === undefined ? {} : { uuid: k.uuid }) } : null };
  }

  /**
   * handle.retain() / release(): while the handle's tag is loaded, the call itself. Once it is
   * gone (tags are never reused, §1.1): NotFound without reaching the kernel, 'reloaded' with
   * the tag its bundle id has now if one is loaded (a new load: new tag, its own UUID and
   * version), else 'unloaded'; held is what this connection still holds on the old tag.
   */
  handleCall(c: ModelConnection, h: ModelHandle, op: 'retain' | 'release'): Outcome<ModelCounted | ModelStale> {
    if (c.closed) return fail('MACH_SEND_INVALID_DEST');
    if (this.kexts.has(h.loadTag)) return op === 'retain' ? this.retain(c, h.loadTag) : this.release(c, h.loadTag);
    if (c.stopped) return fail('kIOReturnNotOpen'); // the held count cannot be asked
    const now = this.lookup(h.bundleId);
    return {
      value: {
        ok: false, layer: 'kernel', name: 'kOSKextReturnNotFound', code: CODES.kOSKextReturnNotFound, loadTag: h.loadTag,
        held: c.ledger.get(h.loadTag) ?? 0,
        ...(now === null ? { stale: 'unloaded' as const } : { stale: 'reloaded' as const, currentLoadTag: now }),
      },
    };
  }

  uuidOf(tag: number): string | undefined {
    return this.kexts.get(tag)?.uuid;
  }

  versionOf(tag: number): string | undefined {
    return this.kexts.get(tag)?.version;
  }
}
