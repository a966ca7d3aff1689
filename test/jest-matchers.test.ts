// kextbridge/jest's matchers: what passes, what fails, and the messages both ways; and that
// their types reach a test file that only imports kextbridge/jest.
import * as path from 'path';
import * as ts from 'typescript';
import { codeValue, createSimKernel, KextBridge, open, SimKernel } from '../lib';
import { kextRef, matchers } from '../lib/jest';

const ctx = { isNot: false };
const notCtx = { isNot: true };

let kernel: SimKernel;
let kb: KextBridge;
beforeEach(async () => {
  kernel = createSimKernel();
  kb = await open({ backend: 'sim', kernel });
});
afterEach(() => kb.close());

describe('toBeOSReturn', () => {
  test('passes on a result or a number with that code, by name or number', async () => {
    const r = await kb.retain();
    expect(r).toBeOSReturn('kOSReturnSuccess');
    expect(r).toBeOSReturn(0);
    expect(0xdc008006).toBeOSReturn('kOSKextReturnNotFound');
    expect(-603947002).toBeOSReturn('kOSKextReturnNotFound');
    expect(r).not.toBeOSReturn('kOSKextReturnNotFound');
  });

  test('the failure shows the name, hex, layer and message received', async () => {
    const r = await kb.retain(999);
    const m = matchers.toBeOSReturn.call(ctx, r, 'kOSReturnSuccess');
    expect(m.pass).toBe(false);
    expect(m.message()).toBe(
      'expect(received).toBeOSReturn(expected)\n\n' +
        'Expected: kOSReturnSuccess (0x00000000)\n' +
        `Received: kOSKextReturnNotFound (0xDC008006, kernel layer): ${r.message} [tag 999]`,
    );
    expect(() => expect(r).toBeOSReturn('kOSReturnSuccess')).toThrow(/Received: kOSKextReturnNotFound \(0xDC008006, kernel layer\)/);
  });

  test('a user-client refusal says so; a bare number says its system; .not says what it should not be', async () => {
    const other = await open({ backend: 'sim', kernel, privileged: false });
    const r = await other.retain();
    await other.close();
    expect(matchers.toBeOSReturn.call(ctx, r, 0).message()).toMatch(/Received: kIOReturnNotPrivileged \(0xE00002C1, userclient layer\)/);
    expect(matchers.toBeOSReturn.call(ctx, codeValue('kOSKextReturnInUse'), 0).message()).toMatch(/Received: kOSKextReturnInUse \(0xDC008018, system libkern\): /);
    const n = matchers.toBeOSReturn.call(notCtx, 0, 'kOSReturnSuccess');
    expect(n.pass).toBe(true);
    expect(n.message()).toMatch(/^expect\(received\)\.not\.toBeOSReturn\(expected\)\n\nExpected: not kOSReturnSuccess \(0x00000000\)\nReceived: kOSReturnSuccess/);
  });

  test('what is neither a result nor a code fails with what it got; a bad expectation throws', () => {
    expect(matchers.toBeOSReturn.call(ctx, 'hello', 0).message()).toMatch(/received must be a kextbridge result .* or a return code, got string hello/);
    expect(() => matchers.toBeOSReturn.call(ctx, 0, 'kNope' as never)).toThrow(TypeError);
  });
});

describe('toBeLoaded / toHaveLoaded', () => {
  test('pass on a loaded kext; fail on an unloaded handle and an unknown id, with why', async () => {
    const tag = kernel.loadKext({ bundleId: 'com.example.driver' });
    const h = (await kb.kext(tag))!;
    await expect(h).toBeLoaded();
    await expect(kb).toHaveLoaded('com.example.driver');
    await expect(kernel).toHaveLoaded(tag);
    await expect(kextRef(kb, 'com.example.none')).not.toBeLoaded();
    expect((await matchers.toBeLoaded.call(notCtx, h)).message()).toBe(`expected com.example.driver (tag ${tag}) not to be loaded, but it is loaded`);
    kernel.unloadKext(tag);
    const m = await matchers.toBeLoaded.call(ctx, h);
    expect(m.pass).toBe(false);
    expect(m.message()).toBe(`expected com.example.driver (tag ${tag}) to be loaded, but it was unloaded`);
    const again = kernel.loadKext({ bundleId: 'com.example.driver' });
    expect((await matchers.toBeLoaded.call(ctx, h)).message()).toMatch(`it was unloaded and loaded again under tag ${again}`);
    expect((await matchers.toHaveLoaded.call(ctx, kb, 'com.example.none')).message()).toBe('expected com.example.none to be loaded, but no loaded kext has that bundle id');
    await expect(expect(kextRef(kb, 'com.example.none')).toBeLoaded()).rejects.toThrow(/no loaded kext has that bundle id/);
  });

  test('a subject that is not a kext is a usage error that says what to pass', async () => {
    await expect(matchers.toBeLoaded.call(ctx, kb)).rejects.toThrow(/use expect\(kb\)\.toHaveLoaded\(target\)/);
    await expect(matchers.toHaveLoaded.call(ctx, {}, 'x')).rejects.toThrow(TypeError);
  });
});

