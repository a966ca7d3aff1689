#!/usr/bin/env node
// Derives the C++ and TypeScript protocol tables from protocol/kextbridge.json, the one
// source of truth. `--check` exits 1 when a generated file is stale (run by the tests).
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..');
const spec = JSON.parse(fs.readFileSync(path.join(root, 'protocol/kextbridge.json'), 'utf8'));
const banner = 'Generated from protocol/kextbridge.json by scripts/gen-protocol.js. Do not edit.';

function validate() {
  const names = new Set();
  for (const c of spec.codes) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(c.name)) throw new Error(`bad code name ${c.name}`);
    if (names.has(c.name)) throw new Error(`duplicate code ${c.name}`);
    if (!/^0x[0-9A-F]{8}$/.test(c.value)) throw new Error(`${c.name}: value must be 0x + 8 hex digits`);
    names.add(c.name);
  }
  // The core writes these structures at exactly these sizes: a mismatch would be a write
  // past the caller's buffer in the kernel.
  const byName = Object.fromEntries(spec.selectors.map((s) => [s.name, s]));
  const L = spec.limits;
  if (byName.getInfo.structOutputSize !== 2 * L.infoStringSize)
    throw new Error(`getInfo.structOutputSize must be 2 * limits.infoStringSize (${2 * L.infoStringSize})`);
  if (byName.held.structOutputSize !== 4 * spec.heldEntry.length * L.ledgerCapacity)
    throw new Error(`held.structOutputSize must hold limits.ledgerCapacity heldEntry records`);
  spec.selectors.forEach((s, i) => {
    if (s.selector !== i) throw new Error(`selector ${s.name} must be numbered ${i}`);
    if (!/^[a-z][A-Za-z0-9]*$/.test(s.name)) throw new Error(`selector name ${s.name} must be a lowerCamel identifier`);
    if (s.structInputSize > L.inbandStructMax || s.structOutputSize > L.inbandStructMax)
      throw new Error(`selector ${s.name}: structures must fit inband (${L.inbandStructMax} bytes)`);
    if ((s.outputs ?? []).length !== s.scalarOutputs)
      throw new Error(`selector ${s.name}: outputs must name each of its ${s.scalarOutputs} output scalars`);
    if (s.structInputUnit) {
      // A variable input of whole units; the output holds structOutputPerUnit bytes per unit.
      if (s.structInputSize % s.structInputUnit) throw new Error(`selector ${s.name}: structInputSize must be whole units`);
      if ((s.structInputSize / s.structInputUnit) * s.structOutputPerUnit > s.structOutputSize)
        throw new Error(`selector ${s.name}: structOutputSize must hold an entry per input unit`);
    }
    for (const n of [...s.userClientCodes, ...s.kernelCodes])
      if (!names.has(n)) throw new Error(`selector ${s.name} names unknown code ${n}`);
    if (s.scalarInputs > spec.limits.maxScalars || s.scalarOutputs > spec.limits.maxScalars)
      throw new Error(`selector ${s.name} exceeds the MIG scalar limit`);
  });
  // The resource selectors' fields are the limits' sizes (the core parses them at those offsets).
  if (byName.loadKextWithIdentifier.structInputSize !== L.bundleIdSize)
    throw new Error('loadKextWithIdentifier.structInputSize must be limits.bundleIdSize');
  if (byName.requestResource.structInputSize !== L.bundleIdSize + L.resourceNameSize)
    throw new Error('requestResource.structInputSize must be bundleIdSize + resourceNameSize');
  if (byName.fetchResource.structOutputSize !== L.fetchChunkSize || L.fetchChunkSize > L.inbandStructMax)
    throw new Error('fetchResource.structOutputSize must be limits.fetchChunkSize, inband');
  if (spec.selectors.filter((s) => s.async).map((s) => s.name).join() !== 'requestResource')
    throw new Error('requestResource is the one asynchronous selector (the core completes only its references)');
  for (const n of spec.completionResults) if (!names.has(n)) throw new Error(`completionResults names unknown code ${n}`);
  for (const n of spec.universalRefusals) if (!names.has(n)) throw new Error(`universalRefusals names unknown code ${n}`);
  for (const b of ['retainBatch', 'releaseBatch']) {
    const s = byName[b];
    if (s.structInputSize !== 4 * L.batchMaxTags || s.structInputUnit !== 4 || s.structOutputPerUnit !== 4 * spec.batchEntry.length)
      throw new Error(`${b} must carry up to batchMaxTags uint32 tags and one batchEntry per tag`);
  }
}

