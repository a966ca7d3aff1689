// doctor(): can kextbridge work here, and if not, what to do about it. Every outside fact
// (platform, uid, commands it runs, files it looks for, how it connects) is injectable, so
// the Mac paths are tested on Linux with recorded outputs.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import type { KextBridge, LoadedKext } from './index';

/** One line of the {@link doctor} checklist. */
export interface Check {
  /** Stable identifier: 'platform', 'addon', 'backend', 'root', 'sip', 'bootPolicy', 'sampleKext', 'service', 'clientOpens', 'privileged', 'kextInfoVisible', 'kmutil'. */
  id: string;
  /** false only for a real problem; checks that do not apply here, or could not be read, are ok and `skipped`. */
  ok: boolean;
  /** What was found, in one sentence. */
  detail: string;
  /** What to do when !ok; null otherwise. */
  fix: string | null;
  /** The check does not apply here (a Mac-only check on Linux) or its source could not be read. */
  skipped?: boolean;
}

/** What a command run by {@link DoctorOptions.run} answered. */
export interface RunResult {
  /** The exit status, or null when it was killed or never started. */
  status: number | null;
  /** Its standard output. */
  stdout: string;
  /** Its standard error. */
  stderr: string;
  /** Set when the command could not be started (ENOENT, timeout). */
  error?: Error;
}

/** What {@link doctor} checks and how; every seam defaults to the real machine (tests replace them). */
export interface DoctorOptions {
  /** The backend to check (default 'auto', as open() chooses). Ignored when `open` is given. */
  backend?: 'auto' | 'sim' | 'iokit';
  /** How to connect (default: open({ backend })). */
  open?: () => Promise<KextBridge>;
  /** The platform to check for (default process.platform). */
  platform?: NodeJS.Platform;
  /** The architecture (default process.arch). */
  arch?: string;
  /** The Node version, without the v (default process.versions.node). */
  nodeVersion?: string;
  /** Effective user id (default process.getuid()). */
  uid?: number;
  /** Runs a command without a shell (default: spawnSync, 10 s timeout, no stdin). */
  run?: (command: string, args: string[]) => RunResult;
  /** Whether a file exists (default fs.existsSync). */
  exists?: (path: string) => boolean;
  /** Throws when the native addon cannot be loaded (default: builds a throwaway sim kernel). */
  loadAddon?: () => void;
}

const MIN_NODE = [20, 0]; // package.json engines: what CI tests
const KMUTIL = '/usr/bin/kmutil';

function defaultRun(command: string, args: string[]): RunResult {
  const r = spawnSync(command, args, { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'pipe'] });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', error: r.error };
}

