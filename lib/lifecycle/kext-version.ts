// Kext versions (CFBundleVersion, OSBundleCompatibleVersion, the versions in OSBundleLibraries)
// as libkern parses and compares them (OSKextParseVersionString, xnu libkern/OSKextVersion.c):
// 1–4 digits, up to two more parts of 1–2 digits, then an optional stage (d, a, b, fc) and
// stage level (0–255). The grammar is the one kext-sample/kext/gen-bundle.js checks.

const GRAMMAR = /^(\d{1,4})(?:\.(\d{1,2}))?(?:\.(\d{1,2}))?(?:(d|a|b|fc)(\d{1,3}))?$/;
/** Stage order, as OSKextVersion.c numbers them: development < alpha < beta < candidate < release. */
const STAGE: Record<string, number> = { d: 1, a: 3, b: 5, fc: 7 };
const RELEASE = 9;

/** The version as one comparable number (OSKextVersion's encoding), or null when it is not a kext version. */
export function parseKextVersion(s: unknown): number | null {
  if (typeof s !== 'string') return null;
  const m = GRAMMAR.exec(s);
  if (!m) return null;
  const level = m[5] === undefined ? 0 : Number(m[5]);
  if (level > 255) return null;
  const stage = m[4] === undefined ? RELEASE : STAGE[m[4]];
  return Number(m[1]) * 1e8 + Number(m[2] ?? 0) * 1e6 + Number(m[3] ?? 0) * 1e4 + stage * 1e3 + level;
}

/**
 * OSKext::isCompatibleWithVersion: a library at `version` that is compatible back to
 * `compatibleVersion` satisfies a request for `wanted` when compatibleVersion ≤ wanted ≤ version.
 * A library without OSBundleCompatibleVersion (null) cannot be linked against.
 */
export function isCompatible(version: number, compatibleVersion: number | null, wanted: number): boolean {
  return compatibleVersion !== null && compatibleVersion <= version && compatibleVersion <= wanted && wanted <= version;
}
