// The per-test leak check: what the kernel looked like when a test started (retain counts,
// live instances, and the ledger of every connection this test file opened), what it looks
// like when the test is done, and the difference, attributed to the connections that hold it.
// Both backends: on the sim the table comes from the kernel itself, on a Mac through one of
// the test file's open connections (the loaded-kext table, the ledgers from held()).
// It reads through the methods of the connection's class, never the instance's own, so a
// recorded connection (lib/record.ts) does not record the check's reads.
import type { KextBridge } from '../kextbridge';
import { SAMPLE_KEXT } from '../protocol.gen';
import type { Held, LoadedKext } from '../results';
import type { SimKernel } from '../sim';
import type { OpenObserver } from '../observe';
import type { LogOptions } from './kernel-log';
import type { PanicOptions } from './panic';

export interface LeakCheckOptions {
  /** The kexts checked. Default: every kext but __kernel__ and com.apple.kpi.* (on a Mac, every com.apple.* too: the system moves their counts). */
  bundleIds?: string[];
}

/** testEnvironmentOptions.kextbridge of kextbridge/jest/environment. */
export interface KextbridgeEnvironmentOptions {
  /** Default on (every non-kernel kext); false turns it off. */
  leakCheck?: boolean | LeakCheckOptions;
  /** The kernel log window, attached to failures. Default: on macOS only; an object (e.g. { command }) turns it on anywhere. */
  log?: boolean | LogOptions;
  /** The panic journal. Default: on macOS only; an object (e.g. { reportsDir }) turns it on anywhere. */
  panic?: boolean | PanicOptions;
}

/** "describe name test name", as jest prints a test's full name. */
export function testName(test: { name: string; parent?: { name: string; parent?: unknown } }): string {
  const names: string[] = [test.name];
  for (let p = test.parent; p && p.parent; p = p.parent as typeof p) names.unshift(p.name);
  return names.join(' ');
}

interface Tracked {
  id: number;
  kb: KextBridge;
  openedIn: string;
  /** Opened during the running test (its ledger started empty). */
  inTest: boolean;
}
type MachineKey = SimKernel | 'iokit';

const isKernelComponent = (id: string) => id === '__kernel__' || id.startsWith('com.apple.kpi.');
const SAMPLE_USER_CLIENT_BUNDLE = SAMPLE_KEXT.bundleId;

function proto(kb: KextBridge) {
  return Object.getPrototypeOf(kb) as KextBridge;
}

export class LeakChecker implements OpenObserver {
  private readonly conns: Tracked[] = [];
  private current: string | null = null;
  private skipped = false;
  private baseline = new Map<MachineKey, LoadedKext[]>();
  private ledgers = new Map<number, Held[]>();

  constructor(private readonly options: LeakCheckOptions = {}) {}

  opened(kb: KextBridge): void {
    const t: Tracked = { id: this.conns.length + 1, kb, openedIn: this.current ?? '(outside any test)', inTest: this.current !== null };
    this.conns.push(t);
    const m = machineOf(kb);
    // A machine first seen during a test: its state before this connection, which is the
    // state now less the one user client the open made (it holds nothing yet).
    if (this.current !== null && !this.baseline.has(m)) this.baseline.set(m, withoutOneClient(m === 'iokit' ? proto(kb).sync.loadedKexts.call(kb) : m.loadedKexts()));
    if (this.current !== null) this.ledgers.set(t.id, []);
  }

  skipLeakCheck(): void {
    this.skipped = true;
  }

  /** The connection's number and the test that opened it (for messages and recordings). */
  describe(kb: KextBridge): string | undefined {
    const t = this.conns.find((c) => c.kb === kb);
    return t && `connection #${t.id}, opened in ${quote(t.openedIn)}`;
  }

  async before(testName: string): Promise<void> {
    this.current = testName;
    this.skipped = false;
    this.baseline = new Map();
    this.ledgers = new Map();
    for (const m of this.machines()) {
      const table = await this.read(m);
      if (table) this.baseline.set(m, table);
    }
    for (const c of this.conns) {
      if (c.kb.closed) continue;
      c.inTest = false;
      this.ledgers.set(c.id, await heldOf(c.kb));
    }
  }

  /** A test that was skipped after test_start: nothing to compare. */
  cancel(): void {
    this.current = null;
  }

  /** The leak report for the test that just ran, or null (nothing leaked, or skipped). */
  async after(): Promise<string | null> {
    const testName = this.current;
    this.current = null;
    if (this.skipped || testName === null) return null;
    const lines: string[] = [];
    for (const [m, before] of this.baseline) {
      const after = await this.read(m);
      if (!after) continue;
      lines.push(...(await this.diffMachine(m, before, after)));
    }
    if (lines.length === 0) return null;
    return (
      `kextbridge leak check: ${quote(testName)} left the kernel changed:\n` +
      lines.map((l) => `  ${l}`).join('\n') +
      `\n(the state is compared from the test's start to its end, after its hooks; skipLeakCheck() from kextbridge/jest opts a test out)`
    );
  }

