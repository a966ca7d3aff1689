// kextbridge list: kextstat's table from the loaded-kext table.
import type { LoadedKext } from '../index';
import { CliError, connect, errorDocument, EXIT, Globals, Io, printJson } from './common';

export interface ListOptions {
  bundleId: string[];
  /** false with -k. */
  kernelComponents: boolean;
  listOnly?: boolean;
}

/**
 * kextstat's -k leaves out kernel components (OSKernelResource). The loaded-kext table this
 * library reads does not carry that key, so this is the rule it stands for: __kernel__ and the
 * com.apple.kpi.* interface kexts.
 */
const isKernelComponent = (k: LoadedKext) => k.bundleId === '__kernel__' || k.bundleId.startsWith('com.apple.kpi.');

// kextstat's column layout on a 64-bit kernel. Address, Size and Wired are not in the
// loaded-kext table read here; kextstat prints ???? for a value it does not have, and so do we.
const HEADER = 'Index Refs Address            Size       Wired      Name (Version) UUID <Linked Against>';
const UNKNOWN = '????';

export function formatRow(k: LoadedKext): string {
  const deps = [...k.dependencies].sort((a, b) => b - a);
  return [
    String(k.loadTag).padStart(5),
    String(k.retainCount).padStart(4),
    UNKNOWN.padEnd(18),
    UNKNOWN.padEnd(10),
    UNKNOWN.padEnd(10),
    `${k.bundleId} (${k.version})`,
  ].join(' ') + (k.uuid ? ` ${k.uuid}` : '') + (deps.length ? ` <${deps.join(' ')}>` : '');
}

export async function list(opts: ListOptions, globals: Globals, io: Io): Promise<number> {
  const kb = await connect(globals, io);
  let all: LoadedKext[];
  try {
    all = await kb.loadedKexts();
  } finally {
    await kb.close();
  }
  const wanted = new Set(opts.bundleId);
  const kexts = all
    .filter((k) => (wanted.size === 0 || wanted.has(k.bundleId)) && (opts.kernelComponents || !isKernelComponent(k) || wanted.has(k.bundleId)))
    .sort((a, b) => a.loadTag - b.loadTag);
  const missing = opts.bundleId.filter((id) => !all.some((k) => k.bundleId === id));

  const failure = missing.length
    ? new CliError(EXIT.notFound, 'NotFound', `not loaded: ${missing.join(', ')}`)
    : all.length === 0
      ? new CliError(EXIT.unavailable, 'Unavailable', 'the loaded-kext table came back empty: a policy refusal, not "no kexts" (__kernel__ is always loaded)')
      : null;

  if (globals.json) {
    const body = { backend: kb.backend, kexts, ...(missing.length ? { notFound: missing } : {}) };
    printJson(io, failure ? errorDocument(failure, body) : { schemaVersion: 1, ok: true, ...body });
  } else {
    if (!opts.listOnly) io.stdout.write(HEADER + '\n');
    for (const k of kexts) io.stdout.write(formatRow(k) + '\n');
  }
  if (failure) io.stderr.write(`kextbridge list: ${failure.message}\n`);
  return failure?.exitCode ?? EXIT.ok;
}
