// Model-based test: random command sequences run against the reference model
// (test/model/kernel-model.ts, written from docs/kernel-facts.md and docs/design.md) and against the real
// stack (open({ backend: 'sim', kernel }) on a fresh createSimKernel()); every answer and the
// observable kernel state after every step must agree.
//
//   FC_RUNS=20000 npx jest test/model.test.ts     more sequences (default 1000)
//   FC_SEED=… FC_PATH=… npx jest test/model.test.ts   replay a reported failure
import * as fc from 'fast-check';
import { isDeepStrictEqual } from 'util';
import { createSimKernel, KextBridge, KextHandle, LIMITS, LoadedKext, open, ResourceResult, SimKernel } from '../lib';
import { BASELINE, CODES, INVALID_TAG, KernelModel, ModelCodeName, ModelConnection, ModelCounted, ModelHandle, ModelKextSpec, ModelLoadedKext, ModelStale, ModelThrow, Outcome, UNLOAD_DELAY_MS } from './model/kernel-model';

const RUNS = Number(process.env.FC_RUNS ?? 1000);
const SEED = process.env.FC_SEED === undefined ? undefined : Number(process.env.FC_SEED);
const PATH = process.env.FC_PATH;
/** FC_STATS=1: print how often each kind of answer was compared (to see what the runs reach). */
const STATS = process.env.FC_STATS ? new Map<string, number>() : undefined;
const count = (key: string) => STATS?.set(key, (STATS.get(key) ?? 0) + 1);

// ------------------------------------------------------------------ issue 13: load by id, resource requests
//
// An extension of the reference model, written from docs/kernel-facts.md §3.5–3.6 and the
// "simulated kernel" part of docs/design.md (kernelmanagerd, delays, withholding, timeouts at
// the scans, pending requests refusing unload), with no link to the C++.
//
// (choice) How the model stays exact. On the sim a request's own wait drives the virtual clock:
// while it is pending in the kernel and something is due (its answer, a load pickup, the armed
// scan) it jumps the clock there (lib/requests.ts). Left to run at any time, that would make the
// clock depend on the event loop. So every command ends at a defined point, quiescence: the
// model first drives its own clock the same way (while a request of an open connection is
// pending and something is due, jump to the next due event), then the harness waits until the
// stack reaches that state (same clock, same pending tags, the same requests settled) and only
// then compares. No request carries a `timeout` (two deadlines could race each other's jumps).
// At quiescence a request still pending is idle: withheld, with nothing due. The one thing that
// can then make something due mid-command is a release arming the scan; a command that releases
// more than once while another connection's request is idle (close with a ledger, releaseMany)
// could let that request jump the clock between two releases, so the harness runs releaseMany
// through `sync` then (no event-loop turn) and, before such a close, ends the withholding and
// drives the requests home (both logged in the reproducer). Aborting after a delivery is made
// exact the same way the contract test does it: a synchronous kernel.advance that delivers,
// then abort() in the same tick, before JS has seen the completion.

/** Codes of the new selectors (docs/kernel-facts.md §2), written out, not taken from the library. */
const RCODES = {
  kOSReturnSuccess: 0,
  kOSReturnError: 0xdc000001,
  kOSKextReturnNotFound: 0xdc008006,
  kOSKextReturnDeferred: 0xdc008011,
  kOSKextReturnInUse: 0xdc008018,
  kOSKextReturnTimeout: 0xdc008019,
  kIOReturnNoResources: 0xe00002be,
  kIOReturnNotPrivileged: 0xe00002c1,
  kIOReturnNoSpace: 0xe00002db,
} as const;
type RCode = keyof typeof RCODES;
/** The most bytes the user client keeps for one delivery, and its per-client request table. */
const MAX_RESOURCE = 64 * 1024;
const RES = 'com.example.resources';
const resBytes = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + 3) & 0xff));
const RESOURCES: Record<string, Buffer> = { zero: resBytes(0), one: resBytes(1), small: resBytes(300), pieces: resBytes(4097), over: resBytes(MAX_RESOURCE + 1) };
const RESOURCE_NAMES = ['zero', 'one', 'small', 'pieces', 'over', 'missing'];
const REQUEST_BUNDLES = [RES, RES, RES, 'com.example.k0', 'com.example.nowhere'];
/** loadKext ids: com.example.k0–k5 (the loadKext command's), the resources bundle, one nobody has. */
const loadId = (i: number) => (i < 6 ? `com.example.k${i}` : i === 6 ? RES : 'com.example.nowhere');

/** A result as compared: messages only by type, bytes as hex. */
type Norm = Record<string, unknown>;
function norm(r: unknown): unknown {
  if (r === null || typeof r !== 'object' || 'error' in r) return r;
  const o: Norm = { ...(r as Norm) };
  if ('message' in o) o.message = typeof o.message;
  if (Buffer.isBuffer(o.data) || o.data instanceof Uint8Array) o.data = Buffer.from(o.data as Uint8Array).toString('hex');
  return o;
}

interface ModelRequest {
  tag: number;
  conn: ModelConnection;
  bundleId: string;
  resourceName: string;
  requestedAt: number;
  dueAt: number;
  stale: boolean;
}

class RequestModel {
  readonly installed = new Map<string, { spec: ModelKextSpec | null; resources: Record<string, Buffer> }>();
  /** The kernel's pending requests, in the order they were made. */
  readonly pending: ModelRequest[] = [];
  /** Answers the kernel gave that JS has not taken yet: request tag → the request's result. */
  readonly answers = new Map<number, Norm>();
  /** Each request tag's life in the kernel: queued, then delivered, timedOut or cancelled. */
  readonly phases = new Map<number, string[]>();
  private nextTag = 0;
  resourceDelay = 10;
  loadDelay = 10;
  withheld = false;
  private fault: { code: RCode; times: number } = { code: 'kOSReturnError', times: 0 };
  private posted: string[] = [];
  private pickupAt: number | null = null;

  constructor(private readonly m: KernelModel, sampleBundleId: string, private readonly cap: number) {
    this.installed.set(sampleBundleId, { spec: null, resources: {} }); // kernelmanagerd has the sample's bundle (no resources)
  }

  private phase(tag: number, p: string): void {
    this.phases.set(tag, [...(this.phases.get(tag) ?? []), p]);
  }

  install(spec: ModelKextSpec, resources: Record<string, Buffer>): void {
    this.installed.set(spec.bundleId, { spec, resources });
  }

  failResources(code: RCode, times: number): void {
    this.fault = { code, times };
  }

  /** OSKextLoadKextWithIdentifier through selector 6 (admin only). */
  loadKext(c: ModelConnection, id: string): Outcome<Norm> {
    if (c.closed) return { error: 'KextBridgeError', codeName: 'MACH_SEND_INVALID_DEST' };
    const base = { message: 'string', bundleId: id };
    if (!c.privileged) return { value: { ok: false, layer: 'userclient', name: 'kIOReturnNotPrivileged', code: RCODES.kIOReturnNotPrivileged, ...base, loadTag: null } };
    const ok = (loadTag: number) => ({ value: { ok: true, layer: 'kernel', name: 'kOSReturnSuccess', code: 0, ...base, loadTag } });
    const loaded = this.m.lookup(id);
    if (loaded !== null) return ok(loaded); // load() of a loaded kext: at once, same tag
    const disk = this.installed.get(id);
    if (disk?.spec) {
      const t = this.m.loadKext(disk.spec);
      if ('value' in t) return ok(t.value);
      throw new Error(`the model could not load the installed ${id}`);
    }
    // Unknown to the kernel: posted once to kernelmanagerd, which comes for the queue later.
    if (!this.posted.includes(id)) this.posted.push(id);
    this.pickupAt ??= this.m.now + this.loadDelay;
    return { value: { ok: false, layer: 'kernel', name: 'kOSKextReturnDeferred', code: RCODES.kOSKextReturnDeferred, ...base, loadTag: null } };
  }

