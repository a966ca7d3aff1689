// What `npm pack` ships, and how the package resolves for its users: the library, the addon
// sources it builds from, the prebuilds, the kext sources and scripts, the docs — and no tests,
// fixtures, C++ harnesses or build droppings; one CommonJS build behind both `require` and
// `import`.
import { execFileSync } from 'child_process';
import * as path from 'path';

const root = path.join(__dirname, '..');
const pkg = require('../package.json');

function packedFiles(): string[] {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: root,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  return JSON.parse(out)[0].files.map((f: { path: string }) => f.path);
}

describe('npm pack', () => {
  const files = packedFiles();

  test('the packed file list holds what a user needs and nothing test-only', () => {
    for (const need of ['package.json', 'README.md', 'binding.gyp', 'dist/lib/index.js', 'dist/lib/index.d.ts',
      'dist/lib/cli/main.js', 'dist/lib/cli/main.d.ts', 'esm/index.mjs', 'esm/index.d.mts', 'esm/cli.mjs', 'esm/cli.d.mts',
      'native/connection.cc', 'bridge/serial_queue.cc', 'bridge/iokit_transport.cc', 'sim/sim_kernel.cpp',
      'kext-sample/core/user_client_core.cpp', 'kext-sample/core/dispatch.gen.inc', 'kext-sample/kext/Makefile',
      'kext-sample/kext/gen-bundle.js', 'kext-sample/scripts/load.sh', 'kext-sample/scripts/unload.sh',
      'protocol/kextbridge.json', 'docs/mac.md', 'docs/design.md', 'docs/kernel-facts.md', 'docs/cli.md'])
      expect(files).toContain(need);
    const forbidden = files.filter((f) =>
      /^(test|build|bench|examples|scripts|fuzz|sanitize|coverage|\.ci|\.github|docs\/api|dist\/(examples|bench|test))\//.test(f) ||
      /^lib\/|(^|\/)build\/|\.DS_Store$|~$|\.test\.|fixtures|corpus|stress\.cc|_test\.cc|\.tsbuildinfo$|\.o$|\.a$|\.dSYM\/|\.kext\/|mac-test-report|^jest\.config|^tsconfig|^typedoc/.test(f));
    expect(forbidden).toEqual([]);
  });

  test('prebuilds are shipped when they were built (npm run prebuild), and only .node files', () => {
    for (const f of files.filter((f) => f.startsWith('prebuilds/')))
      expect(f).toMatch(/^prebuilds\/(linux|darwin|win32)-(x64|arm64)\/[^/]+\.node$/);
  });

  test('every path the package.json points at is shipped', () => {
    const targets: string[] = [pkg.main, pkg.types, ...Object.values(pkg.bin as Record<string, string>)];
    const walk = (v: unknown): void => {
      if (typeof v === 'string') targets.push(v);
      else if (v && typeof v === 'object') Object.values(v).forEach(walk);
    };
    walk(pkg.exports);
    for (const t of targets) expect(files).toContain(t.replace(/^\.\//, ''));
  });
});

describe('exports: one CommonJS build behind require and import', () => {
  const node = (code: string) =>
    execFileSync(process.execPath, ['--input-type=module', '-e', code], { cwd: root, encoding: 'utf8' }).trim();

  test("ESM import and CJS require in one process share one module: the same defaultSimKernel()", () => {
    const out = node(`
      import { createRequire } from 'node:module';
      import * as esm from 'kextbridge';
      import * as esmCli from 'kextbridge/cli';
      import * as esmJest from 'kextbridge/jest';
      const require = createRequire(import.meta.url);
      const cjs = require('kextbridge');
      const cjsCli = require('kextbridge/cli');
      const cjsJest = require('kextbridge/jest');
      const k = esm.defaultSimKernel();
      console.log(JSON.stringify({
        sameKernel: k === cjs.defaultSimKernel(),
        sameClass: esm.SimKernel === cjs.SimKernel && k instanceof cjs.SimKernel,
        sameOpen: esm.open === cjs.open,
        sameMain: esmCli.main === cjsCli.main && typeof esmCli.main === 'function',
        esmNames: Object.keys(esm).sort(),
        cjsNames: Object.keys(cjs).filter((n) => n !== '__esModule').sort(),
        cliNames: [Object.keys(esmCli).sort(), Object.keys(cjsCli).filter((n) => n !== '__esModule').sort()],
        sameJest: esmJest.matchers === cjsJest.matchers && typeof esmJest.kextRef === 'function',
        jestNames: [Object.keys(esmJest).sort(), Object.keys(cjsJest).filter((n) => n !== '__esModule').sort()],
      }));
    `);
    const r = JSON.parse(out);
    expect(r).toMatchObject({ sameKernel: true, sameClass: true, sameOpen: true, sameMain: true });
    // esm/index.mjs lists the names by hand: a new export in lib/index.ts must be added there.
    expect(r.esmNames).toEqual(r.cjsNames);
    expect(r.cliNames[0]).toEqual(r.cliNames[1]);
    expect(r.sameJest).toBe(true);
    expect(r.jestNames[0]).toEqual(r.jestNames[1]);
  });

  test('a retain through the ESM entry is seen through the CJS entry (one sim kernel, one addon)', () => {
    const out = node(`
      import { createRequire } from 'node:module';
      import { open } from 'kextbridge';
      const cjs = createRequire(import.meta.url)('kextbridge');
      const kb = await open({ backend: 'sim' });
      const r = await kb.retain();
      const own = (await kb.info()).loadTag;
      const seen = cjs.defaultSimKernel().loadedKexts().find((k) => k.loadTag === own).retainCount;
      await kb.close();
      console.log(JSON.stringify({ ok: r.ok, seen }));
    `);
    expect(JSON.parse(out)).toEqual({ ok: true, seen: 1 });
  });

  test('importing the CLI entry does not run the command line', () => {
    expect(node(`import { main } from 'kextbridge/cli'; console.log(typeof main);`)).toBe('function');
  });
});