const cIdent = (name) => name.replace(/^./, (c) => c.toUpperCase());
const cString = (s) => JSON.stringify(s); // JSON string escapes are valid C escapes for this text

function header() {
  const sel = spec.selectors;
  const L = spec.limits;
  const k = spec.sampleKext;
  return `// ${banner}
// Kernel-safe: plain C types only, no standard-library headers.
#ifndef KEXTBRIDGE_PROTOCOL_GEN_H
#define KEXTBRIDGE_PROTOCOL_GEN_H

#include <stdint.h>

#define KB_SAMPLE_BUNDLE_ID ${cString(k.bundleId)}
#define KB_SAMPLE_VERSION ${cString(k.version)}
#define KB_SAMPLE_EXECUTABLE ${cString(k.executable)}
#define KB_SERVICE_CLASS ${k.serviceClass}
#define KB_USER_CLIENT_CLASS ${k.userClientClass}
#define KB_SERVICE_CLASS_NAME ${cString(k.serviceClass)}
#define KB_USER_CLIENT_CLASS_NAME ${cString(k.userClientClass)}
// The libraries the sample kext links against (its OSBundleLibraries).
#define KB_SAMPLE_LIBRARIES ${k.libraries.map(cString).join(', ')}

namespace kb {

static const uint32_t kProtocolVersion = ${spec.protocolVersion};
static const uint32_t kMaxScalars = ${L.maxScalars};
static const uint32_t kInfoStringSize = ${L.infoStringSize};
static const uint32_t kLedgerCapacity = ${L.ledgerCapacity};
static const uint32_t kBatchMaxTags = ${L.batchMaxTags};
static const uint32_t kInbandStructMax = ${L.inbandStructMax};
static const uint32_t kBundleIdSize = ${L.bundleIdSize};
static const uint32_t kResourceNameSize = ${L.resourceNameSize};
static const uint32_t kRequestCapacity = ${L.requestCapacity};
static const uint32_t kMaxResourceSize = ${L.maxResourceSize};
static const uint32_t kFetchChunkSize = ${L.fetchChunkSize};
static const uint32_t kAsyncRefWords = ${L.asyncRefWords};

enum Selector : uint32_t {
${sel.map((s) => `  kSelector${cIdent(s.name)} = ${s.selector},`).join('\n')}
  kSelectorCount = ${sel.length}
};

// What each selector takes and gives, checked before any work is done. With a structInputUnit,
// the input is 1 to structInputSize / unit whole units and the caller's output buffer must
// hold structOutputPerUnit bytes per unit (at most structOutputSize); otherwise sizes are exact,
// except that a structInputVariable input is 1 to structInputSize bytes (the handler checks the
// content). structOutputVariable: the handler writes at most structOutputSize bytes and says how
// many. async: the selector is called with an async reference, and only it may be.
struct SelectorShape {
  uint32_t scalarInputs;
  uint32_t structInputSize;
  uint32_t structInputUnit;
  uint32_t scalarOutputs;
  uint32_t structOutputSize;
  uint32_t structOutputPerUnit;
  bool admin;
  bool structInputVariable;
  bool structOutputVariable;
  bool async;
};

static constexpr SelectorShape kSelectorShapes[kSelectorCount] = {
${sel.map((s) => `  {${s.scalarInputs}, ${s.structInputSize}, ${s.structInputUnit ?? 0}, ${s.scalarOutputs}, ${s.structOutputSize}, ${s.structOutputPerUnit ?? 0}, ${s.admin}, ${!!s.structInputVariable}, ${!!s.structOutputVariable}, ${!!s.async}}, // ${s.name}`).join('\n')}
};

// Output scalar positions, per selector that has any: args.scalarOutput[RetainOut::heldAfter].
${sel.filter((s) => s.scalarOutputs).map((s) => `struct ${cIdent(s.name)}Out {
  enum : uint32_t { ${s.outputs.map((o, i) => `${o} = ${i}`).join(', ')}, fieldCount = ${s.outputs.length} };
};`).join('\n')}