  /** OSKextRequestResource through selector 7: a result at once, or the kernel's request tag. */
  request(c: ModelConnection, bundleId: string, resourceName: string): Outcome<Norm> | { tag: number } {
    if (c.closed) return { error: 'KextBridgeError', codeName: 'MACH_SEND_INVALID_DEST' };
    const refuse = (name: RCode) => ({ value: { ok: false, layer: 'userclient', name, code: RCODES[name], message: 'string', requestTag: null } });
    if (!c.privileged) return refuse('kIOReturnNotPrivileged');
    if (this.pending.filter((p) => p.conn === c).length >= this.cap) return refuse('kIOReturnNoResources');
    const tag = this.nextTag++;
    this.pending.push({ tag, conn: c, bundleId, resourceName, requestedAt: this.m.now, dueAt: this.m.now + this.resourceDelay, stale: false });
    this.phase(tag, 'queued');
    // considerUnloads(rescheduleOnly): a request re-arms an armed scan (never arms one). The
    // base model keeps its deadline private: this is the one place the extension reaches in.
    const inner = this.m as unknown as { deadline: number | null };
    if (inner.deadline !== null) inner.deadline = this.m.now + UNLOAD_DELAY_MS;
    return { tag };
  }

  /** OSKextCancelRequest: true when the request was still pending (it is gone now). */
  cancel(tag: number): boolean {
    const i = this.pending.findIndex((p) => p.tag === tag);
    if (i < 0) return false;
    this.pending.splice(i, 1);
    this.phase(tag, 'cancelled');
    return true;
  }

  /** close(): the user client cancels each of its pending requests; each ends 'closed'. */
  closeConnection(c: ModelConnection): void {
    for (const p of this.pending.filter((x) => x.conn === c)) {
      this.cancel(p.tag);
      this.answers.set(p.tag, { ok: false, layer: 'caller', reason: 'closed', name: 'Closed', code: null, message: 'string', requestTag: p.tag, cancelled: true, cancel: null });
    }
  }

  /** An abort: cancelled in the kernel if still pending; after an answer JS has not seen, that answer, marked. */
  abort(tag: number): void {
    if (this.cancel(tag)) {
      this.answers.set(tag, { ok: false, layer: 'caller', reason: 'aborted', name: 'Aborted', code: null, message: 'string', requestTag: tag, cancelled: true, cancel: { name: 'kOSReturnSuccess', code: 0 } });
      return;
    }
    const a = this.answers.get(tag);
    if (a && a.layer === 'kernel') a.abortedAfterDelivery = true;
  }

  /** kernelmanagerd answers requests[i]: the bundle's bytes, NotFound, or an injected failure. */
  private answer(i: number): void {
    const [p] = this.pending.splice(i, 1);
    this.phase(p.tag, 'delivered');
    let code: RCode = 'kOSReturnSuccess';
    let bytes: Buffer | undefined;
    if (this.fault.times > 0) {
      this.fault.times--;
      code = this.fault.code;
    } else {
      bytes = this.installed.get(p.bundleId)?.resources[p.resourceName];
      if (!bytes) code = 'kOSKextReturnNotFound';
    }
    this.answers.set(p.tag, this.completion(p.tag, code, bytes));
  }

  /** What the request answers for the kernel's callback (the user client keeps at most 64 KiB). */
  private completion(tag: number, code: RCode, bytes: Buffer | undefined): Norm {
    if (code !== 'kOSReturnSuccess') return { ok: false, layer: 'kernel', stage: 'delivery', name: code, code: RCODES[code], message: 'string', requestTag: tag, abortedAfterDelivery: false };
    if (bytes!.length > MAX_RESOURCE) return { ok: false, layer: 'userclient', name: 'kIOReturnNoSpace', code: RCODES.kIOReturnNoSpace, message: 'string', requestTag: tag, length: bytes!.length };
    return { ok: true, layer: 'kernel', name: 'kOSReturnSuccess', code: 0, message: 'string', requestTag: tag, data: bytes!.toString('hex'), abortedAfterDelivery: false };
  }

  /** The scan's request pass: a request a previous scan saw stale times out, the rest become stale. */
  private timeoutScan(): void {
    for (let i = this.pending.length; i-- > 0; ) {
      const p = this.pending[i];
      if (!p.stale) {
        p.stale = true;
        continue;
      }
      this.pending.splice(i, 1);
      this.phase(p.tag, 'timedOut');
      this.answers.set(p.tag, this.completion(p.tag, 'kOSKextReturnTimeout', undefined));
    }
  }

  /** kernelmanagerd takes the queue: loads each posted id it has installed by now. */
  private pickUp(): void {
    this.pickupAt = null;
    const ids = this.posted;
    this.posted = [];
    for (const id of ids) {
      const spec = this.installed.get(id)?.spec;
      if (spec && this.m.lookup(id) === null) this.m.loadKext(spec);
    }
  }

  /** When the clock next makes something happen, or null. */
  nextDue(): number | null {
    const c = [this.m.autounloadDeadline, this.pickupAt, ...(this.withheld ? [] : this.pending.map((p) => p.dueAt))].filter((x): x is number => x !== null);
    return c.length ? Math.min(...c) : null;
  }

  /** Virtual time passes: in time order, answers, then the load pickup, then the scan at the same time. */
  advance(ms: number): void {
    const m = this.m;
    const target = m.now + ms;
    for (;;) {
      let when = Infinity;
      let what: 'answer' | 'pickup' | 'scan' | null = null;
      let index = 0;
      if (!this.withheld)
        for (let i = 0; i < this.pending.length; i++)
          if (this.pending[i].dueAt < when) [when, what, index] = [this.pending[i].dueAt, 'answer', i];
      if (this.pickupAt !== null && this.pickupAt < when) [when, what] = [this.pickupAt, 'pickup'];
      const d = m.autounloadDeadline;
      if (d !== null && d < when) [when, what] = [d, 'scan'];
      if (what === null || when > target) break;
      if (what === 'scan') {
        this.timeoutScan();
        m.advance(Math.max(0, when - m.now)); // the base model runs its kext scan at the deadline
        continue;
      }
      if (what === 'answer') this.answer(index);
      else this.pickUp();
      // Move the clock up to the event, but leave a scan due at this very time to the next turn.
      if (when > m.now && (d === null || when < d)) m.advance(when - m.now);
    }
    m.advance(target - m.now);
  }

  /** What the requests' own waits do: jump to the next due event while one of them is pending. */
  drive(): void {
    for (let n = 0; n < 1000; n++) {
      const due = this.nextDue();
      if (due === null || !this.pending.some((p) => !p.conn.closed)) return;
      this.advance(Math.max(0, due - this.m.now));
    }
    throw new Error('the model drove the clock 1000 times without settling');
  }

  /** kernel.pendingRequests() as the model has it. */
  kernelPending(sampleLoadTag: number, sampleBundleId: string): unknown[] {
    return this.pending.map((p) => ({
      requestTag: p.tag, loadTag: sampleLoadTag, callerBundleId: sampleBundleId, bundleId: p.bundleId, resourceName: p.resourceName,
      requestedAt: p.requestedAt, dueAt: this.withheld ? null : p.dueAt, withheld: this.withheld, stale: p.stale,
    }));
  }
}

// ------------------------------------------------------------------ commands (plain data)

/** Which load tag a command uses, resolved against the model's state when the command runs. */
type TagPick =
  | { t: 'loaded'; i: number } // one of the loaded kexts
  | { t: 'mine'; i: number } // one of the loaded kexts this run loaded (else any loaded)
  | { t: 'unloaded'; i: number } // a tag that was loaded and is gone (never reused)
  | { t: 'held'; i: number } // one this connection holds (else the sample's)
  | { t: 'invalid' } // kOSKextInvalidLoadTag
  | { t: 'unknown'; tag: number } // never loaded
  | { t: 'sample' } // the sample kext's own tag, passed explicitly
  | { t: 'default' }; // no argument: the sample's own tag
