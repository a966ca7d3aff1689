// kextbridge doctor: lib/doctor's checks, as a table or one JSON document.
import { colours, connect, EXIT, Globals, Io, printJson } from './common';

/** 0 when every check passes; 2 when only privilege is missing; 69 otherwise. */
export async function runDoctor(globals: Globals, io: Io): Promise<number> {
  const { doctor } = await import('../doctor');
  const checks = await doctor({ backend: globals.backend, open: () => connect(globals, io) });
  const failed = checks.filter((c) => !c.ok);
  const onlyPrivilege = failed.length > 0 && failed.every((c) => c.id === 'root' || c.id === 'privileged');
  const exitCode = failed.length === 0 ? EXIT.ok : onlyPrivilege ? EXIT.notPrivileged : EXIT.unavailable;
  const message = `${failed.length} check${failed.length === 1 ? '' : 's'} failed: ${failed.map((c) => c.id).join(', ')}`;
  if (globals.json) {
    printJson(io, failed.length === 0
      ? { schemaVersion: 1, ok: true, checks }
      : { schemaVersion: 1, ok: false, checks, error: { name: onlyPrivilege ? 'NotPrivileged' : 'Unavailable', code: null, message, exitCode } });
  } else {
    const c = colours(io);
    const width = Math.max(...checks.map((x) => x.id.length));
    for (const x of checks) {
      const [mark, paint] = x.skipped ? ['-', c.dim] : x.ok ? ['ok', c.green] : ['FAIL', c.red];
      io.stdout.write(`${x.id.padEnd(width)}  ${paint(mark.padEnd(4))}  ${x.detail}\n`);
      if (x.fix) io.stdout.write(`${' '.repeat(width + 8)}fix: ${x.fix}\n`);
    }
  }
  if (failed.length) io.stderr.write(`kextbridge doctor: ${message}\n`);
  return exitCode;
}
