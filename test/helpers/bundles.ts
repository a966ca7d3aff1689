// Fixture kext bundles for loadBundle / unloadKext / cycle, written into a temporary folder:
// a Contents/Info.plist each (XML through the `plist` builder, or binary through
// bplist-creator), no executable (the sim does not run one).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as plist from 'plist';
// eslint-disable-next-line @typescript-eslint/no-var-requires
const bplistCreator: (o: object) => Buffer = require('bplist-creator');

const KEXT = { CFBundlePackageType: 'KEXT', CFBundleInfoDictionaryVersion: '6.0', CFBundleExecutable: 'Driver' };

export const DRIVER = {
  ...KEXT,
  CFBundleIdentifier: 'com.example.driver',
  CFBundleVersion: '1.2.0',
  OSBundleCompatibleVersion: '1.0',
  OSBundleLibraries: { 'com.apple.kpi.iokit': '7.0', 'com.apple.kpi.libkern': '8.0.0d0' },
  IOKitPersonalities: {
    Driver: { CFBundleIdentifier: 'com.example.driver', IOClass: 'com_example_Driver', IOProviderClass: 'IOResources', IOResourceMatch: 'IOKit' },
    Nub: { CFBundleIdentifier: 'com.example.driver', IOClass: 'com_example_PCIDriver', IOProviderClass: 'IOPCIDevice' },
  },
};

export const FAMILY = {
  ...KEXT,
  CFBundleIdentifier: 'com.example.family',
  CFBundleVersion: '2.0',
  OSBundleCompatibleVersion: '1.0',
  OSBundleLibraries: { 'com.apple.kpi.libkern': '8.0.0d0' },
  KextBridgeSimControls: { Classes: [{ Name: 'com_example_FamilyBuffer', Superclass: 'OSObject' }] },
};

export const LEAKY = {
  ...KEXT,
  CFBundleIdentifier: 'com.example.leaky',
  CFBundleVersion: '1.0',
  OSBundleLibraries: { 'com.example.family': '1.5', 'com.apple.kpi.iokit': '7.0' },
  IOKitPersonalities: { Leaky: { IOClass: 'com_example_Leaky', IOProviderClass: 'IOResources' } },
  KextBridgeSimControls: { LeakPerLoad: [{ Class: 'com_example_FamilyBuffer', Kext: 'com.example.family' }] },
};

export interface Bundles {
  dir: string;
  driver: string;
  driverBinary: string;
  family: string;
  leaky: string;
  /** Needs com.example.family, which is not loaded in the default world. */
  missingDependency: string;
  /** Asks for com.apple.kpi.libkern 99.0: the loaded one is too old. */
  tooOldDependency: string;
  /** com.example.driver at another version. */
  driverV2: string;
  notABundle: string;
  unparsable: string;
  noIdentifier: string;
  cleanup(): void;
}

function write(dir: string, name: string, info: object | string | Buffer): string {
  const p = path.join(dir, `${name}.kext`);
  fs.mkdirSync(path.join(p, 'Contents'), { recursive: true });
  const data = typeof info === 'string' || Buffer.isBuffer(info) ? info : plist.build(info as plist.PlistValue);
  fs.writeFileSync(path.join(p, 'Contents', 'Info.plist'), data);
  return p;
}

export function makeBundles(): Bundles {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kextbridge-bundles-'));
  const notABundle = path.join(dir, 'README.txt');
  fs.writeFileSync(notABundle, 'not a kext\n');
  return {
    dir,
    driver: write(dir, 'Driver', DRIVER),
    driverBinary: write(dir, 'DriverBinary', bplistCreator(DRIVER)),
    family: write(dir, 'Family', FAMILY),
    leaky: write(dir, 'Leaky', LEAKY),
    missingDependency: write(dir, 'NeedsFamily', { ...KEXT, CFBundleIdentifier: 'com.example.needsfamily', CFBundleVersion: '1.0', OSBundleLibraries: { 'com.example.family': '1.0' } }),
    tooOldDependency: write(dir, 'NeedsNewLibkern', { ...KEXT, CFBundleIdentifier: 'com.example.newlibkern', CFBundleVersion: '1.0', OSBundleLibraries: { 'com.apple.kpi.libkern': '99.0' } }),
    driverV2: write(dir, 'DriverV2', { ...DRIVER, CFBundleVersion: '2.0' }),
    notABundle,
    unparsable: write(dir, 'Broken', '<?xml version="1.0"?>\n<plist version="1.0"><dict><key>CFBundleIdentifier</key><string>x</dict>\n'),
    noIdentifier: write(dir, 'NoId', { ...KEXT, CFBundleVersion: '1.0' }),
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}