type Api = 'async' | 'sync' | 'many' | 'syncMany';
type Cmd =
  | { op: 'open'; privileged: boolean }
  | { op: 'retain' | 'release'; c: number; tag: TagPick; api: Api }
  | { op: 'retainBurst'; c: number; tag: TagPick; n: number }
  | { op: 'releaseMany'; c: number; tags: TagPick[]; sync: boolean }
  | { op: 'held' | 'info'; c: number; sync: boolean }
  | { op: 'loadedKexts'; c: number; via: 'async' | 'sync' | 'kernel' }
  | { op: 'close'; c: number }
  | { op: 'advance'; ms: number }
  | { op: 'loadKext'; id: number; version: string; deps: ({ t: 'loaded'; i: number } | { t: 'missing' })[]; classes: { superclass?: string; instances: number }[]; autounload?: boolean; unloadUnsupported?: boolean; uuid?: boolean }
  | { op: 'injectFault'; kpi: 'retain' | 'release'; code: ModelCodeName; times: number }
  | { op: 'reload'; tag: TagPick; version: string } // unload, then load the same bundle id with a new UUID and this version
  | { op: 'handle'; c: number; tag: TagPick } // kb.kext(tag)
  | { op: 'handleCall'; h: number; call: 'retain' | 'release' }
  | { op: 'unloadKext'; tag: TagPick }
  | { op: 'setInstances'; tag: TagPick; cls: number; count: number }
  // issue 13 (see "load by id, resource requests" below)
  | { op: 'kbLoadKext'; c: number; id: number; sync: boolean } // kb.loadKext(id) / kb.sync.loadKext(id)
  | { op: 'install'; id: number; version: string; autounload: boolean } // kernelmanagerd's disk
  | { op: 'request'; c: number; bundle: number; name: number } // kb.requestResource, not awaited
  | { op: 'abort'; r: number; ms: number } // ms > 0: withholding off, kernel.advance(ms) (sync); then abort one request
  | { op: 'withhold'; on: boolean }
  | { op: 'failResources'; code: 'kOSKextReturnNotFound' | 'kOSReturnError'; times: number }
  | { op: 'setDelay'; kind: 'resource' | 'load'; ms: number };

const idx = fc.nat(40);
const tagPick: fc.Arbitrary<TagPick> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ t: fc.constant('loaded' as const), i: idx }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant('mine' as const), i: idx }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('unloaded' as const), i: idx }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant('held' as const), i: idx }) },
  { weight: 1, arbitrary: fc.constant({ t: 'invalid' as const }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('unknown' as const), tag: fc.constantFrom(4096, 0x7fffffff, 0xfffffffe) }) },
  { weight: 2, arbitrary: fc.constant({ t: 'sample' as const }) },
  { weight: 2, arbitrary: fc.constant({ t: 'default' as const }) },
);
/** A connection: mostly an open one (closed ones keep answering MACH_SEND_INVALID_DEST). */
const conn = fc.nat(19);
const api = fc.constantFrom<Api>('async', 'async', 'sync', 'many', 'syncMany');
const ms = fc.oneof(fc.constantFrom(0, 1, 59_999, 60_000, 60_001, 120_000, 130_000), fc.integer({ min: 0, max: 130_000 }));

const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ op: fc.constant('open' as const), privileged: fc.boolean() }) },
  { weight: 10, arbitrary: fc.record({ op: fc.constant('retain' as const), c: conn, tag: tagPick, api }) },
  { weight: 10, arbitrary: fc.record({ op: fc.constant('release' as const), c: conn, tag: fc.oneof({ weight: 3, arbitrary: tagPick }, { weight: 2, arbitrary: fc.record({ t: fc.constant('held' as const), i: idx }) }), api }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('retainBurst' as const), c: conn, tag: tagPick, n: fc.oneof(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 120, max: 260 })) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('releaseMany' as const), c: conn, tags: fc.array(tagPick, { minLength: 1, maxLength: 4 }), sync: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constantFrom('held' as const, 'info' as const), c: conn, sync: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('loadedKexts' as const), c: conn, via: fc.constantFrom('async' as const, 'sync' as const, 'kernel' as const) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('close' as const), c: conn }) },
  { weight: 5, arbitrary: fc.record({ op: fc.constant('advance' as const), ms }) },
  {
    weight: 4,
    arbitrary: fc.record(
      {
        op: fc.constant('loadKext' as const),
        id: fc.nat(5),
        version: fc.constantFrom('1.0', '1.0', '1.0', '2.0'),
        deps: fc.array(fc.oneof({ weight: 6, arbitrary: fc.record({ t: fc.constant('loaded' as const), i: idx }) }, { weight: 1, arbitrary: fc.constant({ t: 'missing' as const }) }), { maxLength: 2 }),
        classes: fc.array(fc.record({ superclass: fc.constantFrom(undefined, 'IOService', 'OSObject'), instances: fc.nat(2) }, { requiredKeys: ['instances'] }), { maxLength: 2 }),
        autounload: fc.boolean(),
        unloadUnsupported: fc.oneof({ weight: 6, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
        uuid: fc.boolean(),
      },
      { requiredKeys: ['op', 'id', 'version', 'deps', 'classes'] },
    ),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('unloadKext' as const), tag: tagPick }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('setInstances' as const), tag: tagPick, cls: fc.nat(3), count: fc.nat(2) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('injectFault' as const),
      kpi: fc.constantFrom('retain' as const, 'release' as const),
      // NotFound/InvalidArgument: codes the KPI can answer (a kernel result); kOSReturnError: one it cannot.
      code: fc.constantFrom<ModelCodeName>('kOSKextReturnNotFound', 'kOSReturnError', 'kOSReturnError', 'kOSKextReturnInvalidArgument'),
      times: fc.constantFrom(0, 1, 1, 2),
    }),
  },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('reload' as const), tag: fc.oneof(fc.record({ t: fc.constant('mine' as const), i: idx }), tagPick), version: fc.constantFrom('1.0', '2.0', '3.1') }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('handle' as const), c: conn, tag: fc.oneof(fc.record({ t: fc.constant('mine' as const), i: idx }), tagPick) }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('handleCall' as const), h: idx, call: fc.constantFrom('retain' as const, 'release' as const) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('kbLoadKext' as const), c: conn, id: fc.nat(7), sync: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('install' as const), id: fc.nat(5), version: fc.constantFrom('1.0', '2.0'), autounload: fc.boolean() }) },
  { weight: 8, arbitrary: fc.record({ op: fc.constant('request' as const), c: conn, bundle: fc.nat(REQUEST_BUNDLES.length - 1), name: fc.nat(RESOURCE_NAMES.length - 1) }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('abort' as const), r: idx, ms: fc.constantFrom(0, 0, 10, 1000) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('withhold' as const), on: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('failResources' as const), code: fc.constantFrom('kOSKextReturnNotFound' as const, 'kOSReturnError' as const), times: fc.constantFrom(0, 1, 2) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('setDelay' as const), kind: fc.constantFrom('resource' as const, 'load' as const), ms: fc.constantFrom(0, 10, 5000, 70_000) }) },
);

const world = fc.record({ autounload: fc.oneof({ weight: 9, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }) });

// ------------------------------------------------------------------ running one sequence

/** What the real stack did, in the model's terms: a value or the thrown error's class/code. */
async function settle<T>(f: () => T | Promise<T>): Promise<Outcome<T>> {
  try {
    return { value: await f() };
  } catch (e) {
    // Errors made by the addon come from the main realm: match them by name, not instanceof.
    const err = e as { name?: string; codeName?: string; results?: ModelCounted[] };
    if (err.codeName === undefined) return { error: String(err.name) };
    // An interrupted batch: every tag's outcome travels with the error.
    return err.results ? { error: String(err.name), codeName: err.codeName, results: err.results.map(counted) } : { error: String(err.name), codeName: err.codeName };
  }
}

const counted = (r: ModelCounted): ModelCounted => {
  const o: ModelCounted = { ok: r.ok, layer: r.layer, name: r.name, code: r.code, loadTag: r.loadTag };
  if (r.held !== undefined) o.held = r.held;
  return o;
};
const stale = (r: ModelCounted | ModelStale): ModelCounted | ModelStale =>
  'stale' in r ? { ...counted(r), stale: r.stale, ...(r.currentLoadTag === undefined ? {} : { currentLoadTag: r.currentLoadTag }) } as ModelStale : counted(r);

/**
 * The public API's rule for a kernel answer the KPI cannot produce (README): a single call
 * throws a KextBridgeError with that code…
 */
