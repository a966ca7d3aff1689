// explain(target): why a kext will not unload (or is not loaded), computed from the
// loaded-kext table, this connection's ledger and, on the simulator, what the kernel knows
// beyond that table. Pure: the callers gather the facts.
import { SAMPLE_KEXT } from '../protocol.gen';
import type { Held, LoadedKext } from '../results';
import type { SimKextFlags } from '../sim-types';
import { findTarget, Target } from './target';

/** A user client open on a service: on a Mac from its IOUserClientCreator ("pid 123, node"). */
export interface UserClient {
  /** The client process's id. */
  pid: number;
  /** Its short name (the executable's, at most 16 bytes; 'unknown' when the kernel had none). */
  process: string;
}

/**
 * One reason an explicit unload (kmutil unload) would answer kOSKextReturnInUse (or refuse
 * otherwise).
 */
export type Blocker =
  /** Outside retains (OSBundleRetainCount less the dependents), and how many this connection holds. */
  | {
      /** Outside retains block the unload. */
      kind: 'retained';
      /** OSBundleRetainCount less the number of dependents. */
      count: number;
      /** How many of those retains this connection holds. */
      heldByThisConnection: number;
    }
  /** Loaded kexts that link against it: each holds a reference. */
  | {
      /** Loaded dependents block the unload. */
      kind: 'dependents';
      /** The loaded kexts that link against it. */
      kexts: {
        /** The dependent's bundle id. */
        bundleId: string;
        /** The dependent's load tag. */
        loadTag: number;
      }[];
    }
  /** Classes with live instances (OSMetaClassTrackingCount). */
  | {
      /** Live instances of its classes block the unload. */
      kind: 'instances';
      /** The classes that have live instances. */
      classes: {
        /** The class name. */
        name: string;
        /** Its live instances (OSMetaClassTrackingCount). */
        count: number;
      }[];
    }
  /** Open user clients on its services (sim: the open connections; Mac: IOUserClientCreator in the IORegistry). */
  | {
      /** Open user clients block the unload. */
      kind: 'userClients';
      /** The processes with a user client open. */
      clients: UserClient[];
    }
  /**
   * Resource requests with this kext's callback still pending in the kernel
   * (OSKextRequestResource): the kernel refuses to unload it until each is delivered, timed
   * out or cancelled. On the sim every pending request of the kext; on a Mac the ones this
   * connection made (through the sample kext), as user space cannot list the kernel's.
   */
  | {
      /** Pending resource requests block the unload. */
      kind: 'pendingRequests';
      /** How many requests are pending. */
      count: number;
      /** Each pending request. */
      requests: {
        /** The kernel's tag for the request. */
        requestTag: number;
        /** The bundle the resource is asked from. */
        bundleId: string;
        /** The resource's name. */
        resourceName: string;
      }[];
    }
  /** Refused whatever its state: a kernel component, marked not unloadable, or unloading off. */
  | {
      /** The kext cannot be unloaded at all. */
      kind: 'notUnloadable';
      /** Why: a kernel component, marked not unloadable, or unloading disabled on the machine. */
      reason: 'kernelComponent' | 'unloadUnsupported' | 'unloadDisabled';
    };

/** What explain() answers: a kext's state and why an explicit unload would (not) succeed. */
export interface Explanation {
  /** The kext's bundle id; for a target that is not loaded, the id asked for (or null for a tag). */
  bundleId: string | null;
  /** The kext's load tag; for a target that is not loaded, the tag asked for (or null for a bundle id). */
  loadTag: number | null;
  /** Whether a kext answering to the target is loaded. */
  loaded: boolean;
  /** OSBundleStarted: the kext's start routine ran (false when not loaded). */
  started: boolean;
  /** True exactly when blockers is empty (and the kext is loaded): an explicit unload then succeeds. */
  unloadable: boolean;
  /**
   * The per-kext autounload flag (null where it cannot be read: the Mac's loaded-kext table
   * does not carry it), and on the sim the virtual ms until the armed scan runs.
   */
  autounload: {
    /** Whether the autounload scan may unload this kext (null on a Mac). */
    enabled: boolean | null;
    /** Sim only: virtual ms until the armed autounload scan runs. */
    nextScanInMs?: number;
  };
  /** Everything that would make an explicit unload refuse; empty when it would succeed. */
  blockers: Blocker[];
}

/** What the simulated kernel knows beyond the loaded-kext table. */
export interface SimFacts {
  flags(loadTag: number): SimKextFlags | null;
  unloadEnabled: boolean;
  autounloadEnabled: boolean;
  nextDueMs: number | null;
  now: number;
  sampleLoadTag: number;
}

/** A pending resource request and the kext whose callback it is. */
export interface RequestFact {
  requestTag: number;
  /** The requesting kext (whose unload the request blocks). */
  loadTag: number;
  bundleId: string;
  resourceName: string;
}

