// Types for the ESM entry point of `kextbridge/jest` (esm/jest.mjs).
export * from '../dist/lib/jest/index.js';