/** Runs every check, in order; never throws for what it finds (a failed check says it). */
export async function doctor(options: DoctorOptions = {}): Promise<Check[]> {
  const lib = await import('./index');
  const platform = options.platform ?? process.platform;
  const arch = options.arch ?? process.arch;
  const nodeVersion = options.nodeVersion ?? process.versions.node;
  const uid = options.uid ?? process.getuid?.() ?? -1;
  const run = options.run ?? defaultRun;
  const exists = options.exists ?? fs.existsSync;
  const backend = options.backend ?? 'auto';
  const openIt = options.open ?? (() => lib.open({ backend }));
  const mac = platform === 'darwin';
  const sample = lib.SAMPLE_KEXT;
  const checks: Check[] = [];
  const pass = (id: string, detail: string) => checks.push({ id, ok: true, detail, fix: null });
  const fail = (id: string, detail: string, fix: string) => checks.push({ id, ok: false, detail, fix });
  const skip = (id: string, detail: string) => checks.push({ id, ok: true, detail, fix: null, skipped: true });
  const notHere = (id: string) => skip(id, `not applicable on ${platform}`);

  const [major, minor] = nodeVersion.split('.').map(Number);
  const nodeOk = major > MIN_NODE[0] || (major === MIN_NODE[0] && minor >= MIN_NODE[1]);
  if (nodeOk) pass('platform', `${platform} ${arch}, Node ${nodeVersion}`);
  else fail('platform', `${platform} ${arch}, Node ${nodeVersion}`, `use Node ${MIN_NODE.join('.')} or newer`);

  let addonOk = true;
  try {
    (options.loadAddon ?? (() => void lib.createSimKernel()))();
    pass('addon', 'the native addon is loaded');
  } catch (e) {
    addonOk = false;
    fail('addon', (e as Error).message, 'npm run build:native (needs python3, make and a C++17 compiler), or reinstall kextbridge');
  }

  let kb: KextBridge | undefined;
  let openError: Error | undefined;
  if (addonOk) {
    try {
      kb = await openIt();
    } catch (e) {
      openError = e as Error;
    }
  }
  try {
    if (kb) pass('backend', `${kb.backend}: ${whyBackend(kb.backend, backend, mac)}`);
    else if (openError) fail('backend', `no backend opened (${backend}): ${openError.message}`, mac ? 'load the sample kext (docs/mac.md), or use --backend sim' : "use the sim backend (--backend sim / open({ backend: 'sim' }))");
    else skip('backend', 'not checked: the addon did not load');

    const iokit = kb?.backend === 'iokit' || (mac && backend === 'iokit');
    if (uid === 0) pass('root', 'running as root');
    else if (!iokit) pass('root', `not root (uid ${uid}); the sim backend does not need it`);
    else fail('root', `not root (uid ${uid}): retain and release need an administrator`, 'run it with sudo');

    if (mac) checkSip(run, pass, fail, skip);
    else notHere('sip');
    if (mac && arch === 'arm64') checkBootPolicy(run, pass, fail, skip);
    else if (mac) skip('bootPolicy', 'Intel Mac: no Apple-silicon boot policy (SIP alone governs kexts)');
    else notHere('bootPolicy');

    let kexts: LoadedKext[] | undefined;
    let kextsError: Error | undefined;
    if (kb) {
      try {
        kexts = await kb.loadedKexts();
      } catch (e) {
        kextsError = e as Error;
      }
    }
    const mine = kexts?.find((k) => k.bundleId === sample.bundleId);
    if (mine?.started) {
      pass('sampleKext', `${sample.bundleId} ${mine.version} loaded and started, load tag ${mine.loadTag}`);
    } else if (mine) {
      fail('sampleKext', `${sample.bundleId} ${mine.version} loaded but not started, load tag ${mine.loadTag}`,
        `its start routine failed: see \`log show --last 5m --predicate 'sender == "${sample.executable}"'\``);
    } else if (kexts) {
      fail('sampleKext', `${sample.bundleId} is not loaded`, mac ? 'npm run build:kext, then load it (docs/mac.md)' : 'the sim always loads it: report a bug');
    } else if (mac && exists(KMUTIL)) {
      // No connection: ask kmutil whether it is loaded at all.
      const r = run(KMUTIL, ['showloaded', '--list-only', '--bundle-identifier', sample.bundleId]);
      if (r.stdout.includes(sample.bundleId)) fail('sampleKext', `${sample.bundleId} is loaded (kmutil showloaded) but no client opened`, 'see the backend and clientOpens checks');
      else fail('sampleKext', `${sample.bundleId} is not loaded (kmutil showloaded)`, 'npm run build:kext, then load it (docs/mac.md)');
    } else {
      skip('sampleKext', 'not checked: no connection');
    }

    const service = mine?.classes.find((c) => c.name === sample.serviceClass);
    const openCode = (openError as { code?: unknown } | undefined)?.code;
    if (!mine && openCode === lib.codeValue('kIOReturnNotFound'))
      fail('service', `no ${sample.serviceClass} matched: opening answered kIOReturnNotFound`, 'check that the sample kext is loaded and started, and its IOKitPersonalities (IOResources) in Info.plist');
    else if (!mine) skip('service', 'not checked: the sample kext is not visible');
    else if (service && service.instances > 0) pass('service', `${sample.serviceClass} matched (${service.instances} instance${service.instances === 1 ? '' : 's'})`);
    else fail('service', `${sample.serviceClass} has no instance: the service did not match or start`, 'check the IOKitPersonalities in the kext\'s Info.plist (IOResources) and `ioreg -c ' + sample.serviceClass + '`');

    let info: Awaited<ReturnType<KextBridge['info']>> | undefined;
    if (kb) {
      try {
        info = await kb.info();
        pass('clientOpens', `a client opened on ${kb.backend}: ${info.identifier} ${info.version}, protocol ${info.protocolVersion}`);
      } catch (e) {
        fail('clientOpens', `opened, but getInfo failed: ${(e as Error).message}`, 'rebuild and reload the kext');
      }
    } else {
      fail('clientOpens', `no client opened${openError ? `: ${openError.message}` : ''}`, mac ? 'load the sample kext (docs/mac.md)' : 'use the sim backend');
    }

    if (!info) skip('privileged', 'not checked: no client');
    else if (info.privileged) pass('privileged', 'this client may retain and release');
    else fail('privileged', 'this client is not privileged: retain and release answer kIOReturnNotPrivileged',
      kb?.backend === 'sim' ? 'unset KEXTBRIDGE_SIM_UNPRIVILEGED, or open with privileged: true' : 'run it as root (sudo)');

    if (kextsError) fail('kextInfoVisible', `the loaded-kext table could not be read: ${kextsError.message}`, 'check that KextManagerCopyLoadedKextInfo is allowed (sandbox, MDM)');
    else if (!kexts) skip('kextInfoVisible', 'not checked: no client');
    else if (kexts.length > 0) pass('kextInfoVisible', `${kexts.length} loaded kexts visible`);
    else fail('kextInfoVisible', 'the loaded-kext table is empty: a policy refusal, not "no kexts" (__kernel__ is always loaded)', 'run outside the sandbox, or allow kext info in the MDM profile');

    if (!mac) notHere('kmutil');
    else if (exists(KMUTIL)) pass('kmutil', `${KMUTIL} present`);
    else fail('kmutil', `${KMUTIL} not found`, 'macOS 11 or later has kmutil; older systems use kextload/kextstat');
  } finally {
    await kb?.close();
  }
  return checks;
}

