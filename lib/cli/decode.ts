// kextbridge decode: codes and texts to names and meanings. Needs no kernel and no addon.
import { codeValue, describeReturn, isCodeName } from '../codes';
import { decodeText, TextCode } from '../decode-text';
import { CliError, clip, colours, EXIT, errorDocument, Globals, Io, printJson, usage } from './common';

interface Decoded {
  /** The argument as given, or '-' for standard input. */
  input: string;
  found: TextCode[];
}

const NUMBER_LIKE = /^(-?[0-9]+|0[xX][0-9a-fA-F]*)$/;

/** An argument that is one code by itself; null when it is text to search. */
function asCode(arg: string): TextCode | null {
  if (isCodeName(arg)) return { match: arg, index: 0, kind: 'name', code: describeReturn(codeValue(arg)) };
  if (!NUMBER_LIKE.test(arg)) return null;
  try {
    return { match: arg, index: 0, kind: /^0x/i.test(arg) ? 'hex' : 'decimal', code: describeReturn(arg) };
  } catch (e) {
    // It is a number, just not a 32-bit one: say so rather than search it as text.
    throw usage((e as Error).message);
  }
}

export async function decode(inputs: string[], globals: Globals, io: Io): Promise<number> {
  const results: Decoded[] = [];
  for (const input of inputs) {
    if (input === '-') results.push({ input, found: decodeText(await readAll(io.stdin)) });
    else {
      const one = asCode(input);
      results.push({ input, found: one ? [one] : decodeText(input) });
    }
  }
  const any = results.some((r) => r.found.length > 0);
  const failure = any ? null : new CliError(EXIT.notFound, 'NotFound', 'no return code found in the input');
  if (globals.json) {
    printJson(io, failure ? errorDocument(failure, { inputs: results }) : { schemaVersion: 1, ok: true, inputs: results });
  } else {
    const c = colours(io);
    for (const r of results) for (const f of r.found) io.stdout.write(formatFinding(f, c) + '\n');
  }
  if (failure) io.stderr.write(`kextbridge decode: ${failure.message}\n`);
  return failure?.exitCode ?? EXIT.ok;
}

/** One line per finding: what was matched, then the code, its name and what it means. */
export function formatFinding(f: TextCode, c: ReturnType<typeof colours>): string {
  if (f.kind === 'KMErrorDomain') {
    const desc = f.description ? `: ${JSON.stringify(clip(f.description.split('\n')[0]))}` : '';
    return `KMErrorDomain Code=${f.domainCode}  ${c.dim('(no published meaning for KMErrorDomain codes)')}${desc}`;
  }
  const d = f.code!;
  const also = d.aliases.length ? ` (also ${d.aliases.join(', ')})` : '';
  const system = d.subsystemName === 'unknown' || d.subsystemName === d.systemName ? d.systemName : `${d.systemName}/${d.subsystemName}`;
  const where = `${system} 0x${d.code.toString(16)}, ${d.signed}`;
  const shown = f.match === d.hex || f.match === d.name ? '' : `${f.match} → `;
  return `${shown}${d.hex} ${c.bold(d.name)}${also}: ${d.message} [${where}]`;
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}