// One entry per tag of a batch selector's output: little-endian uint32 fields.
struct BatchEntry {
  enum : uint32_t { ${spec.batchEntry.map((f, i) => `${f} = ${i}`).join(', ')}, fieldCount = ${spec.batchEntry.length} };
};
static const uint32_t kBatchEntrySize = ${4 * spec.batchEntry.length};

// One (uint32) entry per held tag in the held selector's output.
struct HeldEntry {
  enum : uint32_t { ${spec.heldEntry.map((f, i) => `${f} = ${i}`).join(', ')}, fieldCount = ${spec.heldEntry.length} };
};
static const uint32_t kHeldEntrySize = ${4 * spec.heldEntry.length};

// The args of a requestResource completion (sendAsyncResult64), in order.
struct Completion {
  enum : uint32_t { ${spec.completion.map((f, i) => `${f} = ${i}`).join(', ')}, fieldCount = ${spec.completion.length} };
};

// The addon's per-tag answer to a batch, as doubles (user space only).
struct BatchResult {
  enum : uint32_t { ${spec.batchResult.map((f, i) => `${f} = ${i}`).join(', ')}, fieldCount = ${spec.batchResult.length} };
};

// Return codes as unsigned 32-bit values. Prefixed RC_ so the names never collide with
// the SDK's own macros (kIOReturnBadArgument, KERN_SUCCESS, ...).
enum ReturnCode : uint32_t {
${spec.codes.map((c) => `  RC_${c.name} = ${c.value}u,`).join('\n')}
};

// The externalMethod refusals each selector may answer besides success (the fuzzer's oracle
// checks every answer against this): its own, and the ones any selector may give.
constexpr bool selectorMayRefuse(uint32_t selector, uint32_t code) {
  return ${spec.universalRefusals.map((n) => `code == RC_${n}`).join(' || ')} ||
${sel.filter((s) => s.userClientCodes.length).map((s) => `         (selector == kSelector${cIdent(s.name)} && (${s.userClientCodes.map((n) => `code == RC_${n}`).join(' || ')}))`).join(' ||\n')};
}

} // namespace kb

#endif
`;
}

// The core's dispatch table: one handler per selector, named on<Selector>. A selector without
// a handler declared in UserClientCore is a compile error here.
function dispatchTable() {
  return `// ${banner}
// Included once, by user_client_core.cpp.
const UserClientCore::Handler UserClientCore::kHandlers[kSelectorCount] = {
${spec.selectors.map((s) => `    &UserClientCore::on${cIdent(s.name)},`).join('\n')}
};
`;
}

function namesHeader() {
  return `// ${banner}
// The code table with names and messages, for user space only (the kext does not need it).
#ifndef KEXTBRIDGE_PROTOCOL_NAMES_GEN_H
#define KEXTBRIDGE_PROTOCOL_NAMES_GEN_H

#include "protocol.gen.h"

namespace kb {

struct CodeInfo {
  const char *name;
  uint32_t value;
  const char *message;
};

static const CodeInfo kCodeTable[] = {
${spec.codes.map((c) => `  {${cString(c.name)}, ${c.value}u, ${cString(c.message)}},`).join('\n')}
};

static const char *const kSelectorNames[kSelectorCount] = {
${spec.selectors.map((s) => `  ${cString(s.name)},`).join('\n')}
};

} // namespace kb

#endif
`;
}

function typescript() {
  const q = (s) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  const arr = (a) => `[${a.map(q).join(', ')}]`;
  return `// ${banner}

/** The user-client protocol version the addon and the sample kext speak (getInfo reports the kext's). */
export const PROTOCOL_VERSION = ${spec.protocolVersion};

/** Protocol limits: scalars per call (MIG), getInfo string size, ledger capacity per client, tags per batch call. */
export const LIMITS = {
  maxScalars: ${spec.limits.maxScalars},
  infoStringSize: ${spec.limits.infoStringSize},
  ledgerCapacity: ${spec.limits.ledgerCapacity},
  batchMaxTags: ${spec.limits.batchMaxTags},
  bundleIdSize: ${spec.limits.bundleIdSize},
  resourceNameSize: ${spec.limits.resourceNameSize},
  requestCapacity: ${spec.limits.requestCapacity},
  maxResourceSize: ${spec.limits.maxResourceSize},
  fetchChunkSize: ${spec.limits.fetchChunkSize},
} as const;