function single<T extends ModelCounted | ModelStale>(o: Outcome<T>): Outcome<T> {
  return 'value' in o && o.value.layer === 'unexpected' ? { error: 'KextBridgeError', codeName: o.value.name } : o;
}
/** …and a batch rejects with the first such tag's code and every tag's outcome in `results`. */
function batch(os: Outcome<ModelCounted>[], tags: number[]): Outcome<ModelCounted[]> {
  // A batch that could not run at all (a closed or stopped connection): every tag not run.
  const thrown = os.find((o) => !('value' in o)) as ModelThrow | undefined;
  if (thrown) {
    const name = thrown.codeName as ModelCodeName;
    return { ...thrown, results: tags.map((loadTag) => ({ ok: false, layer: 'not-run' as never, name, code: CODES[name], loadTag })) };
  }
  const vs = os.map((o) => counted((o as { value: ModelCounted }).value));
  const first = vs.find((v) => v.layer === 'unexpected');
  return first ? { error: 'KextBridgeError', codeName: first.name, results: vs } : { value: vs };
}
const kexts = (list: LoadedKext[] | ModelLoadedKext[]): ModelLoadedKext[] =>
  [...list]
    .map(({ bundleId, loadTag, retainCount, started, version, dependencies, classes }) => ({ bundleId, loadTag, retainCount, started, version, dependencies, classes }))
    .sort((a, b) => a.loadTag - b.loadTag);
function mapOutcome<T, U>(o: Outcome<T>, f: (v: T) => U): Outcome<U> {
  return 'value' in o ? { value: f(o.value) } : o;
}

class Divergence extends Error {}
function outcomeKey(o: unknown): string {
  if (o === null || typeof o !== 'object') return String(o);
  if ('error' in o) return `throws ${(o as { error: string }).error} ${(o as { codeName?: string }).codeName ?? ''}`;
  const v = 'value' in o ? (o as { value: unknown }).value : o;
  if (Array.isArray(v)) return v.length && typeof v[0] === 'object' && 'name' in v[0] ? [...new Set(v.map((x: { name: string }) => x.name))].sort().join('+') : 'list';
  if (v !== null && typeof v === 'object' && 'stale' in v) { const x = v as unknown as { name: string; stale: string }; return `${x.name} stale: ${x.stale}`; }
  return v !== null && typeof v === 'object' && 'name' in v ? String((v as { name: string }).name) : typeof v;
}
const plain = (v: unknown): unknown => (v === undefined ? v : JSON.parse(JSON.stringify(v)));

interface Pair {
  m: ModelConnection;
  r: KextBridge;
  name: string;
}

/** A request started and not awaited. */
interface Flight {
  name: string;
  pair: Pair;
  /** The request tag the model predicts (null: the model says it ends at once). */
  tag: number | null;
  ac: AbortController;
  /** The model's result, once it says the request settled. */
  model: Outcome<unknown> | undefined;
  /** Each time the stack's promise settled (it must be once). */
  real?: Outcome<unknown>[];
  checked: boolean;
}

class Run {
  readonly log: string[] = [];
  readonly pairs: Pair[] = [];
  model!: KernelModel;
  kernel!: SimKernel;
  rm!: RequestModel;
  /** Requests started and not awaited: the model's result once it settles, and the stack's. */
  readonly flights: Flight[] = [];
  private sampleBundleId = '';
  private step = -1;
  private cmd: Cmd | undefined;

  async start(options: { autounload: boolean }): Promise<void> {
    this.kernel = createSimKernel(options);
    this.log.push(`const kernel = createSimKernel(${JSON.stringify(options)});`);
    const observed = this.kernel.loadedKexts();
    const first = await open({ backend: 'sim', kernel: this.kernel });
    const info = await first.info();
    this.model = new KernelModel(
      { kexts: kexts(observed), sampleLoadTag: this.kernel.sampleLoadTag, ledgerCap: info.ledgerCap, protocolVersion: info.protocolVersion, now: this.kernel.now },
      options,
    );
    this.sampleBundleId = observed.find((k) => k.loadTag === this.kernel.sampleLoadTag)!.bundleId;
    this.rm = new RequestModel(this.model, this.sampleBundleId, LIMITS.requestCapacity);
    // The resources bundle is on kernelmanagerd's disk in every run (installed, not loaded).
    this.kernel.installKext({ bundleId: RES, version: '1.0' }, { resources: RESOURCES });
    this.rm.install({ bundleId: RES, version: '1.0' }, RESOURCES);
    this.log.push(`kernel.installKext({ bundleId: '${RES}', version: '1.0' }, { resources: RESOURCES }); // ${Object.keys(RESOURCES).map((k) => `${k}: ${RESOURCES[k].length} bytes`).join(', ')}`);
    const m = this.model.open(true);
    if (!('value' in m)) throw new Error('the model refused the first open');
    this.addPair(m.value, first, true);
    await this.compareState();
  }

  private addPair(m: ModelConnection, r: KextBridge, privileged: boolean): void {
    const name = `kb${this.pairs.length}`;
    this.pairs.push({ m, r, name });
    this.log.push(`const ${name} = await open({ backend: 'sim', kernel${privileged ? '' : ', privileged: false'} });`);
  }

  diverge(what: string, model: unknown, real: unknown): never {
    throw new Divergence(
      `model and stack diverge at step ${this.step} ${JSON.stringify(this.cmd)}: ${what}\n` +
        `  model: ${JSON.stringify(model)}\n  stack: ${JSON.stringify(real)}\n` +
        `reproducer:\n  ${this.log.join('\n  ')}`,
    );
  }

  expectSame(what: string, model: unknown, real: unknown, answer = true): void {
    // Through JSON: values the addon built belong to the main realm (other prototypes).
    if (!isDeepStrictEqual(plain(model), plain(real))) this.diverge(what, model, real);
    if (STATS && this.cmd && answer) count(`${this.cmd.op}: ${outcomeKey(model)}`);
  }

  /** 0–15: an open connection if there is one; 16–19: any connection, closed or not. */
  private pick(c: number): Pair {
    const live = this.pairs.filter((p) => !p.m.closed);
    return c < 16 && live.length ? live[c % live.length] : this.pairs[c % this.pairs.length];
  }

  private resolve(p: TagPick, pair?: Pair): number | undefined {
    const m = this.model;
    switch (p.t) {
      case 'loaded': {
        const tags = m.loadedTags();
        return tags[p.i % tags.length];
      }
      case 'mine': {
        const tags = m.loadedTags().filter((t) => t > m.sampleLoadTag);
        const all = tags.length ? tags : m.loadedTags();
        return all[p.i % all.length];
      }
      case 'unloaded':
        return m.unloadedTags.length ? m.unloadedTags[p.i % m.unloadedTags.length] : 4097;
      case 'held': {
        const tags = pair ? [...pair.m.ledger.keys()] : [];
        return tags.length ? tags[p.i % tags.length] : m.sampleLoadTag;
      }
      case 'invalid':
        return INVALID_TAG;
      case 'unknown':
        return p.tag;
      case 'sample':
        return m.sampleLoadTag;
      case 'default':
        return undefined;
    }
  }

  private tagArg(t: number | undefined): string {
    return t === undefined ? '' : String(t);
  }

