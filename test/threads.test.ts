// Connections share a small pool of worker threads (a strand each). Failing to start a
// thread is a KextBridgeError from open(), never an abort: shown in a fresh process, whose
// pool has no thread yet.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ts from 'typescript';

const ROOT = path.join(__dirname, '..');
let tree: string;

beforeAll(() => {
  tree = fs.mkdtempSync(path.join(os.tmpdir(), 'kextbridge-threads-'));
  for (const f of ['binding.gyp', 'package.json', 'build', 'prebuilds', 'node_modules'])
    if (fs.existsSync(path.join(ROOT, f))) fs.symlinkSync(path.join(ROOT, f), path.join(tree, f));
  // The library's sources, every folder of them, as plain CommonJS.
  for (const name of fs.readdirSync(path.join(ROOT, 'lib'), { recursive: true }) as string[]) {
    if (!name.endsWith('.ts')) continue;
    const file = path.join(ROOT, 'lib', name);
    const { outputText } = ts.transpileModule(fs.readFileSync(file, 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
      fileName: file,
    });
    const out = path.join(tree, 'lib', name.replace(/\.ts$/, '.js'));
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, outputText);
  }
}, 60_000);
afterAll(() => fs.rmSync(tree, { recursive: true, force: true }));

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
