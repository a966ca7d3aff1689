// kextbridge load <path> / kextbridge unload <target>: kb.loadBundle / kb.unloadKext.
import { errorDocument, EXIT, Globals, Io, parseTarget, printJson } from './common';
import { connectForLifecycle, failureError, parseDuration } from './lifecycle-common';

export async function load(bundlePath: string, opts: { timeout: string }, globals: Globals, io: Io): Promise<number> {
  const timeout = parseDuration('--timeout', opts.timeout);
  const kb = await connectForLifecycle(globals, io);
  let r;
  try {
    r = await kb.loadBundle(bundlePath, { timeout });
  } finally {
    await kb.close();
  }
  const body = { backend: kb.backend, result: r };
  if (!r.ok) {
    const err = failureError('load', r);
    if (globals.json) printJson(io, errorDocument(err, body));
    io.stderr.write(`kextbridge load: ${r.name}${r.code !== null ? ` (0x${r.code.toString(16).toUpperCase()})` : ''}: ${r.message}\nnext: ${r.nextStep}\n`);
    return err.exitCode;
  }
  if (globals.json) printJson(io, { schemaVersion: 1, ok: true, ...body });
  else io.stdout.write(`${r.bundleId} (${r.version}) ${r.alreadyLoaded ? 'was already loaded' : 'loaded'}: tag ${r.loadTag}${r.started ? ', started' : ''}\n`);
  return EXIT.ok;
}

export async function unload(target: string, opts: { timeout: string }, globals: Globals, io: Io): Promise<number> {
  const t = parseTarget(target);
  const timeout = parseDuration('--timeout', opts.timeout);
  const kb = await connectForLifecycle(globals, io);
  let r;
  try {
    r = await kb.unloadKext(t, { timeout });
  } finally {
    await kb.close();
  }
  const body = { backend: kb.backend, result: r };
  if (!r.ok) {
    const err = failureError('unload', r);
    if (globals.json) printJson(io, errorDocument(err, body));
    io.stderr.write(`kextbridge unload: ${r.name}${r.code !== null ? ` (0x${r.code.toString(16).toUpperCase()})` : ''}: ${r.message}\nnext: ${r.nextStep}\n`);
    return err.exitCode;
  }
  if (globals.json) printJson(io, { schemaVersion: 1, ok: true, ...body });
  else io.stdout.write(`${r.bundleId} (tag ${r.loadTag}) unloaded${r.attempts > 1 ? ` after ${r.attempts} attempts` : ''}\n`);
  return EXIT.ok;
}