  async exec(step: number, c: Cmd): Promise<void> {
    this.step = step;
    this.cmd = c;
    const m = this.model;
    const pair = 'c' in c ? this.pick(c.c) : undefined;
    switch (c.op) {
      case 'open': {
        const mo = m.open(c.privileged);
        const ro = await settle(() => open({ backend: 'sim', kernel: this.kernel, privileged: c.privileged }));
        this.expectSame('open', 'value' in mo ? 'opened' : mo, 'value' in ro ? 'opened' : ro);
        if ('value' in mo && 'value' in ro) this.addPair(mo.value, ro.value, c.privileged);
        else this.log.push(`await open({ backend: 'sim', kernel, privileged: ${c.privileged} }); // rejects`);
        break;
      }
      case 'retain':
      case 'release': {
        const p = pair!;
        const t = this.resolve(c.tag, p);
        const tag = t ?? m.sampleLoadTag;
        const mo = c.op === 'retain' ? m.retain(p.m, tag) : m.release(p.m, tag);
        const kb = p.r;
        const op = c.op;
        let ro: Outcome<ModelCounted>;
        switch (c.api) {
          case 'async':
            ro = await settle(() => (t === undefined ? kb[op]() : kb[op](t)) as Promise<ModelCounted>);
            this.log.push(`await ${p.name}.${op}(${this.tagArg(t)});`);
            break;
          case 'sync':
            ro = await settle(() => (t === undefined ? kb.sync[op]() : kb.sync[op](t)) as ModelCounted);
            this.log.push(`${p.name}.sync.${op}(${this.tagArg(t)});`);
            break;
          case 'many':
            ro = await settle(async () => (await kb[`${op}Many`]([tag]))[0] as ModelCounted);
            this.log.push(`await ${p.name}.${op}Many([${tag}]);`);
            break;
          case 'syncMany':
            ro = await settle(() => kb.sync[`${op}Many`]([tag])[0] as ModelCounted);
            this.log.push(`${p.name}.sync.${op}Many([${tag}]);`);
            break;
        }
        const expected = c.api === 'many' || c.api === 'syncMany' ? mapOutcome(batch([mo], [tag]), (l) => l[0]) : single(mapOutcome(mo, counted));
        this.expectSame(`${op}(${tag}) via ${c.api}`, expected, 'value' in ro ? mapOutcome(ro, counted) : ro);
        break;
      }
      case 'retainBurst': {
        const p = pair!;
        const tag = this.resolve(c.tag, p) ?? m.sampleLoadTag;
        const mr: Outcome<ModelCounted>[] = [];
        for (let i = 0; i < c.n; i++) mr.push(m.retain(p.m, tag));
        const ro = await settle(() => p.r.retainMany(new Array(c.n).fill(tag)));
        this.log.push(`await ${p.name}.retainMany(new Array(${c.n}).fill(${tag}));`);
        this.expectSame(`retainMany(${c.n} × ${tag})`, batch(mr, new Array<number>(c.n).fill(tag)), mapOutcome(ro, (l) => l.map(counted)));
        break;
      }
      case 'releaseMany': {
        const p = pair!;
        const tags = c.tags.map((x) => this.resolve(x, p) ?? m.sampleLoadTag);
        const mr = tags.map((tag) => m.release(p.m, tag));
        // Several releases while a request waits in the kernel: on the calling thread (see the choice above).
        const sync = c.sync || (tags.length > 1 && this.rm.pending.length > 0);
        const ro = await settle(() => (sync ? p.r.sync.releaseMany(tags) : p.r.releaseMany(tags)));
        this.log.push(`${sync ? '' : 'await '}${p.name}.${sync ? 'sync.' : ''}releaseMany(${JSON.stringify(tags)});`);
        this.expectSame(`releaseMany(${tags})`, batch(mr, tags), mapOutcome(ro, (l) => l.map(counted)));
        break;
      }
      case 'held': {
        const p = pair!;
        const ro = await settle(() => (c.sync ? p.r.sync.held() : p.r.held()));
        this.log.push(`${c.sync ? '' : 'await '}${p.name}.${c.sync ? 'sync.' : ''}held();`);
        this.expectSame('held()', m.held(p.m), ro);
        break;
      }
      case 'info': {
        const p = pair!;
        const ro = await settle(() => (c.sync ? p.r.sync.info() : p.r.info()));
        this.log.push(`${c.sync ? '' : 'await '}${p.name}.${c.sync ? 'sync.' : ''}info();`);
        this.expectSame('info()', m.info(p.m), ro);
        break;
      }
      case 'loadedKexts': {
        const p = pair!;
        if (c.via === 'kernel') {
          this.log.push('kernel.loadedKexts();');
          this.expectSame('kernel.loadedKexts()', m.kernelLoadedKexts(), kexts(this.kernel.loadedKexts()));
        } else {
          const ro = await settle(() => (c.via === 'sync' ? p.r.sync.loadedKexts() : p.r.loadedKexts()));
          this.log.push(`${c.via === 'sync' ? '' : 'await '}${p.name}.${c.via === 'sync' ? 'sync.' : ''}loadedKexts();`);
          this.expectSame('loadedKexts()', mapOutcome(m.loadedKexts(p.m), kexts), mapOutcome(ro, kexts));
        }
        break;
      }
      case 'close': {
        const p = pair!;
        const [mo, ro] = await this.close(p);
        this.expectSame('close()', mo, ro);
        break;
      }
      case 'advance': {
        const before = m.loadedTags().length;
        this.rm.advance(c.ms);
        if (m.loadedTags().length < before) count(`advance: the scan unloaded ${before - m.loadedTags().length}`);
        const ro = await settle(() => this.kernel.advance(c.ms));
        this.log.push(`kernel.advance(${c.ms});`);
        this.expectSame(`advance(${c.ms})`, { value: undefined }, ro, false);
        break;
      }
      case 'loadKext': {
        const loaded = m.kernelLoadedKexts();
        const bundleId = `com.example.k${c.id}`;
        const spec: ModelKextSpec = {
          bundleId,
          version: c.version,
          dependencies: [...new Set(c.deps.map((d) => (d.t === 'missing' ? 'com.example.missing' : loaded[d.i % loaded.length].bundleId)))],
          classes: c.classes.map((k, i) => (k.superclass === undefined ? { name: `${bundleId.replace(/\./g, '_')}_C${i}`, instances: k.instances } : { name: `${bundleId.replace(/\./g, '_')}_C${i}`, superclass: k.superclass, instances: k.instances })),
        };
        if (c.autounload !== undefined) spec.autounload = c.autounload;
        if (c.unloadUnsupported !== undefined) spec.unloadUnsupported = c.unloadUnsupported;
        if (c.uuid) spec.uuid = this.newUuid();
        const mo = m.loadKext(spec);
        const ro = await settle(() => this.kernel.loadKext(spec));
        this.log.push(`kernel.loadKext(${JSON.stringify(spec)});`);
        this.expectSame(`loadKext(${bundleId})`, mo, ro);
        break;
      }
      case 'unloadKext': {
        const tag = this.resolve(c.tag) ?? m.sampleLoadTag;
        const mo = this.unloadKext(tag);
        const ro = await settle(() => this.kernel.unloadKext(tag));
        this.log.push(`kernel.unloadKext(${tag});`);
        this.expectSame(`unloadKext(${tag})`, mo, mapOutcome(ro, ({ ok, name, code }) => ({ ok, name, code })));
        break;
      }
      case 'setInstances': {
        const tag = this.resolve(c.tag) ?? m.sampleLoadTag;
        // (choice) What a stopped client does with its pending requests is not this test's
        // subject: the sample's service is not terminated while requests are in flight.
        if (tag === m.sampleLoadTag && this.rm.pending.length > 0) break;
        // Not the sample's user-client class: its instances are the open connections.
        const names = (m.kernelLoadedKexts().find((k) => k.loadTag === tag)?.classes ?? []).filter((k) => k.superclass !== 'IOUserClient').map((k) => k.name);
        const className = names.length ? names[c.cls % names.length] : 'NoSuchClass';
        const mo = m.setInstances(tag, className, c.count);
        const ro = await settle(() => this.kernel.setInstances(tag, className, c.count));
        this.log.push(`kernel.setInstances(${tag}, ${JSON.stringify(className)}, ${c.count});`);
        this.expectSame(`setInstances(${tag}, ${className}, ${c.count})`, mo, ro);
        break;
      }
      case 'injectFault': {
        m.injectFault(c.kpi, c.code, c.times);
        const ro = await settle(() => this.kernel.injectFault(c.kpi, c.code as never, c.times));
        this.log.push(`kernel.injectFault('${c.kpi}', '${c.code}', ${c.times});`);
        this.expectSame(`injectFault(${c.kpi}, ${c.code}, ${c.times})`, { value: undefined }, ro, false);
        break;
      }
      case 'reload': {
        const tag = this.resolve(c.tag) ?? m.sampleLoadTag;
        const bundleId = m.kernelLoadedKexts().find((k) => k.loadTag === tag)?.bundleId;
        const mo = this.unloadKext(tag);
        const ro = await settle(() => this.kernel.unloadKext(tag));
        this.log.push(`kernel.unloadKext(${tag});`);
        this.expectSame(`reload: unloadKext(${tag})`, mo, mapOutcome(ro, ({ ok, name, code }) => ({ ok, name, code })));
        if (!('value' in mo) || !mo.value.ok || bundleId === undefined || tag === m.sampleLoadTag) break;
        // The same bundle id again: a new load, so a new tag, with its own UUID and version.
        const spec: ModelKextSpec = { bundleId, version: c.version, uuid: this.newUuid() };
        const ml = m.loadKext(spec);
        const rl = await settle(() => this.kernel.loadKext(spec));
        this.log.push(`kernel.loadKext(${JSON.stringify(spec)});`);
        this.expectSame(`reload: loadKext(${bundleId})`, ml, rl);
        if ('value' in ml) {
          const row = this.kernel.loadedKexts().find((k) => k.loadTag === ml.value);
          this.expectSame(`reload: the table's uuid and version of ${bundleId}`, { uuid: m.uuidOf(ml.value), version: m.versionOf(ml.value) }, row && { uuid: row.uuid, version: row.version }, false);
        }
        break;
      }
      case 'handle': {
        const p = pair!;
        const tag = this.resolve(c.tag, p) ?? m.sampleLoadTag;
        const mo = m.handle(p.m, tag);
        const ro = await settle(() => p.r.kext(tag));
        this.log.push(`const h${this.handles.length} = await ${p.name}.kext(${tag});`);
        const known = 'value' in mo && mo.value?.uuid !== undefined;
        this.expectSame(`kext(${tag})`, mo, mapOutcome(ro, (h) => h && { bundleId: h.bundleId, loadTag: h.loadTag, ...(known ? { uuid: h.uuid } : {}) }));
        if ('value' in mo && mo.value && 'value' in ro && ro.value) this.handles.push({ pair: p, m: mo.value, r: ro.value, name: `h${this.handles.length}` });
        break;
      }
      case 'handleCall': {
        if (this.handles.length === 0) break;
        const h = this.handles[this.handles.length - 1 - (c.h % this.handles.length)]; // the newest most often
        const mo = m.handleCall(h.pair.m, h.m, c.call);
        const ro = await settle(() => h.r[c.call]() as Promise<ModelCounted | ModelStale>);
        this.log.push(`await ${h.name}.${c.call}(); // ${h.pair.name}'s handle on ${h.m.bundleId} (tag ${h.m.loadTag})`);
        this.expectSame(`${h.name}.${c.call}() on tag ${h.m.loadTag}`, single(mapOutcome(mo, stale)), mapOutcome(ro, stale));
        break;
      }
      case 'kbLoadKext': {
        const p = pair!;
        if (p.m.stopped || m.panicked) break;
        const id = loadId(c.id);
        const mo = this.rm.loadKext(p.m, id);
        const ro = await settle(() => (c.sync ? p.r.sync.loadKext(id) : p.r.loadKext(id)));
        this.log.push(`${c.sync ? '' : 'await '}${p.name}.${c.sync ? 'sync.' : ''}loadKext('${id}');`);
        this.expectSame(`loadKext(${id})`, mapOutcome(mo, norm), mapOutcome(ro, norm));
        break;
      }
      case 'install': {
        const spec: ModelKextSpec = { bundleId: `com.example.k${c.id}`, version: c.version, autounload: c.autounload };
        const resources = { one: RESOURCES.one };
        this.rm.install(spec, resources);
        const ro = await settle(() => this.kernel.installKext(spec, { resources }));
        this.log.push(`kernel.installKext(${JSON.stringify(spec)}, { resources: { one: RESOURCES.one } });`);
        this.expectSame(`installKext(${spec.bundleId})`, { value: undefined }, ro, false);
        break;
      }
      case 'request': {
        const p = pair!;
        if (p.m.stopped || m.panicked) break;
        const bundleId = REQUEST_BUNDLES[c.bundle];
        const name = RESOURCE_NAMES[c.name];
        const mo = this.rm.request(p.m, bundleId, name);
        const ac = new AbortController();
        const f: Flight = { name: `r${this.flights.length}`, pair: p, tag: 'tag' in mo ? mo.tag : null, ac, model: 'tag' in mo ? undefined : mapOutcome(mo, norm), checked: false };
        this.flights.push(f);
        this.log.push(`const ${f.name} = ${p.name}.requestResource('${bundleId}', '${name}', { signal: ac${f.name}.signal }); // not awaited${f.tag === null ? '' : `; request tag ${f.tag}`}`);
        let started: Promise<ResourceResult>;
        try {
          started = p.r.requestResource(bundleId, name, { signal: ac.signal });
        } catch (e) {
          started = Promise.reject(e);
        }
        started.then(
          (v) => (f.real = [...(f.real ?? []), { value: v }]),
          (e) => void settle(() => Promise.reject(e)).then((o) => (f.real = [...(f.real ?? []), o])),
        );
        break;
      }
      case 'abort': {
        // The newest unsettled request most often; else any (an abort after the result changes nothing).
        const open = this.flights.filter((f) => f.model === undefined);
        const list = open.length ? open : this.flights;
        if (!list.length) break;
        const f = list[list.length - 1 - (c.r % list.length)];
        if (c.ms > 0) {
          // As the contract test does it: let kernelmanagerd answer, deliver, abort in the same tick.
          this.rm.withheld = false;
          this.kernel.withholdResources(false);
          this.log.push('kernel.withholdResources(false);');
          this.rm.advance(c.ms);
          this.kernel.advance(c.ms); // delivered now, on this thread: JS has not seen the completion yet
          this.log.push(`kernel.advance(${c.ms});`);
        }
        if (f.tag !== null && f.model === undefined) this.rm.abort(f.tag);
        f.ac.abort();
        this.log.push(`ac${f.name}.abort();`);
        break;
      }
      case 'withhold': {
        this.rm.withheld = c.on;
        this.kernel.withholdResources(c.on);
        this.log.push(`kernel.withholdResources(${c.on});`);
        break;
      }
      case 'failResources': {
        this.rm.failResources(c.code, c.times);
        this.kernel.failResources(c.code, c.times);
        this.log.push(`kernel.failResources('${c.code}', ${c.times});`);
        break;
      }
      case 'setDelay': {
        if (c.kind === 'resource') {
          this.rm.resourceDelay = c.ms;
          this.kernel.setResourceDelay(c.ms);
        } else {
          this.rm.loadDelay = c.ms;
          this.kernel.setLoadReplyDelay(c.ms);
        }
        this.log.push(`kernel.set${c.kind === 'resource' ? 'Resource' : 'LoadReply'}Delay(${c.ms});`);
        break;
      }
    }
    await this.quiesce();
    await this.compareState();
  }

