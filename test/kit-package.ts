// The package as a user installs it, for tests that run it from outside: lib/ compiled with
// declarations into a temporary tree with the real package.json (its exports map), linking
// the addon build and node_modules; and a user project whose node_modules/kextbridge is it.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ts from 'typescript';

export const ROOT = path.join(__dirname, '..');

export function buildPackage(): string {
  const pkg = fs.mkdtempSync(path.join(os.tmpdir(), 'kextbridge-pkg-'));
  for (const f of ['binding.gyp', 'package.json', 'build', 'prebuilds', 'node_modules'])
    if (fs.existsSync(path.join(ROOT, f))) fs.symlinkSync(path.join(ROOT, f), path.join(pkg, f));
  const program = ts.createProgram(
    ['index.ts', 'jest/index.ts', 'jest/environment.ts', 'cli/main.ts'].map((f) => path.join(ROOT, 'lib', f)),
    {
      target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.CommonJS, strict: true, esModuleInterop: true, skipLibCheck: true,
      declaration: true, rootDir: ROOT, outDir: path.join(pkg, 'dist'), types: ['node'], typeRoots: [path.join(ROOT, 'node_modules', '@types')],
    },
  );
  const r = program.emit();
  const errors = ts.getPreEmitDiagnostics(program).concat(r.diagnostics).filter((d) => d.category === ts.DiagnosticCategory.Error);
  if (errors.length) throw new Error(errors.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n')).join('\n'));
  return pkg;
}

/** A copy of the fixture project `name` whose node_modules holds kextbridge (the package tree). */
export function userProject(name: string, pkg: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `kextbridge-${name}-`));
  fs.cpSync(path.join(ROOT, 'test', 'fixtures', name), dir, { recursive: true });
  fs.mkdirSync(path.join(dir, 'node_modules'));
  fs.symlinkSync(pkg, path.join(dir, 'node_modules', 'kextbridge'));
  return dir;
}