export interface Facts {
  kexts: readonly LoadedKext[];
  held: readonly Held[];
  /** The user clients open on the sample kext's service, from the transport (both backends). */
  userClients: readonly UserClient[];
  /** Absent on the iokit backend. */
  sim?: SimFacts;
  /** Pending resource requests (sim: the kernel's; Mac: this connection's). */
  requests?: readonly RequestFact[];
}

/** The rule `kextbridge list -k` uses where the table lacks OSKernelResource. */
const isKernelComponentByName = (id: string) => id === '__kernel__' || id.startsWith('com.apple.kpi.');

export function explainFrom(facts: Facts, target: Target): Explanation {
  const k = findTarget(facts.kexts, target);
  if (!k)
    return {
      bundleId: typeof target === 'string' ? target : null,
      loadTag: typeof target === 'number' ? target : null,
      loaded: false,
      started: false,
      unloadable: false,
      autounload: { enabled: false },
      blockers: [],
    };
  const sim = facts.sim;
  const blockers: Blocker[] = [];

  const dependents = facts.kexts.filter((d) => d.dependencies.includes(k.loadTag));
  const retained = Math.max(0, k.retainCount - dependents.length);
  if (retained > 0)
    blockers.push({ kind: 'retained', count: retained, heldByThisConnection: facts.held.find((h) => h.loadTag === k.loadTag)?.count ?? 0 });
  if (dependents.length > 0) blockers.push({ kind: 'dependents', kexts: dependents.map((d) => ({ bundleId: d.bundleId, loadTag: d.loadTag })) });

  const isSample = k.bundleId === SAMPLE_KEXT.bundleId && (!sim || k.loadTag === sim.sampleLoadTag);
  const classes = k.classes
    .filter((c) => c.instances > 0)
    // An explicit unload terminates the sample's service first (kmutil unload does), so its
    // instance never blocks one; the user-client instances are reported with their
    // processes instead (the userClients blocker).
    .filter((c) => !(isSample && (c.name === SAMPLE_KEXT.serviceClass || c.name === SAMPLE_KEXT.userClientClass)))
    .map((c) => ({ name: c.name, count: c.instances }));
  if (classes.length > 0) blockers.push({ kind: 'instances', classes });

  if (isSample && facts.userClients.length > 0) blockers.push({ kind: 'userClients', clients: facts.userClients.map((c) => ({ pid: c.pid, process: c.process })) });

  const requests = (facts.requests ?? []).filter((r) => r.loadTag === k.loadTag);
  if (requests.length > 0)
    blockers.push({ kind: 'pendingRequests', count: requests.length, requests: requests.map((r) => ({ requestTag: r.requestTag, bundleId: r.bundleId, resourceName: r.resourceName })) });

  const flags = sim?.flags(k.loadTag) ?? null;
  const kernelComponent = flags ? flags.kernelComponent : isKernelComponentByName(k.bundleId);
  if (kernelComponent) blockers.push({ kind: 'notUnloadable', reason: 'kernelComponent' });
  else if (flags?.unloadUnsupported) blockers.push({ kind: 'notUnloadable', reason: 'unloadUnsupported' });
  else if (sim && !sim.unloadEnabled) blockers.push({ kind: 'notUnloadable', reason: 'unloadDisabled' });

  const autounload: Explanation['autounload'] = { enabled: flags ? flags.autounload && sim!.autounloadEnabled && !kernelComponent : null };
  if (sim && sim.nextDueMs !== null) autounload.nextScanInMs = sim.nextDueMs - sim.now;
  return { bundleId: k.bundleId, loadTag: k.loadTag, loaded: true, started: k.started, unloadable: blockers.length === 0, autounload, blockers };
}

/** One line a human can read: why it is (not) unloadable. */
export function summarize(e: Explanation): string {
  const name = e.bundleId ?? `tag ${e.loadTag}`;
  if (!e.loaded) return `${name} is not loaded`;
  if (e.unloadable) return `${name} (tag ${e.loadTag}) can be unloaded: nothing holds it`;
  return `${name} (tag ${e.loadTag}) cannot be unloaded: ${e.blockers.map(describeBlocker).join('; ')}`;
}

export function describeBlocker(b: Blocker): string {
  switch (b.kind) {
    case 'retained':
      return `retained ${b.count} time${b.count === 1 ? '' : 's'} (${b.heldByThisConnection} by this connection)`;
    case 'dependents':
      return `depended on by ${b.kexts.map((d) => `${d.bundleId} (tag ${d.loadTag})`).join(', ')}`;
    case 'instances':
      return `live instances of ${b.classes.map((c) => `${c.name} ×${c.count}`).join(', ')}`;
    case 'userClients':
      return `user clients open by ${b.clients.map((c) => `${c.process} (pid ${c.pid})`).join(', ')}`;
    case 'pendingRequests':
      return `${b.count} pending resource request${b.count === 1 ? '' : 's'}`;
    case 'notUnloadable':
      return { kernelComponent: 'it is a kernel component', unloadUnsupported: 'it is marked as not unloadable', unloadDisabled: 'unloading is disabled on this machine' }[b.reason];
  }
}