  /** Explicit unload: pending requests (the sample's callbacks) refuse the sample's unload first (kernel-facts §3.6). */
  private unloadKext(tag: number): Outcome<{ ok: boolean; name: string; code: number }> {
    const m = this.model;
    if (!m.panicked && tag === m.sampleLoadTag && this.rm.pending.length > 0 && m.rawRetainCount(tag) === BASELINE) {
      count('unloadKext(sample): refused by its pending requests');
      return { value: { ok: false, name: 'kOSKextReturnInUse', code: RCODES.kOSKextReturnInUse } };
    }
    return m.unloadKext(tag);
  }

  /**
   * close(), in the model and the stack. A close that releases while another connection's
   * request waits idle in the kernel first ends the withholding and lets the requests finish
   * (see the choice above); the close itself cancels this connection's own requests.
   */
  private async close(p: Pair): Promise<[Outcome<undefined>, Outcome<void>]> {
    if (!p.m.closed && p.m.ledger.size > 0 && this.rm.pending.some((q) => q.conn !== p.m && !q.conn.closed)) {
      this.rm.withheld = false;
      this.kernel.withholdResources(false);
      this.log.push('kernel.withholdResources(false); // the harness: no request idle in the kernel while close releases');
      await this.quiesce();
      await this.compareState();
    }
    const mo = this.model.close(p.m);
    this.rm.closeConnection(p.m);
    const ro = await settle(() => p.r.close());
    this.log.push(`await ${p.name}.close();`);
    return [mo, ro];
  }

