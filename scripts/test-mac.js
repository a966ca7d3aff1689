#!/usr/bin/env node
// npm run test:mac — the contract suite and the Mac-only checks against the real kext, with a
// JSON report a user can attach to a bug. Needs macOS, root, and the sample kext loaded.
'use strict';
const { execFileSync, spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..');
const fail = (msg) => {
  console.error(`test:mac: ${msg}`);
  process.exit(2);
};
if (process.platform !== 'darwin') fail('runs on the test Mac only (see docs/mac.md). Here, `npm test` runs the same suite on the simulated kernel.');
if (process.getuid() !== 0) fail('run as root: sudo npm run test:mac (retain and release need an administrator)');

const sh = (cmd, args) => {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (e) {
    return `(${cmd} failed: ${String(e.stderr || e.message).trim()})`;
  }
};
execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });

const jestJson = path.join(root, 'mac-test-jest.json');
const run = spawnSync('npx', ['jest', 'test/contract.test.ts', 'test/mac.test.ts', '--runInBand', '--json', `--outputFile=${jestJson}`], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, KEXTBRIDGE_TEST_IOKIT: '1' },
});

const report = {
  when: new Date().toISOString(),
  kextbridge: require(path.join(root, 'package.json')).version,
  node: process.version,
  macos: sh('sw_vers', []),
  kernel: sh('uname', ['-a']),
  sip: sh('csrutil', ['status']),
  kext: sh('kmutil', ['showloaded', '--bundle-identifier', require(path.join(root, 'protocol', 'kextbridge.json')).sampleKext.bundleId]),
  jest: fs.existsSync(jestJson) ? JSON.parse(fs.readFileSync(jestJson, 'utf8')) : null,
};
const out = path.join(root, 'mac-test-report.json');
fs.writeFileSync(out, JSON.stringify(report, null, 2));
fs.rmSync(jestJson, { force: true });
console.log(`\ntest:mac: report written to ${out}`);
process.exit(run.status ?? 1);
