// The ESM entry point of `kextbridge/cli`: a re-export of the CommonJS CLI module, which only
// runs the command line when it is the process's main script (the `kextbridge` bin).
import cjs from '../dist/lib/cli/main.js';

export const { main } = cjs;
