// Finds the return codes in a blob of kmutil / kextutil / kextunload / log output.
import { CODES } from './protocol.gen';
import { codeValue, describeReturn, isCodeName, ReturnDescription } from './codes';

/** How a code appeared in the text: a hex or decimal number, a code name, a known message, or a KMErrorDomain error. */
export type TextCodeKind = 'hex' | 'decimal' | 'name' | 'message' | 'KMErrorDomain';

/** One code {@link decodeText} found in a text. */
export interface TextCode {
  /** The text that was recognised, exactly as it appears. */
  match: string;
  /** Its offset in the input (UTF-16 code units, as String.prototype.indexOf counts). */
  index: number;
  /** How it appeared. */
  kind: TextCodeKind;
  /** The decoded OSReturn / IOReturn / Mach code; absent for KMErrorDomain. */
  code?: ReturnDescription;
  /** KMErrorDomain only: the NSError code. No published source says what the numbers mean. */
  domainCode?: number;
  /** KMErrorDomain only: the quoted description that followed it in the text, if any. */
  description?: string;
}

/**
 * The strings mach_error_string() prints for a few libkern codes, as kextload, kextunload
 * and kextd show them without the number. Only strings seen in published logs next to the
 * code they stand for, or whose code is unambiguous from the header's own wording:
 * - 'not loadable (reason unspecified)' beside (-603946989) in
 *   github.com/rugarciap/Turbo-Boost-Switcher/issues/149;
 * - 'kext (kmod) start/stop routine failed' beside 0xdc008017 in
 *   github.com/keybase/client/issues/4583;
 * - 'kext is in use or retained (cannot unload)' in github.com/openzfsonosx/zfs/issues/567
 *   (kOSKextReturnInUse: "in use or retained; cannot unload");
 * - 'system policy prevents loading' in github.com/jwise/HoRNDIS/issues/81
 *   (kOSKextReturnSystemPolicy; the same failure is -603946981 in keybase/client#8006).
 */
const MESSAGES: [string, string][] = [
  ['(libkern/kext) not loadable (reason unspecified)', 'kOSKextReturnNotLoadable'],
  ['(libkern/kext) kext (kmod) start/stop routine failed', 'kOSKextReturnStartStopError'],
  ['(libkern/kext) kext is in use or retained (cannot unload)', 'kOSKextReturnInUse'],
  ['(libkern/kext) system policy prevents loading', 'kOSKextReturnSystemPolicy'],
];

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

// Longest names first, so kOSKextReturnKCLoadFailureSystemKC is not read as kOSKextReturnKCLoadFailure.
const NAMES = [...new Set(CODES.map((c) => c.name))].sort((a, b) => b.length - a.length);

/**
 * One pass, one alternative per kind, in priority order at a given position. The lookarounds
 * keep the 8-digit hex out of longer numbers (a 64-bit load address 0xffffff7f83496000 is
 * not a code) and decimals out of timestamps, versions and identifiers.
 */
const PATTERN = new RegExp(
  [
    /(?<km>(?:Error Domain=)?KMErrorDomain Code=(?<kmcode>-?\d{1,10})(?!\d))/.source,
    /(?<hex>(?<![\w.])0[xX][0-9a-fA-F]{8}(?!\w|\.\w))/.source,
    /(?<dec>(?<![\w.+-])-\d{1,10}(?!\w|\.\d))/.source,
    `(?<msg>${MESSAGES.map(([m]) => escape(m)).join('|')})`,
    `(?<name>(?<![\\w])(?:${NAMES.map(escape).join('|')})(?![\\w]))`,
  ].join('|'),
  'g',
);

/** NSError's `Code=N "description" UserInfo=…`: the quoted text right after the code. */
const DESCRIPTION = /^\s+"([^"]*)"/;
const DESCRIPTION_MAX = 300;

/**
 * Every code found in `text`, in text order, one entry per span: `0x` + 8 hex digits, negative
 * decimals (in parentheses as kextload prints them, `(-603946989)`, or bare when they are a
 * known code, as in "status -603946981"), code names (`kOSKextReturnInUse`), the libkern error
 * strings listed above, and `Error Domain=KMErrorDomain Code=N "…"` (the domain code as is:
 * the same Code=71 is printed for missing bundles, wrong architectures and missing privileges).
 */
export function decodeText(text: string): TextCode[] {
  if (typeof text !== 'string') throw new TypeError(`text must be a string, got ${text === null ? 'null' : typeof text}`);
  const found: TextCode[] = [];
  for (const m of text.matchAll(PATTERN)) {
    const g = m.groups!;
    const index = m.index!;
    if (g.km !== undefined) {
      const entry: TextCode = { match: g.km, index, kind: 'KMErrorDomain', domainCode: Number(g.kmcode) };
      // The description is read, not consumed: codes quoted inside it are found too.
      const desc = DESCRIPTION.exec(text.slice(index + g.km.length, index + g.km.length + 64 * 1024));
      if (desc) entry.description = clip(desc[1].trim());
      found.push(entry);
    } else if (g.hex !== undefined) {
      found.push({ match: g.hex, index, kind: 'hex', code: describeReturn(g.hex) });
    } else if (g.dec !== undefined) {
      const n = Number(g.dec);
      if (n < -0x80000000) continue;
      const code = describeReturn(n);
      // In parentheses it is kextload's "(-603946989)"; bare, only a known code counts.
      const parenthesised = text[index - 1] === '(' && text[index + g.dec.length] === ')';
      if (parenthesised || code.known) found.push({ match: g.dec, index, kind: 'decimal', code });
    } else if (g.msg !== undefined) {
      const name = MESSAGES.find(([s]) => s === g.msg)![1];
      found.push({ match: g.msg, index, kind: 'message', code: describeReturn(codeValue(name as never)) });
    } else if (g.name !== undefined && isCodeName(g.name)) {
      found.push({ match: g.name, index, kind: 'name', code: describeReturn(codeValue(g.name)) });
    }
  }
  return found;
}

function clip(s: string): string {
  return s.length > DESCRIPTION_MAX ? s.slice(0, DESCRIPTION_MAX) + '…' : s;
}
