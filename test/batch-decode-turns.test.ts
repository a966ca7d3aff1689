// Decoding a large batch does not block the event loop for its whole duration (issue 15): an
// async retainMany/releaseMany above DECODE_CHUNK tags is decoded a chunk per turn of the event
// loop. The size itself is bounded (MAX_BATCH_TAGS, a RangeError beyond: test/limits.test.ts),
// so no input can make a batch's buffers grow without limit.
import { createSimKernel, KextBridge, open, SimKernel } from '../lib';
import { DECODE_CHUNK } from '../lib/decode';
import { NativeConnection } from '../lib/native';
import { MAX_BATCH_TAGS } from '../lib/validate';

let kernel: SimKernel;
let kb: KextBridge;
beforeEach(async () => {
  kernel = createSimKernel();
  kb = await open({ backend: 'sim', kernel });
});
afterEach(async () => {
  await kb.close();
});

/** Counts turns of the event loop (setImmediate callbacks) and notes how many had run when the native answer arrived. */
function watchTurns(k: KextBridge) {
  const conn = (k as unknown as { conn: NativeConnection }).conn;
  const state = { turns: 0, atAnswer: -1, running: true };
  const tick = () => {
    state.turns++;
    if (state.running) setImmediate(tick);
  };
  setImmediate(tick);
  const callMany = conn.callMany.bind(conn);
  const wrapped: NativeConnection['callMany'] = (selector, tags) =>
    callMany(selector, tags).then((r) => {
      state.atAnswer = state.turns;
      return r;
    });
  Object.defineProperty(conn, 'callMany', { value: wrapped }); // the prototype's is read-only
  return state;
}

test.each(['retainMany', 'releaseMany'] as const)('%s of the maximum batch gives the event loop turns while it decodes', async (op) => {
  expect(MAX_BATCH_TAGS / DECODE_CHUNK).toBeGreaterThanOrEqual(8);
  const tags = new Uint32Array(MAX_BATCH_TAGS).fill(99_999); // not loaded: each tag a cheap kernel answer
  const turns = watchTurns(kb);
  const r = await kb[op](tags);
  turns.running = false;
  expect(r).toHaveLength(MAX_BATCH_TAGS);
  expect(r[MAX_BATCH_TAGS - 1]).toMatchObject({ loadTag: 99_999, ok: false });
  expect(turns.atAnswer).toBeGreaterThanOrEqual(0);
  // One turn between each chunk: other work ran between the native answer and the result.
  expect(turns.turns - turns.atAnswer).toBeGreaterThanOrEqual(MAX_BATCH_TAGS / DECODE_CHUNK - 1);
});

test('a batch of at most one chunk is decoded in the same turn (no added latency)', async () => {
  const turns = watchTurns(kb);
  const r = await kb.retainMany(new Uint32Array(DECODE_CHUNK).fill(99_999));
  turns.running = false;
  expect(r).toHaveLength(DECODE_CHUNK);
  expect(turns.turns - turns.atAnswer).toBe(0);
});

test('chunked decoding keeps order and every tag across chunk edges', async () => {
  const own = kernel.sampleLoadTag;
  const tags = Uint32Array.from({ length: 3 * DECODE_CHUNK + 5 }, (_, i) => (i % 1000 === 7 ? own : 99_999));
  const r = await kb.retainMany(tags);
  r.forEach((x, i) => expect(x.loadTag).toBe(tags[i]));
  const ok = r.filter((x) => x.ok).length;
  expect(ok).toBe(tags.filter((t) => t === own).length);
  expect(await kb.held()).toEqual([{ loadTag: own, count: ok }]);
});
