// Targets: a kext named by its load tag (a number) or its bundle id (a string).
import type { LoadedKext } from '../results';
import { checkCString, checkLoadTag } from '../validate';

/** A kext named by its load tag (a number) or its bundle id (a string). */
export type Target = number | string;

/** KMOD_MAX_NAME − 1, as for spec.bundleId. */
const BUNDLE_ID_BYTES = 63;

export function checkTarget(value: unknown, name = 'target'): Target {
  if (typeof value === 'string') return checkCString(name, value, BUNDLE_ID_BYTES);
  if (typeof value === 'number') return checkLoadTag(value, name);
  throw new TypeError(`${name} must be a load tag (a number) or a bundle id (a string), got ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}`);
}

/** The loaded kext a target names, if any. */
export function findTarget(kexts: readonly LoadedKext[], target: Target): LoadedKext | undefined {
  return kexts.find((k) => (typeof target === 'number' ? k.loadTag === target : k.bundleId === target));
}
