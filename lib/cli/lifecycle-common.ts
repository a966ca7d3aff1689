// What load, unload and cycle share: durations, the connection (on a Mac only the real
// table will do), and how a load/unload failure becomes an exit code.
import type { KextBridge, LifecycleFailure } from '../index';
import { CliError, clip, connect, EXIT, Globals, Io, usage } from './common';

/**
 * Opens the connection the verb loads through. On a Mac these verbs must read the real
 * loaded-kext table: 'auto' falling back to the simulator there (no sample kext) would load
 * into a kernel that does not exist, so that is refused with what to do.
 */
export async function connectForLifecycle(globals: Globals, io: Io, platform: string = process.platform): Promise<KextBridge> {
  const kb = await connect(globals, io);
  if (platform === 'darwin' && globals.backend === 'auto' && kb.backend === 'sim') {
    await kb.close();
    throw new CliError(
      EXIT.unavailable,
      'Unavailable',
      'on a Mac, load, unload and cycle read the loaded-kext table through the sample kext, which does not answer: load it first (sudo kext-sample/scripts/load.sh), or pass --backend sim to use the simulator',
    );
  }
  return kb;
}

/** The exit code for a failed load or unload. */
export function exitForFailure(f: LifecycleFailure): number {
  switch (f.name) {
    case 'kOSKextReturnNotAKext':
    case 'kOSKextReturnBadData':
    case 'kOSKextReturnValidation':
      return EXIT.usage; // the argument is not a loadable bundle; nothing reached the kernel
    case 'kOSKextReturnNotFound':
      return EXIT.notFound;
    case 'NotPrivileged':
    case 'kOSKextReturnNotPrivileged':
      return EXIT.notPrivileged;
    case 'Timeout':
    case 'Aborted':
      return EXIT.timeout;
    default:
      return EXIT.refused;
  }
}

/** The failure as a CliError whose message ends with the next step. */
export const failureError = (verb: string, f: LifecycleFailure) => new CliError(exitForFailure(f), f.name, `${verb}: ${f.message}; next: ${f.nextStep}`, f.code);
