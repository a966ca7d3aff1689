#!/usr/bin/env node
// Writes the sample kext's Info.plist and its kmod-info C source (what Xcode generates as
// <product>_info.c) from protocol/kextbridge.json, so the bundle identity, the personality
// and the kmod_info record can never drift from the protocol's one source of truth.
//
//   node gen-bundle.js OUTDIR        writes OUTDIR/Info.plist and OUTDIR/<executable>_info.c
//   node gen-bundle.js --get KEY     prints one sampleKext value (bundleId, version,
//                                    executable, serviceClass, userClientClass, infoC)
'use strict';

const fs = require('fs');
const path = require('path');

const PROTOCOL = path.join(__dirname, '..', '..', 'protocol', 'kextbridge.json');

// Kernel version of macOS 11 (Darwin 20). The KPI pseudo-kexts report the running kernel's
// version and accept any request from their OSBundleCompatibleVersion (iokit 7.0, libkern
// 8.0.0d0) up to it, so 20.0 loads on macOS 11 and every later release.
const KPI_VERSION = '20.0';
// sampleKext.libraries in the protocol file (the simulator links the same ones): only what the
// code links (kext-link in scripts/maccheck.sh proves nothing else is needed):
// IOService/IOUserClient/IOLock/IOLog/IOMalloc from iokit, OSKext* and the C++ runtime from
// libkern, proc_selfpid (the opening process, for the per-process open limit) from bsd,
// thread_call_* (the deferred release of what a freed client held) from mach.
// A resource IOKit publishes early; matching on it starts the service once IOKit is up.
const RESOURCE_MATCH = 'IOKit';

function fail(message) {
  process.stderr.write(`gen-bundle: ${message}\n`);
  process.exit(1);
}

function loadSampleKext() {
  let doc;
  try {
    doc = JSON.parse(fs.readFileSync(PROTOCOL, 'utf8'));
  } catch (e) {
    fail(`cannot read ${PROTOCOL}: ${e.message}`);
  }
  const k = doc.sampleKext;
  if (!k || typeof k !== 'object') fail('protocol/kextbridge.json has no sampleKext object');
  for (const key of ['bundleId', 'version', 'executable', 'serviceClass', 'userClientClass']) {
    if (typeof k[key] !== 'string' || k[key] === '') fail(`sampleKext.${key} must be a non-empty string`);
  }
  // kmod_info.name is char[64] and the bundle id is written unquoted into KMOD_EXPLICIT_DECL,
  // which stringifies it: reverse-DNS letters, digits, '-' and '.', no more than 63 bytes.
  if (!/^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$/.test(k.bundleId) || k.bundleId.length > 63) {
    fail(`sampleKext.bundleId ${JSON.stringify(k.bundleId)} is not a reverse-DNS id of at most 63 bytes`);
  }
  // CFBundleVersion for kexts: 1-4 digits, then up to two parts of 1-2 digits, then an
  // optional stage (d, a, b, fc) and build number.
  if (!/^\d{1,4}(\.\d{1,2}){0,2}((d|a|b|fc)\d{1,3})?$/.test(k.version)) {
    fail(`sampleKext.version ${JSON.stringify(k.version)} is not a valid kext CFBundleVersion`);
  }
  for (const key of ['executable', 'serviceClass', 'userClientClass']) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k[key])) fail(`sampleKext.${key} must be a C identifier`);
  }
  if (!Array.isArray(k.libraries) || !k.libraries.every((l) => /^com\.apple\.kpi\.[a-z]+$/.test(l)))
    fail('sampleKext.libraries must list com.apple.kpi.* bundle ids');
  return k;
}

