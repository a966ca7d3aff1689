// kextbridge benchmarks (issue 5): what one call costs on the simulated kernel, measured
// against the floors any addon pays, plus batching, the loaded-kext table and memory.
//
//   npm run bench                 table on stdout
//   npm run bench -- --json       the table, then one JSON object as the last stdout line
//   npm run bench -- --quick      shorter time budgets (smoke run; noisier numbers)
//
// Every measurement is taken in this one run. A ratio is the median, over many short rounds,
// of the ratio within each round (floor and subject measured back to back, their order
// alternating): these VMs run in phases of seconds at speeds up to 1.8x apart, so a ratio of
// two separate medians can pair a fast phase with a slow one. The spread of the per-round
// ratios is printed with each.
// Progress goes to stderr; stdout carries only the tables and (with --json) the JSON line.
import { spawnSync } from 'child_process';
import * as os from 'os';
import * as path from 'path';

import type { Bench as BenchType, Task } from 'tinybench';

import { createSimKernel, KextBridge, open, SimKernel } from '../lib';
import { binding } from '../lib/native';

const argv = process.argv.slice(2);
const JSON_OUT = argv.includes('--json');
const QUICK = argv.includes('--quick');
const ROUNDS = QUICK ? 3 : 15;
const TIME_MS = QUICK ? 50 : 100; // per task per round
const BATCH = 256; // the ledger cap: at most 256 outstanding retains per connection
const RSS_CALLS = 1_000_000;

// tinybench is ESM-only. TypeScript compiles a plain import() to require() under CommonJS,
// which loads ESM only on Node >= 20.19; a real import() works on every Node tinybench runs on.
type Tinybench = typeof import('tinybench');
const importEsm = new Function('specifier', 'return import(specifier)') as (specifier: string) => Promise<Tinybench>;
let Bench: Tinybench['Bench'];

const gc: () => void =
  (globalThis as { gc?: () => void }).gc ??
  (() => {
    throw new Error('run with node --expose-gc (npm run bench does)');
  });
const progress = (msg: string): void => {
  process.stderr.write(`bench: ${msg}\n`);
};

// ---- measuring ----

interface Measured {
  name: string;
  /** Median over rounds of the mean time per operation, nanoseconds. */
  nsPerOp: number;
  /** Every round's mean per operation, nanoseconds. */
  rounds: number[];
  /** Worst relative margin of error (95%) of a round's mean, percent. */
  rme: number;
  /** Task iterations over all rounds, and operations per iteration. */
  iterations: number;
  opsPerIteration: number;
}