/** The sample kext's identity: bundle id, version, executable, IOKit class names and the KPI libraries it links. */
export const SAMPLE_KEXT = {
${Object.entries(spec.sampleKext).map(([k, v]) => `  ${k}: ${Array.isArray(v) ? arr(v) : q(v)},`).join('\n')}
} as const;

/** The user-client selector table: each selector's number, shapes, output positions and the codes it may answer. */
export const SELECTORS = {
${spec.selectors.map((s) => `  ${s.name}: {
    selector: ${s.selector},
    scalarInputs: ${s.scalarInputs},
    structInputSize: ${s.structInputSize},
    scalarOutputs: ${s.scalarOutputs},
    structOutputSize: ${s.structOutputSize},
    admin: ${s.admin},
    async: ${!!s.async},
    outputs: ${arr(s.outputs ?? [])},
    userClientCodes: ${arr(s.userClientCodes)},
    kernelCodes: ${arr(s.kernelCodes)},
  },`).join('\n')}
} as const;

/** Output scalar positions: OUT.retain.heldAfter is scalar 1 of retain's answer. */
export const OUT = {
${spec.selectors.filter((s) => s.scalarOutputs).map((s) => `  ${s.name}: { ${s.outputs.map((o, i) => `${o}: ${i}`).join(', ')} },`).join('\n')}
} as const;

/** A batch selector's per-tag entry: uint32 fields at these positions, BATCH_ENTRY.size bytes. */
export const BATCH_ENTRY = { ${spec.batchEntry.map((f, i) => `${f}: ${i}`).join(', ')}, size: ${4 * spec.batchEntry.length} } as const;

/** A held selector entry: uint32 fields at these positions, HELD_ENTRY.size bytes. */
export const HELD_ENTRY = { ${spec.heldEntry.map((f, i) => `${f}: ${i}`).join(', ')}, size: ${4 * spec.heldEntry.length} } as const;

/** The addon's per-tag answer to a batch: BATCH_RESULT.stride doubles per tag. */
export const BATCH_RESULT = { ${spec.batchResult.map((f, i) => `${f}: ${i}`).join(', ')}, stride: ${spec.batchResult.length} } as const;

/** A requestResource completion's args: the position of each (requestTag, osReturn, length). */
export const COMPLETION = { ${spec.completion.map((f, i) => `${f}: ${i}`).join(', ')}, count: ${spec.completion.length} } as const;

/** The results a requestResource completion may carry: kIOReturnSuccess, or kIOReturnNoSpace for a delivery bigger than LIMITS.maxResourceSize (refused, not kept). */
export const COMPLETION_RESULTS = ${arr(spec.completionResults)} as const;

/** The refusals any selector may answer (a bad shape, a closed user client). */
export const UNIVERSAL_REFUSALS = ${arr(spec.universalRefusals)} as const;

/** Every return code the stack knows: name, value (unsigned 32-bit) and message (docs/kernel-facts.md has the sources). */
export const CODES = [
${spec.codes.map((c) => `  { name: ${q(c.name)}, value: ${c.value}, message: ${q(c.message)} },`).join('\n')}
] as const;
`;
}

const outputs = {
  'kext-sample/core/protocol.gen.h': header,
  'kext-sample/core/protocol_names.gen.h': namesHeader,
  'kext-sample/core/dispatch.gen.inc': dispatchTable,
  'lib/protocol.gen.ts': typescript,
};

validate();
const check = process.argv.includes('--check');
let stale = [];
for (const [rel, make] of Object.entries(outputs)) {
  const file = path.join(root, rel);
  const text = make();
  const current = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : null;
  if (current === text) continue;
  if (check) stale.push(rel);
  else fs.writeFileSync(file, text);
}
if (stale.length) {
  console.error(`stale generated files (run npm run gen): ${stale.join(', ')}`);
  process.exit(1);
}
