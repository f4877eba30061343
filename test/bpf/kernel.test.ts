/**
 * Parity with the Linux verifier and engine: generated socket-filter programs go to the
 * kernel (bpf(BPF_PROG_LOAD), BPF_PROG_TEST_RUN) and to kcm. Verdicts agree except for the
 * differences docs/bpf.md lists; where both accept, r0 agrees on random packets.
 *
 * Skipped where python3 or bpf() is not available (unprivileged containers). The full run
 * of 10,000 programs: node dist/test/bpf/kernel-diff.js --count=10000
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KNOWN_DIFFERENCES, kernelUnavailable, runDifferential } from './kernel-diff.js';

const docs = readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'docs', 'bpf.md'), 'utf8');
const unavailable = kernelUnavailable();

test('every known difference from the kernel is listed in docs/bpf.md', () => {
  for (const d of KNOWN_DIFFERENCES) assert.ok(docs.includes(d.name), `docs/bpf.md does not list '${d.name}'`);
});

test('[F-1] 1500 generated programs: verdicts and results agree with the Linux kernel', { skip: unavailable }, () => {
  const report = runDifferential(1500, 7);
  assert.deepEqual(report.unexplained, [], JSON.stringify(report.unexplained.slice(0, 3)));
  // The run compares something: most programs are decided the same way, and many run.
  assert.ok(report.bothAccepted > 500 && report.bothRefused > 300, JSON.stringify(report));
  assert.equal(report.packetsCompared, report.bothAccepted * 4);
});
