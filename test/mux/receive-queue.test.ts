import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KcmSocket } from '../../src/index.js';

/** `count` messages of `len` bytes back to back, message i filled with byte i. */
function runOf(count: number, len: number): { buf: Buffer; ends: Uint32Array } {
  const buf = Buffer.alloc(count * len);
  const ends = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    buf.fill(i, i * len, (i + 1) * len);
    ends[i] = (i + 1) * len;
  }
  return { buf, ends };
}

const origin = { id: 7 };

test('[S-3] a run is taken while the queue is below receiveBufferSize before each message', () => {
  const k = KcmSocket.create({ receiveBufferSize: 30 });
  try {
    const { buf, ends } = runOf(10, 12);
    // 0, 12 and 24 bytes before the first three: taken; 36 before the fourth: refused.
    assert.equal(k.rx.enqueueRun(buf, 0, ends, 0, 10, origin), 3);
    assert.equal(k.rx.rmem, 36);
    assert.equal(k.rx.length, 3);
    assert.equal(k.rx.enqueueRun(buf, ends[2]!, ends, 3, 10, origin), 3, 'full: nothing more');
    const got = [k.tryReceive()!, k.tryReceive()!, k.tryReceive()!];
    assert.deepEqual(got.map((m) => [m.length, m[0]]), [[12, 0], [12, 1], [12, 2]]);
    assert.equal(k.tryReceive(), undefined);
    assert.equal(k.rx.rmem, 0);
    assert.deepEqual(k.stats(), { rxMsgs: 3, rxBytes: 36, txMsgs: 0, txBytes: 0 });
  } finally {
    k.close();
  }
});

test('[S-3] an empty queue takes the first message of a run whatever its size, and only it when it fills the queue', () => {
  const k = KcmSocket.create({ receiveBufferSize: 10 });
  try {
    const { buf, ends } = runOf(3, 50);
    assert.equal(k.rx.enqueueRun(buf, 0, ends, 0, 3, origin), 1);
    assert.equal(k.rx.rmem, 50);
    assert.equal(k.tryReceive()!.length, 50);
    // A run that fits whole below the limit is taken whole.
    const small = runOf(4, 2);
    assert.equal(k.rx.enqueueRun(small.buf, 0, small.ends, 0, 4, origin), 4);
    assert.equal(k.rx.rmem, 8);
  } finally {
    k.close();
  }
});

test('[D-3] [O-6] a disabled or closed socket takes nothing of a run', () => {
  const k = KcmSocket.create();
  const { buf, ends } = runOf(2, 4);
  k.setRecvDisable(true);
  assert.equal(k.rx.enqueueRun(buf, 0, ends, 0, 2, origin), 0);
  k.setRecvDisable(false);
  k.close();
  assert.equal(k.rx.enqueueRun(buf, 0, ends, 0, 2, origin), 0);
});

test('[K-2] [R-6] receiveFrom and SEQPACKET partial reads work on messages queued as a run', async () => {
  const k = KcmSocket.create({ type: 'seqpacket' });
  try {
    const { buf, ends } = runOf(3, 6);
    assert.equal(k.rx.enqueueRun(buf, 0, ends, 0, 3, origin), 3);
    const a = Buffer.alloc(4);
    assert.deepEqual(await k.receiveInto(a), { bytes: 4, eor: false, truncated: false });
    assert.deepEqual([...a], [0, 0, 0, 0]);
    const rest = await k.receiveFrom();
    assert.deepEqual([...rest.message], [0, 0]);
    assert.equal(rest.origin, origin);
    assert.deepEqual((await k.receiveMany()).map((m) => [m.length, m[0]]), [[6, 1], [6, 2]]);
    assert.deepEqual(k.stats(), { rxMsgs: 3, rxBytes: 18, txMsgs: 0, txBytes: 0 });
  } finally {
    k.close();
  }
});
