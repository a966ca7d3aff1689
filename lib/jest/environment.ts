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
import { KextbridgeEnvironmentOptions, LeakChecker, testName } from './leak';

class KextbridgeEnvironment extends NodeEnvironment {
  private readonly leak: LeakChecker | null;

  constructor(config: JestEnvironmentConfig, context: EnvironmentContext) {
    super(config, context);
    const o = ((config.projectConfig.testEnvironmentOptions ?? {}) as { kextbridge?: KextbridgeEnvironmentOptions }).kextbridge ?? {};
    const pragma = context.docblockPragmas?.['kextbridge-leak-check'];
    const off = o.leakCheck === false || pragma === 'off' || (Array.isArray(pragma) && pragma.includes('off'));
    this.leak = off ? null : new LeakChecker(typeof o.leakCheck === 'object' ? o.leakCheck : {});
  }

  override async setup(): Promise<void> {
    await super.setup();
    const observers: OpenObserver[] = [];
    if (this.leak) observers.push(this.leak);
    (this.global as unknown as Record<symbol, unknown>)[OBSERVERS] = observers;
  }

  async handleTestEvent(event: Circus.Event): Promise<void> {
    if (event.name === 'test_start') {
      await this.leak?.before(testName(event.test));
    } else if (event.name === 'test_done') {
      const report = await this.leak?.after().catch((e: Error) => `kextbridge leak check: could not read the kernel after the test: ${e.message}`);
      if (report) {
        const err = new Error(report);
        err.stack = report; // the message is the whole story; a stack into the environment would only add noise
        event.test.errors.push(err);
      }
    }
  }
}

export = KextbridgeEnvironment;
