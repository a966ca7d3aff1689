// Installs the packed tarball as a user does, on a machine with no C++ toolchain: `npm pack`,
// `npm install <tarball>` into a fresh project with a PATH that hides every compiler, make and
// python (cc/c++/g++/gcc/clang/make/python, versioned names too), then require() and import it and run a retain
// on the sim. The addon must come from prebuilds/linux-x64 (npm run prebuild). A negative control installs
// the same tarball with npm_config_build_from_source, which must fail: the compiler really is hidden.
//
// Slow (~30 s): it runs only as `npm run test:install` (KEXTBRIDGE_TEST_INSTALL=1; jest.config.js
// leaves it out of `npm test`), which builds the prebuild first.
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const root = path.join(__dirname, '..');
const linuxX64 = process.platform === 'linux' && process.arch === 'x64';
const d = linuxX64 ? describe : describe.skip;
if (!linuxX64) console.log(`install.test.ts skipped: the prebuilt-tarball install is checked on linux-x64 only (this is ${process.platform}-${process.arch})`);

const HIDDEN = ['cc', 'c++', 'g++', 'gcc', 'clang', 'clang++', 'make', 'python', 'python3'];
// Also gcc-12, x86_64-linux-gnu-g++, clang-16, python3.11, gmake, cpp and the like.
const HIDDEN_RE = /(^|-)(cc|c\+\+|g\+\+|gcc|cpp|clang(\+\+)?|g?make|python[0-9.]*)(-[0-9.]+)?$/;

d('the packed tarball installs and runs with no compiler on PATH (linux-x64 prebuild)', () => {
  let tmp: string;
  let tarball: string;
  let env: NodeJS.ProcessEnv;
  const run = (cmd: string, args: string[], cwd: string, extra: NodeJS.ProcessEnv = {}) =>
    spawnSync(cmd, args, { cwd, env: { ...env, ...extra }, encoding: 'utf8', timeout: 120_000 });

  beforeAll(() => {
    const prebuilds = path.join(root, 'prebuilds', 'linux-x64');
    expect(fs.existsSync(prebuilds) && fs.readdirSync(prebuilds).some((f) => f.endsWith('.node'))).toBe(true);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kextbridge-install-'));
    // The machine's PATH with every compiler, make and python taken out: each directory's
    // programs are linked into one folder, less the hidden ones (versioned and cross names too).
    const bin = path.join(tmp, 'bin');
    fs.mkdirSync(bin);
    for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
      let names: string[] = [];
      try { names = fs.readdirSync(dir); } catch { continue; }
      for (const name of names) {
        if (HIDDEN_RE.test(name) || fs.existsSync(path.join(bin, name))) continue;
        try { if (!fs.statSync(path.join(dir, name)).isFile()) continue; } catch { continue; }
        fs.symlinkSync(path.join(dir, name), path.join(bin, name));
      }
    }
    env = {};
    for (const [k, v] of Object.entries(process.env)) if (!/^(npm_|NODE_|INIT_CWD|PATH$|CC$|CXX$|JEST_)/i.test(k)) env[k] = v;
    env.PATH = bin;
    // Pack as a publish would (prepare rebuilds dist/lib); the prebuilds go in the tarball.
    const packed = execFileSync('npm', ['pack', '--json', '--pack-destination', tmp], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const info = JSON.parse(packed)[0];
    expect(info.files.map((f: { path: string }) => f.path).filter((f: string) => f.startsWith('prebuilds/linux-x64/'))).not.toEqual([]);
    tarball = path.join(tmp, info.filename);
  }, 90_000);

  afterAll(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  const project = (name: string) => {
    const dir = path.join(tmp, name);
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true }));
    return dir;
  };

  test('no compiler, make or python is reachable on that PATH', () => {
    const r = run('/bin/sh', ['-c', HIDDEN.map((t) => `command -v ${t}`).join('; ') + '; true'], tmp);
    expect(r.stdout.trim()).toBe('');
  });

  test('npm install <tarball> uses the prebuild; require, import, a retain on the sim and the CLI work', () => {
    const dir = project('consumer');
    const inst = run('npm', ['install', tarball, '--no-audit', '--no-fund', '--prefer-offline'], dir);
    if (inst.status !== 0) console.log(inst.stdout, inst.stderr);
    expect(inst.status).toBe(0);
    const installed = path.join(dir, 'node_modules', 'kextbridge');
    expect(fs.existsSync(path.join(installed, 'build'))).toBe(false); // nothing was compiled

    const cjs = run('node', ['-e', `
      const kb = require('kextbridge');
      (async () => {
        const c = await kb.open({ backend: 'sim' });
        const r = await c.retain();
        const held = await c.held();
        await c.close();
        console.log(JSON.stringify({ ok: r.ok, held, addon: require.resolve('kextbridge') }));
      })();`], dir);
    expect(cjs.stderr).toBe('');
    const out = JSON.parse(cjs.stdout);
    expect(out.ok).toBe(true);
    expect(out.held).toEqual([{ loadTag: expect.any(Number), count: 1 }]);

    const esm = run('node', ['--input-type=module', '-e', `
      import { open, defaultSimKernel } from 'kextbridge';
      import { createRequire } from 'node:module';
      const c = await open({ backend: 'sim' });
      const r = await c.retain();
      await c.close();
      console.log(JSON.stringify({ ok: r.ok, same: defaultSimKernel() === createRequire(import.meta.url)('kextbridge').defaultSimKernel() }));`], dir);
    expect(esm.stderr).toBe('');
    expect(JSON.parse(esm.stdout)).toEqual({ ok: true, same: true });

    const cli = run(path.join(dir, 'node_modules', '.bin', 'kextbridge'), ['list', '--backend', 'sim', '--json'], dir);
    expect(cli.status).toBe(0);
    expect(JSON.parse(cli.stdout).schemaVersion).toBe(1);
  }, 120_000);

  test('negative control: the same tarball with --build-from-source fails (nothing to compile with)', () => {
    const dir = project('control');
    const inst = run('npm', ['install', tarball, '--no-audit', '--no-fund', '--prefer-offline'], dir, { npm_config_build_from_source: 'true' });
    expect(inst.status).not.toBe(0);
    // node-gyp-build went to node-gyp, which found no python (or no make / compiler after it).
    expect(inst.stdout + inst.stderr).toMatch(/gyp ERR!.*(python|make|c\+\+|cc|not found)/i);
  }, 120_000);
});
