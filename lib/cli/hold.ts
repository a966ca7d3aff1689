// kextbridge hold: retain, run a command (or wait for a signal), release — whatever happens.
import { spawn } from 'child_process';
import * as os from 'os';
import { toHex } from '../codes';
import type { KextBridge, RetainResult } from '../index';
import { CliError, connect, EXIT, exitForRefusal, Globals, Io, label, parseTarget, Resolved, resolveTargets } from './common';

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
type Sig = (typeof SIGNALS)[number];

/** The shell's convention for "killed by signal N", so `$?` reads the same as without hold. */
const signalStatus = (sig: NodeJS.Signals) => 128 + (os.constants.signals[sig] ?? 0);

export async function hold(args: string[], command: string[] | undefined, globals: Globals, io: Io): Promise<number> {
  const targets = args.map(parseTarget);
  const say = (s: string) => io.stderr.write(`kextbridge hold: ${s}\n`);
  const kb = await connect(globals, io);

  // Signals are caught from the start: one that arrives while retaining still releases.
  let signalled: Sig | null = null;
  let onSignal: (sig: Sig) => void = () => {};
  const handlers = SIGNALS.map((sig) => {
    const h = () => {
      signalled ??= sig;
      onSignal(sig);
    };
    process.on(sig, h);
    return [sig, h] as const;
  });

  const held: Resolved[] = [];
  let status: number = EXIT.ok;
  try {
    const resolved = await resolveTargets(kb, targets);
    for (const r of resolved) {
      if (signalled) break;
      const res: RetainResult = await kb.retain(r.loadTag);
      if (!res.ok) throw new CliError(exitForRefusal(res.name), res.name, `retain ${label(r)} refused: ${res.name} (${toHex(res.code)}): ${res.message}`, res.code);
      held.push(r);
      say(`retained ${label(r)}, held ${res.held}`);
    }
    if (signalled) status = signalStatus(signalled);
    else if (command) status = await runCommand(command, say, (f) => (onSignal = f));
    else status = await waitForSignal(held, say, (f) => (onSignal = f));
  } catch (e) {
    if (!(e instanceof CliError)) throw e;
    status = e.exitCode;
    say(e.message);
  } finally {
    const releaseFailed = await releaseAll(kb, held, say);
    await kb.close();
    for (const [sig, h] of handlers) process.off(sig, h);
    if (releaseFailed) status = EXIT.internal;
  }
  return status;
}

/** Runs the command with our stdio, never through a shell; its status becomes ours. */
function runCommand(command: string[], say: (s: string) => void, setOnSignal: (f: (sig: Sig) => void) => void): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(command[0], command.slice(1), { stdio: 'inherit' });
    // Forward what we receive (a terminal's Ctrl-C usually reached the child already; a
    // second SIGINT is what most programs expect anyway, and `kill <hold's pid>` needs it).
    setOnSignal((sig) => child.kill(sig));
    child.on('error', (e: NodeJS.ErrnoException) => {
      say(`cannot run ${JSON.stringify(command[0])}: ${e.message}`);
      resolve(e.code === 'ENOENT' ? 127 : 126); // as env(1) and the shells do
    });
    child.on('exit', (code, signal) => {
      if (signal) {
        say(`command was killed by ${signal} (exit ${signalStatus(signal)})`);
        resolve(signalStatus(signal));
      } else {
        say(`command exited with status ${code}`);
        resolve(code ?? EXIT.internal);
      }
    });
  });
}

/** No command: hold until SIGINT, SIGTERM or SIGHUP, then exit 0 (that is how it is stopped). */
function waitForSignal(held: Resolved[], say: (s: string) => void, setOnSignal: (f: (sig: Sig) => void) => void): Promise<number> {
  say(`holding ${held.length} retain${held.length === 1 ? '' : 's'} until SIGINT (Ctrl-C) or SIGTERM (pid ${process.pid})`);
  return new Promise((resolve) => {
    const keepAlive = setInterval(() => {}, 1 << 30);
    setOnSignal((sig) => {
      clearInterval(keepAlive);
      say(`${sig}: releasing`);
      resolve(EXIT.ok);
    });
  });
}

/** Releases in reverse order; reports each; true when any release failed. */
async function releaseAll(kb: KextBridge, held: Resolved[], say: (s: string) => void): Promise<boolean> {
  let failed = false;
  for (const r of [...held].reverse()) {
    try {
      const res = await kb.release(r.loadTag);
      if (res.ok) say(`released ${label(r)}, held ${res.held}`);
      else {
        failed = true;
        say(`release ${label(r)} failed: ${res.name}: ${res.message}`);
      }
    } catch (e) {
      failed = true;
      say(`release ${label(r)} failed: ${(e as Error).message} (closing the connection releases what it still holds)`);
    }
  }
  return failed;
}
