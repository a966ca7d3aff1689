// Types for the ESM entry point (esm/index.mjs): the same declarations as the CommonJS build.
export * from '../dist/lib/index.js';
