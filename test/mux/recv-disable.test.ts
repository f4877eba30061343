import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { KcmSocket } from '../../src/index.js';
import { P4, FrameReader, closeAll, frame, sleep, tcpPair, waitFor } from '../helpers/loopback.js';
import { numbered, numberOf, numberedRun, queued, drainNumbers } from '../helpers/mux.js';

after(closeAll);

test('[D-3][D-4] disabling moves the queued messages to another socket; the disabled one takes no new ones', async () => {
  const { local, remote } = await tcpPair();
  const k0 = KcmSocket.create();
  const k1 = k0.clone();
  try {
    k0.attach(local, { parser: P4 });
    remote.write(numberedRun(0, 3));
    await waitFor(() => queued(k0) === 3, 5000, 'K0 to hold 3');
    k0.setRecvDisable(true);
    assert.equal(k0.tryReceive(), undefined);
    assert.deepEqual(drainNumbers(k1), [0, 1, 2]);
    // New bursts skip K0 while disabled.
    for (let n = 3; n < 6; n++) {
      remote.write(numbered(n));
      await waitFor(() => queued(k1) === 1, 5000, `message ${n} at K1`);
      assert.deepEqual(drainNumbers(k1), [n]);
    }
    assert.equal(queued(k0), 0);
    // [D-4] sending is unaffected.
    const reader = new FrameReader(remote);
    await k0.send(frame('from-disabled'));
    await waitFor(() => reader.frames.length === 1, 5000, 'the frame from K0');
    assert.deepEqual(reader.payloads(), ['from-disabled']);
    assert.equal(k0.mux.stats().rxHoldQueued, 0);
  } finally {
    k1.close();
    k0.close();
  }
});

test('[D-3] a full sibling is skipped when moving: what no socket can take goes to the hold queue, nothing dropped', async () => {
  const { local, remote } = await tcpPair();
  const k0 = KcmSocket.create({ receiveBufferSize: 20 });
  const k1 = k0.clone();
  k1.setRecvDisable(true);
  try {
    k0.attach(local, { parser: P4 });
    const got: number[] = [];
    remote.write(numbered(0, 16)); // 20 bytes: fills K0
    await waitFor(() => queued(k0) === 1, 5000, 'K0 to fill');
    k1.setRecvDisable(false); // K1 waits, empty
    remote.write(numbered(1, 16));
    await waitFor(() => queued(k1) === 1, 5000, 'K1 to fill');
    k0.setRecvDisable(true); // K1 is full: message 0 goes to the hold queue
    assert.equal(k0.mux.stats().rxHoldQueued, 1);
    got.push(...drainNumbers(k1)); // K1 drains, becomes ready, takes message 0 from the hold queue
    assert.equal(k0.mux.stats().rxHoldQueued, 0);
    got.push(...drainNumbers(k1));
    assert.deepEqual(got, [1, 0]);
  } finally {
    k1.close();
    k0.close();
  }
});

test('[D-5][D-6] the only socket disabled: its messages wait in the hold queue; re-enabling returns them in order', async () => {
  const { local, remote } = await tcpPair();
  const k = KcmSocket.create();
  try {
    const psock = k.attach(local, { parser: P4 });
    remote.write(numberedRun(0, 2));
    await waitFor(() => queued(k) === 2, 5000, 'two queued');
    k.setRecvDisable(true);
    assert.equal(k.mux.stats().rxHoldQueued, 2);
    assert.equal(k.tryReceive(), undefined);
    // Meanwhile the psock parses one more and holds it [S-4].
    remote.write(numbered(2));
    await waitFor(() => psock.stats().rxPaused, 5000, 'the psock to hold message 2');
    await sleep(20);
    assert.equal(k.tryReceive(), undefined, 'nothing delivered while disabled');
    assert.match(k.mux.toString(), /^kcm-0 .*RxDisabled/m);
    k.setRecvDisable(false);
    // [S-6] hold-queue messages come before the ready psock's.
    assert.deepEqual(drainNumbers(k), [0, 1, 2]);
    await waitFor(() => !psock.stats().rxPaused, 5000, 'the psock to resume');
    remote.write(numbered(3));
    assert.equal(numberOf(await k.receive({ signal: AbortSignal.timeout(5000) })), 3);
    assert.equal(k.mux.stats().rxReadyDrops, 0);
  } finally {
    k.close();
  }
});