  /**
   * The defined point after every command: the model drives its clock as the requests' waits
   * do, hands the answers to their requests, then the stack gets (real) time to reach the same
   * state: the same clock, the same pending tags, every request the model settled settled.
   */
  private async quiesce(): Promise<void> {
    const m = this.model;
    if (!m.panicked) this.rm.drive();
    for (const f of this.flights) {
      if (f.model === undefined && f.tag !== null && this.rm.answers.has(f.tag)) {
        f.model = { value: this.rm.answers.get(f.tag)! };
        this.rm.answers.delete(f.tag);
      }
    }
    const tags = this.rm.pending.map((p) => p.tag).join();
    const due = m.panicked ? null : this.rm.nextDue();
    const loaded = m.loadedTags().join();
    // A request idle in its wait looks again every few real ms: a due event the clock is
    // already at (a zero delay) is taken then, with no change of the clock to wait for.
    const reached = () =>
      this.kernel.now === m.now &&
      this.kernel.nextDueMs === due &&
      this.kernel.loadedKexts().map((k) => k.loadTag).join() === loaded &&
      this.kernel.pendingRequests().map((p) => p.requestTag).join() === tags &&
      this.flights.every((f) => f.model === undefined || f.real !== undefined);
    const until = Date.now() + 3000;
    while (!reached() && Date.now() < until) await new Promise((r) => setTimeout(r, 1));
    await new Promise((r) => setImmediate(r));
  }

  readonly handles: { pair: Pair; m: ModelHandle; r: KextHandle; name: string }[] = [];
  private uuids = 0;
  /** A UUID no kext of this run has had. */
  private newUuid(): string {
    return `0000${(++this.uuids).toString(16).padStart(4, '0')}-0000-4000-8000-00000000abcd`.toUpperCase();
  }

  /** Everything observable without changing anything: clock, scan deadline, panic, the table, ledgers. */
  async compareState(): Promise<void> {
    const m = this.model;
    const k = this.kernel;
    this.expectSame('kernel.now', m.now, k.now, false);
    this.expectSame('kernel.autounloadDeadline', m.autounloadDeadline, k.autounloadDeadline, false);
    this.expectSame('kernel.panicked', null, k.panicked, false);
    this.expectSame('kernel.loadedKexts()', m.kernelLoadedKexts(), kexts(k.loadedKexts()), false);
    for (const t of [...m.loadedTags(), ...m.unloadedTags.slice(-2)]) this.expectSame(`kernel.rawRetainCount(${t})`, m.rawRetainCount(t), k.rawRetainCount(t), false);
    for (const id of m.knownBundleIds) this.expectSame(`kernel.lookup(${id})`, m.lookup(id), k.lookup(id), false);
    for (const p of this.pairs) this.expectSame(`${p.name}.closed`, p.m.closed, p.r.closed, false);
    // issue 13: the kernel's requests, what comes due next, each request's life, each result.
    this.expectSame('kernel.pendingRequests()', this.rm.kernelPending(m.sampleLoadTag, this.sampleBundleId), k.pendingRequests(), false);
    this.expectSame('kernel.nextDueMs', m.panicked ? null : this.rm.nextDue(), k.nextDueMs, false);
    const phases = new Map<number, string[]>();
    for (const e of k.events(0).events) if (e.type === 'request') phases.set(e.requestTag, [...(phases.get(e.requestTag) ?? []), e.phase]);
    this.expectSame('request events (tag → phases)', [...this.rm.phases].sort((a, b) => a[0] - b[0]), [...phases].sort((a, b) => a[0] - b[0]), false);
    for (const f of this.flights) {
      if (f.model === undefined) {
        if (f.real !== undefined) this.diverge(`${f.name} settled, the model has it pending (tag ${f.tag})`, null, mapOutcome(f.real[0], norm));
        continue;
      }
      if (f.real?.length !== 1) this.diverge(`${f.name} settled ${f.real?.length ?? 0} times`, f.model, f.real);
      if (!f.checked) {
        this.expectSame(`${f.name}'s result`, f.model, mapOutcome(f.real[0], norm), false);
        const v = 'value' in f.model ? (f.model.value as Norm) : undefined;
        count(`request settled: ${v ? `${String(v.name)}${v.abortedAfterDelivery ? ' (aborted after delivery)' : ''}` : outcomeKey(f.model)} (at ${this.cmd?.op ?? 'the end'})`);
      }
      f.checked = true;
    }
    // Completions the connection still awaits: its pending requests; none once closed.
    for (const p of this.pairs)
      this.expectSame(`${p.name}.conn._asyncPending`, p.m.closed ? 0 : this.rm.pending.filter((q) => q.conn === p.m).length, p.r.conn._asyncPending, false);
    // explain's pendingRequests blocker on the sample, and whether it could unload.
    const sample = m.kernelLoadedKexts().find((x) => x.loadTag === m.sampleLoadTag);
    if (sample) {
      const e = k.explain(m.sampleLoadTag);
      const pend = this.rm.pending.map((q) => ({ requestTag: q.tag, bundleId: q.bundleId, resourceName: q.resourceName }));
      this.expectSame('explain(sample): pendingRequests blocker', pend.length ? [{ kind: 'pendingRequests', count: pend.length, requests: pend }] : [], e.blockers.filter((b) => b.kind === 'pendingRequests'), false);
      const openClients = this.pairs.filter((p) => !p.m.closed).length;
      const otherInstances = sample.classes.some((x) => x.instances > 0 && x.superclass !== 'IOService' && x.superclass !== 'IOUserClient');
      if (pend.length) count(`explain(sample): ${pend.length > 1 ? 'several' : 'one'} pending`);
      this.expectSame('explain(sample).unloadable', sample.retainCount === 0 && openClients === 0 && pend.length === 0 && !otherInstances, e.unloadable, false);
    }
  }

  async finish(): Promise<void> {
    this.step = -1;
    this.cmd = undefined;
    for (const p of this.pairs) {
      if (!p.r.closed) for (const [what, mo] of [['held', this.model.held(p.m)], ['info', this.model.info(p.m)]] as const) {
        this.expectSame(`${p.name}.sync.${what}() at the end`, mo, await settle(() => p.r.sync[what]()));
      }
      const [mo, ro] = await this.close(p);
      this.expectSame(`${p.name}.close() at the end`, mo, ro);
      await this.quiesce();
    }
    await this.compareState();
    for (const f of this.flights) if (f.model === undefined) this.diverge(`${f.name} is still pending after every close`, null, f.real);
  }

  /** Closes what the stack still has open (also after a divergence). */
  async cleanup(): Promise<void> {
    await Promise.all(this.pairs.map((p) => p.r.close().catch(() => undefined)));
  }
}

test(`the stack answers as the reference model does (${RUNS} command sequences)`, async () => {
  await fc.assert(
    fc.asyncProperty(world, fc.array(cmd, { minLength: 1, maxLength: 40, size: 'max' }), async (options, cmds) => {
      const run = new Run();
      try {
        await run.start(options);
        for (let i = 0; i < cmds.length; i++) await run.exec(i, cmds[i]);
        await run.finish();
      } finally {
        await run.cleanup();
      }
    }),
    { numRuns: RUNS, ...(SEED === undefined ? {} : { seed: SEED }), ...(PATH === undefined ? {} : { path: PATH }) },
  );
  if (STATS) console.log([...STATS].sort().map(([k, n]) => `${String(n).padStart(7)}  ${k}`).join('\n'));
}, 600_000);