function xmlEscape(s) {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

// A tiny plist writer for strings and dictionaries (all this bundle needs). No comments:
// the kernel may read the plist during early boot.
function plistValue(value, indent) {
  const pad = '\t'.repeat(indent);
  if (typeof value === 'string') return `${pad}<string>${xmlEscape(value)}</string>\n`;
  if (value && typeof value === 'object') {
    let out = `${pad}<dict>\n`;
    for (const key of Object.keys(value)) {
      out += `${pad}\t<key>${xmlEscape(key)}</key>\n`;
      out += plistValue(value[key], indent + 1);
    }
    return out + `${pad}</dict>\n`;
  }
  throw new Error(`unsupported plist value ${JSON.stringify(value)}`);
}

function infoPlist(k) {
  const personality = {
    CFBundleIdentifier: k.bundleId,
    IOClass: k.serviceClass,
    // IOResources takes one driver per match category: without its own, the service
    // would never start.
    IOMatchCategory: k.serviceClass,
    IOProviderClass: 'IOResources',
    IOResourceMatch: RESOURCE_MATCH,
    IOUserClientClass: k.userClientClass,
  };
  const libraries = {};
  for (const id of k.libraries) libraries[id] = KPI_VERSION;
  const dict = {
    CFBundleDevelopmentRegion: 'en',
    CFBundleExecutable: k.executable,
    CFBundleIdentifier: k.bundleId,
    CFBundleInfoDictionaryVersion: '6.0',
    CFBundleName: k.executable,
    CFBundlePackageType: 'KEXT',
    CFBundleShortVersionString: k.version,
    CFBundleVersion: k.version,
    IOKitPersonalities: { [k.serviceClass]: personality },
    OSBundleLibraries: libraries,
  };
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n' +
    '<plist version="1.0">\n' +
    plistValue(dict, 0) +
    '</plist>\n'
  );
}

function infoC(k) {
  return `/* Generated from protocol/kextbridge.json by kext-sample/kext/gen-bundle.js. Do not edit.
 *
 * The kext's kmod_info record, as Xcode writes it for a kernel extension target.
 * libkmod supplies _start/_stop, which call _realmain/_antimain when set; an IOKit kext
 * leaves both empty (the kernel constructs its C++ classes itself). libkmod's
 * OSKextGetCurrentLoadTag/Identifier/VersionString read this record, into which the
 * kernel writes the load tag, bundle id and version when it loads the kext. */
#include <mach/mach_types.h>
#include <mach/kmod.h>

extern kern_return_t _start(kmod_info_t *ki, void *data);
extern kern_return_t _stop(kmod_info_t *ki, void *data);

__attribute__((visibility("default")))
KMOD_EXPLICIT_DECL(${k.bundleId}, "${k.version}", _start, _stop)

__private_extern__ kmod_start_func_t *_realmain = 0;
__private_extern__ kmod_stop_func_t *_antimain = 0;
__private_extern__ int _kext_apple_cc = __APPLE_CC__;
`;
}

function infoCName(k) {
  return `${k.executable}_info.c`;
}

function main(argv) {
  const k = loadSampleKext();
  if (argv[0] === '--get') {
    const key = argv[1];
    if (key === 'infoC') return process.stdout.write(infoCName(k) + '\n');
    if (typeof k[key] !== 'string') fail(`--get: unknown key ${JSON.stringify(key)}`);
    return process.stdout.write(k[key] + '\n');
  }
  if (argv.length !== 1 || argv[0].startsWith('-')) {
    fail('usage: node gen-bundle.js OUTDIR | --get bundleId|version|executable|serviceClass|userClientClass|infoC');
  }
  const out = argv[0];
  fs.mkdirSync(out, { recursive: true });
  writeIfChanged(path.join(out, 'Info.plist'), infoPlist(k));
  writeIfChanged(path.join(out, infoCName(k)), infoC(k));
}

// Unchanged content keeps its timestamp, so make does not rebuild for nothing.
function writeIfChanged(file, text) {
  try {
    if (fs.readFileSync(file, 'utf8') === text) return;
  } catch (e) {
    if (e.code !== 'ENOENT') throw e;
  }
  fs.writeFileSync(file, text);
}

main(process.argv.slice(2));
