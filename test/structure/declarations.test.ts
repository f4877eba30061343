import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { filesEndingWith } from '../helpers/files.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));

test('no @internal member in the shipped declarations (dist/**/*.d.ts)', () => {
  const files = filesEndingWith(join(root, 'dist'), '.d.ts');
  assert.ok(files.length > 20, `the declarations (${files.length})`);
  const leaks = files.filter((f) => readFileSync(f, 'utf8').includes('@internal')).map((f) => relative(root, f));
  assert.deepEqual(leaks, []);
});

test('the public types: typed events, read-only members, errno codes, no internals (tsc over test/types)', () => {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'test', 'types', 'tsconfig.json')], { cwd: root, encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.error, undefined);
  assert.equal(r.status, 0, `tsc reported:\n${r.stdout}${r.stderr}`);
});