describe('toBeUnloadable', () => {
  test('passes when nothing holds it; the failure lists every blocker', async () => {
    const lib = kernel.loadKext({ bundleId: 'com.example.lib', classes: [{ name: 'Thing', instances: 2 }] });
    const tag = kernel.loadKext({ bundleId: 'com.example.driver' });
    await expect(kextRef(kernel, tag)).toBeUnloadable();
    kernel.loadKext({ bundleId: 'com.example.user', dependencies: ['com.example.lib'] });
    await kb.retain(lib);
    const m = await matchers.toBeUnloadable.call(ctx, kextRef(kb, 'com.example.lib'));
    expect(m.pass).toBe(false);
    expect(m.message()).toBe(
      `expected com.example.lib to be unloadable, but 3 blockers:\n` +
        `  - retained 1 time (1 by this connection)\n` +
        `  - depended on by com.example.user (tag ${tag + 1})\n` +
        `  - live instances of Thing ×2`,
    );
    const n = await matchers.toBeUnloadable.call(notCtx, kextRef(kb, tag));
    expect(n.pass).toBe(true);
    expect(n.message()).toBe(`expected tag ${tag} not to be unloadable, but nothing holds it (an explicit unload would succeed)`);
    expect((await matchers.toBeUnloadable.call(ctx, kextRef(kb, 'com.example.none'))).message()).toBe('expected com.example.none to be unloadable, but it is not loaded');
  });
});

describe('toHaveRetainCount', () => {
  test('counts retains and dependents; the failure says which', async () => {
    const tag = kernel.loadKext({ bundleId: 'com.example.driver' });
    const h = (await kb.kext(tag))!;
    await expect(h).toHaveRetainCount(0);
    await kb.retain(tag);
    await kb.retain(tag);
    kernel.loadKext({ bundleId: 'com.example.user', dependencies: ['com.example.driver'] });
    await expect(h).toHaveRetainCount(3);
    const m = await matchers.toHaveRetainCount.call(ctx, h, 1);
    expect(m.pass).toBe(false);
    expect(m.message()).toBe(`expected com.example.driver (tag ${tag}) to have retain count (OSBundleRetainCount) 1, but it has 3 (2 retains, 2 by this connection; 1 dependent)`);
    const n = await matchers.toHaveRetainCount.call(notCtx, h, 3);
    expect(n.message()).toBe(`expected com.example.driver (tag ${tag}) to have retain count (OSBundleRetainCount) other than 3, but it has 3 (2 retains, 2 by this connection; 1 dependent)`);
    await expect(expect(h).toHaveRetainCount(1)).rejects.toThrow(/but it has 3/);
    expect((await matchers.toHaveRetainCount.call(ctx, kextRef(kernel, 'com.example.none'), 0)).message()).toBe('expected com.example.none to have retain count 0, but it is not loaded');
    await expect(matchers.toHaveRetainCount.call(ctx, h, -1)).rejects.toThrow(TypeError);
  });
});

test('the matcher types reach a test that only imports kextbridge/jest; wrong arguments do not compile', () => {
  const root = path.join(__dirname, '..');
  const file = path.join(__dirname, 'fixtures', 'jest-types', 'uses-matchers.ts');
  const program = ts.createProgram([file], {
    strict: true, noEmit: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.CommonJS, skipLibCheck: true, types: ['node', 'jest'],
    typeRoots: [path.join(root, 'node_modules', '@types')], esModuleInterop: true,
    baseUrl: root, paths: { kextbridge: ['lib/index.ts'], 'kextbridge/jest': ['lib/jest/index.ts'] },
  });
  const diags = ts.getPreEmitDiagnostics(program).map((d) => `${d.file ? path.basename(d.file.fileName) + ':' + (d.file.getLineAndCharacterOfPosition(d.start!).line + 1) : ''} ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`);
  // Every @ts-expect-error line is an error (else "Unused '@ts-expect-error' directive" appears), nothing else is.
  expect(diags).toEqual([]);
});
