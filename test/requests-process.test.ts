// A connection's pending resource request and the process: exiting (or a worker being
// terminated) with one pending never crashes, and close() with requests pending leaves no
// handle behind: the process then ends by itself. Child processes on the transpiled library.
import { spawnSync } from 'child_process';
import * as path from 'path';
import { LibTree, makeLibTree } from './helpers/lib-tree';

let tree: LibTree;
beforeAll(() => {
  tree = makeLibTree('kextbridge-requests-');
});
afterAll(() => tree.cleanup());

const PRELUDE = (lib: string) => `
const { open, createSimKernel } = require(${JSON.stringify(lib)});
async function pending() {
  const kernel = createSimKernel();
  kernel.installKext({ bundleId: 'com.example.r' }, { resources: { a: 'x' } });
  kernel.withholdResources(true);
  const kb = await open({ backend: 'sim', kernel });
  const ps = [kb.requestResource('com.example.r', 'a'), kb.requestResource('com.example.r', 'a')];
  while (kernel.pendingRequests().length < 2) await new Promise((r) => setImmediate(r));
  return { kernel, kb, ps };
}
`;

function run(body: string, timeout = 20_000) {
  const lib = path.join(tree.dir, 'lib', 'index.js');
  return spawnSync(process.execPath, ['-e', PRELUDE(lib) + body], { encoding: 'utf8', timeout });
}

test('process.exit with resource requests pending: exit status 0, no crash, nothing on stderr', () => {
  const r = run(`pending().then(() => { console.log('pending'); process.exit(0); });`);
  expect({ status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr }).toEqual({ status: 0, signal: null, stdout: 'pending\n', stderr: '' });
});

test('close() with requests pending: they settle as closed and the process ends by itself (no handle left)', () => {
  const started = Date.now();
  const r = run(`pending().then(async ({ kernel, kb, ps }) => {
    await kb.close();
    const rs = await Promise.all(ps);
    console.log(JSON.stringify({ rs: rs.map((x) => [x.reason, x.cancelled]), left: kernel.pendingRequests().length, awaited: kb.conn._asyncPending }));
  });`);
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  expect(JSON.parse(r.stdout)).toEqual({ rs: [['closed', true], ['closed', true]], left: 0, awaited: 0 });
  expect(Date.now() - started).toBeLessThan(15_000);
});

test('a worker terminated with resource requests pending: the main thread carries on, no crash', () => {
  const lib = path.join(tree.dir, 'lib', 'index.js');
  const worker = PRELUDE(lib) + `pending().then(() => require('worker_threads').parentPort.postMessage('pending'));`;
  const r = spawnSync(process.execPath, ['-e', `
    const { Worker } = require('worker_threads');
    // Only the worker uses the addon: when it goes, the addon's pool is joined before the
    // library is unloaded (test/lifetime: "worker-only-exit").
    const w = new Worker(${JSON.stringify(worker)}, { eval: true });
    w.on('message', async () => { await w.terminate(); console.log('terminated'); });
    w.on('error', (e) => { console.error(e); process.exit(1); });
  `], { encoding: 'utf8', timeout: 20_000 });
  expect({ status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr }).toEqual({ status: 0, signal: null, stdout: 'terminated\n', stderr: '' });
});
