/**
 * Transmit side of the multiplexor [T-*] over real loopback TCP: message building,
 * zero-length calls, buffer admission, batching, aborted calls, backpressure,
 * round-robin, waiter order and the transmit counters [ST-1, ST-2, ST-3].
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { KcmSocket, type KcmSocketOptions } from '../../src/index.js';
import { KcmError } from '../../src/errors.js';
import { P4, FrameReader, closeAll, frame, tcpPairs, tcpPair, waitFor, sleep, type TcpPair } from '../helpers/loopback.js';
import { closeMux } from '../helpers/mux.js';
import { RawCollector, checkFrame, settles, tapeFrame, tapeFrameBuffer, waitStalled } from '../helpers/traffic.js';

after(closeAll);

interface Rig {
  k: KcmSocket;
  pairs: TcpPair[];
  readers: FrameReader[];
}

/** A KCM socket with `n` attached transports whose peers are raw frame readers. */
async function rig(n: number, options: KcmSocketOptions = {}): Promise<Rig> {
  const k = KcmSocket.create(options);
  const pairs = await tcpPairs(n);
  const readers = pairs.map((p) => new FrameReader(p.remote));
  for (const p of pairs) k.attach(p.local, { parser: P4 });
  return { k, pairs, readers };
}

function isAbort(err: unknown): boolean {
  return err instanceof Error && err.name === 'AbortError';
}

for (const type of ['dgram', 'seqpacket'] as const) {
  test(`[T-1][T-1c] ${type}: eor false keeps the message open, the eor call sends it as one`, async (t) => {
    const { k, readers } = await rig(1, { type });
    t.after(() => closeMux(k));
    const whole = frame('part one|part two|part three');
    await k.send(whole.subarray(0, 13), { eor: false });
    await k.send(whole.subarray(13, 22), { eor: false });
    const open = k.mux.stats();
    assert.equal(open.sockets[0]!.txQueued, 0, 'an open message is not queued');
    assert.equal(open.sockets[0]!.txQueuedBytes, 22);
    assert.equal(open.psocks[0]!.txBytes, 0);
    assert.equal(open.psocks[0]!.reserved, 0);
    await sleep(30);
    assert.equal(readers[0]!.bytes, 0, 'nothing on the wire before the end of the message');
    await k.send(whole.subarray(22));
    await waitFor(() => readers[0]!.frames.length === 1, 5000, 'the message');
    assert.deepEqual(readers[0]!.frames[0], whole);
    assert.equal(readers[0]!.bytes, whole.length);
    // [T-1] an array is the parts of one message, never several.
    const parts = frame('a|bb|ccc');
    await k.send([parts.subarray(0, 5), parts.subarray(5, 7), new Uint8Array(parts.subarray(7))]);
    await waitFor(() => readers[0]!.frames.length === 2, 5000, 'the iovec message');
    assert.deepEqual(readers[0]!.frames[1], parts);
    assert.equal(readers[0]!.bytes, whole.length + parts.length);
    assert.equal(k.stats().txMsgs, 2);
  });
}

test('[T-2][R-9] no framing is added: the peer multiplexor receives exactly the bytes sent', async (t) => {
  const { local, remote } = await tcpPair();
  const a = KcmSocket.create();
  const b = KcmSocket.create();
  t.after(() => { a.close(); b.close(); });
  const pa = a.attach(local, { parser: P4 });
  const pb = b.attach(remote, { parser: P4 });
  const f = frame(randomBytes(1000));
  await a.send(f);
  const got = await b.receive();
  assert.deepEqual(got, f, 'the whole frame, header included');
  assert.equal(pa.stats().txBytes, f.length);
  assert.equal(pb.stats().rxBytes, f.length);
});

