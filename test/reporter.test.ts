/**
 * The reporter of `npm test`: compact on success, every failure in full, and a closing
 * line that says how many passed and failed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPORTER = fileURLToPath(new URL('./reporter.js', import.meta.url));

const SAMPLE = `import { test } from 'node:test';
import assert from 'node:assert/strict';
test('passes', () => {});
test('skips', (t) => t.skip('clang is not installed'));
test('is todo', { todo: 'needs a later change' }, () => {});
test('fails', () => assert.equal(1, 2));
test('parent', async (t) => {
  await t.test('child passes', () => {});
  await t.test('child fails', () => { throw new Error('boom'); });
});
test('uses mock timers', (t) => t.mock.timers.enable({ apis: ['setTimeout'] }));
`;

test('a dot per test, failures in full, skip reasons, no MockTimers warning, a closing count', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kcm-reporter-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'sample.test.mjs');
  writeFileSync(file, SAMPLE);
  // The flags of npm test, in a runner of its own (not a child of this one).
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  const r = spawnSync(process.execPath, ['--disable-warning=ExperimentalWarning', '--test', `--test-reporter=${REPORTER}`, file], { encoding: 'utf8', env, timeout: 60_000 });
  assert.equal(r.status, 1, r.stderr);
  const out = r.stdout;
  assert.match(out, /^\.stX\.X\.$/m, out);
  assert.match(out, /^✖ fails \(.*sample\.test\.mjs:6:1\)\n {4}AssertionError \[ERR_ASSERTION\]: Expected values to be strictly equal:/m);
  assert.match(out, /^ {4}1 !== 2$/m);
  assert.match(out, /^✖ child fails \(.*\)\n {4}Error: boom$/m);
  assert.doesNotMatch(out, /^✖ parent /m, 'a parent is not listed again for its failing child');
  assert.match(out, /^ {2}- skips \(.*\): clang is not installed$/m);
  assert.match(out, /^ {2}- todo: is todo \(.*\): needs a later change$/m);
  assert.doesNotMatch(out + r.stderr, /ExperimentalWarning/);
  assert.match(out, /^ℹ tests 8$/m);
  const lines = out.trimEnd().split('\n');
  assert.equal(lines.at(-1), '3 passed, 3 failed, 1 skipped, 1 todo, 0 cancelled');
});
