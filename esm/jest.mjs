// The ESM entry point of `kextbridge/jest`: a re-export of the CommonJS test kit, so ESM and
// CJS test files share one module (and one default simulated kernel).
import cjs from '../dist/lib/jest/index.js';

export const { kextRef, matchers, skipLeakCheck } = cjs;