test('[T-4][T-18][X-15] send resolves with no psock; the messages go out once one is attached', async (t) => {
  const k0 = KcmSocket.create();
  const k1 = k0.clone();
  t.after(() => closeMux(k0));
  const a = frame('first');
  const b = frame('second');
  const c = frame('third');
  assert.equal(await settles(k0.send(a)), true, 'send() resolves without a psock');
  assert.equal(k0.trySend(b), true, 'trySend queues without a psock');
  assert.equal(await settles(k1.send(c)), true);
  const s = k0.mux.stats();
  assert.equal(s.sockets[0]!.txQueued, 2);
  assert.equal(s.sockets[0]!.txWait, true);
  assert.equal(s.sockets[1]!.txWait, true);
  assert.equal(k0.stats().txMsgs, 2, '[ST-1] counted when queued, not when sent');
  const { local, remote } = await tcpPair();
  const reader = new FrameReader(remote);
  k0.attach(local, { parser: P4 });
  await waitFor(() => reader.frames.length === 3, 5000, 'the queued messages');
  // [T-19] the first waiter gets the psock first.
  assert.deepEqual(reader.frames, [a, b, c]);
  assert.equal(reader.partial, 0);
});

for (const type of ['dgram', 'seqpacket'] as const) {
  test(`[T-5a][T-5d][B-1][B-2][B-11] ${type}: zero-length calls with nothing open change nothing`, async (t) => {
    const { k, readers } = await rig(2, { type });
    t.after(() => closeMux(k));
    const before = k.mux.stats();
    const sockBefore = k.stats();
    await k.send(Buffer.alloc(0));
    await k.send(Buffer.alloc(0), { eor: false });
    await k.send([]);
    await k.send([Buffer.alloc(0), new Uint8Array(0)], { eor: false });
    assert.equal(k.trySend(Buffer.alloc(0)), true);
    await k.sendMany([Buffer.alloc(0), []]);
    await sleep(20);
    assert.deepEqual(k.stats(), sockBefore);
    assert.deepEqual(k.mux.stats(), before, 'no reservation, no message, no counter moved');
    assert.equal(readers[0]!.bytes + readers[1]!.bytes, 0);
    const f = frame('after the empty calls');
    await k.send(f);
    await waitFor(() => readers[0]!.frames.length === 1, 5000, 'the message');
    const s = k.mux.stats();
    assert.equal(s.txMsgs, 1, 'exactly one message, never an empty one');
    assert.equal(s.psocks[0]!.reserved, 1);
    assert.equal(readers[0]!.bytes, f.length);
  });

  test(`[T-5b] ${type}: a zero-length call that ends the message completes the open one`, async (t) => {
    const { k, readers } = await rig(1, { type });
    t.after(() => closeMux(k));
    const f = frame('completed by an empty call');
    await k.send(f, { eor: false });
    assert.equal(k.stats().txMsgs, 0);
    assert.equal(k.stats().txBytes, f.length, '[ST-1] bytes counted per call, before the end of the message');
    await k.send(Buffer.alloc(0));
    await waitFor(() => readers[0]!.frames.length === 1, 5000, 'the message');
    assert.deepEqual(readers[0]!.frames, [f]);
    assert.deepEqual(k.stats(), { rxMsgs: 0, rxBytes: 0, txMsgs: 1, txBytes: f.length });
  });
}

test('[T-5c][T-8] a zero-length call flushes a pending batch', async (t) => {
  const { k, readers } = await rig(2);
  t.after(() => closeMux(k));
  const a = frame('batched a');
  const b = frame('batched b');
  await k.send(a, { batch: true });
  await k.send(b, { batch: true });
  await sleep(20);
  const held = k.mux.stats();
  assert.equal(held.sockets[0]!.batchPending, true);
  assert.equal(held.sockets[0]!.txQueued, 2);
  assert.equal(held.psocks[0]!.reserved + held.psocks[1]!.reserved, 0, 'nothing written while the batch is held');
  assert.equal(readers[0]!.bytes + readers[1]!.bytes, 0);
  await k.send(Buffer.alloc(0));
  await waitFor(() => readers[0]!.frames.length === 2, 5000, 'the batch');
  assert.deepEqual(readers[0]!.frames, [a, b]);
  assert.equal(readers[1]!.bytes, 0);
  const s = k.mux.stats();
  assert.equal(s.sockets[0]!.batchPending, false);
  assert.equal(s.txMsgs, 2);
  assert.equal(s.psocks[0]!.reserved, 1, 'one burst');
});

