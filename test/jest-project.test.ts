// kextbridge/jest as a user gets it: a jest project of its own (test/fixtures/jest-project),
// run by jest in a child process against the package tree, with the per-test leak check on.
// With LEAK=1 exactly the leaking test fails, naming itself; without it everything passes.
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as ts from 'typescript';
import { buildPackage, ROOT, userProject } from './kit-package';

let pkg: string;
let proj: string;
beforeAll(() => {
  pkg = buildPackage();
  proj = userProject('jest-project', pkg);
}, 120_000);
afterAll(() => {
  for (const d of [pkg, proj]) if (d) fs.rmSync(d, { recursive: true, force: true });
});

interface Report {
  numFailedTests: number;
  numPassedTests: number;
  testResults: { name: string; assertionResults: { title: string; status: string; failureMessages: string[] }[] }[];
}

function runJest(env: Record<string, string>, config = 'jest.config.js'): Promise<{ code: number | null; report: Report; stderr: string }> {
  const out = path.join(proj, `report-${Object.keys(env).join('-') || 'plain'}-${config}.json`);
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [path.join(ROOT, 'node_modules', 'jest', 'bin', 'jest.js'), '--rootDir', proj, '--config', path.join(proj, config), '--json', `--outputFile=${out}`, '--ci', '--runInBand'],
      { cwd: proj, env: { ...process.env, KB_ROOT: ROOT, ...env, NODE_OPTIONS: '' }, timeout: 120_000 },
      (_err, _stdout, stderr) => resolve({ code: child.exitCode, report: JSON.parse(fs.readFileSync(out, 'utf8')), stderr }),
    );
  });
}

const results = (r: Report) =>
  Object.fromEntries(r.testResults.flatMap((f) => f.assertionResults.map((a) => [a.title, a.status])));

test('without the leak the project passes', async () => {
  const { code, report, stderr } = await runJest({});
  expect({ code, failed: report.numFailedTests, stderr: code === 0 ? '' : stderr }).toEqual({ code: 0, failed: 0, stderr: '' });
  expect(report.numPassedTests).toBe(6);
}, 90_000);

test('a test that leaks one retain fails with the diff naming that test; the others pass', async () => {
  const { code, report } = await runJest({ LEAK: '1' });
  expect(code).toBe(1);
  expect(results(report)).toEqual({
    'retains and releases': 'passed',
    'retains twice': 'failed',
    'a test after a leak starts from where the leak left it': 'passed',
    'opted out: holds on purpose': 'passed',
    'a retain held across the hooks': 'passed',
    'leaks, unchecked': 'passed',
  });
  const failure = report.testResults.flatMap((f) => f.assertionResults).find((a) => a.title === 'retains twice')!.failureMessages.join('\n');
  if (process.env.SHOW_LEAK) console.log(failure);
  expect(failure).toContain('kextbridge leak check: "retains twice" left the kernel changed:');
  expect(failure).toMatch(/ {2}com\.example\.driver \(tag \d+\): refs 0 → 1 \(held by connection #2, opened in "retains twice"\)/);
  expect(failure).toMatch(/ {2}org\.kextbridge\.sample \(tag 8\): instances of org_kextbridge_SampleUserClient 1 → 2 \(not closed: connection #2, opened in "retains twice"\)/);
}, 90_000);

test('the matcher types resolve through the package (exports and typesVersions), and wrong arguments do not compile', () => {
  const file = path.join(proj, 'uses-matchers.ts');
  fs.copyFileSync(path.join(ROOT, 'test', 'fixtures', 'jest-types', 'uses-matchers.ts'), file);
  for (const [moduleResolution, module] of [
    [ts.ModuleResolutionKind.Node16, ts.ModuleKind.Node16],
    [ts.ModuleResolutionKind.Node10, ts.ModuleKind.CommonJS],
  ] as const) {
    const program = ts.createProgram([file], {
      strict: true, noEmit: true, target: ts.ScriptTarget.ES2022, module, moduleResolution, skipLibCheck: true,
      types: ['node', 'jest'], typeRoots: [path.join(ROOT, 'node_modules', '@types')],
    });
    const diags = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    expect({ moduleResolution, diags }).toEqual({ moduleResolution, diags: [] });
  }
});

test("the README's example passes under ts-jest with type checking, with no declarations of the user's", async () => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const example = fs.readFileSync(path.join(proj, 'ts', 'readme.fixture.ts'), 'utf8').split('\n').slice(1).join('\n');
  expect(readme).toContain(example.trim()); // the fixture is the README's text
  const { code, report, stderr } = await runJest({}, 'jest.ts.config.js');
  expect({ code, stderr: code === 0 ? '' : stderr }).toEqual({ code: 0, stderr: '' });
  expect(report.numPassedTests).toBe(2);
}, 150_000);
