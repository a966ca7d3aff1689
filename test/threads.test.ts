// Connections share a small pool of worker threads (a strand each). Failing to start a
// thread is a KextBridgeError from open(), never an abort: shown in a fresh process, whose
// pool has no thread yet.
import { execFileSync } from 'child_process';
import * as path from 'path';
import { LibTree, makeLibTree } from './helpers/lib-tree';

let tree: string;

let libTree: LibTree;
beforeAll(() => {
  libTree = makeLibTree('kextbridge-threads-');
  tree = libTree.dir;
}, 60_000);
afterAll(() => libTree.cleanup());

test('a refused thread start makes open() reject with a KextBridgeError; the next open works', () => {
  const script = `
    const lib = require(${JSON.stringify(path.join(tree, 'lib', 'index.js'))});
    const { binding } = require(${JSON.stringify(path.join(tree, 'lib', 'native.js'))});
    (async () => {
      const out = {};
      binding()._failThreadStarts(1000);
      const kernel = lib.createSimKernel();
      try { await lib.open({ backend: 'sim', kernel }); out.first = 'opened'; }
      catch (e) { out.first = { name: e.name, codeName: e.codeName, kextBridgeError: e instanceof lib.KextBridgeError, message: e.message }; }
      binding()._failThreadStarts(0);
      const kb = await lib.open({ backend: 'sim', kernel });
      out.second = (await kb.retain()).ok;
      await kb.close();
      out.raw = kernel.rawRetainCount(kernel.sampleLoadTag);
      console.log(JSON.stringify(out));
    })();`;
  const out = JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20_000 }));
  expect(out.first).toMatchObject({ name: 'KextBridgeError', codeName: 'kIOReturnNoResources', kextBridgeError: true });
  expect(out.first.message).toMatch(/could not start a worker thread/);
  expect(out).toMatchObject({ second: true, raw: 2 });
});
