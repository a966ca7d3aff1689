// Which backend open() picks, and how it says no.
import { defaultSimKernel, KextBridgeError, open } from '../lib';
import { binding, isOpenFailure } from '../lib/native';

const offMac = binding().iokitAvailable ? test.skip : test;
// Whether a sample kext answers here decides what 'auto' must pick.
function kextAnswers(): boolean {
  const conn = binding().openIOKit();
  if (isOpenFailure(conn)) return false;
  void conn.close();
  return true;
}

(kextAnswers() ? test.skip : test)("'auto' falls back to the simulator when no kext answers", async () => {
  const kb = await open();
  expect(kb.backend).toBe('sim');
  expect(kb.sim).toBe(defaultSimKernel());
  await kb.close();
});

offMac("'iokit' off macOS rejects with a KextBridgeError that says why and what to do", async () => {
  const err = (await open({ backend: 'iokit' }).catch((e: unknown) => e)) as KextBridgeError;
  expect(err).toBeInstanceOf(KextBridgeError);
  expect(err).toMatchObject({ operation: 'open', codeName: 'kIOReturnUnsupported', code: 0xe00002c7 });
  expect(err.message).toMatch(/only on macOS/);
  expect(err.message).toMatch(/backend: 'sim'/);
});

test('connections opened without a kernel share the process default machine', async () => {
  const a = await open({ backend: 'sim' });
  const b = await open({ backend: 'sim' });
  expect(a.sim).toBe(b.sim);
  const tag = (await a.info()).loadTag;
  const before = a.sim!.rawRetainCount(tag)!;
  await a.retain();
  expect(b.sim!.rawRetainCount(tag)).toBe(before + 1);
  await a.close();
  await b.close();
  expect(b.sim!.rawRetainCount(tag)).toBe(before);
});

// On a Mac where the sample kext is not loaded (skipped elsewhere).
(binding().iokitAvailable && !kextAnswers() ? test : test.skip)("'iokit' without the kext says it is not loaded and how to load it — needs a Mac where the sample kext is not loaded", async () => {
  const err = (await open({ backend: 'iokit' }).catch((e: unknown) => e)) as KextBridgeError;
  expect(err).toMatchObject({ operation: 'open', codeName: 'kIOReturnNotFound', code: 0xe00002f0 });
  expect(err.message).toMatch(/not loaded/);
  expect(err.message).toMatch(/load\.sh/);
  const kb = await open(); // and 'auto' falls back to the simulator
  expect(kb.backend).toBe('sim');
  await kb.close();
});
