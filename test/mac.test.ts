// Checks only a real Mac can answer (root, sample kext loaded, KEXTBRIDGE_TEST_IOKIT=1).
// Elsewhere each shows as skipped with the reason. Run through `sudo node scripts/test-mac.js`,
// which runs this file under jest.mac.config.js: the kit as a user configures it (the matchers
// of kextbridge/jest, its environment's per-test leak check, recording to mac-recordings/).
// `npm test` loads and type-checks this file too, so a broken import fails on Linux.
import { execFileSync, spawn } from 'child_process';
import * as path from 'path';
import { open, SAMPLE_KEXT } from '../lib';
import { kextRef } from '../lib/jest'; // users: 'kextbridge/jest' (the matchers and their types)
import { iokitEnabled } from './backends';

const child = path.join(__dirname, 'fixtures', 'mac-child.js');
const macTest = iokitEnabled ? test : (name: string) => test.skip(`${name} — needs the test Mac: sudo node scripts/test-mac.js`, () => undefined);
const sample = SAMPLE_KEXT.bundleId;

/** OSBundleRetainCount of the sample kext, read through a connection of its own. */
async function sampleRetainCount(): Promise<number> {
  const kb = await open({ backend: 'iokit' });
  try {
    return (await kb.loadedKexts()).find((k) => k.bundleId === sample)!.retainCount;
  } finally {
    await kb.close();
  }
}

async function until(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 100))) if (await check()) return true;
  return check();
}

describe('on the test Mac', () => {
  macTest('the iokit backend is what open() picks when the kext answers', async () => {
    const kb = await open();
    try {
      expect(kb.backend).toBe('iokit');
      expect(kb.sim).toBeUndefined();
      expect((await kb.info()).identifier).toBe(sample);
      await expect(kextRef(kb, sample)).toBeLoaded();
    } finally {
      await kb.close();
    }
  });

  macTest('a non-root process may open but is refused retain with kIOReturnNotPrivileged', async () => {
    // The user who ran sudo: not root, and able to read the checkout (nobody often is not).
    const uid = Number(process.env.SUDO_UID);
    const gid = Number(process.env.SUDO_GID);
    if (!(uid > 0 && gid >= 0)) throw new Error('run through sudo (SUDO_UID names the unprivileged user)');
    const out = JSON.parse(execFileSync(process.execPath, [child, 'unprivileged'], { uid, gid, encoding: 'utf8' }));
    expect(out).toEqual({ privileged: false, retain: 'kIOReturnNotPrivileged', code: 0xe00002c1 });
    expect(out.code).toBeOSReturn('kIOReturnNotPrivileged');
  });

  macTest('OSBundleRetainCount reads back +1 after retain and the same after release', async () => {
    const before = await sampleRetainCount();
    const kb = await open({ backend: 'iokit' });
    try {
      expect(await kb.retain()).toBeOSReturn('kOSReturnSuccess');
      await expect(kextRef(kb, sample)).toHaveRetainCount(before + 1);
      await expect(kextRef(kb, sample)).not.toBeUnloadable(); // the failure would list the blockers
      expect(await kb.release()).toBeOSReturn('kOSReturnSuccess');
      await expect(kextRef(kb, sample)).toHaveRetainCount(before);
    } finally {
      await kb.close();
    }
  });

  macTest('explain lists this process\'s user clients from the IORegistry (IOUserClientCreator "pid N, name")', async () => {
    const me = { pid: process.pid, process: path.basename(process.execPath).slice(0, 16) };
    const mine = async (kb: Awaited<ReturnType<typeof open>>) =>
      (await kb.explain(sample)).blockers.flatMap((b) => (b.kind === 'userClients' ? b.clients : [])).filter((c) => c.pid === process.pid);
    const a = await open({ backend: 'iokit' });
    const b = await open({ backend: 'iokit' });
    try {
      expect(await mine(a)).toEqual([me, me]);
      await b.close();
      expect(await mine(a)).toEqual([me]);
    } finally {
      await b.close();
      await a.close();
    }
  });

  macTest('kmutil refuses to unload the sample kext while it is retained, and terminates nothing', async () => {
    const kb = await open({ backend: 'iokit' });
    const { loadTag } = await kb.info();
    expect(await kb.retain()).toBeOSReturn(0);
    try {
      expect(() => execFileSync('kmutil', ['unload', '-b', sample], { stdio: 'pipe' })).toThrow();
      await expect(kextRef(kb, sample)).toBeLoaded();
      // Without the retain kmutil would first terminate the service and this client: the
      // connection would then answer kIOReturnNotOpen and hold nothing.
      expect(await kb.held()).toEqual([{ loadTag, count: 1 }]);
    } finally {
      await kb.release();
      await kb.close();
    }
  });

  macTest('a child that retains and is killed leaves nothing retained (clientDied releases its ledger)', async () => {
    const before = await sampleRetainCount();
    const proc = spawn(process.execPath, [child, 'retain-and-wait'], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      proc.stdout!.on('data', (d) => String(d).includes('READY') && resolve());
      proc.on('exit', (code) => reject(new Error(`child exited early (${code})`)));
    });
    expect(await sampleRetainCount()).toBe(before + 3);
    proc.kill('SIGKILL');
    expect(await until(async () => (await sampleRetainCount()) === before, 10_000)).toBe(true);
    const kb = await open({ backend: 'iokit' });
    try {
      await expect(kextRef(kb, sample)).toHaveRetainCount(before);
    } finally {
      await kb.close();
    }
  });
});
