// kextbridge replay <file.jsonl>: a recording run again on a fresh simulated kernel; every
// answer that differs from the recorded one is listed. Exit 0 with none, 3 with any.
import * as fs from 'fs';
import { CliError, clip, errorDocument, EXIT, Globals, Io, printJson } from './common';

/** EX_DATAERR: the file is not a recording this kextbridge reads. */
const DATA_ERROR = 65;

const show = (v: unknown) => {
  const s = JSON.stringify(v);
  return s.length > 300 ? s.slice(0, 300) + '…' : s;
};

export async function replay(file: string, globals: Globals, io: Io): Promise<number> {
  if (globals.backend === 'iokit') throw new CliError(EXIT.usage, 'UsageError', 'replay runs on a fresh simulated kernel; --backend iokit does not apply');
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new CliError(EXIT.notFound, 'NotFound', `cannot read ${JSON.stringify(clip(file))}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const { replayRecording, RecordingError } = await import('../replay');
  let report;
  try {
    report = await replayRecording(text);
  } catch (e) {
    if (e instanceof RecordingError) throw new CliError(DATA_ERROR, 'DataError', `${clip(file)}: ${e.message}`);
    throw e;
  }
  const n = report.divergences.length;
  const failure = n > 0 ? new CliError(EXIT.refused, 'Divergence', `${n} divergence${n === 1 ? '' : 's'} from the recording`) : null;
  if (globals.json) {
    const body = { file, calls: report.calls, connections: report.connections, divergences: report.divergences, worldNotes: report.worldNotes };
    printJson(io, failure ? errorDocument(failure, body) : { schemaVersion: 1, ok: true, ...body });
  } else {
    io.stdout.write(`replayed ${report.calls} call${report.calls === 1 ? '' : 's'} on ${report.connections} connection${report.connections === 1 ? '' : 's'} from ${file} on a fresh simulated kernel: ${n} divergence${n === 1 ? '' : 's'}\n`);
    for (const d of report.divergences)
      io.stdout.write(`  line ${d.line}: connection ${d.conn} ${d.method}(${d.args.map((a) => JSON.stringify(a)).join(', ')})\n    expected ${show(d.expected)}\n    got      ${show(d.got)}\n`);
    for (const note of report.worldNotes) io.stderr.write(`kextbridge replay: ${note}\n`);
  }
  return failure ? failure.exitCode : EXIT.ok;
}
