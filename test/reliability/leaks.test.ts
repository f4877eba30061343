/**
 * No leaks [U-2, O-7]: 10,000 attach/unattach cycles on one transport and 10,000
 * create/clone/close cycles, with traffic, a partial message and an armed assembly timer
 * every 100 cycles, leave no listener on the transport besides the application's own,
 * no timer or handle, and the heap (after GC) within 1 MiB of where it started. Run in a
 * child process with --expose-gc so that the test runner's own heap does not interfere.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const script = join(fileURLToPath(new URL('.', import.meta.url)), 'fixtures', 'leaks.js');
const CYCLES = 10000;
const MARGIN = 1024 * 1024;

interface Report {
  fatal?: string;
  listeners0: Record<string, number>; listeners1: Record<string, number>; listeners3: Record<string, number>;
  resources0: string[]; resources1: string[]; resources2: string[]; resources3: string[];
  heap0: number; heap1: number; heap2: number; heap3: number;
  live0: number; live1: number; timersCreated: number;
  attach: number; unattach: number; received: number;
}

function run(): Promise<Report> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--expose-gc', script, String(CYCLES), '100'], { timeout: 90000 }, (err, stdout, stderr) => {
      if (err !== null) return reject(new Error(`child failed: ${err.message}\n${stdout}\n${stderr}`));
      const r = JSON.parse(stdout.trim().split('\n').pop()!) as Report;
      if (r.fatal !== undefined) return reject(new Error(r.fatal));
      resolve(r);
    });
  });
}

test('10,000 attach/unattach and 10,000 create/clone/close cycles leak no listener, timer or memory', async () => {
  const r = await run();
  // Attach/unattach.
  assert.equal(r.attach, r.unattach, 'every attach was unattached');
  assert.ok(r.attach >= CYCLES);
  assert.deepEqual(r.listeners1, r.listeners0, "only the application's own listeners are left on the transport");
  assert.equal(r.listeners0['data'], 1, "the application's 'data' listener is back");
  assert.deepEqual(r.resources1, r.resources0, 'no handle or timer left');
  assert.ok(r.timersCreated >= 200, `assembly timers were armed (${r.timersCreated}), so the timer check means something`);
  assert.ok(r.heap1 - r.heap0 < MARGIN, `heap grew by ${r.heap1 - r.heap0} bytes over ${CYCLES} attach/unattach cycles`);
  // Create/clone/close.
  assert.equal(r.live1, r.live0, 'no multiplexor left alive');
  assert.equal(r.live1, 0);
  assert.deepEqual(r.resources3, r.resources2, 'no handle or timer left');
  assert.deepEqual(r.listeners3, r.listeners0, 'the last close of each multiplexor unattached the transport');
  assert.ok(r.heap3 - r.heap2 < MARGIN, `heap grew by ${r.heap3 - r.heap2} bytes over ${CYCLES} create/clone/close cycles`);
  // The create/clone/close phase waits for its own traffic in the child; here, the attach phase's.
  assert.equal(r.received, CYCLES / 100 + 10, 'the traffic of the checked cycles was delivered');
});
