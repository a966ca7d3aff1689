// kextbridge/jest/environment: jest's node environment plus, for every test, the leak check
// (lib/jest/leak.ts). One line of jest config:
//
//   testEnvironment: 'kextbridge/jest/environment',
//   testEnvironmentOptions: { kextbridge: { leakCheck: { bundleIds: ['com.example.driver'] } } },
//
// The check runs in jest's own events, from 'test_start' (before the test's beforeEach hooks)
// to 'test_done' (after its afterEach hooks), so a hook that opens and closes connections is
// part of the test. A leak becomes an error of that test. Opt out per test with
// skipLeakCheck() (kextbridge/jest), per file with a docblock `@kextbridge-leak-check off`,
// everywhere with leakCheck: false.
import type { EnvironmentContext, JestEnvironmentConfig } from '@jest/environment';
import type { Circus } from '@jest/types';
import NodeEnvironment from 'jest-environment-node';
import { OBSERVERS, OpenObserver } from '../observe';
import { SAMPLE_KEXT } from '../protocol.gen';
import { formatWindow, LogWindow } from './kernel-log';
import { KextbridgeEnvironmentOptions, LeakChecker, testName } from './leak';
import { PanicJournal } from './panic';

const onMac = process.platform === 'darwin';

function problem(message: string): Error {
  const err = new Error(message);
  err.stack = message; // the message is the whole story; a stack into the environment would only add noise
  return err;
}

class KextbridgeEnvironment extends NodeEnvironment {
  private readonly leak: LeakChecker | null;
  private readonly log: LogWindow | null;
  private readonly journal: PanicJournal | null;
  private previousPanic: string | null = null;
  private testStartedAt = 0;
  private leakProblem: string | null = null;

  constructor(config: JestEnvironmentConfig, context: EnvironmentContext) {
    super(config, context);
    const o = ((config.projectConfig.testEnvironmentOptions ?? {}) as { kextbridge?: KextbridgeEnvironmentOptions }).kextbridge ?? {};
    const pragma = context.docblockPragmas?.['kextbridge-leak-check'];
    const off = o.leakCheck === false || pragma === 'off' || (Array.isArray(pragma) && pragma.includes('off'));
    this.leak = off ? null : new LeakChecker(typeof o.leakCheck === 'object' ? o.leakCheck : {});
    const logOn = typeof o.log === 'object' || (o.log ?? onMac);
    this.log = logOn ? new LogWindow({ ...(typeof o.log === 'object' ? o.log : {}), defaultSender: SAMPLE_KEXT.executable }) : null;
    const panicOn = typeof o.panic === 'object' || (o.panic ?? onMac);
    this.journal = panicOn ? new PanicJournal(context.testPath, config.projectConfig.rootDir, typeof o.panic === 'object' ? o.panic : {}) : null;
  }

  override async setup(): Promise<void> {
    await super.setup();
    const observers: OpenObserver[] = [];
    if (this.leak) observers.push(this.leak);
    (this.global as unknown as Record<symbol, unknown>)[OBSERVERS] = observers;
    this.previousPanic = this.journal?.checkPrevious() ?? null;
    if (this.previousPanic) process.stderr.write(this.previousPanic + '\n');
    this.log?.start();
  }

  override async teardown(): Promise<void> {
    this.log?.stop();
    this.journal?.finished();
    await super.teardown();
  }

  async handleTestEvent(event: Circus.Event): Promise<void> {
    if (event.name === 'test_start') {
      this.testStartedAt = Date.now();
      const name = testName(event.test);
      this.journal?.started(name);
      this.log?.forgetBefore(this.testStartedAt);
      this.leakProblem = null;
      await this.leak?.before(name).catch((e: Error) => {
        this.leakProblem = `kextbridge leak check: could not read the kernel before the test: ${e.message}`;
        this.leak?.cancel();
      });
    } else if (event.name === 'test_skip' || event.name === 'test_todo') {
      this.leak?.cancel();
      this.journal?.finished();
    } else if (event.name === 'test_done') {
      const name = testName(event.test);
      const report = await this.leak?.after().catch((e: Error) => `kextbridge leak check: could not read the kernel after the test: ${e.message}`);
      if (report) event.test.errors.push(problem(report));
      if (this.leakProblem) event.test.errors.push(problem(this.leakProblem));
      if (this.previousPanic) {
        // Once, on the first test of the file: the run that panicked never reported anything.
        event.test.errors.push(problem(this.previousPanic));
        this.previousPanic = null;
      }
      // The kernel's lines for a failure only: nothing is kept or printed for a passing test.
      if (this.log && event.test.errors.length > 0)
        event.test.errors.push(problem(formatWindow(name, await this.log.window(this.testStartedAt, Date.now()), this.log.argv)));
      this.journal?.finished();
    }
  }
}

export = KextbridgeEnvironment;
