// lib/ transpiled to CommonJS in a private temporary tree that links the addon build,
// package.json and node_modules: for tests that run the library or the CLI in separate node
// processes without racing another test that rebuilds dist/ (types are checked by tsc and
// ts-jest anyway).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ts from 'typescript';

const ROOT = path.join(__dirname, '..', '..');

export interface LibTree {
  /** The tree's root: require(path.join(dir, 'lib', 'index.js')) is the library. */
  dir: string;
  cleanup(): void;
}

export function makeLibTree(prefix: string): LibTree {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  for (const f of ['binding.gyp', 'package.json', 'build', 'prebuilds', 'node_modules'])
    if (fs.existsSync(path.join(ROOT, f))) fs.symlinkSync(path.join(ROOT, f), path.join(dir, f));
  const walk = (d: string): string[] =>
    fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : [path.join(d, e.name)]));
  for (const file of walk(path.join(ROOT, 'lib')).filter((f) => f.endsWith('.ts'))) {
    const out = path.join(dir, path.relative(ROOT, file)).replace(/\.ts$/, '.js');
    fs.mkdirSync(path.dirname(out), { recursive: true });
    const { outputText } = ts.transpileModule(fs.readFileSync(file, 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
      fileName: file,
    });
    fs.writeFileSync(out, outputText);
  }
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}
