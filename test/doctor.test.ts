// doctor(): every check, on Linux for real and on a "Mac" made of recorded command outputs.
import { createSimKernel, doctor, open, SAMPLE_KEXT } from '../lib';
import type { Check, DoctorOptions, RunResult } from '../lib';

const byId = (checks: Check[]) => Object.fromEntries(checks.map((c) => [c.id, c]));
const IDS = ['platform', 'addon', 'backend', 'root', 'sip', 'bootPolicy', 'sampleKext', 'service', 'clientOpens', 'privileged', 'kextInfoVisible', 'kmutil'];

/** A fake command runner: answers by command name, records what was run. */
function runner(answers: Record<string, Partial<RunResult>>) {
  const ran: string[] = [];
  const run = (cmd: string, args: string[]): RunResult => {
    ran.push([cmd, ...args].join(' '));
    const a = answers[cmd] ?? { error: Object.assign(new Error(`spawnSync ${cmd} ENOENT`), { code: 'ENOENT' }) };
    return { status: 0, stdout: '', stderr: '', ...a };
  };
  return { run, ran };
}

const SIP_OFF = { stdout: 'System Integrity Protection status: disabled.\n' };
const SIP_ON = { stdout: 'System Integrity Protection status: enabled.\n' };
const SIP_CUSTOM = { stdout: 'System Integrity Protection status: unknown (Custom Configuration).\n\nConfiguration:\n\tApple Internal: disabled\n\tKext Signing: disabled\n\tFilesystem Protections: enabled\n' };

/** A Mac as seen by doctor: the sim stands in for the kext (open is injected). */
function mac(extra: Partial<DoctorOptions> = {}, answers: Record<string, Partial<RunResult>> = { csrutil: SIP_OFF }) {
  const kernel = createSimKernel();
  const r = runner(answers);
  return { kernel, ran: r.ran, options: { platform: 'darwin', arch: 'x86_64', uid: 0, run: r.run, exists: () => true, open: () => open({ backend: 'sim', kernel }), ...extra } as DoctorOptions };
}

test('on Linux with the sim: every check passes, and the Mac-only ones say so instead of failing', async () => {
  const kernel = createSimKernel();
  const r = runner({});
  const checks = await doctor({ platform: 'linux', arch: 'x64', uid: 1000, run: r.run, exists: () => false, open: () => open({ backend: 'sim', kernel }) });
  expect(checks.map((c) => c.id)).toEqual(IDS);
  expect(checks.filter((c) => !c.ok)).toEqual([]);
  const c = byId(checks);
  for (const id of ['sip', 'bootPolicy', 'kmutil']) expect(c[id]).toEqual({ id, ok: true, detail: 'not applicable on linux', fix: null, skipped: true });
  expect(c.root.detail).toBe('not root (uid 1000); the sim backend does not need it');
  expect(c.sampleKext.detail).toBe(`${SAMPLE_KEXT.bundleId} 0.1.0 loaded and started, load tag ${kernel.sampleLoadTag}`);
  expect(c.service.detail).toBe(`${SAMPLE_KEXT.serviceClass} matched (1 instance)`);
  expect(c.kextInfoVisible.detail).toMatch(/^\d+ loaded kexts visible$/);
  expect(r.ran).toEqual([]); // nothing Mac-only was run
  for (const x of checks) expect(x.fix).toBeNull();
});

test('the default options run for real here (no injection) and find nothing wrong on Linux', async () => {
  if (process.platform !== 'linux') return;
  const checks = await doctor({ backend: 'sim' });
  expect(checks.filter((c) => !c.ok)).toEqual([]);
  expect(byId(checks).platform.detail).toContain(`Node ${process.versions.node}`);
  expect(byId(checks).backend.detail).toBe('sim: asked for sim');
});

test('auto on Linux says why it chose the sim', async () => {
  if (process.platform === 'darwin') return;
  expect(byId(await doctor()).backend.detail).toBe('sim: auto: IOKit is macOS-only, so the simulator');
});

test.each([
  [SIP_OFF, true, 'SIP disabled'],
  [SIP_CUSTOM, true, 'SIP unknown, kext signing disabled'],
  [SIP_ON, false, 'SIP enabled: an ad-hoc signed kext will not load'],
])('SIP from csrutil status (%#)', async (answer, ok, detail) => {
  const m = mac({}, { csrutil: answer });
  const sip = byId(await doctor(m.options)).sip;
  expect(sip).toMatchObject({ ok, detail });
  expect(sip.fix === null).toBe(ok);
  expect(m.ran).toContain('csrutil status');
});

test('SIP that cannot be read is skipped, not guessed', async () => {
  const m = mac({}, {});
  expect(byId(await doctor(m.options)).sip).toMatchObject({ ok: true, skipped: true, detail: expect.stringMatching(/^could not read csrutil status/) });
});

test.each([
  [{ stdout: 'Security Mode: Reduced\n3rd Party Kexts Status: Enabled\n' }, true, 'security mode Reduced, third-party kexts Enabled'],
  [{ stdout: 'Security Mode: Full\n3rd Party Kexts Status: Disabled\n' }, false, 'security mode Full, third-party kexts Disabled'],
  [{ stdout: 'Security Mode: Permissive\n' }, true, 'security mode Permissive'],
])('Apple-silicon boot policy from bputil -d (%#)', async (answer, ok, detail) => {
  const m = mac({ arch: 'arm64' }, { csrutil: SIP_OFF, bputil: answer });
  expect(byId(await doctor(m.options)).bootPolicy).toMatchObject({ ok, detail });
  expect(m.ran).toContain('bputil -d');
});

