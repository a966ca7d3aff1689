// open(): which backend to use, opening it, and the handshake that makes a KextBridge.
import { codeValue, describeReturn } from './codes';
import { decodeInfo } from './decode';
import { KextBridgeError } from './errors';
import { Backend, KextBridge } from './kextbridge';
import { binding, isOpenFailure, NativeConnection, OpenFailure } from './native';
import { PROTOCOL_VERSION, SELECTORS } from './protocol.gen';
import { notifyOpened } from './observe';
import { recordFileFromEnv, startRecording } from './record';
import { defaultSimKernel, SimKernel } from './sim';
import { checkBoolean, checkOneOf, checkOptions } from './validate';

const sel = SELECTORS;

/** How {@link open} chooses and opens a backend. */
export interface OpenOptions {
  /** 'auto' (default): iokit where the sample kext answers, else the simulator. */
  backend?: 'auto' | Backend;
  /** sim only: the simulated machine to open on (default: the process's own). */
  kernel?: SimKernel;
  /** sim only: open as an administrator (default true), like running as root. */
  privileged?: boolean;
  /**
   * Append every call of this connection, its result and loaded-kext snapshots at open and
   * close to this JSONL file (docs/recording.md). KEXTBRIDGE_RECORD=dir does it for every
   * connection: one file per jest test file. false: never record this connection.
   */
  record?: string | false;
}

/** Opens a connection to the sample kext's user client, real or simulated. */
export async function open(options?: OpenOptions): Promise<KextBridge> {
  const o = checkOptions('options', options, ['backend', 'kernel', 'privileged', 'record']);
  const backend = o.backend === undefined ? 'auto' : checkOneOf('options.backend', o.backend, ['auto', 'sim', 'iokit'] as const);
  if (o.kernel !== undefined && !(o.kernel instanceof SimKernel))
    throw new TypeError('options.kernel must be a SimKernel from createSimKernel()');
  const privileged = o.privileged === undefined ? true : checkBoolean('options.privileged', o.privileged);
  const simOnly = o.kernel !== undefined || o.privileged !== undefined;
  if (backend === 'iokit' && simOnly)
    throw new TypeError('options.kernel and options.privileged apply to the sim backend only');

  if (o.record !== undefined && o.record !== false && (typeof o.record !== 'string' || o.record.length === 0)) throw new TypeError('options.record must be a file path (a non-empty string), or false (never, whatever KEXTBRIDGE_RECORD says)');
  const native = binding();
  const choice = chooseBackend(backend, native.iokitAvailable, () => native.openIOKit(), simOnly);
  if (choice.backend === 'iokit') return opened(await connect(choice.conn, 'iokit', choice.reason, undefined), o.record as string | false | undefined);
  const kernel = (o.kernel as SimKernel | undefined) ?? defaultSimKernel();
  const conn = native.openSim(kernel._native, privileged);
  if (isOpenFailure(conn)) throw new KextBridgeError('open', conn.kr, kernel.panicked?.message ?? conn.why);
  const kb = await connect(conn, 'sim', choice.reason, kernel);
  if (choice.fellBack) warnSimFallback(choice.reason, choice.why);
  return opened(kb, o.record as string | false | undefined);
}

/** Recording (options.record or KEXTBRIDGE_RECORD) and the test kit's observers. */
function opened(kb: KextBridge, record: string | false | undefined): KextBridge {
  // Observers first: the leak check reads its baseline through the methods before recording wraps them.
  notifyOpened(kb);
  const file = record === false ? undefined : (record ?? recordFileFromEnv());
  if (file !== undefined) startRecording(kb, file);
  return kb;
}

const EXPLICIT = 'explicitly requested';

/**
 * An opened IOKit connection, or the decision to use the sim; `reason` says why. `fellBack`:
 * 'auto' on a build with IOKit found no sample kext (`why` is the native reason).
 */
export type BackendChoice =
  | { backend: 'iokit'; conn: NativeConnection; reason: string }
  | { backend: 'sim'; reason: string; fellBack: false }
  | { backend: 'sim'; reason: string; fellBack: true; why: string };

/**
 * Which backend open() uses. Only openIOKit touches the machine (tests pass fakes).
 * 'auto' falls back to the sim only where no sample kext is loaded: a kext that is there but
 * does not open (wrong class, sandbox, policy) is an error to see, not a reason to simulate.
 * `simOptions`: the caller passed options.kernel or options.privileged.
 */
export function chooseBackend(
  requested: 'auto' | Backend,
  iokitAvailable: boolean,
  openIOKit: () => NativeConnection | OpenFailure,
  simOptions = false,
): BackendChoice {
  if (requested === 'sim') return { backend: 'sim', reason: EXPLICIT, fellBack: false };
  if (requested === 'auto' && simOptions)
    return { backend: 'sim', reason: 'options.kernel or options.privileged given: only the simulated kernel has them', fellBack: false };
  if (requested === 'auto' && !iokitAvailable)
    return { backend: 'sim', reason: `this build has no IOKit (${process.platform}); using the simulated kernel`, fellBack: false };
  const conn = openIOKit();
  if (!isOpenFailure(conn)) return { backend: 'iokit', conn, reason: requested === 'iokit' ? EXPLICIT : 'the sample kext answers on this machine' };
  if (requested === 'auto' && conn.kr === codeValue('kIOReturnNotFound'))
    return { backend: 'sim', reason: 'no sample kext answers on this machine (kIOReturnNotFound); using the simulated kernel', fellBack: true, why: conn.why };
  throw new KextBridgeError('open', conn.kr, iokitHelp(conn.why, iokitAvailable));
}

let warnedSimFallback = false;

/** Once per process: a Mac user who expected the real kext must not get the sim unawares. */
function warnSimFallback(reason: string, why: string): void {
  if (warnedSimFallback) return;
  warnedSimFallback = true;
  process.emitWarning(`kextbridge: open(): ${reason}. Pass { backend: 'sim' } to choose the sim, or { backend: 'iokit' } to fail instead.`,
    { code: 'KEXTBRIDGE_SIM_FALLBACK', detail: why });
}

async function connect(conn: NativeConnection, backend: Backend, backendReason: string, sim: SimKernel | undefined): Promise<KextBridge> {
  const r = await conn.call(sel.getInfo.selector, [], null, sel.getInfo.scalarOutputs, sel.getInfo.structOutputSize);
  if (r.kr !== 0) {
    await conn.close();
    throw new KextBridgeError('open', r.kr, `the user client did not answer getInfo: ${describeReturn(r.kr).message}`);
  }
  const info = decodeInfo(r, backendReason);
  if (info.protocolVersion !== PROTOCOL_VERSION) {
    await conn.close();
    throw new KextBridgeError('open', codeValue('kIOReturnUnsupported'),
      `the sample kext speaks protocol ${info.protocolVersion}, this kextbridge speaks ${PROTOCOL_VERSION}: rebuild and reload the kext`);
  }
  return new KextBridge(conn, backend, backendReason, sim, info.loadTag);
}

/** The native reason already says what to do on a Mac; elsewhere, say where to go. */
function iokitHelp(why: string, available: boolean): string {
  return available ? why : `${why}. Use open({ backend: 'sim' }) here, or run on the test Mac (docs/mac.md).`;
}
