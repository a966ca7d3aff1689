// What every verb shares: exit codes, the error they turn into, output, and connecting.
// Loaded by the verbs, never by main.ts up front, so `decode` never pays for the addon.
import type { KextBridge, LoadedKext } from '../index';

/** Exit codes (sysexits where one fits); docs/cli.md lists them. */
export const EXIT = {
  ok: 0,
  notFound: 1,
  notPrivileged: 2,
  refused: 3,
  usage: 64,
  unavailable: 69,
  internal: 70,
  timeout: 75,
} as const;

export type Backend = 'auto' | 'sim' | 'iokit';

export interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream;
  env: NodeJS.ProcessEnv;
}

export interface Globals {
  backend: Backend;
  json: boolean;
}

/**
 * A failure with its exit code. `name` is the kernel's code name when a kernel or user-client
 * code applies (kOSKextReturnNotFound, kIOReturnNotPrivileged), else the CLI's own category
 * (UsageError, NotFound, Unavailable, InternalError); `code` is that code's number, or null.
 */
export class CliError extends Error {
  constructor(
    readonly exitCode: number,
    name: string,
    message: string,
    readonly code: number | null = null,
  ) {
    super(message);
    this.name = name;
  }
}

export const usage = (message: string) => new CliError(EXIT.usage, 'UsageError', message);

/** The JSON error document every verb prints on failure with --json. */
export function errorDocument(e: CliError, extra: object = {}): object {
  return { schemaVersion: 1, ok: false, ...extra, error: { name: e.name, code: e.code, message: e.message, exitCode: e.exitCode } };
}

export function printJson(io: Io, doc: object): void {
  io.stdout.write(JSON.stringify(doc, null, 2) + '\n');
}

/** Colour only for a terminal, and never with NO_COLOR set (https://no-color.org). */
export function colours(io: Io) {
  const on = io.stdout.isTTY === true && !io.env.NO_COLOR;
  const wrap = (open: number, close: number) => (s: string) => (on ? `\x1b[${open}m${s}\x1b[${close}m` : s);
  return { bold: wrap(1, 22), red: wrap(31, 39), green: wrap(32, 39), dim: wrap(2, 22) };
}

/**
 * Opens a connection for a verb. KEXTBRIDGE_SIM_UNPRIVILEGED=1 is a test control of the sim
 * backend only (there is no other way to be an unprivileged client of a simulated kernel): it
 * forces the sim and opens as a non-administrator. Any failure to open is "unavailable".
 */
export async function connect(globals: Globals, io: Io): Promise<KextBridge> {
  const { open } = await import('../index');
  const unprivileged = io.env.KEXTBRIDGE_SIM_UNPRIVILEGED === '1';
  if (unprivileged && globals.backend === 'iokit')
    throw usage('KEXTBRIDGE_SIM_UNPRIVILEGED is a sim-only test control; it cannot be combined with --backend iokit');
  try {
    return await open(unprivileged ? { backend: 'sim', privileged: false } : { backend: globals.backend });
  } catch (e) {
    throw new CliError(EXIT.unavailable, 'Unavailable', (e as Error).message, typeof (e as { code?: unknown }).code === 'number' ? (e as { code: number }).code : null);
  }
}

/** A load tag (decimal) or a bundle id; anything number-like that is not a valid tag is a usage error. */
export function parseTarget(arg: string): number | string {
  if (/^[0-9]+$/.test(arg)) {
    const n = Number(arg);
    if (n > 0xffffffff) throw usage(`load tag ${clip(arg)} is out of range (0…4294967295)`);
    return n;
  }
  if (/^[-+0-9.]/.test(arg) || arg === '') throw usage(`${JSON.stringify(clip(arg))} is neither a load tag (a decimal number) nor a bundle id`);
  return arg;
}

export interface Resolved {
  loadTag: number;
  /** The bundle id when known (always for a bundle-id target; from the table for a tag). */
  bundleId: string | null;
}

/** Resolves targets against the loaded-kext table: a bundle id that is not loaded is exit 1. */
export async function resolveTargets(kb: KextBridge, targets: (number | string)[]): Promise<Resolved[]> {
  const kexts: LoadedKext[] = await kb.loadedKexts();
  return targets.map((t) => {
    if (typeof t === 'number') return { loadTag: t, bundleId: kexts.find((k) => k.loadTag === t)?.bundleId ?? null };
    const k = kexts.find((x) => x.bundleId === t);
    if (!k) throw new CliError(EXIT.notFound, 'NotFound', `no loaded kext has the bundle id ${JSON.stringify(clip(t))}`);
    return { loadTag: k.loadTag, bundleId: k.bundleId };
  });
}

/** The exit code for a kernel or user-client refusal, by its name. */
export function exitForRefusal(name: string): number {
  if (name === 'kOSKextReturnNotFound') return EXIT.notFound;
  if (name === 'kIOReturnNotPrivileged' || name === 'kOSKextReturnNotPrivileged') return EXIT.notPrivileged;
  return EXIT.refused;
}

/** User input quoted in a message: at most ~100 characters. */
export function clip(s: string): string {
  return s.length > 100 ? s.slice(0, 100) + '…' : s;
}

export const label = (r: Resolved) => (r.bundleId ? `${r.bundleId} (tag ${r.loadTag})` : `tag ${r.loadTag}`);

/**
 * A --timeout: `90s`, `1500ms`, `2m`, or a bare number of seconds, at most setTimeout's
 * 2^31 − 1 ms. 0 only where the verb gives it a meaning (wait: look once).
 */
export function parseDuration(s: string, { allowZero = false } = {}): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m)?$/.exec(s);
  if (!m) throw usage(`--timeout ${JSON.stringify(clip(s))} is not a duration (90s, 1500ms, 2m, or seconds)`);
  const ms = Math.round(Number(m[1]) * ({ ms: 1, s: 1000, m: 60_000 }[m[2] ?? 's'] as number));
  if (ms > 0x7fffffff) throw usage(`--timeout ${clip(s)} is too long (at most 2147483647ms, about 24.8 days)`);
  if (ms === 0 && !allowZero) throw usage(`--timeout must be more than 0, got ${clip(s)}`);
  return ms;
}
