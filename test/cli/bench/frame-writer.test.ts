import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import type * as net from 'node:net';
import { FrameWriter } from '../../../src/cli/bench/frame-writer.js';

/**
 * A socket stand-in that records each write and writev; with `slow`, a write completes
 * only on a later turn of the event loop, so the stand-in fills up and asks for 'drain'.
 */
function recorder(highWaterMark: number, slow = false): { socket: net.Socket; calls: Buffer[][] } {
  const done = (cb: () => void): void => {
    if (slow) setImmediate(cb);
    else cb();
  };
  const calls: Buffer[][] = [];
  const w = new Writable({
    highWaterMark,
    write(chunk: Buffer, _enc, cb) {
      calls.push([Buffer.from(chunk)]);
      done(cb);
    },
    writev(chunks, cb) {
      calls.push(chunks.map((c) => Buffer.from(c.chunk as Buffer)));
      done(cb);
    },
  });
  return { socket: w as unknown as net.Socket, calls };
}

function frame(size: number, fill: number): Buffer {
  const f = Buffer.alloc(4 + size, fill);
  f.writeUInt32BE(size, 0);
  return f;
}

test('small frames go out copied into one batch per write; the batch is never reused while written', () => {
  const { socket, calls } = recorder(1 << 30);
  const w = new FrameWriter(socket, 64, 32);
  const frames = Array.from({ length: 10 }, (_, i) => frame(12, i));
  for (const f of frames) w.write(f);
  w.flush();
  // 16-byte frames, 64-byte batches: four per write, then four, then the last two.
  assert.deepEqual(calls.map((c) => c.map((b) => b.length)), [[64], [64], [32]]);
  assert.deepEqual(Buffer.concat(calls.flat()), Buffer.concat(frames));
});

test('a large frame follows the pending batch in one writev, by reference', () => {
  const { socket, calls } = recorder(1 << 30);
  const w = new FrameWriter(socket, 64, 32);
  const small = frame(4, 1);
  const big = frame(100, 2);
  w.write(small);
  w.write(big);
  w.flush();
  assert.deepEqual(calls.map((c) => c.map((b) => b.length)), [[8, 104]]);
  assert.deepEqual(Buffer.concat(calls.flat()), Buffer.concat([small, big]));
});

test('write and flush return false once the socket asks to wait for drain', () => {
  const { socket } = recorder(100, true);
  const w = new FrameWriter(socket, 64, 32);
  assert.equal(w.write(frame(12, 0)), true, 'buffered, nothing written yet');
  assert.equal(w.flush(), true, '16 bytes under the 100-byte mark');
  let ok = true;
  for (let i = 0; i < 20 && ok; i++) ok = w.write(frame(12, i));
  assert.equal(ok, false, 'past the mark after a full batch went out');
  assert.equal(w.flush(), false);
});

test('a large frame with no batch pending is one plain write', () => {
  const { socket, calls } = recorder(1 << 30);
  const w = new FrameWriter(socket, 64, 32);
  const big = frame(100, 3);
  w.write(big);
  w.write(big);
  assert.deepEqual(calls.map((c) => c.map((b) => b.length)), [[104], [104]]);
});
