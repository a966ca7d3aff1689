// The jest config of the on-Mac suite (`sudo node scripts/test-mac.js`: test/contract.test.ts
// and test/mac.test.ts against the real kext, recording every call). It is the config README
// "Testing your own kext" shows users, with one difference: this repository *is* the package,
// so the kit is named by its source path instead of 'kextbridge/jest/environment' and
// 'kextbridge/jest' (jest resolves those names only in a project that installed kextbridge,
// which test/jest-project.test.ts checks with the built package). Same modules, same options.
// `npm test` (jest.config.js) loads the same test files without the kit's environment, and
// test/scripts.test.ts runs this config on Linux, where every Mac test is pending with its reason.
const base = require('./jest.config.js');
const { sampleKext } = require('./protocol/kextbridge.json');

/** @type {import('jest').Config} */
module.exports = {
  ...base,
  // kextbridge/jest/environment: the per-test leak check, the kernel log window, the panic journal
  testEnvironment: '<rootDir>/lib/jest/environment.ts',
  // kextbridge/jest: the matchers (toBeOSReturn, toBeLoaded, toBeUnloadable, toHaveRetainCount)
  setupFilesAfterEnv: ['<rootDir>/lib/jest/index.ts'],
  testEnvironmentOptions: {
    kextbridge: {
      leakCheck: { bundleIds: [sampleKext.bundleId] },
      // log and panic: their defaults, on macOS only (off on Linux): the kernel log window of
      // sender == the sample's CFBundleExecutable, and the journal in <rootDir>/.kextbridge.
    },
  },
};
