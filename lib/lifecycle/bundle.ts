// Reading a kext bundle's Contents/Info.plist (XML or binary) into what a load needs:
// identity, version, libraries, personalities, and the sim's test controls. Parsing is done by
// the npm parsers `plist` (XML) and `bplist-parser` (binary); this file only checks shapes.
import { promises as fsp } from 'fs';
import * as path from 'path';
import { parseKextVersion } from './kext-version';

/** KMOD_MAX_NAME − 1: the kernel's record holds 63 bytes and a NUL. */
const KMOD_NAME_BYTES = 63;

export interface Personality {
  name: string;
  ioClass: string;
  providerClass: string;
  /** IOProviderClass is IOResources: IOKit matches it at once (docs/cli.md, "load"). */
  matchesAtOnce: boolean;
}

/**
 * Sim-only test controls, read from the Info.plist key `KextBridgeSimControls` (a real kernel
 * ignores keys it does not know): `Classes` declares classes the binary defines beyond its
 * personalities (the sim cannot read the Mach-O), `LeakPerLoad` makes every load leave one
 * instance of a class that is never freed, in this kext or in a loaded library.
 */
export interface SimControls {
  classes: { name: string; superclass: string }[];
  leakPerLoad: { className: string; bundleId: string | null }[];
}

export interface BundleInfo {
  path: string;
  bundleId: string;
  version: string;
  compatibleVersion: string | null;
  /** OSBundleLibraries: bundle id → the version asked for. */
  libraries: { bundleId: string; version: string }[];
  personalities: Personality[];
  sim: SimControls;
  binary: boolean;
}

/** Why a path is not a loadable bundle, as the kernel's code names it. */
export interface BundleProblem {
  name: 'kOSKextReturnNotAKext' | 'kOSKextReturnBadData' | 'kOSKextReturnValidation';
  message: string;
  nextStep: string;
}

export type BundleRead = { ok: true; bundle: BundleInfo } | ({ ok: false } & BundleProblem);

type Dict = Record<string, unknown>;
const isDict = (v: unknown): v is Dict => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date) && !Buffer.isBuffer(v);

