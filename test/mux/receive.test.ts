import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { KcmSocket } from '../../src/index.js';
import { AbortError } from '../../src/mux/abort-error.js';
import { P4, closeAll, frame, payload, sleep, tcpPair, tcpPairs, waitFor } from '../helpers/loopback.js';
import { RawCollector, assertKcmError, collect, numbered, numberOf, numberedRun, receiveN, throwsKcm, turns } from '../helpers/mux.js';

after(closeAll);

// ------------------------------------------------------------------ parser view

test('[P-2][§12-31] a frame written one byte at a time: the parser sees 1, 2, 3, 4 bytes and is not called after a length', async () => {
  const { local, remote } = await tcpPair();
  const calls: number[] = [];
  const parser = (d: Buffer): number => {
    calls.push(d.length);
    return P4(d);
  };
  const k = KcmSocket.create();
  try {
    const psock = k.attach(local, { parser });
    const f = frame('hello!');
    for (let i = 0; i < f.length; i++) {
      remote.write(f.subarray(i, i + 1));
      if (i < 4) await waitFor(() => calls.length === i + 1, 5000, `parse call ${i + 1}`);
      else await waitFor(() => psock.stats().rxBytes === i + 1, 5000, `byte ${i + 1}`);
    }
    const m = await k.receive({ signal: AbortSignal.timeout(5000) });
    assert.deepEqual(m, f);
    assert.deepEqual(calls, [1, 2, 3, 4]);
    assert.equal(psock.stats().rxNeedMoreHdr, 3);
    assert.equal(psock.stats().rxMsgs, 1);
  } finally {
    k.close();
  }
});

test('[P-2][F-6][B-23][X-1] two frames in one write: the second parse call starts at the second frame\'s first byte', async () => {
  const { local, remote } = await tcpPair();
  const seen: Buffer[] = [];
  const parser = (d: Buffer): number => {
    seen.push(Buffer.from(d));
    return P4(d);
  };
  const k = KcmSocket.create();
  try {
    k.attach(local, { parser });
    const a = frame('first-frame');
    const b = frame('second');
    remote.write(Buffer.concat([a, b]));
    const got = await receiveN(k, 2);
    assert.deepEqual(got, [a, b]);
    assert.equal(seen.length, 2);
    assert.deepEqual(seen[0]!.subarray(0, a.length), a);
    assert.ok(seen[0]!.length >= a.length, 'the first view may run past its frame');
    assert.deepEqual(seen[1]!.subarray(0, b.length), b, 'the second view starts at the second frame');
  } finally {
    k.close();
  }
});