test('[T-7][T-7a][T-9][T-3] sendBufferSize admission: trySend false, send waits until the queue drains', async (t) => {
  const k = KcmSocket.create({ sendBufferSize: 1024 });
  t.after(() => closeMux(k));
  const big = frame(randomBytes(4096));
  const small = frame('small');
  const small2 = frame('small two');
  assert.equal(k.trySend(big), true, '[T-7a] a message larger than the buffer starts below the limit');
  assert.equal(k.trySend(small), false, 'the queue holds sendBufferSize bytes or more');
  assert.deepEqual(k.stats(), { rxMsgs: 0, rxBytes: 0, txMsgs: 1, txBytes: big.length }, 'a refused trySend queues nothing');
  const waiting = k.send(small);
  const waiting2 = k.send(small2);
  assert.equal(await settles(waiting), false, 'send waits while the queue is full');
  assert.equal(k.trySend(frame('no')), false, 'trySend never jumps waiting sends');
  const { local, remote } = await tcpPair();
  const reader = new FrameReader(remote);
  k.attach(local, { parser: P4 });
  await waiting;
  await waiting2;
  await waitFor(() => reader.frames.length === 3, 5000, 'the messages');
  assert.deepEqual(reader.frames, [big, small, small2], 'waiting sends proceed in call order');
  assert.equal(k.mux.stats().sockets[0]!.txQueuedBytes, 0);
});

test('[T-7b] appending to an open message never waits on sendBufferSize', async (t) => {
  const k = KcmSocket.create({ type: 'seqpacket', sendBufferSize: 1024 });
  t.after(() => closeMux(k));
  const whole = frame(randomBytes(8000));
  await k.send(whole.subarray(0, 4000), { eor: false });
  assert.equal(k.mux.stats().sockets[0]!.txQueuedBytes, 4000);
  assert.equal(k.trySend(whole.subarray(4000, 6000), { eor: false }), true, 'an open message is always appended');
  assert.equal(await settles(k.send(whole.subarray(6000))), true);
  assert.equal(k.trySend(frame('next')), false, 'a new message is refused over the limit');
  const { local, remote } = await tcpPair();
  const reader = new FrameReader(remote);
  k.attach(local, { parser: P4 });
  await waitFor(() => reader.frames.length === 1, 5000, 'the message');
  assert.deepEqual(reader.frames, [whole]);
  assert.equal(reader.partial, 0);
});

test('[T-8][T-13] batch: every message of a burst on one transport, in order', async (t) => {
  const { k, readers } = await rig(2);
  t.after(() => closeMux(k));
  const msgs = [0, 1, 2, 3, 4, 5].map((i) => frame(`batch ${i}`));
  for (let i = 0; i < 5; i++) await k.send(msgs[i]!, { batch: true });
  await k.send(msgs[5]!);
  await waitFor(() => readers[0]!.frames.length === 6, 5000, 'the batch');
  assert.deepEqual(readers[0]!.frames, msgs);
  assert.equal(readers[1]!.bytes, 0);
  const s = k.mux.stats();
  assert.equal(s.psocks[0]!.reserved, 1);
  assert.equal(s.psocks[0]!.txMsgs, 6);
});

