#!/usr/bin/env node
// Writes the seed corpus fuzz/corpus/*.bin for fuzz/core_fuzzer.cc (input format: the comment
// at the top of that file). Run: node fuzz/gen-corpus.js  (rewrites fuzz/corpus/ from scratch).
'use strict';
const fs = require('fs');
const path = require('path');

// ---- encoders (mirror core_fuzzer.cc) ----
const OP = {
  open: 0, call: 1, close: 2, die: 3, advance: 4, load: 5, unload: 6, setInstances: 7,
  retain: 8, release: 9, held: 10, getInfo: 11, repeat: 12, loadedKexts: 13, fault: 14,
};
const u16 = (n) => [n & 0xff, (n >> 8) & 0xff];
const u32 = (n) => [...u16(n & 0xffff), ...u16((n >>> 16) & 0xffff)];
const u64 = (big) => {
  const b = [];
  for (let i = 0n; i < 8n; i++) b.push(Number((big >> (8n * i)) & 0xffn));
  return b;
};
// Values (tags and scalars).
const V = {
  loaded: (i) => [0, i],        // index into the loaded-kext list (0 = __kernel__, 8 = sample)
  sample: () => [1],
  invalid: () => [2],           // 0xFFFFFFFF
  issued: (i) => [3, i],        // any tag ever issued
  high: (i, hi) => [4, i, hi],  // a loaded tag with bits above 32
  raw: (big) => [5, ...u64(big)],
  next: (d) => [6, d],          // a tag not issued yet
  held: (i) => [7, i],          // a tag some client holds
};
// Sizes.
const S = {
  zero: () => [0],
  small: (n) => [1, n],
  pick: (i) => [2, i],  // {0,2,4,8,127,128,129,2047,2048,2049,4095,4096,4097,8192,65535,16}
  raw: (n) => [3, ...u16(n)],
};
const ADMIN = 0, USER = 1, RAW = 2;
const open = (slot, flags = ADMIN) => [OP.open, slot, flags];
const close = (slot) => [OP.close, slot];
const die = (slot) => [OP.die, slot];
const retain = (slot, v) => [OP.retain, slot, ...v];
const release = (slot, v) => [OP.release, slot, ...v];
const held = (slot) => [OP.held, slot];
const getInfo = (slot) => [OP.getInfo, slot];
const loadedKexts = (slot) => [OP.loadedKexts, slot];
// advance: step index into {0, 1, 59999, 60000, 60001, 120000, 30000, 1000}, or exact ms.
const advance = (i) => [OP.advance, i & 7];
const advanceMs = (ms) => [OP.advance, 0x80, ...u32(ms)];
const repeat = (slot, isRelease, v, n) => [OP.repeat, slot, isRelease ? 1 : 0, ...v, ...u16(n)];
// load: bundle index (com.fuzz.a..h), flags (1 v2.0, 2 autounload, 4 unloadUnsupported,
// 8 IOService class, 16 live instance), dependency indexes into the loaded list (0xFF missing).
const load = (id, flags, deps = []) => [OP.load, id, flags, deps.length, ...deps];
const unload = (v) => [OP.unload, ...v];
// fault: the next `times` (0..3) retain or release KPI calls answer a failure code
// (index into {kOSReturnError, kOSKextReturnNotFound, ...InvalidArgument, ...Stopping}).
const fault = (isRelease, code, times) => [OP.fault, isRelease ? 1 : 0, code, times];
const setInstances = (v, extraClass, count) => [OP.setInstances, ...v, extraClass ? 1 : 0, count];
// A generic call: selector (0..5 directly, or 0xF0 + u32), scalars, sizes, flags
// (1 null scalar-in when empty, 2 null zero-size outputs, 4 outOfLine (raw core),
//  8 null scalar-out (raw), 16 null struct-out (raw)).
function call(slot, { sel = 0, selRaw, scalars = [], inSize = S.zero(), fill = 0, reqOut = 0,
  reqStruct = S.zero(), flags = 0 }) {
  const selBytes = selRaw !== undefined ? [0xf0, ...u32(selRaw)] : [sel];
  return [OP.call, slot, ...selBytes, scalars.length, ...scalars.flat(), ...inSize, fill,
    reqOut, ...reqStruct, flags];
}

