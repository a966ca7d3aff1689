// Argument checks, done before anything reaches native code (which checks again).

export function checkUint32(name: string, value: unknown): number {
  // The check small enough to be inlined (the sync path); the errors are built out of line.
  if (typeof value === 'number' && value >>> 0 === value) return value;
  return notUint32(name, value);
}

function notUint32(name: string, value: unknown): never {
  if (typeof value !== 'number')
    throw new TypeError(`${name} must be a number (an unsigned 32-bit integer), got ${describeValue(value)}`);
  throw new RangeError(`${name} must be an integer from 0 to 0xFFFFFFFF, got ${value}`);
}

export function checkLoadTag(value: unknown, name = 'loadTag'): number {
  return checkUint32(name, value);
}

/**
 * The name of a value's typed-array kind from its internal slot ('Uint32Array', …), or
 * undefined when it is not a typed array. Subclasses and overridden getters cannot lie to it,
 * and a Proxy of a typed array is not one.
 */
const TypedArrayPrototype = Object.getPrototypeOf(Uint8Array.prototype) as object;
const typedArrayKind: (v: unknown) => string | undefined = (() => {
  const get = Object.getOwnPropertyDescriptor(TypedArrayPrototype, Symbol.toStringTag)!.get!;
  return (v: unknown) => get.call(v) as string | undefined;
})();
/** A typed array's real length (its internal slot; 0 once detached), whatever its getters say. */
const typedArrayLength: (v: unknown) => number = (() => {
  const get = Object.getOwnPropertyDescriptor(TypedArrayPrototype, 'length')!.get!;
  return (v: unknown) => get.call(v) as number;
})();

/**
 * The most load tags one retainMany / releaseMany call takes (128 batches of 512 on the user
 * client). Longer lists are a RangeError before anything reaches native code: split them.
 */
export const MAX_BATCH_TAGS = 65_536;

function checkBatchLength(name: string, length: number): void {
  if (length > MAX_BATCH_TAGS)
    throw new RangeError(`${name} must hold at most ${MAX_BATCH_TAGS} load tags per call, got ${length}: split the list`);
}

/**
 * Load tags, read exactly once into a copy whose length is fixed before any element is read:
 * getters, Proxies and subclasses that change `length` or elements while being read cannot
 * make native code act on a slot the caller did not pass. A real Uint32Array (or subclass) is
 * copied from its internal contents; an array is read index by index up to the length read
 * first, and a hole is an error.
 */
export function checkLoadTags(value: unknown, name = 'loadTags'): Uint32Array {
  const kind = typedArrayKind(value);
  if (kind === 'Uint32Array') {
    checkBatchLength(name, typedArrayLength(value));
    try {
      return new Uint32Array(value as Uint32Array); // internal length and elements, no getters
    } catch {
      throw new TypeError(`${name} is a Uint32Array whose buffer was detached (transferred)`);
    }
  }
  if (!Array.isArray(value))
    throw new TypeError(`${name} must be an array of load tags or a Uint32Array, got ${describeValue(value)}`);
  const length: unknown = value.length;
  if (typeof length !== 'number' || !Number.isSafeInteger(length) || length < 0)
    throw new TypeError(`${name}.length must be a non-negative integer, got ${describeValue(length)}`);
  checkBatchLength(name, length);
  const tags = new Uint32Array(length);
  for (let i = 0; i < length; i++) {
    const v: unknown = value[i];
    if (v === undefined && !(i in value)) throw new TypeError(`${name}[${i}] is a hole (a sparse array); pass a load tag at every index`);
    tags[i] = checkLoadTag(v, `${name}[${i}]`);
  }
  return tags;
}

export function checkNonNegativeInteger(name: string, value: unknown): number {
  if (typeof value !== 'number') throw new TypeError(`${name} must be a number, got ${describeValue(value)}`);
  if (!Number.isSafeInteger(value) || value < 0)
    throw new RangeError(`${name} must be a non-negative integer, got ${value}`);
  return value;
}

export function checkString(name: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0)
    throw new TypeError(`${name} must be a non-empty string, got ${describeValue(value)}`);
  return value;
}

export function checkBoolean(name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw new TypeError(`${name} must be a boolean, got ${describeValue(value)}`);
  return value;
}

