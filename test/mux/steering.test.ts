import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { KcmSocket } from '../../src/index.js';
import { P4, closeAll, sleep, tcpPair, tcpPairs, waitFor } from '../helpers/loopback.js';
import { collect, numbered, numberOf, numberedRun, queued, drainNumbers } from '../helpers/mux.js';

after(closeAll);

test('[S-2][S-1] burst affinity: one write of 5 frames goes to one socket, the next write to the other', async () => {
  const { local, remote } = await tcpPair();
  const k0 = KcmSocket.create();
  const k1 = k0.clone();
  try {
    k0.attach(local, { parser: P4 });
    remote.write(numberedRun(0, 5));
    await waitFor(() => queued(k0) + queued(k1) === 5, 5000, 'the first burst');
    remote.write(numberedRun(5, 5));
    await waitFor(() => queued(k0) + queued(k1) === 10, 5000, 'the second burst');
    const a = drainNumbers(k0);
    const b = drainNumbers(k1);
    assert.deepEqual(a, [0, 1, 2, 3, 4], 'the first burst went whole to the head waiter');
    assert.deepEqual(b, [5, 6, 7, 8, 9], 'the next burst went whole to the other socket');
  } finally {
    k1.close();
    k0.close();
  }
});

test('[S-2] rotation: single-frame bursts go K0, K1, K2, K0, K1, K2', async () => {
  const { local, remote } = await tcpPair();
  const k0 = KcmSocket.create();
  const ks = [k0, k0.clone(), k0.clone()];
  const got = ks.map(collect);
  const order: number[] = [];
  ks.forEach((k, i) => k.on('message', () => order.push(i)));
  try {
    k0.attach(local, { parser: P4 });
    for (let n = 0; n < 6; n++) {
      remote.write(numbered(n));
      await waitFor(() => order.length === n + 1, 5000, `burst ${n}`);
    }
    assert.deepEqual(order, [0, 1, 2, 0, 1, 2]);
    assert.deepEqual(got.map((g) => g.map(numberOf)), [[0, 3], [1, 4], [2, 5]]);
  } finally {
    for (const k of ks) k.close();
  }
});

test('[S-2] a socket is bound to one psock at a time: simultaneous bursts of two psocks reach different sockets', async () => {
  const [t0, t1] = await tcpPairs(2);
  const k0 = KcmSocket.create();
  const k1 = k0.clone();
  try {
    k0.attach(t0!.local, { parser: P4 });
    k0.attach(t1!.local, { parser: P4 });
    // Each burst goes whole to one socket; never both bursts interleaved in one socket.
    for (let round = 0; round < 3; round++) {
      t0!.remote.write(numberedRun(100 * round, 4));
      t1!.remote.write(numberedRun(100 * round + 50, 4));
      await waitFor(() => queued(k0) + queued(k1) === 8, 5000, `round ${round}`);
      const all = [drainNumbers(k0), drainNumbers(k1)];
      const runs = all.flatMap((msgs) => {
        const groups: number[][] = [];
        for (let i = 0; i < msgs.length; i += 4) groups.push(msgs.slice(i, i + 4));
        return groups;
      });
      const base = 100 * round;
      const expected = [[base, base + 1, base + 2, base + 3], [base + 50, base + 51, base + 52, base + 53]];
      assert.deepEqual(runs.sort((x, y) => x[0]! - y[0]!), expected, 'each burst arrives whole and in order');
      for (const msgs of all) assert.ok(msgs.length % 4 === 0, 'no socket holds a part of a burst');
    }
  } finally {
    k1.close();
    k0.close();
  }
});

test('[S-1 step 4][S-3] a full socket is skipped: the next burst goes to the next waiter', async () => {
  const { local, remote } = await tcpPair();
  const k0 = KcmSocket.create({ receiveBufferSize: 1 });
  const k1 = k0.clone();
  try {
    k0.attach(local, { parser: P4 });
    remote.write(numbered(0));
    await waitFor(() => queued(k0) === 1, 5000, 'K0 to hold one message');
    remote.write(numbered(1));
    await waitFor(() => queued(k1) === 1, 5000, 'the next message at K1');
    assert.equal(queued(k0), 1);
    assert.deepEqual(drainNumbers(k0), [0]);
    assert.deepEqual(drainNumbers(k1), [1]);
  } finally {
    k1.close();
    k0.close();
  }
});

