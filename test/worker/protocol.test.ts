import { test } from 'node:test';
import assert from 'node:assert/strict';
import { packReceived, unpackReceived } from '../../src/worker/protocol.js';

test('[K-2] a received batch unpacks as runs of consecutive messages with one origin, in order', () => {
  const messages = ['aa', 'bbbb', '', 'cc', 'dd', 'ee'].map((h) => Buffer.from(h, 'hex'));
  const origins = [1, 1, 1, 2, 1, 1];
  const bytes = messages.reduce((n, m) => n + m.length, 0);
  const runs: Array<{ origin: number; messages: string[] }> = [];
  const n = unpackReceived(packReceived(messages, origins, bytes), (data, ends, from, to, origin) => {
    const got: string[] = [];
    let pos = from === 0 ? 0 : ends[from - 1]!;
    for (let i = from; i < to; i++) {
      got.push(data.subarray(pos, ends[i]).toString('hex'));
      pos = ends[i]!;
    }
    runs.push({ origin, messages: got });
  });
  assert.equal(n, 6);
  assert.deepEqual(runs, [
    { origin: 1, messages: ['aa', 'bbbb', ''] },
    { origin: 2, messages: ['cc'] },
    { origin: 1, messages: ['dd', 'ee'] },
  ]);
});

test('an empty received batch unpacks to nothing', () => {
  let calls = 0;
  assert.equal(unpackReceived(packReceived([], [], 0), () => calls++), 0);
  assert.equal(calls, 0);
});
