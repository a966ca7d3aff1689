import { describeReturn, ReturnDescription } from './codes';
import type { BatchTagFailure, ReleaseResult, RetainResult } from './results';

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

  /**
   * An interrupted retainMany/releaseMany: every tag's outcome, in the order passed. The tags
   * that ran have their typed results (a retain that succeeded is held: release it or close);
   * the others a {@link BatchTagFailure}. Undefined for every other error.
   */
  readonly results?: readonly (RetainResult | ReleaseResult | BatchTagFailure)[];

  /** `site`: a stack captured where the caller made the call, before any thread hop. */
  constructor(operation: string, code: number, detail?: string, site?: CallSite, results?: readonly (RetainResult | ReleaseResult | BatchTagFailure)[]) {
    const d = describeReturn(code);
    super(`${operation}: ${d.name} (${d.hex}): ${detail ?? d.message}`);
    this.name = 'KextBridgeError';
    this.code = d.value;
    this.codeName = d.name;
    this.hex = d.hex;
    this.operation = operation;
    this.description = d;
    if (results) this.results = results;
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