test('[T-8] sendMany is one burst on one transport; the next burst takes the next psock', async (t) => {
  const { k, readers } = await rig(2);
  t.after(() => closeMux(k));
  const single = frame('single');
  await k.send(single);
  const many = Array.from({ length: 10 }, (_, i) => frame(`many ${i}`));
  const more = Array.from({ length: 10 }, (_, i) => [Buffer.from([0, 0, 0, 6]), Buffer.from(`more ${i}`)]);
  await k.sendMany(many);
  await k.sendMany(more);
  await waitFor(() => readers[0]!.frames.length === 11 && readers[1]!.frames.length === 10, 5000, 'the bursts');
  assert.deepEqual(readers[0]!.frames, [single, ...more.map((m) => Buffer.concat(m))]);
  assert.deepEqual(readers[1]!.frames, many);
  const s = k.mux.stats();
  assert.equal(s.psocks[0]!.reserved, 2);
  assert.equal(s.psocks[1]!.reserved, 1, 'ten messages, one reservation');
  assert.equal(k.stats().txMsgs, 21);
});

test('[T-10c][B-13] dgram: a failing call discards the message being built', async (t) => {
  const { k, readers } = await rig(1);
  t.after(() => closeMux(k));
  await k.send(frame('never sent'), { eor: false });
  await assert.rejects(k.send(Buffer.from('x'), { signal: AbortSignal.abort() }), isAbort);
  assert.equal(k.mux.stats().sockets[0]!.txQueuedBytes, 0, 'the open message is gone');
  const clean = frame('clean');
  await k.send(clean);
  await waitFor(() => readers[0]!.frames.length === 1, 5000, 'the clean message');
  await sleep(20);
  assert.deepEqual(readers[0]!.frames, [clean]);
  assert.equal(readers[0]!.bytes, clean.length);
});

test('[T-10c][B-13] dgram: a send aborted while waiting for buffer space leaves nothing behind', async (t) => {
  const k = KcmSocket.create({ sendBufferSize: 1024 });
  t.after(() => closeMux(k));
  const big = frame(randomBytes(2048));
  await k.send(big);
  const ac = new AbortController();
  const part = k.send(frame('discarded part'), { eor: false, signal: ac.signal });
  const ac2 = new AbortController();
  const whole = k.send(frame('discarded whole'), { signal: ac2.signal });
  assert.equal(await settles(part), false);
  ac.abort();
  ac2.abort(new Error('stop'));
  await assert.rejects(part, isAbort);
  await assert.rejects(whole, (err: unknown) => isAbort(err) && (err as Error).cause instanceof Error);
  const clean = frame('clean');
  const sent = k.send(clean);
  const { local, remote } = await tcpPair();
  const reader = new FrameReader(remote);
  k.attach(local, { parser: P4 });
  await sent;
  await waitFor(() => reader.frames.length === 2, 5000, 'the messages');
  await sleep(20);
  assert.deepEqual(reader.frames, [big, clean]);
  assert.equal(reader.bytes, big.length + clean.length);
});

test('[T-10b] seqpacket: a failing call keeps the open message; completing it sends prefix and rest', async (t) => {
  const { k, readers } = await rig(1, { type: 'seqpacket' });
  t.after(() => closeMux(k));
  const whole = frame('prefix|rest');
  await k.send(whole.subarray(0, 11), { eor: false });
  await assert.rejects(k.send(Buffer.from('lost'), { signal: AbortSignal.abort() }), isAbort);
  assert.equal(k.mux.stats().sockets[0]!.txQueuedBytes, 11, 'the open message keeps its accepted bytes');
  await k.send(whole.subarray(11));
  await waitFor(() => readers[0]!.frames.length === 1, 5000, 'the message');
  assert.deepEqual(readers[0]!.frames, [whole]);
  assert.equal(readers[0]!.bytes, whole.length);
});

