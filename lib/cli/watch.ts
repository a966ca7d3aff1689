// kextbridge watch: the machine's events, one line each (or JSON Lines), until SIGINT/SIGTERM.
import type { WatchEvent } from '../index';
import { connect, EXIT, Globals, Io } from './common';

export interface WatchCliOptions {
  bundleId: string[];
  jsonl?: boolean;
}

export function formatEvent(e: WatchEvent): string {
  const at = `${String(e.at).padStart(9)} ms  ${e.type.padEnd(11)}  `;
  switch (e.type) {
    case 'dropped':
      return at + `${e.count} events dropped (the reader fell behind)`;
    case 'call':
      return at + `${e.op} ${e.bundleId ?? 'tag'} (tag ${e.loadTag}): ${e.name}${e.held !== undefined ? `, held ${e.held}` : ''}`;
    default: {
      const k = `${e.bundleId} (tag ${e.loadTag})`;
      if (e.type === 'unloaded') return at + `${k}, ${e.cause}`;
      if (e.type === 'retainCount') return at + `${k} ${e.from} → ${e.to}`;
      if (e.type === 'instances') return at + `${k} ${e.className} ${e.from} → ${e.to}`;
      if (e.type === 'panic') return at + `${k}: ${e.message}`;
      return at + k;
    }
  }
}

export async function watch(opts: WatchCliOptions, globals: Globals, io: Io): Promise<number> {
  const kb = await connect(globals, io);
  const ac = new AbortController();
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  const onSignal = () => ac.abort();
  for (const s of signals) process.on(s, onSignal);
  try {
    // On the sim this process's kernel was just booted: replaying from boot shows its world.
    const events = kb.watch({ signal: ac.signal, ...(opts.bundleId.length ? { bundleIds: opts.bundleId } : {}), ...(kb.sim ? { fromBoot: true } : {}) });
    for await (const e of events) io.stdout.write((opts.jsonl ? JSON.stringify({ schemaVersion: 1, ...e }) : formatEvent(e)) + '\n');
  } finally {
    for (const s of signals) process.off(s, onSignal);
    await kb.close();
  }
  return EXIT.ok;
}