test('a boot policy that is not readable (not root, bputil fails) is skipped with the reason', async () => {
  const m = mac({ arch: 'arm64', uid: 501 }, { csrutil: SIP_OFF, bputil: { status: 1, stderr: 'This tool needs to be run as root' } });
  expect(byId(await doctor(m.options)).bootPolicy).toMatchObject({ ok: true, skipped: true, detail: expect.stringContaining('bputil -d exited 1') });
  const intel = mac();
  expect(byId(await doctor(intel.options)).bootPolicy).toMatchObject({ ok: true, skipped: true, detail: expect.stringMatching(/^Intel Mac/) });
  expect(intel.ran).not.toContain('bputil -d');
});

test('not root on the iokit backend fails with a fix; on the sim it is fine', async () => {
  const m = mac({ uid: 501, backend: 'iokit' });
  expect(byId(await doctor(m.options)).root).toMatchObject({ ok: false, fix: 'run it with sudo' });
  expect(byId(await doctor({ ...mac().options, uid: 501 })).root.ok).toBe(true);
});

test('kmutil missing on a Mac fails; present passes', async () => {
  expect(byId(await doctor({ ...mac().options, exists: () => false })).kmutil).toMatchObject({ ok: false, detail: '/usr/bin/kmutil not found' });
  expect(byId(await doctor(mac().options)).kmutil).toMatchObject({ ok: true, detail: '/usr/bin/kmutil present' });
});

test('no connection on a Mac: the backend, client and sample checks fail with fixes, kmutil showloaded is asked', async () => {
  const refused = () => Promise.reject(new Error('open: kIOReturnNotFound (0xE00002F0): no org_kextbridge_SampleService in the IORegistry'));
  const m = mac({ open: refused }, { csrutil: SIP_OFF, '/usr/bin/kmutil': { stdout: '' } });
  const c = byId(await doctor(m.options));
  expect(c.backend).toMatchObject({ ok: false, detail: expect.stringContaining('no org_kextbridge_SampleService'), fix: expect.stringContaining('docs/mac.md') });
  expect(c.clientOpens.ok).toBe(false);
  expect(c.sampleKext).toMatchObject({ ok: false, detail: `${SAMPLE_KEXT.bundleId} is not loaded (kmutil showloaded)` });
  expect(m.ran).toContain(`/usr/bin/kmutil showloaded --list-only --bundle-identifier ${SAMPLE_KEXT.bundleId}`);
  for (const id of ['service', 'privileged', 'kextInfoVisible']) expect(c[id]).toMatchObject({ ok: true, skipped: true });

  const loaded = mac({ open: refused }, { csrutil: SIP_OFF, '/usr/bin/kmutil': { stdout: `    8    0 0xffffff7f83496000 0x4000 0x4000 ${SAMPLE_KEXT.bundleId} (0.1.0) <4 3>\n` } });
  expect(byId(await doctor(loaded.options)).sampleKext.detail).toBe(`${SAMPLE_KEXT.bundleId} is loaded (kmutil showloaded) but no client opened`);
});

test('an unprivileged client fails the privileged check only', async () => {
  const kernel = createSimKernel();
  const checks = await doctor({ platform: 'linux', open: () => open({ backend: 'sim', kernel, privileged: false }) });
  expect(checks.filter((c) => !c.ok).map((c) => c.id)).toEqual(['privileged']);
});

test('no matched service: opening answers kIOReturnNotFound, and the service check says so', async () => {
  const kernel = createSimKernel();
  kernel.setInstances(kernel.sampleLoadTag, SAMPLE_KEXT.serviceClass, 0);
  const c = byId(await doctor({ platform: 'linux', open: () => open({ backend: 'sim', kernel }) }));
  expect(c.service).toMatchObject({ ok: false, detail: `no ${SAMPLE_KEXT.serviceClass} matched: opening answered kIOReturnNotFound` });
  expect(c.backend.ok).toBe(false);
  expect(c.clientOpens.ok).toBe(false);
});

test('an empty loaded-kext table is a policy refusal, not "no kexts"', async () => {
  const kernel = createSimKernel();
  const fakeOpen = async () => {
    const kb = await open({ backend: 'sim', kernel });
    return Object.assign(Object.create(Object.getPrototypeOf(kb)), kb, { loadedKexts: async () => [], info: () => kb.info(), close: () => kb.close() });
  };
  const c = byId(await doctor({ platform: 'linux', open: fakeOpen }));
  expect(c.kextInfoVisible).toMatchObject({ ok: false, detail: expect.stringContaining('policy refusal') });
  expect(c.sampleKext.ok).toBe(false);
});

test('an addon that does not load fails first, and nothing that needs it is attempted', async () => {
  let opened = false;
  const c = byId(await doctor({ platform: 'linux', loadAddon: () => { throw new Error('kextbridge: the native addon could not be loaded'); }, open: async () => { opened = true; throw new Error('no'); } }));
  expect(c.addon).toMatchObject({ ok: false, fix: expect.stringContaining('build:native') });
  expect(opened).toBe(false);
  expect(c.backend).toMatchObject({ ok: true, skipped: true });
});

test('an old Node fails the platform check', async () => {
  const kernel = createSimKernel();
  // engines: >=20 (the versions CI runs)
  expect(byId(await doctor({ nodeVersion: '18.20.4', platform: 'linux', open: () => open({ backend: 'sim', kernel }) })).platform.ok).toBe(false);
  expect(byId(await doctor({ nodeVersion: '20.0.0', platform: 'linux', open: () => open({ backend: 'sim', kernel }) })).platform.ok).toBe(true);
});

test('doctor closes the connection it opened', async () => {
  const kernel = createSimKernel();
  let kb: Awaited<ReturnType<typeof open>> | undefined;
  await doctor({ platform: 'linux', open: async () => (kb = await open({ backend: 'sim', kernel })) });
  expect(kb!.closed).toBe(true);
});
