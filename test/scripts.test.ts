// The shell scripts, run on any machine against stand-in commands: a temporary directory of
// fake tools comes first on PATH (or is named through the scripts' own variables), each
// printing what the real tool prints in the case under test. The scripts' exit codes and
// messages are what is checked; nothing here says the real tools answer this way on every
// macOS release (docs/mac.md lists what is still to be confirmed on a Mac).
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const root = path.join(__dirname, '..');

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
  out: string; // stdout + stderr
}

function runScript(script: string, args: string[], env: NodeJS.ProcessEnv): Run {
  const r = spawnSync('bash', [script, ...args], { cwd: root, env, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, out: r.stdout + r.stderr };
}

function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `kextbridge-${prefix}-`));
}

function writeTool(dir: string, name: string, body: string): void {
  fs.writeFileSync(path.join(dir, name), `#!/bin/bash\n${body}\n`, { mode: 0o755 });
}

// ----------------------------------------------------------------- maccheck.sh ---
describe('scripts/maccheck.sh', () => {
  let dir: string;
  let tool: string;
  let log: string;

  beforeEach(() => {
    dir = tempDir('maccheck');
    tool = path.join(dir, 'maccheck');
    log = path.join(dir, 'calls.log');
    // A header tree is a directory holding .fake-tree (its xnu revision); `status` answers as
    // the real tool does (exit 3 without a tree), every check succeeds and is logged.
    writeTool(
      dir,
      'maccheck',
      `case $1 in
  status)
    if [ -f "$MACHDRS/.fake-tree" ]; then
      echo "MACHDRS=$MACHDRS"; echo "header tree: present (1 kernel, 1 user headers)"
      echo "  xnu $(cat "$MACHDRS/.fake-tree") 0123abc"; echo "  IOKitUser IOKitUser-1 1a6b2d1"
      exit 0
    fi
    echo "MACHDRS=$MACHDRS"; echo "header tree: missing"; exit 3 ;;
  *) echo "$MACHDRS $*" >> "${log}"; exit 0 ;;
esac`,
    );
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  function tree(name: string, xnu: string): string {
    const t = path.join(dir, name);
    fs.mkdirSync(t);
    fs.writeFileSync(path.join(t, '.fake-tree'), xnu);
    return t;
  }

  // The script's defaults are /tmp/macsdk and /tmp/macsdk-11; the fake tool finds a tree only
  // where a .fake-tree file is, so those defaults count as missing here even when they exist.
  function env(extra: Record<string, string>): NodeJS.ProcessEnv {
    const e: NodeJS.ProcessEnv = { ...process.env, MACCHECK: tool, MIRROR: path.join(dir, 'no-mirror'), ...extra };
    for (const k of ['MACHDRS', 'MACHDRS_11']) if (!(k in extra)) delete e[k];
    return e;
  }

  test('both trees named and present: passes and names each tree with its xnu revision', () => {
    const cur = tree('cur', 'xnu-11417.101.15');
    const old = tree('old', 'xnu-7195.50.7.100.1');
    const r = runScript('scripts/maccheck.sh', [], env({ MACHDRS: cur, MACHDRS_11: old }));
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/header trees checked:\n {2}\S*cur {2}xnu-11417\.101\.15\n {2}\S*old {2}xnu-7195\.50\.7\.100\.1\n/);
    expect(r.stdout).toContain('maccheck: passed');
    const calls = fs.readFileSync(log, 'utf8');
    expect(calls).toContain(`${old} kext-link`);
    expect(calls).toContain(`${cur} user`);
  });

  test('MACHDRS_11 named but missing: a failure that says which variable and path', () => {
    const cur = tree('cur', 'xnu-11417.101.15');
    const r = runScript('scripts/maccheck.sh', [], env({ MACHDRS: cur, MACHDRS_11: path.join(dir, 'gone') }));
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/FAIL {2}kernel macos11 checks: MACHDRS_11=\S*gone was set, but there is no header tree there/);
    expect(r.stdout).toContain('maccheck: FAILED');
    expect(r.stdout).toMatch(/header trees checked:\n {2}\S*cur {2}xnu-11417/);
  });

  test('MACHDRS named but missing: the kernel and user checks on it fail', () => {
    const old = tree('old', 'xnu-7195.50.7.100.1');
    const r = runScript('scripts/maccheck.sh', [], env({ MACHDRS: path.join(dir, 'gone'), MACHDRS_11: old }));
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/FAIL {2}kernel current checks: MACHDRS=/);
    expect(r.stdout).toMatch(/FAIL {2}user current checks: MACHDRS=/);
  });

  test('neither named and the default paths missing: a skip, exit 0, no tree checked', () => {
    const r = runScript('scripts/maccheck.sh', [], env({}));
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/SKIP {2}kernel current checks \(\/tmp\/macsdk, the default; MACHDRS unset\)/);
    expect(r.stdout).toMatch(/SKIP {2}kernel macos11 checks \(\/tmp\/macsdk-11, the default; MACHDRS_11 unset\)/);
    expect(r.stdout).toContain('header trees checked: none');
    expect(r.stdout).toContain('maccheck: SKIPPED');
  });

  test('a tree named but the maccheck tool missing: a failure, not a skip', () => {
    const r = runScript('scripts/maccheck.sh', [], env({ MACHDRS: tree('cur', 'xnu-1'), MACCHECK: path.join(dir, 'no-tool') }));
    expect(r.status).toBe(1);
    expect(r.stdout).toContain('FAILED');
  });
});