function whyBackend(chosen: string, asked: string, mac: boolean): string {
  if (asked !== 'auto') return `asked for ${asked}`;
  if (chosen === 'iokit') return 'auto: the sample kext answered';
  return mac ? 'auto: no sample kext answered on this Mac, so the simulator' : 'auto: IOKit is macOS-only, so the simulator';
}

type Report = (id: string, detail: string, fix: string) => void;
type Note = (id: string, detail: string) => void;

/** `csrutil status`: off, or a custom configuration with kext signing off, lets an ad-hoc kext load. */
function checkSip(run: DoctorOptions['run'] & {}, pass: Note, fail: Report, skip: Note): void {
  const r = run('csrutil', ['status']);
  const text = r.stdout + r.stderr;
  const status = /System Integrity Protection status:\s*([a-z]+)/i.exec(text)?.[1]?.toLowerCase();
  if (r.error || !status) return skip('sip', `could not read csrutil status${r.error ? ` (${r.error.message})` : ''}`);
  const kextSigningOff = /Kext Signing:\s*disabled/i.test(text);
  if (status === 'disabled') pass('sip', 'SIP disabled');
  else if (kextSigningOff) pass('sip', `SIP ${status}, kext signing disabled`);
  else fail('sip', `SIP ${status}: an ad-hoc signed kext will not load`, 'boot to Recovery and run `csrutil disable` (Intel: `csrutil enable --without kext` also works)');
}

/**
 * Apple silicon: third-party kexts need Reduced Security with user-managed kexts (`bputil -k`).
 * `bputil -d` prints the LocalPolicy where it may (often only as root); its wording is matched
 * loosely, and anything unreadable is reported as skipped rather than guessed.
 */
function checkBootPolicy(run: DoctorOptions['run'] & {}, pass: Note, fail: Report, skip: Note): void {
  const r = run('bputil', ['-d']);
  const text = r.stdout + r.stderr;
  const mode = /Security Mode:\s*([A-Za-z]+)/.exec(text)?.[1];
  const kexts = /3rd Party Kexts[^:\n]*:\s*([A-Za-z]+)/.exec(text)?.[1];
  if (r.error || r.status !== 0 || (!mode && !kexts))
    return skip('bootPolicy', `boot policy not readable here (bputil -d${r.error ? `: ${r.error.message}` : r.status !== 0 ? ` exited ${r.status}` : ': no policy lines'}); try it with sudo`);
  const detail = [mode && `security mode ${mode}`, kexts && `third-party kexts ${kexts}`].filter(Boolean).join(', ');
  if (/^enabled$/i.test(kexts ?? '') || (!kexts && /^(reduced|permissive)$/i.test(mode ?? ''))) pass('bootPolicy', detail);
  else fail('bootPolicy', detail, 'Startup Security Utility: Reduced Security and "Allow user management of kernel extensions" (or `bputil -k` from recoveryOS)');
}
