// kextbridge wait: until a kext is unloaded, loaded, or at a retain count; exit 75 on timeout.
import type { KextBridge, WaitResult } from '../index';
import { CliError, clip, connect, errorDocument, EXIT, Globals, Io, parseDuration, printJson, usage } from './common';

export type Condition = { unloaded: true } | { loaded: true } | { refs: number };

export interface WaitCliOptions {
  unloaded?: boolean;
  loaded?: boolean;
  refs?: string;
  timeout: string;
}

export function parseCondition(o: WaitCliOptions): Condition {
  const given = [o.unloaded && 'unloaded', o.loaded && 'loaded', o.refs !== undefined && 'refs'].filter(Boolean);
  if (given.length !== 1) throw usage('give exactly one of --unloaded, --loaded or --refs N');
  if (o.unloaded) return { unloaded: true };
  if (o.loaded) return { loaded: true };
  if (!/^[0-9]+$/.test(o.refs!) || Number(o.refs) > 0xffffffff) throw usage(`--refs ${JSON.stringify(clip(o.refs!))} is not a retain count (0…4294967295)`);
  return { refs: Number(o.refs) };
}

const describe = (c: Condition) => ('refs' in c ? `retain count ${c.refs}` : 'unloaded' in c ? 'unloaded' : 'loaded');

export async function wait(target: number | string, opts: WaitCliOptions, globals: Globals, io: Io): Promise<number> {
  const condition = parseCondition(opts);
  const timeout = parseDuration(opts.timeout, { allowZero: true });
  const kb: KextBridge = await connect(globals, io);
  const ac = new AbortController();
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  const onSignal = () => ac.abort();
  for (const s of signals) process.on(s, onSignal);
  let r: WaitResult;
  try {
    const o = { timeout, signal: ac.signal };
    r = 'refs' in condition ? await kb.waitForRetainCount(target, condition.refs, o) : 'unloaded' in condition ? await kb.waitForUnload(target, o) : await kb.waitForLoad(target, o);
  } finally {
    for (const s of signals) process.off(s, onSignal);
    await kb.close();
  }
  const body = { backend: kb.backend, target, condition, waitedMs: r.waitedMs };
  const name = typeof target === 'number' ? `tag ${target}` : target;
  if (r.ok) {
    if (globals.json) printJson(io, { schemaVersion: 1, ok: true, ...body });
    else io.stdout.write(`${name}: ${describe(condition)} after ${r.waitedMs} ms${kb.backend === 'sim' ? ' (virtual)' : ''}\n`);
    return EXIT.ok;
  }
  const err = r.reason === 'timeout'
    ? new CliError(EXIT.timeout, 'Timeout', `timed out after ${r.waitedMs} ms waiting for ${name} to be ${describe(condition)}: ${r.message}`)
    : new CliError(128 + 2, 'Aborted', `interrupted after ${r.waitedMs} ms waiting for ${name} to be ${describe(condition)}: ${r.message}`);
  if (globals.json) printJson(io, errorDocument(err, { ...body, reason: r.reason, explanation: r.explanation }));
  io.stderr.write(`kextbridge wait: ${err.message}\n`);
  return err.exitCode;
}
