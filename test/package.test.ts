// What `npm pack` ships: the library, the addon sources it builds from, the kext sources and
// scripts, the docs — and no tests, fixtures, C++ harnesses or build droppings.
import { execFileSync } from 'child_process';
import * as path from 'path';

test('the packed file list holds what a user needs and nothing test-only', () => {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: path.join(__dirname, '..'),
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const files: string[] = JSON.parse(out)[0].files.map((f: { path: string }) => f.path);
  for (const need of ['package.json', 'binding.gyp', 'dist/lib/index.js', 'dist/lib/index.d.ts', 'native/connection.cc',
    'bridge/serial_queue.cc', 'bridge/iokit_transport.cc', 'sim/sim_kernel.cpp', 'kext-sample/core/user_client_core.cpp',
    'kext-sample/core/dispatch.gen.inc', 'kext-sample/kext/Makefile', 'kext-sample/scripts/load.sh', 'protocol/kextbridge.json', 'docs/mac.md'])
    expect(files).toContain(need);
  const forbidden = files.filter((f) => /^(test|build|bench|examples|scripts|fuzz|sanitize|\.ci)\//.test(f) || /\.test\.|fixtures|corpus|stress\.cc|_test\.cc/.test(f));
  expect(forbidden).toEqual([]);
});
