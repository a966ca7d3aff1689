// Types for the ESM entry point of `kextbridge/cli` (esm/cli.mjs).
export * from '../dist/lib/cli/main.js';
