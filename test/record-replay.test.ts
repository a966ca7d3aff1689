// Recording (open({ record }), KEXTBRIDGE_RECORD) and replay (lib/replay.ts, kextbridge
// replay): a session recorded on the sim replays on a fresh sim with no divergence; one
// altered answer is exactly one divergence.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PassThrough } from 'stream';
import { createSimKernel, open } from '../lib';
import { main } from '../lib/cli/main';
import type { Io } from '../lib/cli/common';
import { RECORDING_VERSION } from '../lib/record';
import { parseRecording, replayRecording } from '../lib/replay';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kextbridge-rec-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A session touching every recorded method, a refusal, a batch, sync calls, a handle and a virtual-time wait. */
async function session(file: string): Promise<void> {
  const kernel = createSimKernel();
  const lib = kernel.loadKext({ bundleId: 'com.example.lib', version: '2.0', classes: [{ name: 'LibThing', instances: 1 }] });
  const drv = kernel.loadKext({ bundleId: 'com.example.driver', version: '1.0', dependencies: ['com.example.lib'] });
  kernel.kpi.retainKextWithLoadTag(lib); // an outside retain the world must reproduce
  const kb = await open({ backend: 'sim', kernel, record: file });
  const other = await open({ backend: 'sim', kernel, privileged: false, record: file });
  await kb.info();
  await kb.retain(drv);
  await kb.retain();
  await kb.retain(999); // kOSKextReturnNotFound
  await kb.retainMany([drv, lib, 0xffffffff]);
  await other.retain(drv); // kIOReturnNotPrivileged
  kb.sync.retain(drv);
  kb.sync.release(drv);
  await kb.releaseMany([drv, lib]);
  await kb.release(drv);
  await kb.release(drv); // kIOReturnNotPermitted: not held any more
  await kb.held();
  const h = (await kb.kext('com.example.driver'))!;
  await h.retain();
  await h.release();
  await kb.explain(drv);
  await kb.waitForUnload(drv, { timeout: 120_000 }); // autounload, 60 s of virtual time
  await kb.loadedKexts();
  await other.close();
  await kb.close();
  await expect(kb.held()).rejects.toThrow(); // after close: not recorded twice, still rejected
}

test('the recording: a versioned header, snapshots at open and close, every call with raw and decoded answer and timestamps', async () => {
  const file = path.join(dir, 'rec.jsonl');
  await session(file);
  const lines = parseRecording(fs.readFileSync(file, 'utf8'));
  expect(lines[0]).toMatchObject({ kind: 'header', schema: 'kextbridge-recording', version: RECORDING_VERSION });
  const opens = lines.filter((l) => l.kind === 'open');
  expect(opens.map((l) => [l.conn, l.machine, l.backend])).toEqual([[1, 1, 'sim'], [2, 1, 'sim']]);
  expect((opens[0].kexts as { bundleId: string; retainCount: number }[]).find((k) => k.bundleId === 'com.example.lib')).toMatchObject({ retainCount: 2 });
  const calls = lines.filter((l) => l.kind === 'call');
  const notFound = calls.find((l) => l.method === 'retain' && (l.args as number[])[0] === 999)!;
  expect(notFound).toMatchObject({ conn: 1, sync: false, result: { ok: false, layer: 'kernel', name: 'kOSKextReturnNotFound' }, raw: { kr: 0, osReturn: 0xdc008006, heldAfter: 0 } });
  expect(typeof notFound.t0).toBe('number');
  expect(typeof notFound.vt).toBe('number');
  expect(calls.find((l) => l.conn === 2 && l.method === 'retain')).toMatchObject({ result: { layer: 'userclient', name: 'kIOReturnNotPrivileged' }, raw: { kr: 0xe00002c1, osReturn: null } });
  expect(calls.filter((l) => l.sync).map((l) => l.method)).toEqual(['retain', 'release']);
  expect(calls.some((l) => l.method === 'loadedKexts')).toBe(true);
  const closes = lines.filter((l) => l.kind === 'close');
  expect(closes.map((l) => l.conn)).toEqual([2, 1]);
  expect(closes[1].kextsAfter).toEqual(expect.any(Array));
});

test('replayed on a fresh sim: no divergence; one altered answer: exactly that divergence', async () => {
  const file = path.join(dir, 'rec.jsonl');
  await session(file);
  const text = fs.readFileSync(file, 'utf8');
  const clean = await replayRecording(text);
  expect(clean.divergences).toEqual([]);
  expect(clean.connections).toBe(2);
  expect(clean.calls).toBeGreaterThan(20);

  const lines = text.split('\n');
  const i = lines.findIndex((l) => l.includes('"method":"retain"') && l.includes('"args":[999]'));
  const altered = JSON.parse(lines[i]);
  altered.result = { ...altered.result, ok: true, name: 'kOSReturnSuccess', code: 0, held: 1 };
  lines[i] = JSON.stringify(altered);
  const bad = await replayRecording(lines.join('\n'));
  expect(bad.divergences).toEqual([
    {
      line: i + 1, conn: 1, method: 'retain', args: [999],
      expected: { ok: true, layer: 'kernel', name: 'kOSReturnSuccess', code: 0, loadTag: 999, held: 1 },
      got: { ok: false, layer: 'kernel', name: 'kOSKextReturnNotFound', code: 0xdc008006, loadTag: 999, held: 0 },
    },
  ]);
});