// ----------------------------------------------------------------- test-mac.js ---
describe('scripts/test-mac.js gives its outputs back to the sudo user', () => {
  const testMac = require('../scripts/test-mac.js') as {
    outputOwner(uid: number, env: NodeJS.ProcessEnv): { uid: number; gid: number } | null;
    chownTree(target: string, owner: { uid: number; gid: number }): void;
    OUTPUTS: string[];
  };

  test('root through sudo: the caller from SUDO_UID/SUDO_GID', () => {
    expect(testMac.outputOwner(0, { SUDO_UID: '501', SUDO_GID: '20' })).toEqual({ uid: 501, gid: 20 });
    expect(testMac.outputOwner(0, { SUDO_UID: '501', SUDO_GID: '0' })).toEqual({ uid: 501, gid: 0 });
  });

  test('nothing to give back: not root, root without sudo, sudo from root, or ids that are not ids', () => {
    expect(testMac.outputOwner(501, { SUDO_UID: '501', SUDO_GID: '20' })).toBeNull(); // npm 7-8 ran us as the owner
    expect(testMac.outputOwner(0, {})).toBeNull();
    expect(testMac.outputOwner(0, { SUDO_UID: '0', SUDO_GID: '0' })).toBeNull();
    expect(testMac.outputOwner(0, { SUDO_UID: '501' })).toBeNull();
    for (const bad of ['', ' 501', '-1', '5e2', '0x1f5', 'me', '1.5', '99999999999999999999'])
      expect(testMac.outputOwner(0, { SUDO_UID: bad, SUDO_GID: '20' })).toBeNull();
  });

  test('the outputs are the build output and the report', () => {
    expect(testMac.OUTPUTS).toEqual(expect.arrayContaining(['dist', 'mac-test-report.json']));
  });

  const asRoot = process.getuid?.() === 0 ? test : test.skip;
  asRoot('chownTree changes a whole tree, links themselves, never what a link points at (needs root)', () => {
    const dir = tempDir('chown');
    try {
      const outside = path.join(dir, 'outside');
      fs.writeFileSync(outside, 'x');
      const tree = path.join(dir, 'dist');
      fs.mkdirSync(path.join(tree, 'lib', 'deep'), { recursive: true });
      fs.writeFileSync(path.join(tree, 'lib', 'index.js'), '');
      fs.writeFileSync(path.join(tree, 'lib', 'deep', 'a.js'), '');
      fs.symlinkSync(outside, path.join(tree, 'link'));
      const owner = { uid: 4242, gid: 4343 };
      testMac.chownTree(tree, owner);
      for (const p of ['', 'lib', 'lib/index.js', 'lib/deep', 'lib/deep/a.js', 'link']) {
        const st = fs.lstatSync(path.join(tree, p));
        expect([p, st.uid, st.gid]).toEqual([p, 4242, 4343]);
      }
      expect(fs.statSync(outside).uid).toBe(0);
      expect(() => testMac.chownTree(path.join(dir, 'missing'), owner)).not.toThrow();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
