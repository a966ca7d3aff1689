// kextbridge explain: why a kext will not unload (or is not loaded).
import type { Explanation } from '../index';
import { CliError, connect, errorDocument, EXIT, Globals, Io, printJson } from './common';

export function notLoaded(target: number | string): CliError {
  return new CliError(EXIT.notFound, 'NotFound', typeof target === 'number' ? `no loaded kext has the load tag ${target}` : `no loaded kext has the bundle id ${JSON.stringify(target)}`);
}

export function formatExplanation(e: Explanation, describeBlocker: (b: Explanation['blockers'][number]) => string): string {
  const lines = [`${e.bundleId} (tag ${e.loadTag}): loaded, ${e.started ? 'started' : 'not started'}`];
  lines.push(`unloadable: ${e.unloadable ? 'yes' : 'no'}`);
  const a = e.autounload;
  lines.push(`autounload: ${a.enabled === null ? 'unknown (the loaded-kext table does not say)' : a.enabled ? 'on' : 'off'}` +
    (a.nextScanInMs !== undefined ? `, next scan in ${a.nextScanInMs} ms` : a.enabled ? ', no scan armed' : ''));
  if (e.blockers.length) lines.push('blockers:', ...e.blockers.map((b) => `  ${describeBlocker(b)}`));
  return lines.join('\n') + '\n';
}

export async function explain(target: number | string, globals: Globals, io: Io): Promise<number> {
  const { describeBlocker } = await import('../workflow/explain');
  const kb = await connect(globals, io);
  let e: Explanation;
  try {
    e = await kb.explain(target);
  } finally {
    await kb.close();
  }
  const failure = e.loaded ? null : notLoaded(target);
  if (globals.json) printJson(io, failure ? errorDocument(failure, { backend: kb.backend, explanation: e }) : { schemaVersion: 1, ok: true, backend: kb.backend, explanation: e });
  else if (!failure) io.stdout.write(formatExplanation(e, describeBlocker));
  if (failure) io.stderr.write(`kextbridge explain: ${failure.message}\n`);
  return failure?.exitCode ?? EXIT.ok;
}
