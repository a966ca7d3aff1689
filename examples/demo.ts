// npm start: the whole stack (TypeScript → N-API → user-client core → simulated kernel) in
// one short story. Every answer is printed with its name and hex code.
import { createSimKernel, describeReturn, LoadedKext, open, ReleaseResult, RetainResult } from '../lib';

const MINUTE = 60_000;

function show(call: string, r: RetainResult | ReleaseResult): void {
  const held = 'held' in r ? `  (this connection now holds ${r.held})` : '';
  const where = r.layer === 'userclient' ? 'refused by the user client' : 'answered by the kernel';
  console.log(`  ${call.padEnd(22)} → ${r.name} ${describeReturn(r.code).hex}, ${where}${held}`);
  if (!r.ok) console.log(`  ${''.padEnd(22)}   ${r.message}`);
}

function table(kexts: LoadedKext[]): void {
  console.log('  tag  retain  bundle id                        version   classes (live instances)');
  for (const k of kexts) {
    const classes = k.classes.map((c) => `${c.name}(${c.instances})`).join(' ');
    console.log(`  ${String(k.loadTag).padStart(3)}  ${String(k.retainCount).padStart(6)}  ${k.bundleId.padEnd(32)} ${k.version.padEnd(9)} ${classes}`);
  }
}

async function main(): Promise<void> {
  const kernel = createSimKernel(); // a fresh simulated Mac
  const kb = await open({ backend: 'sim', kernel });
  const info = await kb.info();
  console.log(`kextbridge demo — backend: ${kb.backend}; connected to ${info.identifier} ${info.version} (load tag ${info.loadTag}), protocol ${info.protocolVersion}\n`);

  console.log('1. The loaded-kext table (what KextManagerCopyLoadedKextInfo reports on a Mac):');
  table(await kb.loadedKexts());

  const own = info.loadTag;
  const count = async (tag: number) => (await kb.loadedKexts()).find((k) => k.loadTag === tag)?.retainCount;
  console.log(`\n2. Retain the sample kext by its load tag (OSKextRetainKextWithLoadTag):`);
  console.log(`  retain count before: ${await count(own)}`);
  show(`retain(${own})`, await kb.retain(own));
  console.log(`  retain count after:  ${await count(own)}`);

  console.log('\n3. Tags the kernel does not accept:');
  show('retain(0xFFFFFFFF)', await kb.retain(0xffffffff));
  show('retain(4242)', await kb.retain(4242));

  console.log('\n4. Release it, then try once more (an over-release would panic a real Mac):');
  show(`release(${own})`, await kb.release(own));
  show(`release(${own})`, await kb.release(own));
  console.log(`  retain count now:    ${await count(own)}   panicked: ${kernel.panicked === null ? 'no' : 'yes'}`);

  console.log('\n5. Autounload: a test kext, retained and released, goes 60 s (virtual) after the last release:');
  const target = kernel.loadKext({ bundleId: 'com.example.demo.target', version: '1.0' });
  show(`retain(${target})`, await kb.retain(target));
  console.log(`  ${`unloadKext(${target})`.padEnd(22)} → ${kernel.unloadKext(target).name} (retained, so it stays)`);
  show(`release(${target})`, await kb.release(target));
  kernel.advance(MINUTE - 1);
  console.log(`  +59.999 s: ${kernel.lookup('com.example.demo.target') === null ? 'unloaded' : 'still loaded'}`);
  kernel.advance(1);
  console.log(`  +60.000 s: ${kernel.lookup('com.example.demo.target') === null ? 'unloaded' : 'still loaded'}`);
  show(`retain(${target})`, await kb.retain(target));

  await kb.close();
  console.log('\nClosed. Anything still held would have been released by close(). Run `npm test` for the proofs.');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
