#!/usr/bin/env node
/**
 * `kextbridge/cli`: the `kextbridge` command as a function ({@link main}), for running it in-process.
 * @module kextbridge/cli
 */
// kextbridge: the command line. This file only parses; each verb's module (and the addon)
// is loaded when that verb runs, so `kextbridge decode` starts as fast as node itself.
import { Command, CommanderError, Option } from 'commander';
import * as fs from 'fs';
import * as path from 'path';
import { CliError, errorDocument, EXIT, Globals, Io, printJson, usage } from './common';

const EXAMPLE = (lines: string[]) => `\nExample${lines.length > 1 ? 's' : ''}:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`;

/** Runs the CLI on `argv` (without node and the script); resolves to the exit code. */
export async function main(argv: string[], io: Io = processIo()): Promise<number> {
  const json = wantsJson(argv);
  const { args, command: holdCommand } = splitHoldCommand(argv);
  let exitCode: number = EXIT.ok;
  const program = new Command('kextbridge')
    .description('Drive macOS kext retain/release from the command line, on a Mac or on the simulated kernel.')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .showHelpAfterError('(run with --help for usage)')
    .addOption(new Option('--backend <backend>', 'which kernel: iokit (the Mac), sim (the simulator) or auto').choices(['auto', 'sim', 'iokit']).default('auto'))
    .version(packageVersion(), '-V, --version');
  const globals = (cmd: Command): Globals => ({ backend: cmd.optsWithGlobals().backend, json: cmd.opts().json === true });

  program
    .command('list')
    .description('the loaded kexts, as kextstat / kmutil showloaded print them')
    .option('-b, --bundle-id <id>', 'only this kext (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('-k, --no-kernel-components', 'leave out __kernel__ and the com.apple.kpi.* interfaces')
    .option('-l, --list-only', 'no header line')
    .option('--json', 'one JSON document on stdout')
    .addHelpText('after', EXAMPLE(['kextbridge list -k', 'kextbridge list -b org.kextbridge.sample --json']))
    .action(async (opts, cmd: Command) => {
      exitCode = await (await import('./list')).list(opts, globals(cmd), io);
    });

  program
    .command('decode')
    .description('what return codes mean: numbers, names, or whole kmutil/kextload/log texts (- reads stdin)')
    .argument('<code|text...>', 'a code (0xDC008017, -603946985, 3691020311, kOSKextReturnInUse), a text, or - for stdin')
    .option('--json', 'one JSON document on stdout')
    .allowUnknownOption() // a negative code (-603946985) looks like an option
    .addHelpText('after', EXAMPLE(['kextbridge decode 0xDC008017 -603946985', 'sudo kmutil load -p Foo.kext 2>&1 | kextbridge decode -']))
    .action(async (inputs: string[], opts, cmd: Command) => {
      exitCode = await (await import('./decode')).decode(inputs, globals(cmd), io);
    });

  program
    .command('hold')
    .description('retain kexts while a command runs (or until SIGINT/SIGTERM), then release them')
    .argument('<tag|id...>', 'load tags or bundle ids')
    .usage('<tag|id...> [-- command [args...]]')
    .addHelpText('after', EXAMPLE(['kextbridge hold org.kextbridge.sample -- npx jest test/driver.test.ts', 'sudo kextbridge hold 8']))
    .action(async (targets: string[], _opts, cmd: Command) => {
      exitCode = await (await import('./hold')).hold(targets, holdCommand, globals(cmd), io);
    });

  program
    .command('explain')
    .description('why a kext will not unload: retains, dependents, live instances, user clients')
    .argument('<tag|id>', 'a load tag or a bundle id')
    .option('--json', 'one JSON document on stdout')
    .addHelpText('after', EXAMPLE(['kextbridge explain org.kextbridge.sample', 'kextbridge explain 8 --json']))
    .action(async (target: string, opts, cmd: Command) => {
      const { parseTarget } = await import('./common');
      const t = parseTarget(target);
      exitCode = await (await import('./explain')).explain(t, globals(cmd), io);
    });

  program
    .command('wait')
    .description('wait until a kext is unloaded, loaded or at a retain count (exit 75 on timeout)')
    .argument('<tag|id>', 'a load tag or a bundle id')
    .option('--unloaded', 'until no kext answers to it')
    .option('--loaded', 'until it is loaded')
    .option('--refs <n>', 'until its retain count (OSBundleRetainCount) is n')
    .option('--timeout <duration>', 'give up after this long: 90s, 1500ms, 2m (virtual time on the sim)', '90s')
    .option('--json', 'one JSON document on stdout')
    .addHelpText('after', EXAMPLE(['kextbridge wait com.example.driver --unloaded', 'kextbridge wait 8 --refs 0 --timeout 5s --json']))
    .action(async (target: string, opts, cmd: Command) => {
      const { parseTarget } = await import('./common');
      const t = parseTarget(target);
      exitCode = await (await import('./wait')).wait(t, opts, globals(cmd), io);
    });

  program
    .command('watch')
    .description('print loads, unloads, retain-count and instance changes as they happen, until SIGINT')
    .option('-b, --bundle-id <id>', 'only this kext (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--jsonl', 'one JSON document per event, one per line')
    .addHelpText('after', EXAMPLE(['kextbridge watch -b com.example.driver', 'kextbridge watch --jsonl > events.jsonl']))
    .action(async (opts, cmd: Command) => {
      exitCode = await (await import('./watch')).watch(opts, globals(cmd), io);
    });

  program
    .command('load')
    .description('load a kext: a bundle path (a Mac: kmutil load -p, as root; the sim: from its Info.plist) and wait until it is started, or a bundle id (OSKextLoadKextWithIdentifier; a deferred load is waited for)')
    .argument('<path|bundle-id>', "the .kext bundle (has a '/' or ends in .kext), or a bundle id")
    .option('--timeout <duration>', 'give up after this long (60s, 500ms, 2m)', '60s')
    .option('--no-wait', 'bundle id: do not wait for a load the kernel deferred to user space')
    .option('--json', 'one JSON document on stdout')
    .addHelpText('after', EXAMPLE(['sudo kextbridge load build/MyDriver.kext', 'kextbridge --backend sim load MyDriver.kext --json', 'sudo kextbridge load com.example.driver --timeout 30s']))
    .action(async (p: string, opts, cmd: Command) => {
      const byId = await import('./load-id');
      exitCode = byId.isBundlePath(p) ? await (await import('./load')).load(p, opts, globals(cmd), io) : await byId.loadById(p, opts, globals(cmd), io);
    });

  program
    .command('unload')
    .description('unload a kext (retrying while it is merely busy) and wait until it is gone')
    .argument('<tag|id>', 'a load tag or bundle id')
    .option('--timeout <duration>', 'give up after this long (60s, 500ms, 2m)', '60s')
    .option('--json', 'one JSON document on stdout')
    .addHelpText('after', EXAMPLE(['sudo kextbridge unload com.example.driver']))
    .action(async (t: string, opts, cmd: Command) => {
      exitCode = await (await import('./load')).unload(t, opts, globals(cmd), io);
    });

  program
    .command('cycle')
    .description('load, (run a command,) unload N times; fail on any drift in retain counts or live instances')
    .argument('<bundle-path>', 'the .kext bundle')
    .usage('<bundle-path> -n N [--timeout 60s] [--library path]... [--json] [-- command [args...]]')
    .requiredOption('-n, --count <N>', 'how many cycles (1…10000)')
    .option('--timeout <duration>', 'for each load, unload and command run', '60s')
    .option('--library <path>', 'a library bundle to load once before the cycles (and unload after) (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--json', 'one JSON document on stdout')
    .addHelpText('after', EXAMPLE(['sudo kextbridge cycle build/MyDriver.kext -n 100', 'sudo kextbridge cycle build/MyDriver.kext -n 20 -- npx jest test/driver.test.ts']))
    .action(async (p: string, opts, cmd: Command) => {
      exitCode = await (await import('./cycle')).cycle(p, holdCommand, opts, globals(cmd), io);
    });

  program
    .command('replay')
    .description('run a recording (open({ record }) or KEXTBRIDGE_RECORD) again on a fresh simulated kernel and list every divergence')
    .argument('<file.jsonl>', 'a recording (docs/recording.md)')
    .option('--json', 'one JSON document on stdout')
    .addHelpText('after', EXAMPLE(['kextbridge replay recordings/test__driver.test.ts.jsonl', 'kextbridge replay mac-run.jsonl --json']))
    .action(async (file: string, opts, cmd: Command) => {
      exitCode = await (await import('./replay')).replay(file, globals(cmd), io);
    });

  program
    .command('doctor')
    .description('can kextbridge work here? SIP, boot policy, root, the sample kext, the addon')
    .option('--json', 'one JSON document on stdout')
    .addHelpText('after', EXAMPLE(['kextbridge doctor', 'kextbridge doctor --backend iokit --json']))
    .action(async (opts, cmd: Command) => {
      exitCode = await (await import('./doctor')).runDoctor(globals(cmd), io);
    });

  try {
    if (holdCommand?.length === 0) throw usage("'--' must be followed by a command to run");
    await program.parseAsync(args, { from: 'user' });
    return exitCode;
  } catch (e) {
    const err = toCliError(e);
    if (err === null) return EXIT.ok; // --help, --version
    // Commander printed its own message; a bug gets its stack.
    if (!(e instanceof CommanderError)) io.stderr.write(`kextbridge: ${err.exitCode === EXIT.internal ? ((e as Error)?.stack ?? err.message) : err.message}\n`);
    if (json) printJson(io, errorDocument(err));
    return err.exitCode;
  }
}

function toCliError(e: unknown): CliError | null {
  if (e instanceof CliError) return e;
  if (e instanceof CommanderError) {
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version') return null;
    return usage(e.message.replace(/^error: /, ''));
  }
  return new CliError(EXIT.internal, 'InternalError', e instanceof Error ? e.message : String(e));
}

/** --json anywhere before a `--` (even on a usage error, the document must come). */
function wantsJson(argv: string[]): boolean {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).includes('--json');
}