const IOKIT = 3;   // com.apple.kpi.iokit in the default world's loaded list
const SAMPLE = 8;  // the sample kext, last of the default world
const seeds = {
  'getinfo-held-close': [open(0), getInfo(0), held(0), close(0), getInfo(0), close(0)],
  'retain-release-sample': [open(0), retain(0, V.sample()), held(0), retain(0, V.sample()),
    release(0, V.sample()), held(0), release(0, V.sample()), release(0, V.sample()), close(0)],
  'retain-then-die': [open(0), retain(0, V.sample()), retain(0, V.loaded(IOKIT)),
    retain(0, V.loaded(0)), held(0), die(0), open(1), held(1), close(1)],
  'unprivileged': [open(0, USER), getInfo(0), retain(0, V.sample()), release(0, V.sample()),
    held(0), close(0)],
  'invalid-and-wide-tags': [open(0), release(0, V.invalid()), retain(0, V.invalid()),
    retain(0, V.high(SAMPLE, 1)), release(0, V.high(SAMPLE, 0xff)), retain(0, V.next(0)),
    retain(0, V.raw(0xffffffffffffffffn)), release(0, V.loaded(IOKIT)), close(0)],
  'advance-autounload': [load(0, 2), open(0), retain(0, V.loaded(9)), release(0, V.loaded(9)),
    advance(2), loadedKexts(0), advance(1), loadedKexts(0), retain(0, V.issued(9)), close(0)],
  'advance-rearm': [load(1, 8), open(0), retain(0, V.loaded(9)), advanceMs(30000),
    release(0, V.loaded(9)), advance(6), retain(0, V.loaded(9)), release(0, V.loaded(9)),
    advance(5), advance(3), loadedKexts(0), close(0)],
  'deps-unload': [load(0, 0), load(1, 0, [9]), load(2, 2, [9, 10]), load(3, 0, [0xff]),
    open(0), retain(0, V.loaded(9)), unload(V.loaded(9)), unload(V.loaded(11)),
    unload(V.loaded(10)), release(0, V.loaded(9)), unload(V.loaded(9)), loadedKexts(0),
    close(0)],
  'reload-versions': [load(4, 0), load(4, 0), load(4, 1), open(0), retain(0, V.loaded(9)),
    load(4, 0), close(0), unload(V.loaded(9)), load(4, 1), retain(0, V.issued(9))],
  'ledger-full': [open(0), repeat(0, false, V.sample(), 258), held(0), getInfo(0),
    repeat(0, true, V.sample(), 100), retain(0, V.sample()), die(0)],
  'ledger-many-tags': [load(0, 0), load(1, 0), load(2, 0), open(0), repeat(0, false, V.loaded(9), 80),
    repeat(0, false, V.loaded(10), 90), repeat(0, false, V.loaded(11), 90), held(0),
    repeat(0, true, V.loaded(10), 95), held(0), close(0)],
  'multi-client': [open(0), open(1), open(2, USER), open(3, RAW), retain(0, V.sample()),
    retain(1, V.sample()), retain(3, V.sample()), retain(2, V.sample()), release(1, V.held(0)),
    release(0, V.sample()), die(1), close(3), held(0), retain(3, V.sample()), die(0), die(3),
    held(2)],
  'bad-shapes': [open(0),
    call(0, { sel: 4 }), call(0, { sel: 5, scalars: [V.sample()] }),
    call(0, { selRaw: 0xffffffff }), call(0, { selRaw: 0x80000001, scalars: [V.sample()], reqOut: 2 }),
    call(0, { sel: 1, scalars: Array(17).fill(V.sample()), reqOut: 2 }),
    call(0, { sel: 1, scalars: [V.sample(), V.sample()], reqOut: 2 }),
    call(0, { sel: 1, scalars: [V.sample()], reqOut: 3 }),
    call(0, { sel: 1, scalars: [V.sample()], reqOut: 20 }),
    call(0, { sel: 1, scalars: [V.sample()], reqOut: 2, inSize: S.pick(12), fill: 0x41 }),
    call(0, { sel: 0, reqOut: 4, reqStruct: S.pick(4) }),
    call(0, { sel: 0, reqOut: 4, reqStruct: S.pick(6) }),
    call(0, { sel: 0, reqOut: 4, reqStruct: S.pick(5) }),
    call(0, { sel: 3, reqStruct: S.pick(8) }), call(0, { sel: 3, reqStruct: S.pick(13) }),
    call(0, { sel: 3, reqStruct: S.raw(65535), flags: 2 }),
    call(0, { sel: 2, scalars: [V.sample()], reqOut: 2, flags: 3 }),
    close(0), call(0, { sel: 0, reqOut: 4, reqStruct: S.pick(5) }), close(0)],
  'raw-core': [open(0, RAW), call(0, { sel: 0, reqOut: 4, reqStruct: S.pick(5) }),
    call(0, { sel: 0, reqOut: 4, reqStruct: S.pick(5), flags: 4 }),
    call(0, { sel: 0, reqOut: 4, reqStruct: S.pick(5), flags: 16 }),
    call(0, { sel: 1, scalars: [V.sample()], reqOut: 2, flags: 8 }),
    call(0, { sel: 1, scalars: [V.sample()], reqOut: 2 }),
    call(0, { sel: 3, reqStruct: S.pick(13), fill: 7 }),
    call(0, { sel: 1, scalars: Array(20).fill(V.sample()), reqOut: 20 }),
    close(0), call(0, { sel: 3, reqStruct: S.pick(8) }), retain(0, V.sample()), close(0),
    open(1, RAW | USER), retain(1, V.sample()), getInfo(1), die(1)],
  'service-terminated': [open(0), setInstances(V.sample(), false, 0), close(0), advance(3),
    open(1), advance(5), setInstances(V.sample(), false, 1), open(2), loadedKexts(2),
    setInstances(V.sample(), false, 0), die(2), release(0, V.sample()), advance(5), open(3),
    unload(V.sample()), open(3)],
  'instances-block-unload': [load(5, 24), open(0), unload(V.loaded(9)),
    setInstances(V.loaded(9), false, 0), setInstances(V.loaded(9), true, 2),
    retain(0, V.loaded(9)), release(0, V.loaded(9)), advance(6),
    setInstances(V.loaded(9), true, 0), advance(4), advance(5), loadedKexts(0), close(0)],
  'kpi-faults': [open(0), retain(0, V.sample()), retain(0, V.sample()), fault(true, 1, 2),
    release(0, V.sample()), release(0, V.invalid()), release(0, V.sample()), held(0),
    fault(false, 0, 3), retain(0, V.sample()), retain(0, V.loaded(0)), fault(true, 3, 3),
    close(0)],
};
// Kernel option variants (byte 0): autounload off; explicit unload off.
const withOpts = { 'advance-autounload': [0, 1], 'deps-unload': [0, 2] };

const dir = path.join(__dirname, 'corpus');
fs.rmSync(dir, { recursive: true, force: true });
fs.mkdirSync(dir);
let n = 0, bytes = 0;
for (const [name, ops] of Object.entries(seeds)) {
  for (const opts of withOpts[name] || [0]) {
    const buf = Buffer.from([opts, ...ops.flat()]);
    const file = `${String(++n).padStart(2, '0')}-${name}${opts ? `-opts${opts}` : ''}.bin`;
    fs.writeFileSync(path.join(dir, file), buf);
    bytes += buf.length;
  }
}
console.log(`wrote ${n} seeds (${bytes} bytes) to ${path.relative(process.cwd(), dir)}/`);