test('[T-12][T-11][T-14] backpressure keeps the reservation; another socket uses another psock', async (t) => {
  // A send buffer large enough that the message behind the big one is queued, not waiting [T-9].
  const k0 = KcmSocket.create({ sendBufferSize: 64 * 1024 * 1024 });
  const k1 = k0.clone();
  t.after(() => closeMux(k0));
  const pairs = await tcpPairs(2);
  const c0 = new RawCollector(pairs[0]!.remote);
  const r1 = new FrameReader(pairs[1]!.remote);
  pairs[0]!.remote.pause();
  const p0 = k0.attach(pairs[0]!.local, { parser: P4 });
  k0.attach(pairs[1]!.local, { parser: P4 });
  const big = frame(randomBytes(24 * 1024 * 1024));
  const behind = frame('queued behind the big one');
  await k0.send(big);
  await k0.send(behind);
  await waitStalled(p0);
  assert.equal(p0.stats().reservedBy, k0.index, 'the stalled psock stays reserved');
  const small = frame('from another socket');
  await k1.send(small);
  await waitFor(() => r1.frames.length === 1, 5000, 'the other socket\'s message on T1');
  assert.deepEqual(r1.frames, [small]);
  const s = k0.mux.stats();
  assert.equal(s.sockets[0]!.txPsock, 0);
  assert.equal(s.sockets[0]!.txQueued, 2, 'the big message and the one behind it wait on T0');
  assert.equal(s.psocks[0]!.reservedBy, 0);
  pairs[0]!.remote.resume();
  await waitFor(() => c0.bytes >= big.length + behind.length, 60000, 'the stalled burst');
  const got = c0.frames();
  assert.equal(got.partial, 0);
  assert.equal(got.frames.length, 2);
  assert.ok(got.frames[0]!.equals(big), 'the big message intact');
  assert.deepEqual(got.frames[1], behind);
  await waitFor(() => p0.stats().reservedBy === -1, 5000, 'the release');
  const ps = p0.stats();
  assert.equal(ps.reserved, 1, 'one reservation for the whole burst');
  assert.equal(ps.unreserved, 1);
  assert.equal(ps.txMsgs, 2);
  assert.equal(ps.txBytes, big.length + behind.length);
});

test('[T-13] round-robin of sequential single sends over idle psocks, in attach order', async (t) => {
  const { k, readers } = await rig(3);
  t.after(() => closeMux(k));
  const msgs = Array.from({ length: 7 }, (_, i) => frame(`rr ${i}`));
  for (const m of msgs) await k.send(m);
  await waitFor(() => readers[0]!.frames.length === 3 && readers[1]!.frames.length === 2 && readers[2]!.frames.length === 2, 5000, 'the messages');
  assert.deepEqual(readers[0]!.frames, [msgs[0], msgs[3], msgs[6]]);
  assert.deepEqual(readers[1]!.frames, [msgs[1], msgs[4]]);
  assert.deepEqual(readers[2]!.frames, [msgs[2], msgs[5]]);
  assert.deepEqual(k.mux.stats().psocks.map((p) => p.reserved), [3, 2, 2]);
});

test('[T-19][A-11][T-15][T-14] transmit waiters are served in order, before the psock becomes available', async (t) => {
  const k0 = KcmSocket.create();
  const k1 = k0.clone();
  const k2 = k0.clone();
  t.after(() => closeMux(k0));
  const m = [frame('k2 first'), frame('k0 second'), frame('k1 third'), frame('k2 again')];
  await k2.send(m[0]!);
  await k0.send(m[1]!);
  await k1.send(m[2]!);
  assert.deepEqual(k0.mux.stats().sockets.map((s) => s.txWait), [true, true, true]);
  const { local, remote } = await tcpPair();
  const reader = new FrameReader(remote);
  const p = k0.attach(local, { parser: P4 });
  await waitFor(() => reader.frames.length === 3, 5000, 'the waiters\' messages');
  assert.deepEqual(reader.frames, [m[0], m[1], m[2]]);
  assert.equal(p.stats().reserved, 3, 'handed from waiter to waiter');
  assert.deepEqual(k0.mux.stats().sockets.map((s) => s.txWait), [false, false, false]);
  await k2.send(m[3]!);
  await waitFor(() => reader.frames.length === 4, 5000, 'the last message');
  assert.equal(p.stats().unreserved, 4);
});