test('the world is rebuilt from the first snapshot by bundle id, even under other load tags', async () => {
  // A recording whose kexts have tags this sim never hands out (as a Mac's would).
  const file = path.join(dir, 'rec.jsonl');
  await session(file);
  const shifted = fs.readFileSync(file, 'utf8').replace(/"loadTag":(9|10)\b/g, (_m, t) => `"loadTag":${Number(t) + 140}`)
    .replace(/"args":\[(9|10)\]/g, (_m, t) => `"args":[${Number(t) + 140}]`)
    .replace(/"dependencies":\[9\]/g, '"dependencies":[149]')
    .replace(/"args":\[\[9,10,4294967295\]\]/, '"args":[[149,150,4294967295]]').replace(/"args":\[\[10,9\]\]/, '"args":[[150,149]]');
  expect(shifted).toContain('"loadTag":150');
  expect((await replayRecording(shifted)).divergences).toEqual([]);
});

test('KEXTBRIDGE_RECORD=dir: one JSONL per test file, named after it', async () => {
  process.env.KEXTBRIDGE_RECORD = dir;
  try {
    const kb = await open({ backend: 'sim', kernel: createSimKernel() });
    await kb.retain();
    await kb.close();
    const never = await open({ backend: 'sim', kernel: createSimKernel(), record: false });
    await never.close();
  } finally {
    delete process.env.KEXTBRIDGE_RECORD;
  }
  expect(fs.readdirSync(dir)).toEqual(['test__record-replay.test.ts.jsonl']);
  const lines = parseRecording(fs.readFileSync(path.join(dir, 'test__record-replay.test.ts.jsonl'), 'utf8'));
  expect(lines.map((l) => l.kind)).toEqual(['header', 'open', 'call', 'close']);
});

test('a recording of a newer schema, or not a recording, is refused with the line', () => {
  expect(() => parseRecording('{"kind":"header","schema":"kextbridge-recording","version":2}\n')).toThrow(/line 1: schema version 2/);
  expect(() => parseRecording('{"kind":"header","schema":"kextbridge-recording","version":1}\nnope\n')).toThrow(/line 2: not JSON/);
  expect(() => parseRecording('{"kind":"open"}\n')).toThrow(/first line must be the kextbridge-recording header/);
});

function io(): Io & { out: () => string; err: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let o = '';
  let e = '';
  stdout.on('data', (d) => (o += d));
  stderr.on('data', (d) => (e += d));
  return { stdout, stderr, stdin: new PassThrough(), env: {}, out: () => o, err: () => e };
}

test('kextbridge replay: exit 0 with no divergence, 3 with one (listed, and in --json), 1 for no file, 65 for a bad one', async () => {
  const file = path.join(dir, 'rec.jsonl');
  await session(file);
  const ok = io();
  expect(await main(['replay', file], ok)).toBe(0);
  expect(ok.out()).toMatch(/^replayed \d+ calls on 2 connections from .*rec\.jsonl on a fresh simulated kernel: 0 divergences\n$/);

  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const i = lines.findIndex((l) => l.includes('"method":"held"'));
  const altered = JSON.parse(lines[i]);
  altered.result = [];
  lines[i] = JSON.stringify(altered);
  const badFile = path.join(dir, 'bad.jsonl');
  fs.writeFileSync(badFile, lines.join('\n'));
  const bad = io();
  expect(await main(['replay', badFile], bad)).toBe(3);
  expect(bad.out()).toContain(`1 divergence\n  line ${i + 1}: connection 1 held()\n    expected []\n    got      [{"loadTag":8,"count":1}]\n`);
  const json = io();
  expect(await main(['replay', badFile, '--json'], json)).toBe(3);
  const doc = JSON.parse(json.out());
  expect(doc).toMatchObject({ schemaVersion: 1, ok: false, divergences: [{ line: i + 1, method: 'held', expected: [], got: [{ loadTag: 8, count: 1 }] }], error: { name: 'Divergence', exitCode: 3 } });

  const missing = io();
  expect(await main(['replay', path.join(dir, 'none.jsonl')], missing)).toBe(1);
  fs.writeFileSync(path.join(dir, 'junk.jsonl'), 'junk\n');
  const junk = io();
  expect(await main(['replay', path.join(dir, 'junk.jsonl'), '--json'], junk)).toBe(65);
  expect(JSON.parse(junk.out()).error).toMatchObject({ name: 'DataError', exitCode: 65 });
});
