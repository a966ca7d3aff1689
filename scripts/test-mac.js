#!/usr/bin/env node
// The on-Mac suite: the contract suite and the Mac-only checks against the real kext, with a
// JSON report a user can attach to a bug. Needs macOS, root, and the sample kext loaded.
//
//   sudo node scripts/test-mac.js
//
// Run node itself under sudo: `sudo npm run test:mac` is not the same everywhere. npm 7 and 8
// run package scripts as the owner of the checkout, not as root, so this refuses to start;
// later npm versions run them as root. Run as root through sudo, everything this writes into
// the checkout (dist/, mac-test-report.json) is given back to the user who ran sudo
// (SUDO_UID/SUDO_GID), so a later `npm run build` as that user is not refused.
'use strict';
const { execFileSync, spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..');

// Whom the outputs should belong to: the sudo caller's { uid, gid } when this runs as root
// through sudo, else null (not root: the files are already the caller's; root without sudo,
// or sudo from root: root is the user). Values that are not plain decimal ids are ignored.
function outputOwner(uid, env) {
  if (uid !== 0) return null;
  const id = (s) => (typeof s === 'string' && /^\d+$/.test(s) ? Number(s) : NaN);
  const sudoUid = id(env.SUDO_UID);
  const sudoGid = id(env.SUDO_GID);
  if (!Number.isSafeInteger(sudoUid) || !Number.isSafeInteger(sudoGid) || sudoUid === 0) return null;
  return { uid: sudoUid, gid: sudoGid };
}

// chown PATH and, for a directory, everything under it. Symbolic links are changed
// themselves and never followed. A missing PATH is not an error.
function chownTree(target, owner) {
  let st;
  try {
    st = fs.lstatSync(target);
  } catch (e) {
    if (e.code === 'ENOENT') return;
    throw e;
  }
  if (st.isDirectory()) for (const name of fs.readdirSync(target)) chownTree(path.join(target, name), owner);
  fs.lchownSync(target, owner.uid, owner.gid);
}

// Everything this run writes inside the checkout.
const OUTPUTS = ['dist', 'mac-test-report.json', 'mac-test-jest.json', 'mac-recordings'];

function giveBack(owner) {
  if (!owner) return;
  for (const name of OUTPUTS) {
    try {
      chownTree(path.join(root, name), owner);
    } catch (e) {
      console.error(`test:mac: could not give ${name} back to uid ${owner.uid}: ${e.message}`);
    }
  }
}

function main() {
  const fail = (msg) => {
    console.error(`test:mac: ${msg}`);
    process.exit(2);
  };
  if (process.platform !== 'darwin') fail('runs on the test Mac only (see docs/mac.md). Here, `npm test` runs the same suite on the simulated kernel.');
  if (process.getuid() !== 0) {
    fail(
      'run as root: sudo node scripts/test-mac.js (retain and release need an administrator). ' +
        '`sudo npm run test:mac` does not work with npm 7 and 8, which run scripts as the owner of the checkout.',
    );
  }
  const owner = outputOwner(process.getuid(), process.env);

  const sh = (cmd, args) => {
    try {
      return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
    } catch (e) {
      return `(${cmd} failed: ${String(e.stderr || e.message).trim()})`;
    }
  };
  try {
    execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
  } catch (e) {
    giveBack(owner);
    throw e;
  }

  const jestJson = path.join(root, 'mac-test-jest.json');
  const run = spawnSync('npx', ['jest', '--config', 'jest.mac.config.js', 'test/contract.test.ts', 'test/mac.test.ts', '--runInBand', '--json', `--outputFile=${jestJson}`], {
    cwd: root,
    stdio: 'inherit',
    // Every connection's calls, one JSONL per test file (docs/recording.md): the first Mac run
    // anyone makes becomes a regression test of the sim (kextbridge replay mac-recordings/…).
    env: { ...process.env, KEXTBRIDGE_TEST_IOKIT: '1', KEXTBRIDGE_RECORD: path.join(root, 'mac-recordings') },
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
  giveBack(owner);
  console.log(`\ntest:mac: report written to ${out}${owner ? ` (owned by uid ${owner.uid}, as dist/)` : ''}; recordings in ${path.join(root, 'mac-recordings')}`);
  process.exit(run.status ?? 1);
}

if (require.main === module) main();
module.exports = { outputOwner, chownTree, OUTPUTS };
