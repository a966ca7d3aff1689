// Model-based test: random command sequences run against the reference model
// (test/model/kernel-model.ts, written from docs/kernel-facts.md and docs/design.md) and against the real
// stack (open({ backend: 'sim', kernel }) on a fresh createSimKernel()); every answer and the
// observable kernel state after every step must agree.
//
//   FC_RUNS=20000 npx jest test/model.test.ts     more sequences (default 1000)
//   FC_SEED=… FC_PATH=… npx jest test/model.test.ts   replay a reported failure
import * as fc from 'fast-check';
import { isDeepStrictEqual } from 'util';
import { createSimKernel, KextBridge, KextHandle, LoadedKext, open, SimKernel } from '../lib';
import { CODES, INVALID_TAG, KernelModel, ModelCodeName, ModelConnection, ModelCounted, ModelHandle, ModelKextSpec, ModelLoadedKext, ModelStale, ModelThrow, Outcome } from './model/kernel-model';

const RUNS = Number(process.env.FC_RUNS ?? 1000);
const SEED = process.env.FC_SEED === undefined ? undefined : Number(process.env.FC_SEED);
const PATH = process.env.FC_PATH;
/** FC_STATS=1: print how often each kind of answer was compared (to see what the runs reach). */
const STATS = process.env.FC_STATS ? new Map<string, number>() : undefined;
const count = (key: string) => STATS?.set(key, (STATS.get(key) ?? 0) + 1);

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
  | { op: 'setInstances'; tag: TagPick; cls: number; count: number };

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

class Run {
  readonly log: string[] = [];
  readonly pairs: Pair[] = [];
  model!: KernelModel;
  kernel!: SimKernel;
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
        const ro = await settle(() => (c.sync ? p.r.sync.releaseMany(tags) : p.r.releaseMany(tags)));
        this.log.push(`${c.sync ? '' : 'await '}${p.name}.${c.sync ? 'sync.' : ''}releaseMany(${JSON.stringify(tags)});`);
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
        const mo = m.close(p.m);
        const ro = await settle(() => p.r.close());
        this.log.push(`await ${p.name}.close();`);
        this.expectSame('close()', mo, ro);
        break;
      }
      case 'advance': {
        const before = m.loadedTags().length;
        m.advance(c.ms);
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
        const mo = m.unloadKext(tag);
        const ro = await settle(() => this.kernel.unloadKext(tag));
        this.log.push(`kernel.unloadKext(${tag});`);
        this.expectSame(`unloadKext(${tag})`, mo, mapOutcome(ro, ({ ok, name, code }) => ({ ok, name, code })));
        break;
      }
      case 'setInstances': {
        const tag = this.resolve(c.tag) ?? m.sampleLoadTag;
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
        const mo = m.unloadKext(tag);
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
    }
    await this.compareState();
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
  }

  async finish(): Promise<void> {
    this.step = -1;
    this.cmd = undefined;
    for (const p of this.pairs) {
      if (!p.r.closed) for (const [what, mo] of [['held', this.model.held(p.m)], ['info', this.model.info(p.m)]] as const) {
        this.expectSame(`${p.name}.sync.${what}() at the end`, mo, await settle(() => p.r.sync[what]()));
      }
      const mo = this.model.close(p.m);
      const ro = await settle(() => p.r.close());
      this.log.push(`await ${p.name}.close();`);
      this.expectSame(`${p.name}.close() at the end`, mo, ro);
    }
    await this.compareState();
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