interface Case {
  name: string;
  /** Operations one call of fn performs; per-op time = iteration time / ops. */
  ops: number;
  fn: () => unknown;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

function statsOf(task: Task): { meanMs: number; rme: number; samples: number } {
  const r = task.result;
  if (r.state !== 'completed') throw new Error(`bench task ${task.name} ${r.state}: ${'error' in r ? String(r.error) : ''}`);
  return { meanMs: r.latency.mean, rme: r.latency.rme, samples: r.latency.samplesCount };
}

/**
 * Runs the cases together, ROUNDS times; in odd rounds in reverse order, so neither side of a
 * ratio always runs first. Per-op medians over rounds.
 */
async function measure(cases: Case[], timeMs = TIME_MS): Promise<Measured[]> {
  const acc = cases.map((c) => ({ c, rounds: [] as number[], rme: 0, iterations: 0 }));
  for (let round = 0; round < ROUNDS; round++) {
    const bench: BenchType = new Bench({ time: timeMs, iterations: 8, warmupTime: Math.min(50, timeMs), warmupIterations: 4, throws: true });
    for (const c of round % 2 ? [...cases].reverse() : cases) bench.add(c.name, c.fn);
    await bench.run();
    for (const a of acc) {
      const s = statsOf(bench.getTask(a.c.name)!);
      a.rounds.push((s.meanMs * 1e6) / a.c.ops);
      a.rme = Math.max(a.rme, s.rme);
      a.iterations += s.samples;
    }
  }
  return acc.map((a) => ({
    name: a.c.name,
    nsPerOp: median(a.rounds),
    rounds: a.rounds,
    rme: a.rme,
    iterations: a.iterations,
    opsPerIteration: a.c.ops,
  }));
}

interface Ratio {
  /** Median over rounds of subject / floor within the round. */
  value: number;
  /** The lowest and highest per-round ratio. */
  low: number;
  high: number;
}

/** subject / floor, round by round (both measured in the same call to measure()). */
function ratio(subject: Measured, floor: Measured): Ratio {
  const r = subject.rounds.map((ns, i) => ns / floor.rounds[i]);
  return { value: median(r), low: Math.min(...r), high: Math.max(...r) };
}

// ---- the world ----

/** A fresh machine with `extra` kexts of our own loaded; returns their tags. */
function world(extra: number, prefix: string): { kernel: SimKernel; tags: number[] } {
  const kernel = createSimKernel();
  const tags: number[] = [];
  for (let i = 0; i < extra; i++) tags.push(kernel.loadKext({ bundleId: `com.example.${prefix}.k${i}`, version: '1.0' }));
  return { kernel, tags };
}

function mustOk(r: { ok: boolean; name: string }, what: string): void {
  if (!r.ok) throw new Error(`${what}: ${r.name}`);
}

interface Target {
  key: string;
  what: string;
  value: number;
  unit: string;
  op: '<=' | '>=' | '<';
  target: number;
}
const passes = (t: Target): boolean =>
  t.op === '<=' ? t.value <= t.target : t.op === '>=' ? t.value >= t.target : t.value < t.target;

async function main(): Promise<void> {
  const started = Date.now();
  ({ Bench } = await importEsm('tinybench'));
  const loadBefore = os.loadavg()[0];
  const native = binding();

  // One machine and one connection for the per-call measurements. The sample kext is the
  // single-call target; the batch targets 256 kexts of our own (a full ledger of distinct tags).
  const { kernel, tags: batchTags } = world(BATCH, 'batch');
  const kb: KextBridge = await open({ backend: 'sim', kernel });
  const tag = kernel.sampleLoadTag;
  const baseCount = kernel.rawRetainCount(tag)!;
  const batch = Uint32Array.from(batchTags);
  const sameTagBatch = new Uint32Array(BATCH).fill(tag);

  // Sanity: each measured path really retains and releases.
  mustOk(await kb.retain(tag), 'retain');
  mustOk(await kb.release(tag), 'release');
  mustOk(kb.sync.retain(tag), 'sync.retain');
  mustOk(kb.sync.release(tag), 'sync.release');
  for (const r of await kb.retainMany(batch)) mustOk(r, 'retainMany');
  for (const r of await kb.releaseMany(batch)) mustOk(r, 'releaseMany');

  // ---- 1. synchronous: a bare N-API call against one kb.sync call ----
  progress('sync path vs a bare N-API call');
  const NOOPS = 10_000;
  const SYNC_PAIRS = 1_000;
  const [noop, syncCall, syncBatch] = await measure([
    {
      name: 'N-API floor: binding()._noop()',
      ops: NOOPS,
      fn: () => {
        for (let i = 0; i < NOOPS; i++) native._noop();
      },
    },
    {
      name: 'kb.sync.retain + kb.sync.release (per call)',
      ops: 2 * SYNC_PAIRS,
      fn: () => {
        for (let i = 0; i < SYNC_PAIRS; i++) {
          kb.sync.retain(tag);
          kb.sync.release(tag);
        }
      },
    },
    {
      name: `kb.sync.retainMany + releaseMany x${BATCH} (per tag)`,
      ops: 2 * BATCH,
      fn: () => {
        kb.sync.retainMany(batch);
        kb.sync.releaseMany(batch);
      },
    },
  ]);

  // ---- 2. asynchronous: the AsyncWorker floor, one awaited call, batches ----
  progress('async path vs a bare AsyncWorker round trip');
  const AWAITS = 100;
  const [worker, asyncCall, asyncBatch, asyncBatchSame] = await measure([
    {
      name: 'AsyncWorker floor: await asyncWorkerNoop()',
      ops: AWAITS,
      fn: async () => {
        for (let i = 0; i < AWAITS; i++) await native._asyncWorkerNoop();
      },
    },
    {
      name: 'await kb.retain + await kb.release (per call)',
      ops: 2 * AWAITS,
      fn: async () => {
        for (let i = 0; i < AWAITS; i++) {
          await kb.retain(tag);
          await kb.release(tag);
        }
      },
    },
    {
      name: `await kb.retainMany + releaseMany x${BATCH} distinct tags (per tag)`,
      ops: 2 * BATCH,
      fn: async () => {
        await kb.retainMany(batch);
        await kb.releaseMany(batch);
      },
    },
    {
      name: `await kb.retainMany + releaseMany x${BATCH} same tag (per tag)`,
      ops: 2 * BATCH,
      fn: async () => {
        await kb.retainMany(sameTagBatch);
        await kb.releaseMany(sameTagBatch);
      },
    },
  ]);
  if (kernel.rawRetainCount(tag) !== baseCount) throw new Error('retain/release did not balance');

  // ---- 3. the loaded-kext table at 100, 1,000 and 10,000 kexts ----
  progress('loadedKexts at 100 / 1,000 / 10,000 kexts');
  const defaults = createSimKernel().loadedKexts().length; // __kernel__, kpis, the sample kext
  const sizes = [100, 1_000, 10_000];
  const tables: { kexts: number; kb: KextBridge; kernel: SimKernel }[] = [];
  for (const n of sizes) {
    const w = world(n - defaults, `table${n}`);
    tables.push({ kexts: n, kb: await open({ backend: 'sim', kernel: w.kernel }), kernel: w.kernel });
  }
  for (const t of tables) {
    const got = (await t.kb.loadedKexts()).length;
    if (got !== t.kexts) throw new Error(`loadedKexts: ${got} kexts, expected ${t.kexts}`);
  }
  const tableCases = (sync: boolean): Case[] =>
    tables.map((t) => ({
      name: `${sync ? 'kb.sync.loadedKexts()' : 'await kb.loadedKexts()'} @ ${t.kexts.toLocaleString('en-US')} kexts`,
      ops: 1,
      fn: sync ? () => t.kb.sync.loadedKexts() : () => t.kb.loadedKexts(),
    }));
  const tableAsync = await measure(tableCases(false), QUICK ? 100 : 150);
  const tableSync = await measure(tableCases(true), QUICK ? 100 : 150);
  for (const t of tables) await t.kb.close();

  // ---- 4. memory: RSS across 1,000,000 retain/release calls ----
  // Warm up first (JIT, V8 heap sizing, allocator arenas), then gc() and read; make the
  // calls; gc() and read again. Two phases of 1,000,000 calls each: the sync path (one
  // native call per retain/release) and async batches (the TSFN path, 256 tags per hop).
  progress(`RSS across ${RSS_CALLS.toLocaleString('en-US')} sync calls and ${RSS_CALLS.toLocaleString('en-US')} batched calls`);
  const syncCalls = async (calls: number): Promise<void> => {
    for (let i = 0; i < calls / 2; i++) {
      kb.sync.retain(tag);
      kb.sync.release(tag);
    }
  };
  const batchedCalls = async (calls: number): Promise<void> => {
    for (let done = 0; done < calls; done += 2 * BATCH) {
      await kb.retainMany(batch);
      await kb.releaseMany(batch);
    }
  };
  const mem = (): NodeJS.MemoryUsage => {
    gc();
    gc();
    return process.memoryUsage();
  };
  await syncCalls(200_000);
  await batchedCalls(200_000);
  const m0 = mem();
  let t0 = performance.now();
  await syncCalls(RSS_CALLS);
  const syncSeconds = (performance.now() - t0) / 1000;
  const m1 = mem();
  t0 = performance.now();
  await batchedCalls(RSS_CALLS);
  const batchSeconds = (performance.now() - t0) / 1000;
  const m2 = mem();
  if (kernel.rawRetainCount(tag) !== baseCount) throw new Error('retain/release did not balance');
  await kb.close();
  for (const t of batchTags) if (kernel.rawRetainCount(t) !== 2) throw new Error(`tag ${t} not back at baseline`);
  const MB = 1024 * 1024;
  const mb = (n: number): number => Math.round((n / MB) * 100) / 100;

  // ---- the CLI's start: `kextbridge list --json` on the sim against `node -e 0` ----
  // Median wall time of alternating runs; the CLI loads only what its verb needs.
  progress('CLI start: kextbridge list --json vs node -e 0');
  const cliMain = path.join(__dirname, '..', 'lib', 'cli', 'main.js');
  const wall = (args: string[]): number => {
    const t = process.hrtime.bigint();
    const r = spawnSync(process.execPath, args, { stdio: 'ignore', env: { ...process.env, NO_COLOR: '1' } });
    if (r.status !== 0) throw new Error(`${args.join(' ')} exited ${r.status}`);
    return Number(process.hrtime.bigint() - t);
  };
  const nodeRuns: number[] = [];
  const cliRuns: number[] = [];
  for (let i = 0; i < (QUICK ? 5 : 15); i++) {
    nodeRuns.push(wall(['-e', '0']));
    cliRuns.push(wall([cliMain, '--backend', 'sim', 'list', '--json']));
  }
  const median = (a: number[]): number => [...a].sort((x, y) => x - y)[a.length >> 1];
  const cliStartVsNode = median(cliRuns) / median(nodeRuns);

  // ---- results ----
  const per = (m: Measured): number => Math.round(m.nsPerOp * 10) / 10;
  const callVsAsyncWorker = ratio(asyncCall, worker);
  const syncCallVsNapiCall = ratio(syncCall, noop);
  const batchSpeedup = ratio(asyncCall, asyncBatch);
  const [t100, t1k, t10k] = tableAsync;
  const loadedKextsGrowth10kOver1k = ratio(t10k, t1k);
  const rssGrowthMB = mb(m2.rss - m0.rss);
  const round2 = (x: number): number => Math.round(x * 100) / 100;
  const spread = (r: Ratio): string => ` (rounds ${round2(r.low)}–${round2(r.high)})`;

  const targets: Target[] = [
    { key: 'callVsAsyncWorker', what: `awaited call / AsyncWorker round trip${spread(callVsAsyncWorker)}`, value: callVsAsyncWorker.value, unit: 'x', op: '<=', target: 1.0 },
    { key: 'syncCallVsNapiCall', what: `kb.sync call / bare N-API call${spread(syncCallVsNapiCall)}`, value: syncCallVsNapiCall.value, unit: 'x', op: '<=', target: 5 },
    { key: 'batchSpeedup', what: `single awaited / batched (x${BATCH}), per tag${spread(batchSpeedup)}`, value: batchSpeedup.value, unit: 'x', op: '>=', target: 20 },
    { key: 'loadedKextsGrowth10kOver1k', what: `loadedKexts() 10,000 / 1,000 kexts${spread(loadedKextsGrowth10kOver1k)}`, value: loadedKextsGrowth10kOver1k.value, unit: 'x', op: '<=', target: 12 },
    { key: 'rssGrowthMB', what: `RSS growth over ${(2 * RSS_CALLS).toLocaleString('en-US')} calls`, value: rssGrowthMB, unit: 'MB', op: '<', target: 5 },
    { key: 'cliStartVsNode', what: `kextbridge list --json (sim) / node -e 0, wall (${(median(cliRuns) / 1e6).toFixed(0)} vs ${(median(nodeRuns) / 1e6).toFixed(0)} ms)`, value: cliStartVsNode, unit: 'x', op: '<=', target: 2 },
  ];

  const measurements = [noop, syncCall, syncBatch, worker, asyncCall, asyncBatch, asyncBatchSame, ...tableAsync, ...tableSync];
  const fmtNs = (ns: number): string =>
    ns >= 1e6 ? `${(ns / 1e6).toFixed(2)} ms` : ns >= 1e3 ? `${(ns / 1e3).toFixed(2)} µs` : `${ns.toFixed(1)} ns`;
  const loadAfter = os.loadavg()[0];
  console.log(
    `kextbridge bench — node ${process.version}, ${process.platform}/${process.arch}, ${os.cpus().length} CPUs, sim backend, ` +
      `${ROUNDS} round(s) × ${TIME_MS} ms per task${QUICK ? ' (--quick)' : ''}; load average ${loadBefore.toFixed(2)} → ${loadAfter.toFixed(2)}` +
      (Math.max(loadBefore, loadAfter) >= os.cpus().length ? ' (a busy machine: thread-hop numbers swing with load)' : ''),
  );
  console.table(
    measurements.map((m) => ({
      measurement: m.name,
      'time/op (median)': fmtNs(m.nsPerOp),
      'ops/s': Math.round(1e9 / m.nsPerOp).toLocaleString('en-US'),
      'rounds (fastest – slowest)': `${fmtNs(Math.min(...m.rounds))} – ${fmtNs(Math.max(...m.rounds))}`,
      'rme %': m.rme.toFixed(1),
      samples: m.iterations,
    })),
  );
  console.table({
    'before (after warm-up)': { rssMB: mb(m0.rss), heapUsedMB: mb(m0.heapUsed), externalMB: mb(m0.external), arrayBuffersMB: mb(m0.arrayBuffers) },
    [`after ${RSS_CALLS.toLocaleString('en-US')} sync calls (${syncSeconds.toFixed(1)} s)`]: { rssMB: mb(m1.rss), heapUsedMB: mb(m1.heapUsed), externalMB: mb(m1.external), arrayBuffersMB: mb(m1.arrayBuffers) },
    [`after ${RSS_CALLS.toLocaleString('en-US')} batched calls (${batchSeconds.toFixed(1)} s)`]: { rssMB: mb(m2.rss), heapUsedMB: mb(m2.heapUsed), externalMB: mb(m2.external), arrayBuffersMB: mb(m2.arrayBuffers) },
  });
  console.table(
    targets.map((t) => ({
      target: t.key,
      what: t.what,
      measured: `${round2(t.value)} ${t.unit}`,
      goal: `${t.op} ${t.target} ${t.unit}`,
      result: passes(t) ? 'PASS' : 'MISS',
    })),
  );
  const seconds = (Date.now() - started) / 1000;
  console.log(`${targets.filter(passes).length}/${targets.length} targets met; bench took ${seconds.toFixed(1)} s`);

  if (JSON_OUT) {
    const out = {
      node: process.version,
      platform: `${process.platform}/${process.arch}`,
      rounds: ROUNDS,
      taskTimeMs: TIME_MS,
      quick: QUICK,
      cpus: os.cpus().length,
      loadAverage: { before: round2(loadBefore), after: round2(loadAfter) },
      seconds: round2(seconds),
      // the five headline ratios
      callVsAsyncWorker: round2(callVsAsyncWorker.value),
      syncCallVsNapiCall: round2(syncCallVsNapiCall.value),
      batchSpeedup: round2(batchSpeedup.value),
      loadedKextsGrowth10kOver1k: round2(loadedKextsGrowth10kOver1k.value),
      rssGrowthMB,
      targets: Object.fromEntries(targets.map((t) => [t.key, { value: round2(t.value), op: t.op, target: t.target, pass: passes(t) }])),
      allPass: targets.every(passes),
      // the raw numbers behind them (ns per operation, medians over rounds)
      napiCallNs: per(noop),
      syncCallNs: per(syncCall),
      syncBatchPerTagNs: per(syncBatch),
      asyncWorkerNs: per(worker),
      asyncCallNs: per(asyncCall),
      asyncBatchPerTagNs: per(asyncBatch),
      asyncBatchSameTagPerTagNs: per(asyncBatchSame),
      batchSize: BATCH,
      batchSpeedupSameTag: round2(ratio(asyncCall, asyncBatchSame).value),
      syncBatchVsSyncCall: round2(ratio(syncCall, syncBatch).value),
      loadedKextsNs: { 100: per(t100), 1000: per(t1k), 10000: per(t10k) },
      loadedKextsSyncNs: Object.fromEntries(tableSync.map((m, i) => [sizes[i], per(m)])),
      loadedKextsGrowth1kOver100: round2(ratio(t1k, t100).value),
      memory: {
        calls: { sync: RSS_CALLS, batched: RSS_CALLS },
        seconds: { sync: round2(syncSeconds), batched: round2(batchSeconds) },
        rssMB: { before: mb(m0.rss), afterSync: mb(m1.rss), afterBatched: mb(m2.rss) },
        rssGrowthSyncMB: mb(m1.rss - m0.rss),
        rssGrowthBatchedMB: mb(m2.rss - m1.rss),
        heapUsedGrowthMB: mb(m2.heapUsed - m0.heapUsed),
        externalGrowthMB: mb(m2.external - m0.external),
      },
      measurements: measurements.map((m) => ({ name: m.name, nsPerOp: per(m), roundsNs: m.rounds.map((x) => Math.round(x * 10) / 10), rmePercent: round2(m.rme), samples: m.iterations, opsPerIteration: m.opsPerIteration })),
    };
    console.log(JSON.stringify(out));
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
