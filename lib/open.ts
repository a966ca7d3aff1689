// open(): which backend to use, opening it, and the handshake that makes a KextBridge.
import { codeValue, describeReturn } from './codes';
import { decodeInfo } from './decode';
import { KextBridgeError } from './errors';
import { Backend, KextBridge } from './kextbridge';
import { binding, isOpenFailure, NativeConnection } from './native';
import { PROTOCOL_VERSION, SELECTORS } from './protocol.gen';
import { defaultSimKernel, SimKernel } from './sim';
import { checkBoolean, checkOneOf, checkOptions } from './validate';

const sel = SELECTORS;

export interface OpenOptions {
  /** 'auto' (default): iokit where the sample kext answers, else the simulator. */
  backend?: 'auto' | Backend;
  /** sim only: the simulated machine to open on (default: the process's own). */
  kernel?: SimKernel;
  /** sim only: open as an administrator (default true), like running as root. */
  privileged?: boolean;
}

/** Opens a connection to the sample kext's user client, real or simulated. */
export async function open(options?: OpenOptions): Promise<KextBridge> {
  const o = checkOptions('options', options, ['backend', 'kernel', 'privileged']);
  const backend = o.backend === undefined ? 'auto' : checkOneOf('options.backend', o.backend, ['auto', 'sim', 'iokit'] as const);
  if (o.kernel !== undefined && !(o.kernel instanceof SimKernel))
    throw new TypeError('options.kernel must be a SimKernel from createSimKernel()');
  const privileged = o.privileged === undefined ? true : checkBoolean('options.privileged', o.privileged);
  const simOnly = o.kernel !== undefined || o.privileged !== undefined;
  if (backend === 'iokit' && simOnly)
    throw new TypeError('options.kernel and options.privileged apply to the sim backend only');

  const native = binding();
  if (backend === 'iokit' || (backend === 'auto' && !simOnly && native.iokitAvailable)) {
    const conn = native.openIOKit();
    if (!isOpenFailure(conn)) return connect(conn, 'iokit', undefined);
    // 'auto' falls back only where no sample kext is loaded. A kext that is there but does
    // not open (wrong class, sandbox, policy) is an error to see, not a reason to simulate.
    const absent = !native.iokitAvailable || conn.kr === codeValue('kIOReturnNotFound');
    if (backend === 'iokit' || !absent) throw new KextBridgeError('open', conn.kr, iokitHelp(conn.why, native.iokitAvailable));
  }
  const kernel = (o.kernel as SimKernel | undefined) ?? defaultSimKernel();
  const conn = native.openSim(kernel._native, privileged);
  if (isOpenFailure(conn)) throw new KextBridgeError('open', conn.kr, kernel.panicked?.message ?? conn.why);
  return connect(conn, 'sim', kernel);
}

async function connect(conn: NativeConnection, backend: Backend, sim: SimKernel | undefined): Promise<KextBridge> {
  const r = await conn.call(sel.getInfo.selector, [], null, sel.getInfo.scalarOutputs, sel.getInfo.structOutputSize);
  if (r.kr !== 0) {
    await conn.close();
    throw new KextBridgeError('open', r.kr, `the user client did not answer getInfo: ${describeReturn(r.kr).message}`);
  }
  const info = decodeInfo(r);
  if (info.protocolVersion !== PROTOCOL_VERSION) {
    await conn.close();
    throw new KextBridgeError('open', codeValue('kIOReturnUnsupported'),
      `the sample kext speaks protocol ${info.protocolVersion}, this kextbridge speaks ${PROTOCOL_VERSION}: rebuild and reload the kext`);
  }
  return new KextBridge(conn, backend, sim, info.loadTag);
}

/** The native reason already says what to do on a Mac; elsewhere, say where to go. */
function iokitHelp(why: string, available: boolean): string {
  return available ? why : `${why}. Use open({ backend: 'sim' }) here, or run on the test Mac (docs/mac.md).`;
}