test('[B-15] concurrent sends on one socket with a tiny sendBufferSize are each delivered intact', async (t) => {
  const { k, pairs } = await rig(2, { sendBufferSize: 1 });
  t.after(() => closeMux(k));
  const collectors = pairs.map((p) => new RawCollector(p.remote));
  const sizes = [200_000, 3, 150_000, 64 * 1024, 1, 250_000, 70_000, 9];
  const sends = sizes.map((n, seq) => k.send(tapeFrame(1, seq, n)));
  const total = sizes.reduce((a, n, seq) => a + tapeFrameBuffer(1, seq, n).length, 0);
  await Promise.all(sends);
  await waitFor(() => collectors[0]!.bytes + collectors[1]!.bytes === total, 10000, 'every message');
  const seen: number[] = [];
  for (const c of collectors) {
    const { frames, partial } = c.frames();
    assert.equal(partial, 0);
    let last = -1;
    for (const f of frames) {
      const { src, seq } = checkFrame(f);
      assert.equal(src, 1);
      assert.ok(seq > last, `[T-17] the socket's messages leave in order on a transport: ${seq} after ${last}`);
      last = seq;
      seen.push(seq);
    }
  }
  assert.deepEqual(seen.sort((a, b) => a - b), sizes.map((_, i) => i));
  assert.equal(k.stats().txMsgs, sizes.length);
});

test('[ST-1][ST-2][ST-3][B-22] transmit counters are exact (spec §12-55)', async (t) => {
  const { k, readers, pairs } = await rig(1);
  t.after(() => closeMux(k));
  const msgs = [frame('one'), frame('twenty two'), frame(randomBytes(3000))];
  const bytes = msgs.reduce((a, m) => a + m.length, 0);
  for (const m of msgs) await k.send(m);
  await waitFor(() => readers[0]!.frames.length === 3, 5000, 'the messages');
  const ps = k.mux.psocks[0]!.stats();
  assert.equal(ps.reserved, 3);
  assert.equal(ps.unreserved, 3);
  assert.equal(ps.txMsgs, 3);
  assert.equal(ps.txBytes, bytes);
  assert.equal(ps.txAborts, 0);
  assert.deepEqual(k.stats(), { rxMsgs: 0, rxBytes: 0, txMsgs: 3, txBytes: bytes });
  const s = k.mux.stats();
  assert.equal(s.txMsgs, 3, 'no lag: exact at the time of the call');
  assert.equal(s.txBytes, bytes);
  assert.equal(s.txRetries, 0);
  assert.equal(s.psockAttach, 1);
  assert.equal(s.psockUnattach, 0);
  assert.equal(s.psockUnattachRsvd, 0);
  // [ST-4] the counters of an unattached psock stay in the mux totals.
  k.unattach(pairs[0]!.local);
  const after = k.mux.stats();
  assert.equal(after.txMsgs, 3);
  assert.equal(after.txBytes, bytes);
  assert.equal(after.psockUnattach, 1);
  assert.equal(after.psockUnattachRsvd, 0);
  assert.equal(after.psocks.length, 0);
});

test('[O-6][X-13] a closed socket rejects send, trySend and sendMany with EBADF', async () => {
  const k = KcmSocket.create();
  k.close();
  await assert.rejects(k.send(frame('x')), (err: unknown) => err instanceof KcmError && err.code === 'EBADF');
  await assert.rejects(k.sendMany([frame('x')]), (err: unknown) => err instanceof KcmError && err.code === 'EBADF');
  assert.throws(() => k.trySend(frame('x')), (err: unknown) => err instanceof KcmError && err.code === 'EBADF');
});
