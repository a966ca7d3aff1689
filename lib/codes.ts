// Return codes: names, values and messages come from protocol.gen.ts (generated from
// protocol/kextbridge.json); this file only indexes and decodes them.
import { CODES } from './protocol.gen';

/** The name of every code in {@link CODES}: what result `name` fields and `codeValue()` take. */
export type CodeName = (typeof CODES)[number]['name'];

/** What {@link describeReturn} says about a return code. */
export interface ReturnDescription {
  /** The code as an unsigned 32-bit number (what `0xDC008006` means). */
  value: number;
  /** The same bits read as a signed int32 (what C's kern_return_t holds). */
  signed: number;
  /** The value as `0x` and 8 upper-case hex digits. */
  hex: string;
  /**
   * The first name the tables give this value, or `UNKNOWN_0x…`. For 0 that is
   * kOSReturnSuccess (every result type switches on it); `systemName` says 'kern', because
   * err_get_system(0) is the Mach kern system, and `aliases` lists kIOReturnSuccess and KERN_SUCCESS.
   */
  name: string;
  /** Other names for the same value (0 is kOSReturnSuccess, kIOReturnSuccess and KERN_SUCCESS). */
  aliases: string[];
  /** Whether the tables know the value (false: `name` is `UNKNOWN_0x…`). */
  known: boolean;
  /** The code's message, or a description of its system/subsystem when unknown. */
  message: string;
  /** err_get_system / err_get_sub / err_get_code of <mach/error.h>. */
  system: number;
  /** err_get_sub: the subsystem within the system. */
  subsystem: number;
  /** err_get_code: the code within the subsystem. */
  code: number;
  /** The system's name: 'kern', 'ipc', 'mach_ipc', 'libkern', 'iokit', or a number. */
  systemName: string;
  /** The subsystem's name, e.g. 'kext' for libkern's 2, or a number. */
  subsystemName: string;
}

/** What describeReturn accepts: a number, a bigint, or a decimal, signed or `0x…` string. */
export type CodeInput = number | bigint | string;

const byValue = new Map<number, (typeof CODES)[number][]>();
const byName = new Map<string, (typeof CODES)[number]>();
for (const c of CODES) {
  byName.set(c.name, c);
  const list = byValue.get(c.value) ?? [];
  list.push(c);
  byValue.set(c.value, list);
}

/** The value of a named code; an unknown name throws (a typo must not become 0 or NaN). */
export function codeValue(name: CodeName): number {
  if (typeof name !== 'string') throw new TypeError(`name must be a code name (a string), got ${show(name)}`);
  const c = byName.get(name);
  if (!c) throw new RangeError(`name ${show(name)} is not a known return code name (e.g. 'kOSKextReturnNotFound'; see CODES)`);
  return c.value;
}

/** Whether `name` is a code name the tables know (narrows it to {@link CodeName}). */
export function isCodeName(name: string): name is CodeName {
  return byName.has(name);
}

const SYSTEMS: Record<number, string> = { 0x00: 'kern', 0x03: 'ipc', 0x04: 'mach_ipc', 0x37: 'libkern', 0x38: 'iokit' };
const SUBSYSTEMS: Record<string, string> = {
  '0x37/0': 'common', '0x37/1': 'metaclass', '0x37/2': 'kext', '0x37/4095': 'reserved',
  '0x38/0': 'common', '0x04/0': 'send', '0x04/1': 'rcv',
};

/** `0x` and 8 upper-case hex digits; signed input (-307) gives its unsigned bits (0xFFFFFECD). */
export function toHex(value: number): string {
  if (typeof value !== 'number') throw new TypeError(`value must be a number (a 32-bit integer), got ${show(value)}`);
  return hex(checkRange('value', value));
}

function hex(value: number): string {
  return '0x' + (value >>> 0).toString(16).toUpperCase().padStart(8, '0');
}

function checkRange(name: string, v: number): number {
  if (!Number.isInteger(v) || v < -0x80000000 || v > 0xffffffff)
    throw new RangeError(`${name} must be a 32-bit integer (signed -2147483648…-1 or unsigned 0…0xFFFFFFFF), got ${show(v)}`);
  return v;
}

/** One form per kind, nothing lenient: '0x' + 1–8 hex digits, or an optionally negative decimal. */
const HEX_STRING = /^0[xX][0-9a-fA-F]+$/;
const DECIMAL_STRING = /^-?[0-9]+$/;

/** Reads a code given as a number, bigint or string into a checked JS number (signed or unsigned). */
function parseCode(code: unknown): number {
  if (typeof code === 'number') return checkRange('code', code);
  if (typeof code === 'bigint') {
    if (code < -0x80000000n || code > 0xffffffffn) throw new RangeError(`code must be a 32-bit integer, got ${show(code)}`);
    return Number(code);
  }
  if (typeof code === 'string') {
    if (!HEX_STRING.test(code) && !DECIMAL_STRING.test(code))
      throw new TypeError(`code must be a number or a string like '0xDC008017', '3691020311' or '-603946985', got ${show(code)}`);
    // BigInt reads both forms exactly, whatever their length; the range check does the rest.
    const big = BigInt(code);
    if (big < -0x80000000n || big > 0xffffffffn) throw new RangeError(`code must be a 32-bit integer, got ${show(code)}`);
    return Number(big);
  }
  throw new TypeError(`code must be a number, a bigint or a string, got ${show(code)}`);
}

/**
 * Decodes any 32-bit return code, signed or unsigned (-603947002, 0xDC008006, '0xDC008006',
 * '-603947002' and 3691020294n are the same). Unknown codes decode structurally; input that
 * is not a 32-bit integer throws a TypeError or RangeError naming `code`.
 */
export function describeReturn(code: CodeInput): ReturnDescription {
  const value = parseCode(code) >>> 0;
  const signed = value | 0;
  const system = (value >>> 26) & 0x3f;
  const subsystem = (value >>> 14) & 0xfff;
  const low = value & 0x3fff;
  const mig = signed <= -300 && signed >= -399;
  const sysKey = '0x' + system.toString(16).padStart(2, '0');
  const systemName = mig ? 'mig' : (SYSTEMS[system] ?? 'unknown');
  const subsystemName = mig ? 'mig' : (SUBSYSTEMS[`${sysKey}/${subsystem}`] ?? 'unknown');
  const entries = byValue.get(value) ?? [];
  const h = hex(value);
  const known = entries.length > 0;
  return {
    value,
    signed,
    hex: h,
    name: known ? entries[0].name : `UNKNOWN_${h}`,
    aliases: entries.slice(1).map((e) => e.name),
    known,
    message: known
      ? entries[0].message
      : `unknown code ${h}: system ${sysKey} (${systemName}), subsystem ${subsystem} (${subsystemName}), code 0x${low.toString(16)}`,
    system,
    subsystem,
    code: low,
    systemName,
    subsystemName,
  };
}

/** A value for an error message: type and at most ~100 characters of it. */
function show(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return `a string (${JSON.stringify(v.length > 100 ? v.slice(0, 100) + '…' : v)})`;
  if (typeof v === 'bigint') {
    const s = v.toString();
    return `a bigint (${s.length > 100 ? s.slice(0, 100) + '…' : s}n)`;
  }
  if (typeof v === 'number') return String(v);
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `${typeof v}`;
}
