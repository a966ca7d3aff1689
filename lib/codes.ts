// Return codes: names, values and messages come from protocol.gen.ts (generated from
// protocol/kextbridge.json); this file only indexes and decodes them.
import { CODES } from './protocol.gen';

export type CodeName = (typeof CODES)[number]['name'];

export interface ReturnDescription {
  /** The code as an unsigned 32-bit number (what `0xDC008006` means). */
  value: number;
  /** The same bits read as a signed int32 (what C's kern_return_t holds). */
  signed: number;
  hex: string;
  /** The first name the tables give this value, or `UNKNOWN_0x…`. */
  name: string;
  /** Other names for the same value (0 is kOSReturnSuccess, kIOReturnSuccess and KERN_SUCCESS). */
  aliases: string[];
  known: boolean;
  message: string;
  /** err_get_system / err_get_sub / err_get_code of <mach/error.h>. */
  system: number;
  subsystem: number;
  code: number;
  systemName: string;
  subsystemName: string;
}

const byValue = new Map<number, (typeof CODES)[number][]>();
const byName = new Map<string, (typeof CODES)[number]>();
for (const c of CODES) {
  byName.set(c.name, c);
  const list = byValue.get(c.value) ?? [];
  list.push(c);
  byValue.set(c.value, list);
}

/** The value of a named code. */
export function codeValue(name: CodeName): number {
  return byName.get(name)!.value;
}

export function isCodeName(name: string): name is CodeName {
  return byName.has(name);
}

const SYSTEMS: Record<number, string> = { 0x00: 'kern', 0x03: 'ipc', 0x04: 'mach_ipc', 0x37: 'libkern', 0x38: 'iokit' };
const SUBSYSTEMS: Record<string, string> = {
  '0x37/0': 'common', '0x37/1': 'metaclass', '0x37/2': 'kext', '0x37/4095': 'reserved',
  '0x38/0': 'common', '0x04/0': 'send', '0x04/1': 'rcv',
};

export function toHex(value: number): string {
  return '0x' + (value >>> 0).toString(16).toUpperCase().padStart(8, '0');
}

/**
 * Decodes any 32-bit return code, signed or unsigned (-603947002 and 0xDC008006 are the
 * same). Unknown codes decode structurally; only a non-number or a value outside 32 bits throws.
 */
export function describeReturn(code: number): ReturnDescription {
  if (typeof code !== 'number') throw new TypeError(`code must be a number, got ${typeof code}`);
  if (!Number.isInteger(code) || code < -0x80000000 || code > 0xffffffff)
    throw new RangeError(`code must be a 32-bit integer (signed or unsigned), got ${code}`);
  const value = code >>> 0;
  const signed = value | 0;
  const system = (value >>> 26) & 0x3f;
  const subsystem = (value >>> 14) & 0xfff;
  const low = value & 0x3fff;
  const mig = signed <= -300 && signed >= -399;
  const sysKey = '0x' + system.toString(16).padStart(2, '0');
  const systemName = mig ? 'mig' : (SYSTEMS[system] ?? 'unknown');
  const subsystemName = mig ? 'mig' : (SUBSYSTEMS[`${sysKey}/${subsystem}`] ?? 'unknown');
  const entries = byValue.get(value) ?? [];
  const hex = toHex(value);
  const known = entries.length > 0;
  return {
    value,
    signed,
    hex,
    name: known ? entries[0].name : `UNKNOWN_${hex}`,
    aliases: entries.slice(1).map((e) => e.name),
    known,
    message: known
      ? entries[0].message
      : `unknown code ${hex}: system ${sysKey} (${systemName}), subsystem ${subsystem} (${subsystemName}), code 0x${low.toString(16)}`,
    system,
    subsystem,
    code: low,
    systemName,
    subsystemName,
  };
}