test('[P-4][§12-36] on the first call a length shorter than the data seen is fine: the rest starts the next message', async () => {
  const { local, remote } = await tcpPair();
  // A 1-byte length that counts itself.
  const parser = (d: Buffer): number => d[0]!;
  const k = KcmSocket.create();
  try {
    const psock = k.attach(local, { parser });
    const m1 = Buffer.from([8, 1, 2, 3, 4, 5, 6, 7]);
    const m2 = Buffer.from([12, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    remote.write(Buffer.concat([m1, m2]));
    assert.deepEqual(await receiveN(k, 2), [m1, m2]);
    assert.equal(psock.error, undefined);
    assert.equal(psock.stats().rxBadHdrLen, 0);
  } finally {
    k.close();
  }
});

test('[R-9][T-2] the delivered message is the whole frame, header included, exactly the length the parser gave', async () => {
  const { local, remote } = await tcpPair();
  const k = KcmSocket.create();
  try {
    k.attach(local, { parser: P4 });
    const f = frame(Buffer.alloc(1000, 0xab));
    remote.write(f);
    const m = await k.receive({ signal: AbortSignal.timeout(5000) });
    assert.equal(m.length, 1004);
    assert.deepEqual(m, f);
  } finally {
    k.close();
  }
});

test('[B-6][P-6] a message of exactly maxMessageSize, sent slowly in small chunks, assembles without a stall', async () => {
  const { local, remote } = await tcpPair();
  const max = 256 * 1024;
  const k = KcmSocket.create();
  try {
    const psock = k.attach(local, { parser: P4, maxMessageSize: max });
    const f = numbered(42, max - 4);
    const pending = k.receive({ signal: AbortSignal.timeout(30000) });
    for (let off = 0; off < f.length; off += 4096) {
      remote.write(f.subarray(off, off + 4096));
      if ((off / 4096) % 8 === 0) await new Promise((r) => setImmediate(r));
    }
    const m = await pending;
    assert.equal(m.length, max);
    assert.equal(numberOf(m), 42);
    assert.equal(psock.error, undefined);
    assert.equal(psock.stats().rxBytes, max);
  } finally {
    k.close();
  }
});

// ------------------------------------------------------------------ receive calls

test('[R-1][§12-52] receive with no psock stays pending; its AbortSignal rejects it with an AbortError; tryReceive is undefined', async () => {
  const k = KcmSocket.create();
  try {
    assert.equal(k.tryReceive(), undefined);
    const ac = new AbortController();
    let settled = false;
    const p = k.receive({ signal: ac.signal }).finally(() => {
      settled = true;
    });
    await sleep(30);
    assert.equal(settled, false, 'no end of file: the receive waits');
    ac.abort();
    await assert.rejects(p, (err: unknown) => err instanceof AbortError && err.name === 'AbortError' && (err as AbortError).code === 'ABORT_ERR');
    // An already-aborted signal rejects at once, for every receive call.
    const aborted = AbortSignal.abort();
    await assert.rejects(k.receive({ signal: aborted }), { name: 'AbortError' });
    await assert.rejects(k.receiveMany(4, { signal: aborted }), { name: 'AbortError' });
    await assert.rejects(k.receiveInto(Buffer.alloc(4), { signal: aborted }), { name: 'AbortError' });
    assert.equal(k.stats().rxMsgs, 0);
  } finally {
    k.close();
  }
});

test('[R-1] an aborted receive leaves the next message for the next receive', async () => {
  const { local, remote } = await tcpPair();
  const k = KcmSocket.create();
  try {
    k.attach(local, { parser: P4 });
    const ac = new AbortController();
    const first = k.receive({ signal: ac.signal });
    const second = k.receive({ signal: AbortSignal.timeout(5000) });
    ac.abort();
    await assert.rejects(first, { name: 'AbortError' });
    remote.write(frame('only'));
    assert.equal(payload(await second), 'only');
    assert.equal(k.tryReceive(), undefined);
  } finally {
    k.close();
  }
});

test('[R-4][R-5][R-2][R-3] dgram receiveInto truncates a longer message and discards its rest', async () => {
  const { local, remote } = await tcpPair();
  const k = KcmSocket.create({ type: 'dgram' });
  try {
    k.attach(local, { parser: P4 });
    const long = numbered(1, 96); // 100 bytes
    const short = numbered(2, 4); // 8 bytes
    remote.write(Buffer.concat([long, short]));
    const buf = Buffer.alloc(10);
    assert.deepEqual(await k.receiveInto(buf, { signal: AbortSignal.timeout(5000) }), { bytes: 10, eor: true, truncated: true });
    assert.deepEqual(buf, long.subarray(0, 10));
    const big = Buffer.alloc(64, 0xee);
    assert.deepEqual(await k.receiveInto(big), { bytes: 8, eor: true, truncated: false });
    assert.deepEqual(big.subarray(0, 8), short);
    assert.equal(big[8], 0xee, 'nothing written past the message');
    assert.deepEqual(k.stats(), { rxMsgs: 2, rxBytes: 18, txMsgs: 0, txBytes: 0 });
  } finally {
    k.close();
  }
});

test('[R-8] dgram receiveInto with an empty target discards the message as truncated', async () => {
  const { local, remote } = await tcpPair();
  const k = KcmSocket.create();
  try {
    k.attach(local, { parser: P4 });
    remote.write(Buffer.concat([numbered(0), numbered(1)]));
    assert.deepEqual(await k.receiveInto(Buffer.alloc(0), { signal: AbortSignal.timeout(5000) }), { bytes: 0, eor: true, truncated: true });
    assert.equal(numberOf(await k.receive({ signal: AbortSignal.timeout(5000) })), 1);
    assert.deepEqual(k.stats(), { rxMsgs: 2, rxBytes: 12, txMsgs: 0, txBytes: 0 });
  } finally {
    k.close();
  }
});

test('[R-6][X-2][B-21][R-2][R-3] seqpacket receiveInto continues a longer message; eor only on its last piece', async () => {
  const { local, remote } = await tcpPair();
  const k = KcmSocket.create({ type: 'seqpacket' });
  try {
    k.attach(local, { parser: P4 });
    const long = numbered(1, 96); // 100 bytes
    const next = numbered(2, 4);
    remote.write(Buffer.concat([long, next]));
    const a = Buffer.alloc(10);
    const b = Buffer.alloc(90);
    assert.deepEqual(await k.receiveInto(a, { signal: AbortSignal.timeout(5000) }), { bytes: 10, eor: false, truncated: false });
    assert.equal(k.stats().rxMsgs, 0, 'a message counts once its last byte is read');
    assert.deepEqual(await k.receiveInto(b), { bytes: 90, eor: true, truncated: false });
    assert.deepEqual(Buffer.concat([a, b]), long);
    // receive() after a partial read returns the rest of the head message.
    await waitFor(() => k.mux.stats().sockets[0]!.rxQueued === 1, 5000, 'the next message');
    const c = Buffer.alloc(3);
    assert.deepEqual(await k.receiveInto(c), { bytes: 3, eor: false, truncated: false });
    const rest = await k.receive();
    assert.deepEqual(Buffer.concat([c, rest]), next);
    assert.deepEqual(k.stats(), { rxMsgs: 2, rxBytes: 108, txMsgs: 0, txBytes: 0 });
  } finally {
    k.close();
  }
});

test('[R-11] receiveMany waits for one message, then returns up to max of those queued, in order', async () => {
  const { local, remote } = await tcpPair();
  const k = KcmSocket.create();
  try {
    k.attach(local, { parser: P4 });
    const waiting = k.receiveMany(3, { signal: AbortSignal.timeout(5000) });
    remote.write(numbered(0));
    const first = await waiting;
    assert.ok(first.length >= 1 && first.length <= 3);
    assert.deepEqual(first.map(numberOf), [0]);
    remote.write(numberedRun(1, 5));
    await waitFor(() => k.mux.stats().sockets[0]!.rxQueued === 5, 5000, '5 queued');
    assert.deepEqual((await k.receiveMany(3)).map(numberOf), [1, 2, 3]);
    assert.deepEqual((await k.receiveMany()).map(numberOf), [4, 5]);
    assert.throws(() => k.receiveMany(0), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    assert.equal(k.stats().rxMsgs, 6);
  } finally {
    k.close();
  }
});

test('[R-1][O-8] concurrent receive calls are served in call order, each message to exactly one', async () => {
  const { local, remote } = await tcpPair();
  const k = KcmSocket.create();
  try {
    k.attach(local, { parser: P4 });
    const signal = AbortSignal.timeout(5000);
    const calls = [k.receive({ signal }), k.receiveMany(2, { signal }), k.receive({ signal })];
    remote.write(numberedRun(0, 4));
    const [a, many, c] = await Promise.all(calls);
    assert.equal(numberOf(a as Buffer), 0);
    const m = (many as Buffer[]).map(numberOf);
    assert.deepEqual(m, [1, 2]);
    assert.equal(numberOf(c as Buffer), 3);
  } finally {
    k.close();
  }
});

test('async iteration yields messages in order and ends at close()', async () => {
  const { local, remote } = await tcpPair();
  const k = KcmSocket.create();
  k.attach(local, { parser: P4 });
  const got: number[] = [];
  const loop = (async () => {
    for await (const m of k) got.push(numberOf(m));
    return 'ended';
  })();
  remote.write(numberedRun(0, 3));
  await waitFor(() => got.length === 3, 5000, 'three messages');
  remote.write(numbered(3));
  await waitFor(() => got.length === 4, 5000, 'the fourth');
  k.close();
  assert.equal(await loop, 'ended');
  assert.deepEqual(got, [0, 1, 2, 3]);
});

test('\'message\' flowing mode delivers in order; pause() stops it, resume() restarts it with the queued messages', async () => {
  const { local, remote } = await tcpPair();
  const k = KcmSocket.create();
  try {
    k.attach(local, { parser: P4 });
    const got = collect(k);
    remote.write(numberedRun(0, 3));
    await waitFor(() => got.length === 3, 5000, 'flowing delivery');
    k.pause();
    assert.equal(k.isPaused(), true);
    remote.write(numberedRun(3, 2));
    await waitFor(() => k.mux.stats().sockets[0]!.rxQueued === 2, 5000, 'messages to queue while paused');
    await turns();
    assert.equal(got.length, 3, 'nothing delivered while paused');
    k.resume();
    await waitFor(() => got.length === 5, 5000, 'delivery after resume');
    assert.deepEqual(got.map(numberOf), [0, 1, 2, 3, 4]);
    assert.equal(k.stats().rxMsgs, 5);
  } finally {
    k.close();
  }
});

test('a \'message\' listener added later delivers what was queued before it', async () => {
  const { local, remote } = await tcpPair();
  const k = KcmSocket.create();
  try {
    k.attach(local, { parser: P4 });
    remote.write(numberedRun(0, 2));
    await waitFor(() => k.mux.stats().sockets[0]!.rxQueued === 2, 5000, 'two queued');
    const got = collect(k);
    await waitFor(() => got.length === 2, 5000, 'the queued messages');
    assert.deepEqual(got.map(numberOf), [0, 1]);
  } finally {
    k.close();
  }
});

test('[S-3] a paused flowing socket queues up to its receiveBufferSize, then later bursts go to its sibling', async () => {
  const { local, remote } = await tcpPair();
  const k0 = KcmSocket.create({ receiveBufferSize: 40 });
  const k1 = k0.clone();
  try {
    k0.attach(local, { parser: P4 });
    const got0 = collect(k0);
    const got1 = collect(k1);
    k0.pause();
    k1.setRecvDisable(true); // so that K0 is the only waiter at first
    remote.write(numberedRun(0, 3, 16)); // 3 x 20 bytes: K0 takes 2 and is full
    await waitFor(() => k0.mux.stats().sockets[0]!.rxQueued === 2, 5000, 'K0 to fill');
    k1.setRecvDisable(false); // takes the held third one
    await waitFor(() => got1.length === 1, 5000, 'K1 to take the rest');
    assert.equal(got0.length, 0);
    k0.resume();
    await waitFor(() => got0.length === 2, 5000, 'K0 delivery after resume');
    assert.deepEqual(got0.map(numberOf), [0, 1]);
    assert.deepEqual(got1.map(numberOf), [2]);
  } finally {
    k1.close();
    k0.close();
  }
});

// ------------------------------------------------------------------ close

test('[C-1][O-6 step 5] close requeues unread messages to a clone; the closed socket\'s calls fail EBADF', async () => {
  const { local, remote } = await tcpPair();
  const k0 = KcmSocket.create();
  const k1 = k0.clone();
  try {
    k0.attach(local, { parser: P4 });
    remote.write(numberedRun(0, 3));
    await waitFor(() => k0.mux.stats().sockets[0]!.rxQueued === 3, 5000, 'K0 to hold 3');
    k0.close();
    assert.deepEqual([k1.tryReceive(), k1.tryReceive(), k1.tryReceive()].map((m) => numberOf(m!)), [0, 1, 2]);
    assert.equal(k1.tryReceive(), undefined);
    await assert.rejects(k0.receive(), (e: unknown) => {
      assertKcmError(e, 'EBADF', 9);
      return true;
    });
    await assert.rejects(k0.receiveMany(), { code: 'EBADF' });
    await assert.rejects(k0.receiveInto(Buffer.alloc(4)), { code: 'EBADF' });
    await assert.rejects(k0.send(frame('x')), { code: 'EBADF' });
    throwsKcm(() => k0.tryReceive(), 'EBADF');
    throwsKcm(() => k0.setRecvDisable(true), 'EBADF');
    throwsKcm(() => k0.attach(local, { parser: P4 }), 'EBADF');
    // The mux lives on through K1: new messages keep arriving there.
    remote.write(numbered(3));
    assert.equal(numberOf(await k1.receive({ signal: AbortSignal.timeout(5000) })), 3);
  } finally {
    k1.close();
  }
});

test('[C-1][O-6] receives pending at close() reject with EBADF; the clone still gets the messages', async () => {
  const { local, remote } = await tcpPair();
  const k0 = KcmSocket.create();
  const k1 = k0.clone();
  try {
    k0.attach(local, { parser: P4 });
    const pending = [k1.receive(), k1.receiveMany(), k1.receiveInto(Buffer.alloc(8))];
    k1.close();
    for (const p of pending) await assert.rejects(p, { name: 'KcmError', code: 'EBADF' });
    remote.write(numbered(9));
    assert.equal(numberOf(await k0.receive({ signal: AbortSignal.timeout(5000) })), 9);
    assert.deepEqual(k0.mux.sockets, [k0]);
  } finally {
    k0.close();
  }
});

test('[O-7][C-2] the last close unattaches every psock; transports stay open, readable and writable, app listeners back', async () => {
  const [t0, t1] = await tcpPairs(2);
  const appData: Buffer[] = [];
  t0!.local.on('data', (c: Buffer) => appData.push(c));
  const k0 = KcmSocket.create();
  const k1 = k0.clone();
  const p0 = k0.attach(t0!.local, { parser: P4 });
  const p1 = k1.attach(t1!.local, { parser: P4 });
  const errors: unknown[] = [];
  p0.on('error', (e) => errors.push(e));
  p1.on('error', (e) => errors.push(e));
  t0!.remote.write(numbered(0));
  assert.equal(numberOf(await k0.receive({ signal: AbortSignal.timeout(5000) })), 0);
  // A partial message in a parser is dropped with the mux.
  t1!.remote.write(frame('partial-message').subarray(0, 7));
  await waitFor(() => p1.stats().rxPartialBytes === 7, 5000, 'the partial message');
  const mux = k0.mux;
  k0.close();
  assert.equal(mux.psocks.length, 2, 'the mux lives while a socket remains');
  k1.close();
  assert.equal(mux.alive, false);
  assert.equal(mux.psocks.length, 0);
  assert.equal(mux.stats().psockUnattach, 2);
  for (const t of [t0!, t1!]) {
    assert.equal(t.local.destroyed, false);
    assert.equal(t.local.isPaused(), true);
  }
  // A new mux can take them (they are free again).
  const k2 = KcmSocket.create();
  try {
    k2.attach(t1!.local, { parser: P4 });
    t1!.remote.write(numbered(5));
    assert.equal(numberOf(await k2.receive({ signal: AbortSignal.timeout(5000) })), 5, 'the partial message bytes are gone');
  } finally {
    k2.close();
  }
  t0!.remote.write('raw bytes');
  t0!.local.resume();
  await waitFor(() => Buffer.concat(appData).toString() === 'raw bytes', 5000, 'the app listener');
  const back = new RawCollector(t0!.remote);
  t0!.local.write('reply');
  await waitFor(() => back.bytes.toString() === 'reply', 5000, 'the reply');
  await turns();
  assert.deepEqual(errors, [], 'no psock error at close');
});
