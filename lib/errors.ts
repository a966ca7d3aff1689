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
  readonly hex: string;
  /** What was being done: 'open', 'retain', 'loadedKexts', 'sim.loadKext', … */
  readonly operation: string;
  readonly description: ReturnDescription;

  constructor(operation: string, code: number, detail?: string) {
    const d = describeReturn(code);
    super(`${operation}: ${d.name} (${d.hex}): ${detail ?? d.message}`);
    this.name = 'KextBridgeError';
    this.code = d.value;
    this.codeName = d.name;
    this.hex = d.hex;
    this.operation = operation;
    this.description = d;
  }
}
