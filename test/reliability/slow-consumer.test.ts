/**
 * Bounded memory under a slow consumer [S-3, S-4, T-7, T-9, T-12], measured in a child
 * process run with --expose-gc (heap + array buffers after GC, against a baseline taken
 * before the sockets exist). The soak runs the same child for 10 s (`npm run soak`).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const script = join(fileURLToPath(new URL('.', import.meta.url)), 'fixtures', 'slow-consumer.js');
/** Fixed allowance for everything that is not a KCM buffer: sockets, peers' buffers, code. */
const MARGIN = 8 * 1024 * 1024;
const MESSAGE = 12 + 64 * 1024;

interface Report {
  fatal?: string;
  receive: {
    bound: number; peak: number; sent: number[]; perConn: number[]; writeFalse: number;
    peerWritable: number[]; paused: boolean[]; queued: number[];
  };
  send: {
    bound: number; peak: number; accepted: number[]; perSocket: number[];
    writableMax: number; smemMax: number; trySendWhileFull: boolean;
  };
}

let report: Promise<Report> | undefined;

function run(): Promise<Report> {
  report ??= new Promise((resolve, reject) => {
    execFile(process.execPath, ['--expose-gc', script, '2'], { timeout: 90000 }, (err, stdout, stderr) => {
      if (err !== null) return reject(new Error(`child failed: ${err.message}\n${stdout}\n${stderr}`));
      const r = JSON.parse(stdout.trim().split('\n').pop()!) as Report;
      if (r.fatal !== undefined) return reject(new Error(r.fatal));
      resolve(r);
    });
  });
  return report;
}

test('[S-4] a reader that stops: memory stays within the receive buffers, TCP throttles the peers, nothing is lost', async () => {
  const { receive: r } = await run();
  assert.ok(r.peak <= r.bound + MARGIN, `peak ${r.peak} bytes above the baseline; bound ${r.bound} + margin ${MARGIN}`);
  assert.deepEqual(r.paused, [true, true, true, true], 'every psock holds one message and its transport is paused');
  for (const [i, q] of r.queued.entries()) assert.ok(q <= 256 * 1024 + MESSAGE, `socket ${i} queued ${q} bytes, over receiveBufferSize + one message`);
  assert.ok(r.writeFalse >= 4, 'every peer saw write() return false');
  for (const [i, w] of r.peerWritable.entries()) assert.ok(w > 0, `peer ${i} still holds unwritten bytes: TCP stopped taking them`);
  assert.deepEqual(r.perConn, r.sent, 'everything written arrived once the application read again (order checked in the child)');
});

test('[T-7][T-9] a sender whose peers stop reading waits at sendBufferSize; no hidden queue grows', async () => {
  const { send: s } = await run();
  assert.ok(s.peak <= s.bound + MARGIN, `peak ${s.peak} bytes above the baseline; bound ${s.bound} + margin ${MARGIN}`);
  assert.ok(s.smemMax <= 1024 * 1024 + MESSAGE, `send queue held ${s.smemMax} bytes, over sendBufferSize + one message`);
  assert.ok(s.writableMax <= 256 * 1024, `a transport held ${s.writableMax} bytes for writing`);
  assert.equal(s.trySendWhileFull, false, 'trySend() refuses while the queue is full');
  assert.ok(s.accepted[0]! > 0 && s.accepted[1]! > 0);
  assert.deepEqual(s.perSocket, s.accepted, 'every accepted message arrived once the peers read again (order checked in the child)');
});
