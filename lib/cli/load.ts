// kextbridge load <path> / kextbridge unload <target>: kb.loadBundle / kb.unloadKext.
import type { KextBridge, LoadResult, UnloadResult } from '../index';
import { toHex } from '../codes';
import { errorDocument, EXIT, Globals, Io, parseDuration, parseTarget, printJson } from './common';
import { connectForLifecycle, failureError } from './lifecycle-common';

export function load(bundlePath: string, opts: { timeout: string }, globals: Globals, io: Io): Promise<number> {
  return run('load', opts, globals, io, (kb, timeout) => kb.loadBundle(bundlePath, { timeout }), (r) =>
    `${r.bundleId} (${r.version}) ${r.alreadyLoaded ? 'was already loaded' : 'loaded'}: tag ${r.loadTag}${r.started ? ', started' : ''}`);
}

export function unload(target: string, opts: { timeout: string }, globals: Globals, io: Io): Promise<number> {
  const t = parseTarget(target);
  return run('unload', opts, globals, io, (kb, timeout) => kb.unloadKext(t, { timeout }), (r) =>
    `${r.bundleId} (tag ${r.loadTag}) unloaded${r.attempts > 1 ? ` after ${r.attempts} attempts` : ''}`);
}

/** One call on a fresh connection, closed whatever happens; the answer as a line or a document. */
async function run<R extends LoadResult | UnloadResult>(
  verb: 'load' | 'unload',
  opts: { timeout: string },
  globals: Globals,
  io: Io,
  call: (kb: KextBridge, timeout: number) => Promise<R>,
  success: (r: Extract<R, { ok: true }>) => string,
): Promise<number> {
  const timeout = parseDuration(opts.timeout);
  const kb = await connectForLifecycle(globals, io);
  let r: R;
  try {
    r = await call(kb, timeout);
  } finally {
    await kb.close();
  }
  const body = { backend: kb.backend, result: r };
  if (!r.ok) {
    const err = failureError(verb, r);
    if (globals.json) printJson(io, errorDocument(err, body));
    io.stderr.write(`kextbridge ${verb}: ${r.name}${r.code !== null ? ` (${toHex(r.code)})` : ''}: ${r.message}\nnext: ${r.nextStep}\n`);
    return err.exitCode;
  }
  if (globals.json) printJson(io, { schemaVersion: 1, ok: true, ...body });
  else io.stdout.write(success(r as Extract<R, { ok: true }>) + '\n');
  return EXIT.ok;
}
