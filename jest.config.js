/** @type {import('jest').Config} */
module.exports = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testTimeout: 30000,
  // The default output plus each skipped test's title, which carries the reason it was skipped.
  reporters: ['default', '<rootDir>/scripts/jest-skipped-reporter.js'],
  // test/install.test.ts packs and installs the tarball (~30 s): `npm run test:install` runs it.
  testPathIgnorePatterns: process.env.KEXTBRIDGE_TEST_INSTALL === '1' ? ['/node_modules/'] : ['/node_modules/', '/test/install\\.test\\.ts$'],
};