test('[S-1 step 4][S-3] a burst larger than a socket\'s room: each socket takes while below its limit, the next waiter the rest', async () => {
  const { local, remote } = await tcpPair();
  const k0 = KcmSocket.create({ receiveBufferSize: 30 });
  const k1 = k0.clone();
  const k2 = k0.clone();
  try {
    const psock = k0.attach(local, { parser: P4 });
    // 9 messages of 12 bytes in one write: each socket takes 3 (0, 12, 24 bytes before each).
    remote.write(numberedRun(0, 9));
    await waitFor(() => queued(k0) + queued(k1) + queued(k2) === 9, 5000, 'the burst');
    assert.deepEqual(drainNumbers(k0), [0, 1, 2]);
    assert.deepEqual(drainNumbers(k1), [3, 4, 5]);
    assert.deepEqual(drainNumbers(k2), [6, 7, 8]);
    assert.equal(psock.stats().rxPaused, false);
    assert.equal(psock.stats().rxMsgs, 9);
  } finally {
    k2.close();
    k1.close();
    k0.close();
  }
});

test('[S-4][S-3] a burst larger than every socket\'s room: the first message nobody takes is held, the rest follow in order', async () => {
  const { local, remote } = await tcpPair();
  const k0 = KcmSocket.create({ receiveBufferSize: 30 });
  try {
    const psock = k0.attach(local, { parser: P4 });
    remote.write(numberedRun(0, 10));
    await waitFor(() => psock.stats().rxPaused, 5000, 'the psock to hold a message');
    assert.equal(queued(k0), 3);
    assert.equal(psock.stats().rxMsgs, 4, 'three queued and one held');
    const got: number[] = [];
    while (got.length < 10) got.push(numberOf(await k0.receive({ signal: AbortSignal.timeout(5000) })));
    assert.deepEqual(got, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.equal(psock.stats().rxMsgs, 10);
  } finally {
    k0.close();
  }
});

test('[S-3][X-9] an empty socket accepts a message larger than its receiveBufferSize', async () => {
  const { local, remote } = await tcpPair();
  const k = KcmSocket.create({ receiveBufferSize: 100 });
  try {
    const psock = k.attach(local, { parser: P4 });
    remote.write(numbered(7, 496)); // 500 bytes
    const m = await k.receive({ signal: AbortSignal.timeout(5000) });
    assert.equal(m.length, 500);
    assert.equal(numberOf(m), 7);
    assert.equal(psock.stats().rxPaused, false);
  } finally {
    k.close();
  }
});

test('[S-4][S-5][S-6] all sockets full: the psock holds one message and pauses; reading resumes the flow in order', async () => {
  const { local, remote } = await tcpPair();
  const k0 = KcmSocket.create({ receiveBufferSize: 1 });
  const k1 = k0.clone();
  try {
    const psock = k0.attach(local, { parser: P4 });
    for (let n = 0; n < 2; n++) {
      remote.write(numbered(n));
      await waitFor(() => queued(k0) + queued(k1) === n + 1, 5000, `message ${n}`);
    }
    remote.write(numberedRun(2, 3)); // 2 is held, 3 and 4 wait behind it
    await waitFor(() => psock.stats().rxPaused, 5000, 'the psock to hold a message');
    assert.ok(/RxPause/.test(k0.mux.toString()));
    // [S-5] K1 becomes ready when drained: it takes the held message at once and the
    // psock resumes, parsing the next one, which it holds again (K1 full, K0 not ready).
    assert.equal(numberOf(k1.tryReceive()!), 1);
    assert.equal(queued(k1), 1);
    assert.equal(psock.stats().rxPaused, true);
    assert.equal(numberOf(k1.tryReceive()!), 2);
    assert.equal(numberOf(k1.tryReceive()!), 3);
    assert.equal(psock.stats().rxPaused, false, 'the last message was taken: reading again');
    assert.equal(numberOf(k1.tryReceive()!), 4);
    assert.equal(k1.tryReceive(), undefined);
    // K0 was never drained, so it never rejoined and took nothing more.
    assert.deepEqual(drainNumbers(k0), [0]);
    assert.equal(psock.stats().rxMsgs, 5);
    await waitFor(() => !psock.stats().rxPaused, 5000, 'the psock to resume');
  } finally {
    k1.close();
    k0.close();
  }
});

test('[S-4] backpressure: with the only socket full, the transport pauses and TCP throttles the peer; reading resumes it', async () => {
  const { local, remote } = await tcpPair();
  const k = KcmSocket.create({ receiveBufferSize: 1024 });
  try {
    const psock = k.attach(local, { parser: P4 });
    const size = 65536;
    const count = 512; // 32 MiB: more than loopback socket buffers hold
    const parts: Buffer[] = [];
    for (let n = 0; n < count; n++) parts.push(numbered(n, size - 4));
    let written = false;
    remote.write(Buffer.concat(parts), () => {
      written = true;
    });
    await waitFor(() => psock.stats().rxPaused, 10000, 'the psock to pause');
    const before = psock.stats().rxMsgs;
    await sleep(200);
    assert.equal(written, false, 'the peer write is stalled by TCP flow control');
    assert.equal(psock.stats().rxMsgs, before, 'nothing more is parsed while paused');
    assert.equal(queued(k), 1, 'the socket holds one message over its buffer size, no more');
    const received: number[] = [];
    const signal = AbortSignal.timeout(60000);
    while (received.length < count) {
      const m = await k.receive({ signal });
      assert.equal(m.length, size);
      received.push(numberOf(m));
    }
    assert.deepEqual(received, Array.from({ length: count }, (_, i) => i));
    await waitFor(() => written, 10000, 'the peer write to complete');
    assert.equal(psock.stats().rxPaused, false);
    assert.equal(k.mux.stats().rxReadyDrops, 0);
  } finally {
    k.close();
  }
});

test('[S-5] a full socket rejoins the waiters only when drained, not after a partial read', async () => {
  const { local, remote } = await tcpPair();
  const k0 = KcmSocket.create({ receiveBufferSize: 30 });
  const k1 = k0.clone();
  k1.setRecvDisable(true);
  try {
    k0.attach(local, { parser: P4 });
    remote.write(numberedRun(0, 3, 16)); // 3 x 20 bytes in one burst: K0 takes 2 (fills), holds the 3rd
    await waitFor(() => queued(k0) === 2, 5000, 'K0 to fill');
    const psock = k0.mux.psocks[0]!;
    await waitFor(() => psock.stats().rxPaused, 5000, 'the psock to hold the third');
    assert.equal(numberOf(k0.tryReceive()!), 0);
    await sleep(20);
    assert.equal(psock.stats().rxPaused, true, 'one message left: K0 not ready yet');
    assert.equal(queued(k0), 1);
    assert.equal(numberOf(k0.tryReceive()!), 1);
    await waitFor(() => queued(k0) === 1, 5000, 'K0 to take the held message once drained');
    assert.equal(numberOf(k0.tryReceive()!), 2);
  } finally {
    k1.close();
    k0.close();
  }
});

test('[S-6] one socket receives a psock\'s messages in stream order across many bursts', async () => {
  const { local, remote } = await tcpPair();
  const k = KcmSocket.create();
  try {
    k.attach(local, { parser: P4 });
    const total = 2000;
    for (let n = 0; n < total; n += 100) {
      remote.write(numberedRun(n, 100, (n % 7) * 13 + 4));
    }
    const got: number[] = [];
    const signal = AbortSignal.timeout(30000);
    while (got.length < total) {
      for (const m of await k.receiveMany(undefined, { signal })) got.push(numberOf(m));
    }
    assert.deepEqual(got, Array.from({ length: total }, (_, i) => i));
  } finally {
    k.close();
  }
});

test('[S-5 step 2][S-4] a socket that drains takes held messages from ready psocks in the order they paused', async () => {
  const [t0, t1] = await tcpPairs(2);
  const k = KcmSocket.create({ receiveBufferSize: 1 });
  try {
    const p0 = k.attach(t0!.local, { parser: P4 });
    const p1 = k.attach(t1!.local, { parser: P4 });
    t0!.remote.write(numbered(0));
    await waitFor(() => queued(k) === 1, 5000, 'K to fill');
    t1!.remote.write(numbered(10));
    await waitFor(() => p1.stats().rxPaused, 5000, 'p1 to hold');
    t0!.remote.write(numbered(1));
    await waitFor(() => p0.stats().rxPaused, 5000, 'p0 to hold');
    assert.deepEqual(k.mux.psocksReady, [p1, p0]);
    assert.equal(numberOf(k.tryReceive()!), 0);
    assert.equal(numberOf(k.tryReceive()!), 10, 'the psock that paused first is served first');
    assert.equal(p1.stats().rxPaused, false);
    assert.equal(numberOf(k.tryReceive()!), 1);
    assert.equal(p0.stats().rxPaused, false);
    assert.equal(k.tryReceive(), undefined);
    assert.equal(k.mux.stats().rxReadyDrops, 0);
  } finally {
    k.close();
  }
});