export async function readBundle(bundlePath: string): Promise<BundleRead> {
  const plistPath = path.join(bundlePath, 'Contents', 'Info.plist');
  const notAKext = (why: string): BundleRead => ({
    ok: false,
    name: 'kOSKextReturnNotAKext',
    message: `${bundlePath} is not a kext bundle: ${why}`,
    nextStep: 'give the path of a .kext bundle: a folder with Contents/Info.plist (and Contents/MacOS/ for its executable)',
  });
  let st;
  try {
    st = await fsp.stat(bundlePath);
  } catch {
    return notAKext('no such file or folder');
  }
  if (!st.isDirectory()) return notAKext('it is a file, not a folder');
  let bytes: Buffer;
  try {
    bytes = await fsp.readFile(plistPath);
  } catch {
    return notAKext('it has no Contents/Info.plist');
  }
  const binary = bytes.subarray(0, 8).toString('latin1') === 'bplist00';
  let top: unknown;
  try {
    const xml = binary ? null : await import('plist');
    top = binary ? (await import('bplist-parser')).parseBuffer(bytes)[0] : quietly(() => xml!.parse(bytes.toString('utf8')));
  } catch (e) {
    return badData(plistPath, `it does not parse as a${binary ? ' binary' : 'n XML'} property list (${String((e as Error)?.message ?? e).split('\n')[0].slice(0, 200)})`);
  }
  if (!isDict(top)) return badData(plistPath, 'its top level is not a dictionary');
  const invalid = (message: string): BundleRead => ({
    ok: false,
    name: 'kOSKextReturnValidation',
    message: `${plistPath}: ${message}`,
    nextStep: 'fix the Info.plist (plutil -lint checks its syntax; the kext keys are described in Apple\'s "Info.plist keys for kernel extensions")',
  });
  const id = top.CFBundleIdentifier;
  if (typeof id !== 'string' || id === '') return invalid('CFBundleIdentifier is missing or not a string');
  if (Buffer.byteLength(id) > KMOD_NAME_BYTES || id.includes('\0')) return invalid(`CFBundleIdentifier is longer than ${KMOD_NAME_BYTES} bytes`);
  if (top.CFBundlePackageType !== undefined && top.CFBundlePackageType !== 'KEXT') return notAKext(`CFBundlePackageType is ${JSON.stringify(top.CFBundlePackageType)}, not "KEXT"`);
  const version = top.CFBundleVersion;
  if (parseKextVersion(version) === null) return invalid(`CFBundleVersion ${JSON.stringify(version)} is not a kext version (1–4 digits, up to two .NN parts, optional d/a/b/fc stage)`);
  const compat = top.OSBundleCompatibleVersion;
  if (compat !== undefined && parseKextVersion(compat) === null) return invalid(`OSBundleCompatibleVersion ${JSON.stringify(compat)} is not a kext version`);
  if (compat !== undefined && parseKextVersion(compat)! > parseKextVersion(version)!) return invalid(`OSBundleCompatibleVersion ${compat} is later than CFBundleVersion ${version}`);

  const libs = top.OSBundleLibraries ?? {};
  if (!isDict(libs)) return invalid('OSBundleLibraries is not a dictionary');
  const libraries: BundleInfo['libraries'] = [];
  for (const [lib, v] of Object.entries(libs)) {
    if (parseKextVersion(v) === null) return invalid(`OSBundleLibraries.${lib}: ${JSON.stringify(v)} is not a kext version`);
    libraries.push({ bundleId: lib, version: v as string });
  }

  const pers = top.IOKitPersonalities ?? {};
  if (!isDict(pers)) return invalid('IOKitPersonalities is not a dictionary');
  const personalities: Personality[] = [];
  for (const [name, p] of Object.entries(pers)) {
    if (!isDict(p)) return invalid(`IOKitPersonalities.${name} is not a dictionary`);
    // A personality may name another bundle (a codeless kext matching a family's driver): its
    // class is not this kext's.
    if (p.CFBundleIdentifier !== undefined && p.CFBundleIdentifier !== id) continue;
    if (typeof p.IOClass !== 'string' || p.IOClass === '') return invalid(`IOKitPersonalities.${name}.IOClass is missing`);
    if (typeof p.IOProviderClass !== 'string' || p.IOProviderClass === '') return invalid(`IOKitPersonalities.${name}.IOProviderClass is missing`);
    personalities.push({ name, ioClass: p.IOClass, providerClass: p.IOProviderClass, matchesAtOnce: p.IOProviderClass === 'IOResources' });
  }

  const sim: SimControls = { classes: [], leakPerLoad: [] };
  const controls = top.KextBridgeSimControls;
  if (controls !== undefined) {
    if (!isDict(controls)) return invalid('KextBridgeSimControls is not a dictionary');
    for (const [i, c] of arrayOf(controls.Classes).entries()) {
      if (!isDict(c) || typeof c.Name !== 'string' || c.Name === '') return invalid(`KextBridgeSimControls.Classes[${i}] needs a Name`);
      sim.classes.push({ name: c.Name, superclass: typeof c.Superclass === 'string' ? c.Superclass : 'OSObject' });
    }
    for (const [i, c] of arrayOf(controls.LeakPerLoad).entries()) {
      if (!isDict(c) || typeof c.Class !== 'string' || c.Class === '') return invalid(`KextBridgeSimControls.LeakPerLoad[${i}] needs a Class`);
      sim.leakPerLoad.push({ className: c.Class, bundleId: typeof c.Kext === 'string' ? c.Kext : null });
    }
  }
  return {
    ok: true,
    bundle: { path: bundlePath, bundleId: id, version: version as string, compatibleVersion: (compat as string | undefined) ?? null, libraries, personalities, sim, binary },
  };
}

/**
 * plist's XML parser (@xmldom/xmldom) reports every error on console.error before it throws,
 * and plist offers no way to pass an error handler: the parse is synchronous, so console.error
 * is silenced for exactly its duration and the error is returned as a result instead.
 */
function quietly<T>(fn: () => T): T {
  const saved = console.error;
  console.error = () => undefined;
  try {
    return fn();
  } finally {
    console.error = saved;
  }
}

function arrayOf(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

function badData(plistPath: string, why: string): BundleRead {
  return { ok: false, name: 'kOSKextReturnBadData', message: `${plistPath}: ${why}`, nextStep: `fix the Info.plist: plutil -lint ${plistPath} shows where it is broken` };
}