test('[D-1][D-2] getRecvDisable reads back the state; setting the same value twice is a no-op', () => {
  const k0 = KcmSocket.create();
  const k1 = k0.clone();
  try {
    assert.equal(k0.getRecvDisable(), false);
    k0.setRecvDisable(true);
    assert.equal(k0.getRecvDisable(), true);
    k0.setRecvDisable(true);
    assert.equal(k0.getRecvDisable(), true);
    const rows = () => k0.mux.stats().sockets.map((s) => [s.index, s.rxWait, s.rxDisabled]);
    assert.deepEqual(rows(), [[0, false, true], [1, true, false]]);
    k0.setRecvDisable(false);
    k0.setRecvDisable(false);
    assert.equal(k0.getRecvDisable(), false);
    assert.deepEqual(rows(), [[0, true, false], [1, true, false]]);
    assert.equal(k0.mux.rxWaiters.filter((k) => k === k0).length, 1, 'on the waiters once');
    assert.throws(() => k0.setRecvDisable(1 as unknown as boolean), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
  } finally {
    k1.close();
    k0.close();
  }
});

test('[D-3] seqpacket: a partly read message is not moved by disabling; its reader finishes it', async () => {
  const { local, remote } = await tcpPair();
  const k0 = KcmSocket.create({ type: 'seqpacket' });
  const k1 = k0.clone();
  try {
    k0.attach(local, { parser: P4 });
    const long = numbered(0, 96);
    remote.write(Buffer.concat([long, numbered(1)]));
    await waitFor(() => queued(k0) === 2, 5000, 'K0 to hold 2');
    const head = Buffer.alloc(10);
    assert.deepEqual(await k0.receiveInto(head), { bytes: 10, eor: false, truncated: false });
    k0.setRecvDisable(true);
    assert.deepEqual(drainNumbers(k1), [1], 'the unread message moved');
    const rest = Buffer.alloc(200);
    const r = await k0.receiveInto(rest);
    assert.deepEqual(r, { bytes: 90, eor: true, truncated: false });
    assert.deepEqual(Buffer.concat([head, rest.subarray(0, 90)]), long);
    assert.equal(k0.tryReceive(), undefined);
  } finally {
    k1.close();
    k0.close();
  }
});

for (const sibling of [true, false]) {
  test(`[B-9][D-3][§12-62] toggling recv-disable while a task receives: every message exactly once (${sibling ? 'with a sibling' : 'alone'})`, async () => {
    const { local, remote } = await tcpPair();
    const k0 = KcmSocket.create({ receiveBufferSize: 4096 });
    const sockets = sibling ? [k0, k0.clone()] : [k0];
    const total = 5000;
    const seen = new Uint8Array(total);
    let received = 0;
    let duplicates = 0;
    let stop = false;
    const consumers = sockets.map(async (k) => {
      while (!stop) {
        let batch: Buffer[];
        try {
          batch = k.type === 'dgram' && received % 2 === 0 ? [await k.receive()] : await k.receiveMany(16);
        } catch {
          return; // closed
        }
        for (const m of batch) {
          const n = numberOf(m);
          if (seen[n] !== 0) duplicates++;
          seen[n] = 1;
          received++;
        }
      }
    });
    const toggler = setInterval(() => k0.setRecvDisable(!k0.getRecvDisable()), 1);
    try {
      k0.attach(local, { parser: P4 });
      for (let n = 0; n < total; n += 50) {
        remote.write(numberedRun(n, 50, 4 + (n % 40)));
        await sleep(1);
      }
      // Keep toggling for a while after the last write, then leave receive enabled.
      await waitFor(() => received >= total * 0.9, 30000, 'most messages');
      clearInterval(toggler);
      k0.setRecvDisable(false);
      await waitFor(() => received >= total, 30000, `all ${total} messages (got ${received})`);
      await sleep(20);
      assert.equal(duplicates, 0);
      assert.equal(received, total);
      assert.equal(seen.every((v) => v === 1), true);
      assert.equal(k0.mux.stats().rxHoldQueued, 0);
      assert.equal(k0.mux.stats().rxMsgs, total);
    } finally {
      clearInterval(toggler);
      stop = true;
      for (const k of sockets) k.close();
      await Promise.all(consumers);
    }
  });
}
