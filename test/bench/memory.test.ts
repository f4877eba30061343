/**
 * `bench/memory.ts` runs a kcm sender and receiver in two processes and reports their
 * memory; a short run reports figures without judging them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('../../bench/memory.js', import.meta.url));

test('the memory benchmark runs both processes and reports a rate and memory for each', () => {
  const r = spawnSync(process.execPath, [script, '--seconds=3'], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  for (const side of ['sender', 'receiver']) {
    const line = r.stdout.split('\n').find((l) => l.startsWith(side));
    assert.ok(line !== undefined, `a row for the ${side}: ${r.stdout}`);
    assert.match(line, /^\S+\s+\d+(\.\d+)? [kM]?\/s\s+\d+\.\d -> \d+\.\d\s+\d+\.\d -> \d+\.\d\s+\d+\.\d\s+not judged$/);
  }
  assert.match(r.stdout, /runs under 20 s are not judged/);
});
