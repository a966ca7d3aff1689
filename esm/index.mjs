// The ESM entry point (`import ... from 'kextbridge'`). It is a thin re-export of the one
// CommonJS build in dist/lib, never a second copy: ESM and CJS users in one process share one
// module instance, so one addon load, one defaultSimKernel(), one set of classes
// (instanceof works across both). test/package.test.ts checks these names against the CJS
// exports, so a new export in lib/index.ts must be added here too. (It lives outside lib/ so
// that `import '../lib'` in TypeScript and jest still finds lib/index.ts.)
import cjs from '../dist/lib/index.js';

export const {
  open,
  KextBridge,
  createSimKernel,
  defaultSimKernel,
  SimKernel,
  describeReturn,
  codeValue,
  isCodeName,
  toHex,
  KextBridgeError,
  KextHandle,
  CODES,
  LIMITS,
  PROTOCOL_VERSION,
  SAMPLE_KEXT,
  SELECTORS,
  decodeText,
  doctor,
} = cjs;
