import { describeReturn, ReturnDescription } from './codes';

/**
 * A transport failure: no such service, a closed connection, a Mach or MIG error, a
 * simulated kernel that panicked. Kernel answers are typed results, never this.
 */
export class KextBridgeError extends Error {
  /** The code as an unsigned 32-bit number. */
  readonly code: number;
  /** Its name, e.g. 'MACH_SEND_INVALID_DEST', or 'UNKNOWN_0x…'. */
  readonly codeName: string;
  /** The code as `0x` and 8 upper-case hex digits. */
  readonly hex: string;
  /** What was being done: 'open', 'retain', 'loadedKexts', 'sim.loadKext', … */
  readonly operation: string;
  /** Everything {@link describeReturn} says about the code. */
  readonly description: ReturnDescription;

  /** `site`: a stack captured where the caller made the call, before any thread hop. */
  constructor(operation: string, code: number, detail?: string, site?: CallSite) {
    const d = describeReturn(code);
    super(`${operation}: ${d.name} (${d.hex}): ${detail ?? d.message}`);
    this.name = 'KextBridgeError';
    this.code = d.value;
    this.codeName = d.name;
    this.hex = d.hex;
    this.operation = operation;
    this.description = d;
    if (site?.stack) this.stack = `${this.name}: ${this.message}\n${site.stack.slice(site.stack.indexOf('\n') + 1)}`;
  }
}

export interface CallSite {
  stack?: string;
}

/** Records the caller's stack now (cheap: formatted only if an error is ever raised). */
export function callSite(below?: Function): CallSite {
  const site: CallSite = {};
  Error.captureStackTrace(site, below ?? callSite);
  return site;
}
