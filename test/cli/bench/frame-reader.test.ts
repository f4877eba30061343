import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameReader } from '../../../src/cli/bench/frame-reader.js';

/** Three frames: empty, 3 bytes, 300 bytes; 4-byte big-endian payload length first. */
function stream(): { bytes: Buffer; frames: Buffer[] } {
  const frames = [0, 3, 300].map((n) => {
    const f = Buffer.alloc(4 + n);
    f.writeUInt32BE(n, 0);
    for (let i = 0; i < n; i++) f[4 + i] = (n + i) & 0xff;
    return f;
  });
  return { bytes: Buffer.concat(frames), frames };
}

test('the hand-written reader frames a stream cut at every byte boundary, and at two', () => {
  const { bytes, frames } = stream();
  for (let a = 0; a <= bytes.length; a++) {
    for (const b of [a, Math.min(bytes.length, a + 1), Math.min(bytes.length, a + 5), bytes.length]) {
      const got: Buffer[] = [];
      const reader = new FrameReader((m) => got.push(Buffer.from(m)));
      for (const piece of [bytes.subarray(0, a), bytes.subarray(a, b), bytes.subarray(b)]) if (piece.length > 0) reader.push(piece);
      assert.deepEqual(got, frames, `cut at ${a} and ${b}`);
    }
  }
});

test('a frame inside one chunk is handed out as a view of it, not a copy', () => {
  const { bytes } = stream();
  const views: Buffer[] = [];
  new FrameReader((m) => views.push(m)).push(bytes);
  assert.equal(views.length, 3);
  for (const v of views) assert.equal(v.buffer, bytes.buffer);
});
