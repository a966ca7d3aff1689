// A jest reporter that lists every skipped test with its title after the summary. The titles
// carry the reason (test/backends.ts, test/mac.test.ts: "… — needs the test Mac: …"), so the
// default `npm test` output says what did not run and why, not just "8 skipped".
'use strict';
const path = require('path');

class SkippedReporter {
  constructor(globalConfig) {
    this.rootDir = globalConfig.rootDir;
  }

  onRunComplete(_contexts, results) {
    const lines = [];
    let n = 0;
    for (const file of results.testResults) {
      const skipped = file.testResults.filter((t) => t.status === 'pending' || t.status === 'skipped' || t.status === 'todo');
      if (skipped.length === 0) continue;
      lines.push(`  ${path.relative(this.rootDir, file.testFilePath)}${file.skipped ? ' (whole file)' : ''}`);
      for (const t of skipped) lines.push(`    ○ ${t.fullName}`);
      n += skipped.length;
    }
    if (n === 0) return;
    process.stderr.write(`\nSkipped tests (${n}), each title says why:\n${lines.join('\n')}\n`);
  }
}

module.exports = SkippedReporter;
