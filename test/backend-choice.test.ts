// Which backend open() picks and why it says it did: chooseBackend with fake IOKit answers
// (so the Mac's branches run here too), and the one-time warning when 'auto' falls back.
import { codeValue, createSimKernel, KextBridgeError, open } from '../lib';
import { binding, NativeConnection } from '../lib/native';
import { chooseBackend } from '../lib/open';

const NOT_FOUND = { kr: codeValue('kIOReturnNotFound'), why: 'the sample kext is not loaded: run load.sh' };
const NOT_PERMITTED = { kr: codeValue('kIOReturnNotPermitted'), why: 'the sample kext refused the open' };
const FALLBACK = 'no sample kext answers on this machine (kIOReturnNotFound); using the simulated kernel';

/** A real Connection (isOpenFailure tells them apart by class), here on a sim kernel. */
function someConnection(): NativeConnection {
  return binding().openSim(createSimKernel()._native, true) as NativeConnection;
}

describe('chooseBackend', () => {
  test("'sim' is explicit and never asks IOKit", () => {
    const openIOKit = jest.fn(() => NOT_FOUND);
    for (const available of [true, false])
      expect(chooseBackend('sim', available, openIOKit)).toEqual({ backend: 'sim', reason: 'explicitly requested', fellBack: false });
    expect(openIOKit).not.toHaveBeenCalled();
  });

  test("'auto' on a build without IOKit uses the sim and says so, without asking IOKit", () => {
    const openIOKit = jest.fn(() => NOT_FOUND);
    const c = chooseBackend('auto', false, openIOKit);
    expect(c).toEqual({ backend: 'sim', reason: `this build has no IOKit (${process.platform}); using the simulated kernel`, fellBack: false });
    expect(openIOKit).not.toHaveBeenCalled();
  });

  test("'auto' with sim-only options uses the sim even where IOKit is available", () => {
    const openIOKit = jest.fn(() => NOT_FOUND);
    const c = chooseBackend('auto', true, openIOKit, true);
    expect(c).toMatchObject({ backend: 'sim', fellBack: false });
    expect(c.reason).toMatch(/options\.kernel or options\.privileged/);
    expect(openIOKit).not.toHaveBeenCalled();
  });

  test("'auto' where IOKit has no sample kext falls back to the sim, flagged, with the native reason", () => {
    const c = chooseBackend('auto', true, () => NOT_FOUND);
    expect(c).toEqual({ backend: 'sim', reason: FALLBACK, fellBack: true, why: NOT_FOUND.why });
  });

  test("'auto' where the kext is there but refuses the open rejects: no silent sim", () => {
    const err = (() => { try { chooseBackend('auto', true, () => NOT_PERMITTED); } catch (e) { return e; } })() as KextBridgeError;
    expect(err).toBeInstanceOf(KextBridgeError);
    expect(err).toMatchObject({ operation: 'open', codeName: 'kIOReturnNotPermitted' });
    expect(err.message).toContain(NOT_PERMITTED.why);
  });

  test("'auto' where the kext answers takes IOKit, and says why", async () => {
    const conn = someConnection();
    try {
      expect(chooseBackend('auto', true, () => conn)).toEqual({ backend: 'iokit', conn, reason: 'the sample kext answers on this machine' });
      expect(chooseBackend('iokit', true, () => conn)).toEqual({ backend: 'iokit', conn, reason: 'explicitly requested' });
    } finally {
      await conn.close();
    }
  });

  test("'iokit' never falls back: a missing kext rejects, and off macOS the error points at the sim", () => {
    expect(() => chooseBackend('iokit', true, () => NOT_FOUND)).toThrow(KextBridgeError);
    expect(() => chooseBackend('iokit', true, () => NOT_FOUND)).toThrow(/load\.sh/);
    expect(() => chooseBackend('iokit', false, () => NOT_FOUND)).toThrow(/backend: 'sim'/);
  });
});

describe('backendReason', () => {
  test("open({ backend: 'sim' }) says it was asked for, on the bridge and in info()", async () => {
    const kb = await open({ backend: 'sim', kernel: createSimKernel() });
    try {
      expect(kb.backendReason).toBe('explicitly requested');
      expect((await kb.info()).backendReason).toBe('explicitly requested');
      expect(kb.sync.info().backendReason).toBe('explicitly requested');
    } finally {
      await kb.close();
    }
  });

  (binding().iokitAvailable ? test.skip : test)("open() on a build without IOKit says so, and warns nothing", async () => {
    const warn = jest.spyOn(process, 'emitWarning').mockImplementation(() => {});
    try {
      const kb = await open();
      expect(kb.backend).toBe('sim');
      expect(kb.backendReason).toMatch(/this build has no IOKit/);
      expect((await kb.info()).backendReason).toBe(kb.backendReason);
      await kb.close();
      expect(warn).not.toHaveBeenCalled();
    } finally {
      warn.mockRestore();
    }
  });
});

test("'auto' falling back on a build with IOKit warns once per process (KEXTBRIDGE_SIM_FALLBACK)", async () => {
  // A Mac without the sample kext, faked: the real addon, but IOKit present and not finding it.
  let lib!: typeof import('../lib');
  const openIOKit = jest.fn(() => NOT_FOUND);
  jest.isolateModules(() => {
    jest.doMock('../lib/native', () => {
      const actual = jest.requireActual<typeof import('../lib/native')>('../lib/native');
      const mac = Object.create(actual.binding(), { iokitAvailable: { value: true }, openIOKit: { value: openIOKit } });
      return { ...actual, binding: () => mac };
    });
    lib = require('../lib') as typeof import('../lib');
  });
  const warn = jest.spyOn(process, 'emitWarning').mockImplementation(() => {});
  try {
    const a = await lib.open();
    const b = await lib.open();
    expect(openIOKit).toHaveBeenCalledTimes(2);
    for (const kb of [a, b]) {
      expect(kb.backend).toBe('sim');
      expect(kb.backendReason).toBe(FALLBACK);
      expect((await kb.info()).backendReason).toBe(FALLBACK);
      await kb.close();
    }
    expect(warn).toHaveBeenCalledTimes(1);
    const [message, options] = warn.mock.calls[0] as unknown as [string, { code: string; detail: string }];
    expect(message).toContain(FALLBACK);
    expect(options).toEqual({ code: 'KEXTBRIDGE_SIM_FALLBACK', detail: NOT_FOUND.why });
  } finally {
    warn.mockRestore();
    jest.dontMock('../lib/native');
  }
});
