// kextbridge load <bundle-id>: kb.loadKext (OSKextLoadKextWithIdentifier), and for a deferred
// load (the kernel asked kernelmanagerd) kb.waitForLoad up to --timeout unless --no-wait.
import type { KextBridge, LoadKextResult, WaitResult } from '../index';
import { toHex } from '../codes';
import { isWellFormed } from '../validate';
import { CliError, connect, errorDocument, EXIT, Globals, Io, parseDuration, printJson, usage } from './common';

/** A load argument names a bundle on disk when it has a '/' or ends in '.kext'; else it is a bundle id. */
export function isBundlePath(arg: string): boolean {
  return arg.includes('/') || /\.kext\/?$/i.test(arg);
}

/** What `load <bundle-id> --json` prints as `result` on success. */
export interface LoadIdDocument {
  bundleId: string;
  /** Its load tag; null only with --no-wait after a deferral. */
  loadTag: number | null;
  /** Whether it is loaded now. */
  loaded: boolean;
  /** It was loaded before this command ran. */
  alreadyLoaded: boolean;
  /** The kernel answered kOSKextReturnDeferred (kernelmanagerd loads it, if it can). */
  deferred: boolean;
  /** Deferred and waited for: how long (virtual ms on the sim). */
  waitedMs?: number;
  /** OSKextLoadKextWithIdentifier's answer. */
  name: string;
  code: number;
}

export async function loadById(bundleId: string, opts: { timeout: string; wait: boolean }, globals: Globals, io: Io): Promise<number> {
  const timeout = parseDuration(opts.timeout);
  if (bundleId === '' || bundleId.includes('\0') || Buffer.byteLength(bundleId, 'utf8') > 63 || !isWellFormed(bundleId))
    throw usage(`not a bundle id (1 to 63 bytes, no NUL) nor a bundle path (with a '/' or ending in .kext): ${JSON.stringify(bundleId.slice(0, 100))}`);
  const kb = await connect(globals, io);
  let doc: LoadIdDocument;
  let failure: { err: CliError; result: LoadKextResult | WaitResult } | undefined;
  try {
    ({ doc, failure } = await run(kb, bundleId, timeout, opts.wait));
  } finally {
    await kb.close();
  }
  if (failure) {
    if (globals.json) printJson(io, errorDocument(failure.err, { backend: kb.backend, result: failure.result }));
    io.stderr.write(`kextbridge load: ${failure.err.message}\n`);
    return failure.err.exitCode;
  }
  if (globals.json) printJson(io, { schemaVersion: 1, ok: true, backend: kb.backend, result: doc });
  else
    io.stdout.write(
      doc.loaded
        ? `${bundleId} ${doc.alreadyLoaded ? 'was already loaded' : doc.deferred ? `loaded by kernelmanagerd after ${doc.waitedMs} ms` : 'loaded'}: tag ${doc.loadTag}\n`
        : `${bundleId}: load requested from user space (kOSKextReturnDeferred); not waiting (--no-wait)\n`,
    );
  return EXIT.ok;
}

async function run(kb: KextBridge, bundleId: string, timeout: number, wait: boolean): Promise<{ doc: LoadIdDocument; failure?: { err: CliError; result: LoadKextResult | WaitResult } }> {
  const before = (await kb.loadedKexts()).some((k) => k.bundleId === bundleId);
  const r = await kb.loadKext(bundleId);
  const base = { bundleId, alreadyLoaded: before, name: r.name, code: r.code };
  if (r.ok) return { doc: { ...base, loadTag: r.loadTag, loaded: r.loadTag !== null, deferred: false } };
  if (r.name !== 'kOSKextReturnDeferred') {
    const exit = r.name === 'kIOReturnNotPrivileged' ? EXIT.notPrivileged : r.name === 'kIOReturnBadArgument' ? EXIT.usage : EXIT.refused;
    return { doc: { ...base, loadTag: null, loaded: false, deferred: false }, failure: { err: new CliError(exit, r.name, `${bundleId}: ${r.name} (${toHex(r.code)}): ${r.message}`, r.code), result: r } };
  }
  if (!wait) return { doc: { ...base, loadTag: null, loaded: false, deferred: true } };
  const w = await kb.waitForLoad(bundleId, { timeout });
  if (!w.ok)
    return {
      doc: { ...base, loadTag: null, loaded: false, deferred: true, waitedMs: w.waitedMs },
      failure: { err: new CliError(EXIT.timeout, 'Timeout', `${bundleId}: the kernel deferred the load to user space (kOSKextReturnDeferred) and it was not loaded within ${timeout} ms: is the kext installed where kernelmanagerd looks?`), result: w },
    };
  const loadTag = (await kb.loadedKexts()).find((k) => k.bundleId === bundleId)?.loadTag ?? null;
  return { doc: { ...base, loadTag, loaded: loadTag !== null, deferred: true, waitedMs: w.waitedMs } };
}