// Pinned examples: the places where the reference is exact about numbers.
describe('pinned sequences', () => {
  test('the scan runs exactly 60 000 ms after the last release, unwinding a dependency chain', async () => {
    const run = new Run();
    try {
      await run.start({ autounload: true });
      const steps: Cmd[] = [
        { op: 'loadKext', id: 0, version: '1.0', deps: [], classes: [] }, // tag 9
        { op: 'loadKext', id: 1, version: '1.0', deps: [{ t: 'loaded', i: 9 }], classes: [] }, // tag 10, links against 9
        { op: 'retain', c: 0, tag: { t: 'mine', i: 0 }, api: 'async' },
        { op: 'retain', c: 0, tag: { t: 'mine', i: 1 }, api: 'sync' },
        { op: 'advance', ms: 30_000 },
        { op: 'release', c: 0, tag: { t: 'held', i: 0 }, api: 'async' }, // 9: scan armed for 90 000
        { op: 'advance', ms: 30_000 },
        { op: 'release', c: 0, tag: { t: 'held', i: 0 }, api: 'many' }, // 10: re-armed for 120 000
        { op: 'advance', ms: 59_999 },
        { op: 'advance', ms: 1 },
        { op: 'loadedKexts', c: 0, via: 'async' },
        { op: 'unloadKext', tag: { t: 'unloaded', i: 0 } },
        { op: 'loadKext', id: 0, version: '1.0', deps: [], classes: [] },
      ];
      for (let i = 0; i < steps.length; i++) {
        await run.exec(i, steps[i]);
        if (i === 8) expect([run.kernel.lookup('com.example.k0'), run.kernel.lookup('com.example.k1')]).toEqual([9, 10]);
        if (i === 9) expect([run.kernel.now, run.kernel.lookup('com.example.k0'), run.kernel.lookup('com.example.k1')]).toEqual([120_000, null, null]);
      }
      expect(run.kernel.lookup('com.example.k0')).toBe(11); // tags are never reused
      await run.finish();
    } finally {
      await run.cleanup();
    }
  });

  test('a handle across an unload and a reload with a new UUID and version answers stale, and faults strike where the model says', async () => {
    const run = new Run();
    try {
      await run.start({ autounload: true });
      const steps: Cmd[] = [
        { op: 'loadKext', id: 2, version: '1.0', deps: [], classes: [], uuid: true }, // tag 9
        { op: 'handle', c: 0, tag: { t: 'mine', i: 0 } }, // h0 on tag 9, with its UUID
        { op: 'handleCall', h: 0, call: 'retain' },
        { op: 'reload', tag: { t: 'mine', i: 0 }, version: '2.0' }, // retained: kOSKextReturnInUse, nothing reloaded
        { op: 'injectFault', kpi: 'release', code: 'kOSReturnError', times: 1 },
        { op: 'handleCall', h: 0, call: 'release' }, // the fault: a KextBridgeError, still held
        { op: 'handleCall', h: 0, call: 'release' },
        { op: 'reload', tag: { t: 'mine', i: 0 }, version: '2.0' }, // unloaded, loaded again as tag 10
        { op: 'handleCall', h: 0, call: 'retain' }, // stale: 'reloaded', currentLoadTag 10
        { op: 'handle', c: 0, tag: { t: 'mine', i: 0 } }, // h1 on tag 10, the new UUID
        { op: 'injectFault', kpi: 'retain', code: 'kOSKextReturnNotFound', times: 1 },
        { op: 'handleCall', h: 0, call: 'retain' }, // h1: the fault is a kernel answer (NotFound, not stale)
        { op: 'handleCall', h: 0, call: 'retain' }, // h1: retained
        { op: 'injectFault', kpi: 'retain', code: 'kOSReturnError', times: 2 },
        { op: 'retainBurst', c: 0, tag: { t: 'mine', i: 0 }, n: 3 }, // two unexpected, one success
        { op: 'unloadKext', tag: { t: 'mine', i: 0 } },
        { op: 'handleCall', h: 1, call: 'release' }, // h0, still stale: 'reloaded'
        { op: 'injectFault', kpi: 'release', code: 'kOSReturnError', times: 1 },
        { op: 'close', c: 0 }, // the first release at close fails: close rejects, all stays held
        { op: 'close', c: 0 },
      ];
      for (let i = 0; i < steps.length; i++) {
        await run.exec(i, steps[i]);
        if (i === 8) expect(run.handles.map((h) => h.m.loadTag)).toEqual([9]);
      }
      expect(run.handles.map((h) => [h.m.loadTag, h.r.uuid === run.handles[0].r.uuid])).toEqual([[9, true], [10, false]]);
      expect(run.kernel.rawRetainCount(10)).toBe(2 + 2); // h1's retain and the burst's one success: never released
      await run.finish();
    } finally {
      await run.cleanup();
    }
  });

  test('issue 13: a deferred load is picked up after the reply delay; requests in flight block the sample\'s unload, abort before and after delivery, time out at the second scan, and close cancels the rest', async () => {
    const run = new Run();
    try {
      await run.start({ autounload: true });
      const steps: Cmd[] = [
        { op: 'kbLoadKext', c: 0, id: 2, sync: false }, // unknown: deferred, pickup due at 10
        { op: 'install', id: 2, version: '2.0', autounload: false }, // installed before kernelmanagerd comes
        { op: 'advance', ms: 9 },
        { op: 'advance', ms: 1 }, // at 10: loaded as tag 9
        { op: 'kbLoadKext', c: 0, id: 2, sync: true }, // loaded: success, same tag
        { op: 'withhold', on: true },
        { op: 'request', c: 0, bundle: 0, name: 3 }, // r0: tag 0, 4097 bytes, idle in the kernel
        { op: 'request', c: 0, bundle: 0, name: 1 }, // r1: tag 1
        { op: 'unloadKext', tag: { t: 'sample' } }, // refused: pending requests (the service is not terminated)
        { op: 'abort', r: 0, ms: 0 }, // r1: cancelled in the kernel
        { op: 'abort', r: 0, ms: 10 }, // r0: delivered by this advance, then aborted: the data, abortedAfterDelivery
        { op: 'withhold', on: true },
        { op: 'request', c: 0, bundle: 0, name: 2 }, // r2: tag 2
        { op: 'retain', c: 0, tag: { t: 'sample' }, api: 'async' },
        { op: 'release', c: 0, tag: { t: 'sample' }, api: 'async' }, // arms the scan: r2 jumps the clock to it, goes stale
        { op: 'retain', c: 0, tag: { t: 'sample' }, api: 'sync' },
        { op: 'release', c: 0, tag: { t: 'sample' }, api: 'sync' }, // the second scan: r2 times out
        { op: 'request', c: 0, bundle: 0, name: 0 }, // r3: pending when the connection closes
        { op: 'close', c: 0 },
      ];
      for (let i = 0; i < steps.length; i++) {
        await run.exec(i, steps[i]);
        if (i === 2) expect(run.kernel.lookup('com.example.k2')).toBeNull();
        if (i === 3) expect([run.kernel.now, run.kernel.lookup('com.example.k2')]).toEqual([10, 9]);
        if (i === 8) expect(run.kernel.pendingRequests().map((r) => r.requestTag)).toEqual([0, 1]);
        if (i === 16) expect(run.kernel.now).toBe(10 + 10 + 2 * 60_000);
      }
      const settled = run.flights.map((f) => f.model && 'value' in f.model && (f.model.value as Norm));
      expect(settled.map((r) => r && [r.name, r.abortedAfterDelivery ?? r.cancelled])).toEqual([
        ['kOSReturnSuccess', true], ['Aborted', true], ['kOSKextReturnTimeout', false], ['Closed', true],
      ]);
      await run.finish();
    } finally {
      await run.cleanup();
    }
  });

  test('two bursts reach the ledger cap; the cap counts every tag the connection holds', async () => {
    const run = new Run();
    try {
      await run.start({ autounload: true });
      const steps: Cmd[] = [
        { op: 'retainBurst', c: 0, tag: { t: 'sample' }, n: 200 },
        { op: 'retainBurst', c: 0, tag: { t: 'loaded', i: 0 }, n: 60 },
        { op: 'retain', c: 0, tag: { t: 'invalid' }, api: 'sync' },
        { op: 'release', c: 0, tag: { t: 'default' }, api: 'async' },
        { op: 'retain', c: 0, tag: { t: 'loaded', i: 3 }, api: 'many' },
        { op: 'close', c: 0 },
        { op: 'retain', c: 0, tag: { t: 'sample' }, api: 'syncMany' },
      ];
      for (let i = 0; i < steps.length; i++) await run.exec(i, steps[i]);
      await run.finish();
    } finally {
      await run.cleanup();
    }
  });
});