/** The verb: the first word that is not a global option or its value. */
function verbOf(args: string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--backend') i++;
    else if (!args[i].startsWith('-')) return args[i];
  }
  return undefined;
}
/**
 * `hold <targets…> -- cmd args…` (and `cycle <bundle> … -- cmd args…`): everything after the first `--` is the command, verbatim,
 * never parsed as kextbridge options or targets.
 */
function splitHoldCommand(argv: string[]): { args: string[]; command: string[] | undefined } {
  const i = argv.indexOf('--');
  const verb = i < 0 ? undefined : verbOf(argv.slice(0, i));
  if (verb !== 'hold' && verb !== 'cycle') return { args: argv, command: undefined };
  return { args: argv.slice(0, i), command: argv.slice(i + 1) };
}

function packageVersion(): string {
  // lib/cli from source, dist/lib/cli when built.
  for (const up of ['../..', '../../..']) {
    const p = path.join(__dirname, up, 'package.json');
    if (fs.existsSync(p)) return JSON.parse(fs.readFileSync(p, 'utf8')).version;
  }
  return 'unknown';
}

function processIo(): Io {
  return { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env };
}

if (require.main === module) {
  // `kextbridge list | head -1`: a reader that went away is not an error worth a stack trace.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    process.exit(process.exitCode ?? EXIT.ok);
  });
  main(process.argv.slice(2)).then((code) => {
    // Let stdout drain (a pipe is asynchronous on macOS); nothing else keeps the process alive.
    process.exitCode = code;
  });
}