  private machines(): MachineKey[] {
    const set = new Set<MachineKey>();
    for (const c of this.conns) set.add(machineOf(c.kb));
    return [...set];
  }

  /** The loaded-kext table, or null where no connection can read it now (a Mac with none open). */
  private async read(m: MachineKey): Promise<LoadedKext[] | null> {
    if (m !== 'iokit') return m.panicked ? null : m.loadedKexts();
    const c = this.conns.find((x) => machineOf(x.kb) === 'iokit' && !x.kb.closed);
    return c ? proto(c.kb).loadedKexts.call(c.kb) : null;
  }

  private wanted(m: MachineKey, id: string): boolean {
    if (this.options.bundleIds) return this.options.bundleIds.includes(id);
    return !isKernelComponent(id) && !(m === 'iokit' && id.startsWith('com.apple.'));
  }

  private async diffMachine(m: MachineKey, before: LoadedKext[], after: LoadedKext[]): Promise<string[]> {
    // Ledger growth per tag, by connection (open ones on this machine; a closed one released all).
    const grew = new Map<number, { c: Tracked; n: number }[]>();
    for (const c of this.conns) {
      if (c.kb.closed || machineOf(c.kb) !== m) continue;
      const was = new Map((this.ledgers.get(c.id) ?? []).map((h) => [h.loadTag, h.count]));
      for (const h of await heldOf(c.kb)) {
        const n = h.count - (was.get(h.loadTag) ?? 0);
        if (n > 0) grew.set(h.loadTag, [...(grew.get(h.loadTag) ?? []), { c, n }]);
      }
    }
    const beforeByTag = new Map(before.map((k) => [k.loadTag, k]));
    const out: string[] = [];
    for (const k of after) {
      if (!this.wanted(m, k.bundleId)) continue;
      const b = beforeByTag.get(k.loadTag);
      const name = `${k.bundleId} (tag ${k.loadTag})`;
      const from = b?.retainCount ?? 0;
      const holders = grew.get(k.loadTag) ?? [];
      // A kext loaded during the test is compared from nothing, but only for what a ledger holds.
      if (!b && holders.length === 0) continue;
      const to = b ? k.retainCount : holders.reduce((s, h) => s + h.n, 0);
      if (to !== from) {
        let why: string;
        if (to < from) why = 'released below where the test started';
        else {
          // Each part of the growth that something explains, and what is left over.
          const parts = holders.map((h) => `held by connection #${h.c.id}${h.n > 1 ? ` (${h.n} retains)` : ''}, opened in ${quote(h.c.openedIn)}`);
          const deps = after.filter((d) => !beforeByTag.has(d.loadTag) && d.dependencies.includes(k.loadTag));
          if (deps.length) parts.push(`depended on by ${deps.map((d) => `${d.bundleId} (tag ${d.loadTag})`).join(', ')}, loaded during the test`);
          const rest = to - from - holders.reduce((n, h) => n + h.n, 0) - deps.length;
          if (rest > 0) parts.push(`${parts.length ? `${rest} more ` : ''}in no ledger of a connection this test file opened: a KPI retain by a kext, or another process`);
          why = parts.join('; ');
        }
        out.push(`${name}: refs ${from} → ${to} (${why})`);
      }
      if (!b) continue;
      const was = new Map(b.classes.map((c) => [c.name, c.instances]));
      for (const c of k.classes) {
        const n0 = was.get(c.name) ?? 0;
        if (n0 === c.instances) continue;
        let why = '';
        if (c.instances > n0 && k.bundleId === SAMPLE_USER_CLIENT_BUNDLE) {
          const open = this.conns.filter((x) => x.inTest && !x.kb.closed && machineOf(x.kb) === m);
          if (open.length) why = ` (not closed: ${open.map((x) => `connection #${x.id}, opened in ${quote(x.openedIn)}`).join('; ')})`;
        }
        out.push(`${name}: instances of ${c.name} ${n0} → ${c.instances}${why}`);
      }
    }
    return out;
  }
}

/** A connection's ledger; a connection that cannot answer (its kernel panicked, it is closing) holds nothing it can show. */
async function heldOf(kb: KextBridge): Promise<Held[]> {
  try {
    return await proto(kb).held.call(kb);
  } catch {
    return [];
  }
}

function withoutOneClient(table: LoadedKext[]): LoadedKext[] {
  return table.map((k) =>
    k.bundleId !== SAMPLE_KEXT.bundleId
      ? k
      : { ...k, classes: k.classes.map((c) => (c.name === SAMPLE_KEXT.userClientClass ? { ...c, instances: Math.max(0, c.instances - 1) } : c)) },
  );
}

function machineOf(kb: KextBridge): MachineKey {
  return kb.sim ?? 'iokit';
}

function quote(s: string): string {
  return s.startsWith('(') ? s : `"${s}"`;
}