/** An options object (or undefined) with only the given keys. */
export function checkOptions(name: string, value: unknown, keys: readonly string[]): Record<string, unknown> {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new TypeError(`${name} must be an object, got ${describeValue(value)}`);
  for (const k of Object.keys(value))
    if (!keys.includes(k)) throw new TypeError(`${name}.${k} is not an option (expected ${keys.join(', ')})`);
  return value as Record<string, unknown>;
}

/** Error messages quote at most this many UTF-16 units of user input. */
export const QUOTE_MAX = 100;

/**
 * A user's string as an error message quotes it: JSON-escaped (so NULs and lone surrogates
 * are visible), cut to QUOTE_MAX units with its full length named when longer.
 */
export function quote(s: string): string {
  if (s.length <= QUOTE_MAX) return JSON.stringify(s);
  let head = s.slice(0, QUOTE_MAX);
  if (/[\uD800-\uDBFF]$/.test(head)) head = head.slice(0, -1); // do not split a pair
  return `${JSON.stringify(head)}… (${s.length} characters)`;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * No lone UTF-16 surrogate: UTF-8 cannot carry one, and converting would replace it with
 * U+FFFD, so two different strings would become one bundle id. String.prototype.isWellFormed
 * where it exists (Node ≥ 20), a regular expression on Node 18.
 */
export function isWellFormed(s: string): boolean {
  const native = (String.prototype as { isWellFormed?: (this: string) => boolean }).isWellFormed;
  return native ? native.call(s) : !LONE_SURROGATE.test(s);
}

/** @internal the Node 18 path, tested on every Node. */
export const _isWellFormedFallback = (s: string): boolean => !LONE_SURROGATE.test(s);

/**
 * An array read once, as native code will see it: its length read first and fixed, every index
 * read exactly once, a hole an error.
 */
export function readArray(name: string, value: unknown): unknown[] {
  if (!Array.isArray(value)) throw new TypeError(`${name} must be an array, got ${describeValue(value)}`);
  const length: unknown = value.length;
  if (typeof length !== 'number' || !Number.isSafeInteger(length) || length < 0)
    throw new TypeError(`${name}.length must be a non-negative integer, got ${describeValue(length)}`);
  const out = new Array<unknown>(length);
  for (let i = 0; i < length; i++) {
    const v: unknown = value[i];
    if (v === undefined && !(i in value)) throw new TypeError(`${name}[${i}] is a hole (a sparse array)`);
    out[i] = v;
  }
  return out;
}

/** A JS value as an argument error names it: its type, and the value itself for primitives. */
function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'bigint') return `a bigint (${value}n)`;
  if (typeof value === 'string') return `a string (${quote(value)})`;
  const kind = typedArrayKind(value);
  if (kind !== undefined) return `${/^[AEIOU]/.test(kind) ? 'an' : 'a'} ${kind}`;
  if (value instanceof DataView) return 'a DataView';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${String(value)}`;
}

/**
 * A string the kernel side keeps as a C string: non-empty, no NUL, and at most `maxBytes`
 * bytes of UTF-8 (bundle ids and versions live in kmod_info's 64-byte fields: 63 + NUL).
 */
export function checkCString(name: string, value: unknown, maxBytes = Infinity): string {
  checkString(name, value);
  const s = value as string;
  if (s.includes('\0')) throw new RangeError(`${name} must not contain a NUL character, got ${quote(s)}`);
  if (!isWellFormed(s)) throw new RangeError(`${name} must be well-formed Unicode (it has a lone UTF-16 surrogate), got ${quote(s)}`);
  const bytes = Buffer.byteLength(s, 'utf8');
  if (bytes > maxBytes) throw new RangeError(`${name} must be at most ${maxBytes} bytes of UTF-8, got ${bytes}`);
  return s;
}

/** OSBundleUUID's form: 8-4-4-4-12 hexadecimal digits. */
export function checkUuid(name: string, value: unknown): string {
  checkString(name, value);
  if (!/^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$/.test(value as string))
    throw new RangeError(`${name} must be a UUID (8-4-4-4-12 hexadecimal digits), got ${quote(value as string)}`);
  return value as string;
}

/** One of a few allowed values (strings, usually); the message quotes what was given safely. */
export function checkOneOf<T extends string>(name: string, value: unknown, allowed: readonly T[]): T {
  if (!(allowed as readonly unknown[]).includes(value))
    throw new TypeError(`${name} must be ${allowed.map((a) => `'${a}'`).join(', ').replace(/, ([^,]*)$/, ' or $1')}, got ${describeValue(value)}`);
  return value as T;
}
