// One suite, several backends (serialport's model): the sim always; the real kext only on
// the test Mac with KEXTBRIDGE_TEST_IOKIT=1, otherwise its runs show as skipped with the reason.
import { createSimKernel, KextBridge, open, SimKernel } from '../lib';

export interface Backend {
  name: 'sim' | 'iokit';
  /** Opens a connection; `machine` groups connections that must share one kernel. */
  open(machine: Machine, options?: { privileged?: boolean }): Promise<KextBridge>;
  machine(): Machine;
}
export interface Machine {
  sim?: SimKernel;
}

const sim: Backend = {
  name: 'sim',
  machine: () => ({ sim: createSimKernel() }),
  open: (m, o) => open({ backend: 'sim', kernel: m.sim, privileged: o?.privileged ?? true }),
};

const iokit: Backend = {
  name: 'iokit',
  machine: () => ({}),
  open: async (_m, o) => {
    if (o?.privileged === false) throw new Error('unprivileged iokit runs need a non-root child process (test:mac)');
    return open({ backend: 'iokit' });
  },
};

export const iokitEnabled = process.env.KEXTBRIDGE_TEST_IOKIT === '1';
const SKIP_REASON = 'iokit: needs the test Mac (root, sample kext loaded, KEXTBRIDGE_TEST_IOKIT=1)';

/** Runs `body` once per backend; iokit blocks register as skipped with the reason. */
export function describeBackends(title: string, body: (b: Backend) => void): void {
  describe(`${title} [sim]`, () => body(sim));
  if (iokitEnabled) describe(`${title} [iokit]`, () => body(iokit));
  else describe(`${title} [iokit]`, () => test.skip(SKIP_REASON, () => undefined));
}

/** A load tag no loaded kext has (tags are never reused, so past the highest is free). */
export async function unusedTag(kb: KextBridge): Promise<number> {
  const kexts = await kb.loadedKexts();
  return Math.max(...kexts.map((k) => k.loadTag)) + 1000;
}

export async function retainCountOf(kb: KextBridge, loadTag: number): Promise<number | undefined> {
  return (await kb.loadedKexts()).find((k) => k.loadTag === loadTag)?.retainCount;
}
