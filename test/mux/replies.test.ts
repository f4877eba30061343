/**
 * Replies to the sender (docs/replies.md): psock ids [K-1], the origin of received
 * messages [K-2], pinned sends [K-3, K-4, K-7], their errors [K-5], what is dropped when a
 * psock dies [K-6], close [K-8], and the statistics that show it, over loopback TCP.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { KcmSocket } from '../../src/mux/kcm-socket.js';
import { Psock, type PsockRef } from '../../src/mux/psock.js';
import { formatPrometheus } from '../../src/stats/prometheus.js';
import { P4, FrameReader, closeAll, frame, payload, sleep, tcpPair, tcpPairs, waitFor } from '../helpers/loopback.js';
import { assertKcmError, closeMux, throwsKcm, turns } from '../helpers/mux.js';
import { RawCollector, waitStalled } from '../helpers/traffic.js';

after(closeAll);

async function rejects(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assertKcmError(err, code);
    return true;
  });
}

test('[K-1][O-2] psock ids are unique within a multiplexor and never reused, unlike indices', async (t) => {
  const k = KcmSocket.create();
  t.after(() => closeMux(k));
  const pairs = await tcpPairs(4);
  const p0 = k.attach(pairs[0]!.local, { parser: P4 });
  const p1 = k.attach(pairs[1]!.local, { parser: P4 });
  assert.ok(Number.isInteger(p0.id) && p0.id >= 1, `a positive integer id, got ${p0.id}`);
  assert.notEqual(p0.id, p1.id);
  k.unattach(pairs[0]!.local);
  const p2 = k.attach(pairs[2]!.local, { parser: P4 });
  assert.equal(p2.index, p0.index, '[O-2] the index is reused');
  assert.ok(p2.id !== p0.id && p2.id !== p1.id, '[K-1] the id is not');
  const p3 = k.attach(pairs[0]!.local, { parser: P4 }); // the same transport again
  assert.equal(new Set([p0.id, p1.id, p2.id, p3.id]).size, 4, 're-attaching a transport gives a new id');
  assert.deepEqual(k.mux.stats().psocks.map((s) => s.id).sort(), [p1.id, p2.id, p3.id].sort(), 'psock.stats().id');
  // Another multiplexor counts on its own: ids are per multiplexor.
  const other = KcmSocket.create();
  t.after(() => other.close());
  assert.equal(other.attach(pairs[3]!.local, { parser: P4 }).id, p0.id);
});

test('[K-2] every message carries its origin: the second argument of message, and receiveFrom()', async (t) => {
  const k = KcmSocket.create();
  const k1 = k.clone();
  t.after(() => closeMux(k));
  const pairs = await tcpPairs(2);
  const ps = pairs.map((p) => k.attach(p.local, { parser: P4 }));
  const got: [string, PsockRef][] = [];
  k.on('message', (m: Buffer, origin: PsockRef) => got.push([payload(m), origin]));
  k1.setRecvDisable(true);
  pairs[0]!.remote.write(frame('from-0'));
  await waitFor(() => got.length === 1, 5000, 'the first message');
  pairs[1]!.remote.write(frame('from-1'));
  await waitFor(() => got.length === 2, 5000, 'the second message');
  assert.equal(got[0]![0], 'from-0');
  assert.equal(got[0]![1], ps[0], 'in the multiplexor\'s thread the origin is the Psock itself');
  assert.ok(got[0]![1] instanceof Psock);
  assert.equal(got[1]![1], ps[1]);
  // receiveFrom on a socket without a listener.
  k.removeAllListeners('message');
  k.setRecvDisable(true);
  k1.setRecvDisable(false);
  const pending = k1.receiveFrom({ signal: AbortSignal.timeout(5000) });
  pairs[1]!.remote.write(frame('again-1'));
  const { message, origin } = await pending;
  assert.equal(payload(message), 'again-1');
  assert.equal(origin, ps[1]);
  pairs[0]!.remote.write(frame('queued-0'));
  await waitFor(() => k1.mux.stats().sockets[k1.index]!.rxQueued === 1, 5000, 'a queued message');
  const queued = await k1.receiveFrom();
  assert.equal(payload(queued.message), 'queued-0');
  assert.equal(queued.origin, ps[0], 'a message already queued resolves with its origin too');
});

test('[K-2][D-3][D-5] the origin stays with a message moved by recv-disable and through the hold queue', async (t) => {
  const k0 = KcmSocket.create();
  t.after(() => closeMux(k0));
  const pairs = await tcpPairs(2);
  const ps = pairs.map((p) => k0.attach(p.local, { parser: P4 }));
  pairs[0]!.remote.write(frame('a'));
  await waitFor(() => k0.mux.stats().sockets[0]!.rxQueued === 1, 5000, 'a queued');
  pairs[1]!.remote.write(frame('b'));
  await waitFor(() => k0.mux.stats().sockets[0]!.rxQueued === 2, 5000, 'b queued');
  k0.setRecvDisable(true); // [D-5] no other socket: both go to the hold queue
  assert.equal(k0.mux.stats().rxHoldQueued, 2);
  const k1 = k0.clone(); // [S-5] takes the hold queue
  const a = await k1.receiveFrom({ signal: AbortSignal.timeout(5000) });
  const b = await k1.receiveFrom({ signal: AbortSignal.timeout(5000) });
  assert.deepEqual([payload(a.message), payload(b.message)], ['a', 'b']);
  assert.equal(a.origin, ps[0]);
  assert.equal(b.origin, ps[1]);
});

test('[K-3][T-17] a pinned message goes out on its psock only, whole, in call order', async (t) => {
  const k = KcmSocket.create();
  const k1 = k.clone();
  t.after(() => closeMux(k));
  const pairs = await tcpPairs(3);
  const readers = pairs.map((p) => new FrameReader(p.remote));
  const ps = pairs.map((p) => k.attach(p.local, { parser: P4 }));
  const sent: Buffer[] = [];
  for (let i = 0; i < 60; i++) {
    const size = i % 7 === 0 ? 70000 + i : 1 + i * 13;
    const m = frame(Buffer.concat([Buffer.from(`${String(i).padStart(3, '0')}:`), randomBytes(size)]));
    sent.push(m);
    // Alternating sockets, parts or whole, send and trySend: all pinned to psock 1.
    const sock = i % 2 === 0 ? k : k1;
    if (i % 3 === 0) await sock.send([m.subarray(0, 3), m.subarray(3)], { psock: ps[1]! });
    else if (i % 3 === 1) assert.equal(sock.trySend(m, { psock: ps[1]! }), true);
    else await sock.send(m, { psock: { id: ps[1]!.id } }); // a plain { id } works as well
  }
  const total = sent.reduce((n, m) => n + m.length, 0);
  await waitFor(() => readers[1]!.bytes === total, 10000, 'every pinned message on T1');
  await sleep(20);
  assert.equal(readers[0]!.bytes, 0, 'nothing on T0');
  assert.equal(readers[2]!.bytes, 0, 'nothing on T2');
  assert.equal(readers[1]!.partial, 0);
  assert.deepEqual(readers[1]!.frames.map((f) => f.subarray(4, 7).toString()), sent.map((m) => m.subarray(4, 7).toString()), 'call order');
  readers[1]!.frames.forEach((f, i) => assert.ok(f.equals(sent[i]!), `message ${i} intact`));
  const s = k.mux.stats();
  assert.equal(s.psocks[1]!.txPinnedMsgs, 60);
  assert.equal(s.psocks[1]!.txPinnedBytes, total);
  assert.equal(s.psocks[1]!.txMsgs, 60);
  assert.equal(s.txMsgs, 60);
  assert.equal(s.txDropped, 0);
  assert.equal(k.stats().txMsgs + k1.stats().txMsgs, 60);
});

test('[K-3][K-7][T-8] sendMany with a psock goes out back to back there; batch holds pinned messages until a call without it', async (t) => {
  const k = KcmSocket.create();
  t.after(() => closeMux(k));
  const pairs = await tcpPairs(2);
  const readers = pairs.map((p) => new FrameReader(p.remote));
  const ps = pairs.map((p) => k.attach(p.local, { parser: P4 }));
  await k.sendMany(['a', 'b', 'c', 'd'].map((x) => frame(x)), { psock: ps[0]! });
  await waitFor(() => readers[0]!.frames.length === 4, 5000, 'the burst on T0');
  assert.deepEqual(readers[0]!.payloads(), ['a', 'b', 'c', 'd']);
  assert.equal(readers[1]!.bytes, 0);
  // MSG_BATCH: held until the next call without batch, whatever that call's target.
  await k.send(frame('held-1'), { psock: ps[1]!, batch: true });
  await k.send(frame('held-2'), { psock: ps[1]!, batch: true });
  await sleep(30);
  assert.equal(readers[1]!.bytes, 0, '[T-8] batched pinned messages wait');
  await k.send(frame('go'), { psock: ps[1]! });
  await waitFor(() => readers[1]!.frames.length === 3, 5000, 'the batch');
  assert.deepEqual(readers[1]!.payloads(), ['held-1', 'held-2', 'go']);
  // An empty call flushes too [T-5c].
  await k.send(frame('held-3'), { psock: ps[0]!, batch: true });
  await k.send(Buffer.alloc(0));
  await waitFor(() => readers[0]!.frames.length === 5, 5000, 'the flushed batch');
  assert.equal(readers[0]!.payloads()[4], 'held-3');
});

test('[K-3][T-1] a message built over several calls goes where the call that completes it says', async (t) => {
  const k = KcmSocket.create({ type: 'seqpacket' });
  t.after(() => closeMux(k));
  const pairs = await tcpPairs(2);
  const readers = pairs.map((p) => new FrameReader(p.remote));
  const ps = pairs.map((p) => k.attach(p.local, { parser: P4 }));
  const m = frame('in three parts');
  await k.send(m.subarray(0, 4), { eor: false });
  await k.send(m.subarray(4, 8), { eor: false, psock: ps[0]! });
  await k.send(m.subarray(8), { psock: ps[1]! });
  await waitFor(() => readers[1]!.frames.length === 1, 5000, 'the message on T1');
  assert.ok(readers[1]!.frames[0]!.equals(m));
  assert.equal(readers[0]!.bytes, 0);
});

test('[K-5] EPIPE for a psock that is done, ENOENT for an unknown or foreign one, TypeError for what is no ref', async (t) => {
  const k = KcmSocket.create();
  const other = KcmSocket.create();
  t.after(() => { closeMux(k); closeMux(other); });
  const pairs = await tcpPairs(3);
  const p0 = k.attach(pairs[0]!.local, { parser: P4 });
  const p1 = k.attach(pairs[1]!.local, { parser: P4 });
  const foreign = other.attach(pairs[2]!.local, { parser: P4 });
  p0.on('error', () => {});
  // Unknown and foreign refs.
  await rejects(k.send(frame('x'), { psock: { id: 999 } }), 'ENOENT');
  await rejects(k.send(frame('x'), { psock: { id: 0 } }), 'ENOENT');
  await rejects(k.send(frame('x'), { psock: foreign }), 'ENOENT');
  await rejects(k.sendMany([frame('x')], { psock: foreign }), 'ENOENT');
  throwsKcm(() => k.trySend(frame('x'), { psock: { id: 12345 } }), 'ENOENT');
  // Not a ref at all: an argument error, thrown.
  for (const bad of [1, 'psock', null, {}, { id: '1' }]) {
    assert.throws(() => k.send(frame('x'), { psock: bad as never }), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => k.trySend(frame('x'), { psock: bad as never }), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => k.sendMany([frame('x')], { psock: bad as never }), { code: 'ERR_INVALID_ARG_TYPE' });
  }
  // Done: its transport was reset.
  pairs[0]!.remote.resetAndDestroy();
  await waitFor(() => p0.error !== undefined, 5000, 'the psock error');
  await rejects(k.send(frame('x'), { psock: p0 }), 'EPIPE');
  await rejects(k.send(frame('x'), { psock: { id: p0.id } }), 'EPIPE');
  await rejects(k.sendMany([frame('x'), frame('y')], { psock: p0 }), 'EPIPE');
  throwsKcm(() => k.trySend(frame('x'), { psock: p0 }), 'EPIPE');
  // Done: unattached.
  k.unattach(pairs[1]!.local);
  await rejects(k.send(frame('x'), { psock: p1 }), 'EPIPE');
  await rejects(k.send(frame('x'), { psock: { id: p1.id } }), 'EPIPE');
  throwsKcm(() => k.trySend(frame('x'), { psock: { id: p1.id } }), 'EPIPE');
  // Closed socket: EBADF first.
  const c = k.clone();
  c.close();
  await rejects(c.send(frame('x'), { psock: { id: 999 } }), 'EBADF');
  const s = k.mux.stats();
  assert.equal(s.txMsgs, 0, 'a rejected call queues nothing');
  assert.equal(s.txDropped, 0, 'and drops nothing');
});

test('[K-6][T-16] pinned messages not handed whole when their psock dies are dropped and counted, never sent elsewhere', async (t) => {
  const k = KcmSocket.create({ sendBufferSize: 64 * 1024 * 1024 });
  t.after(() => closeMux(k));
  const pairs = await tcpPairs(2);
  pairs[0]!.remote.pause();
  const c1 = new RawCollector(pairs[1]!.remote);
  const p0 = k.attach(pairs[0]!.local, { parser: P4 });
  k.attach(pairs[1]!.local, { parser: P4 });
  const errs: Error[] = [];
  p0.on('error', (e: Error) => errs.push(e));
  const big = frame(randomBytes(16 * 1024 * 1024));
  await k.send(big, { psock: p0 });
  await waitStalled(p0);
  for (let i = 0; i < 5; i++) await k.send(frame(`behind-${i}`), { psock: p0 });
  assert.equal(p0.stats().txPinnedQueued, 6, 'the big one and the five behind it');
  const unpinned = frame('unpinned');
  await k.send(unpinned);
  await waitFor(() => c1.bytes === unpinned.length, 5000, '[K-4] unpinned traffic passes the stalled psock');
  pairs[0]!.remote.resetAndDestroy();
  await waitFor(() => errs.length === 1, 10000, 'the psock error');
  await sleep(50);
  assert.equal(c1.bytes, unpinned.length, 'nothing restarted on T1');
  const s = k.mux.stats();
  assert.equal(s.txDropped, 6, 'the big one (started, not handed whole) and the five behind it');
  assert.equal(k.stats().txDropped, 6);
  assert.equal(s.psocks[0]!.txDropped, 6);
  assert.equal(s.psocks[0]!.txPinnedQueued, 0);
  assert.equal(s.txRetries, 0, 'no retry: a pinned message never goes elsewhere');
  assert.equal(s.sockets[0]!.txQueuedBytes, 0, '[T-7] the dropped bytes no longer count against sendBufferSize');
  assert.equal(s.sockets[0]!.txDropped, 6);
});

test('[K-4][T-12] a psock stalled with pinned messages holds back neither messages pinned elsewhere nor unpinned ones', async (t) => {
  const k = KcmSocket.create({ sendBufferSize: 64 * 1024 * 1024 });
  t.after(() => closeMux(k));
  const pairs = await tcpPairs(3);
  pairs[0]!.remote.pause();
  const readers = pairs.slice(1).map((p) => new FrameReader(p.remote));
  const ps = pairs.map((p) => k.attach(p.local, { parser: P4 }));
  await k.send(frame(randomBytes(8 * 1024 * 1024)), { psock: ps[0]! });
  await waitStalled(ps[0]!);
  for (let i = 0; i < 20; i++) {
    await k.send(frame(`to-1-${i}`), { psock: ps[1]! });
    await k.send(frame(`to-0-${i}`), { psock: ps[0]! }); // queued behind the stall
    await k.send(frame(`any-${i}`));
  }
  await waitFor(() => readers[0]!.frames.filter((f) => payload(f).startsWith('to-1-')).length === 20, 5000, 'the messages pinned to psock 1');
  await waitFor(() => readers[0]!.frames.length + readers[1]!.frames.length === 40, 5000, 'the unpinned messages');
  assert.deepEqual(readers[0]!.payloads().filter((x) => x.startsWith('to-1-')), Array.from({ length: 20 }, (_, i) => `to-1-${i}`));
  assert.ok(readers[1]!.payloads().every((x) => x.startsWith('any-')), 'psock 2 carried only unpinned messages');
  assert.equal(ps[0]!.stats().txPinnedQueued, 21, 'the stalled one and the 20 behind it wait');
  assert.match(k.mux.toString(), new RegExp(`^psock-${ps[0]!.index} .*PinQ-21`, 'm'));
  pairs[0]!.remote.resume();
  await waitFor(() => ps[0]!.stats().txPinnedQueued === 0, 20000, 'the stalled psock drained');
  assert.equal(k.mux.stats().txDropped, 0);
});

test('[K-6][U-4] unattaching a psock drops its pinned messages; a send waiting for buffer space then rejects EPIPE', async (t) => {
  const k = KcmSocket.create({ sendBufferSize: 1024 });
  t.after(() => closeMux(k));
  const pairs = await tcpPairs(2);
  pairs[0]!.remote.pause();
  const r1 = new FrameReader(pairs[1]!.remote);
  const p0 = k.attach(pairs[0]!.local, { parser: P4 });
  const p1 = k.attach(pairs[1]!.local, { parser: P4 });
  await k.send(frame(randomBytes(8 * 1024 * 1024)), { psock: p0 });
  await waitStalled(p0);
  // The queue is over sendBufferSize: this one waits [T-9].
  const waiting = k.send(frame('waits'), { psock: p0 });
  const waiting1 = k.send(frame('waits too, for T1'), { psock: p1 });
  await turns();
  k.unattach(pairs[0]!.local);
  await rejects(waiting, 'EPIPE');
  await waiting1;
  await waitFor(() => r1.frames.length === 1, 5000, 'the message for T1');
  assert.deepEqual(r1.payloads(), ['waits too, for T1']);
  const s = k.mux.stats();
  assert.equal(s.txDropped, 1, 'the stalled message');
  assert.equal(s.psockUnattachRsvd, 0, 'a pinned write holds no reservation');
});

test('[K-4][T-13][T-17] pinned and unpinned traffic on one socket: round-robin and atomicity hold, per-psock order too', async (t) => {
  const k = KcmSocket.create();
  t.after(() => closeMux(k));
  const pairs = await tcpPairs(2);
  const readers = pairs.map((p) => new FrameReader(p.remote));
  const ps = pairs.map((p) => k.attach(p.local, { parser: P4 }));
  // [T-13] four sequential unpinned sends alternate, a pinned one in between changes nothing.
  await k.send(frame('u0'));
  await sleep(5);
  await k.send(frame('pin0'), { psock: ps[0]! });
  await sleep(5);
  await k.send(frame('u1'));
  await sleep(5);
  await k.send(frame('u2'));
  await sleep(5);
  await k.send(frame('u3'));
  await waitFor(() => readers[0]!.frames.length + readers[1]!.frames.length === 5, 5000, 'five messages');
  const on0 = readers[0]!.payloads().filter((x) => x.startsWith('u'));
  const on1 = readers[1]!.payloads();
  assert.deepEqual(on0, ['u0', 'u2']);
  assert.deepEqual(on1, ['u1', 'u3']);
  assert.ok(readers[0]!.payloads().includes('pin0'));
});

test('[K-8][O-6] close discards the unsent pinned messages of a socket, uncounted; one partly written is completed', async (t) => {
  const k = KcmSocket.create({ sendBufferSize: 64 * 1024 * 1024 });
  const k1 = k.clone();
  t.after(() => closeMux(k));
  const { local, remote } = await tcpPair();
  remote.pause();
  const c = new RawCollector(remote);
  const p = k.attach(local, { parser: P4 });
  const big = frame(randomBytes(8 * 1024 * 1024));
  await k1.send(big, { psock: p });
  await waitStalled(p);
  await k1.send(frame('discarded'), { psock: p });
  await k.send(frame('of k'), { psock: p });
  k1.close();
  remote.resume();
  const expect = big.length + frame('of k').length;
  await waitFor(() => c.bytes === expect, 20000, 'the big message completed and the one of k');
  await sleep(30);
  const { frames, partial } = c.frames();
  assert.equal(partial, 0, 'the stream stays framed');
  assert.equal(frames.length, 2);
  assert.ok(frames[0]!.equals(big));
  assert.equal(payload(frames[1]!), 'of k');
  assert.equal(k.mux.stats().txDropped, 0, 'discarded at close, not dropped');
  assert.equal(p.error, undefined, 'the psock was not aborted');
});

test('[K-2][K-3] an echo server replying to the origin: two independent clients each get only their own replies', async (t) => {
  const server = KcmSocket.create();
  const ss = [server, server.clone(), server.clone(), server.clone()];
  const clients = [KcmSocket.create(), KcmSocket.create()];
  t.after(() => { closeMux(server); for (const c of clients) closeMux(c); });
  for (const s of ss) s.on('message', (m: Buffer, from: PsockRef) => void s.send(m, { psock: from }));
  const pairs = await tcpPairs(4);
  pairs.forEach((p, i) => {
    clients[i % 2]!.attach(p.local, { parser: P4 });
    server.attach(p.remote, { parser: P4 });
  });
  const got: string[][] = [[], []];
  clients.forEach((c, i) => c.on('message', (m: Buffer) => got[i]!.push(payload(m))));
  const N = 300;
  for (let i = 0; i < N; i++) for (let c = 0; c < 2; c++) await clients[c]!.send(frame(`c${c}-${i}`));
  await waitFor(() => got[0]!.length + got[1]!.length === 2 * N, 10000, 'every echo');
  for (let c = 0; c < 2; c++) {
    assert.equal(got[c]!.filter((x) => !x.startsWith(`c${c}-`)).length, 0, `client ${c} got only its own replies`);
    assert.equal(new Set(got[c]).size, N, `client ${c} got each reply once`);
  }
});

test('[K-6][ST-7] statistics: the /proc/net/kcm table and Prometheus show pinned traffic', async (t) => {
  const k = KcmSocket.create();
  t.after(() => closeMux(k));
  const pairs = await tcpPairs(2);
  const readers = pairs.map((p) => new FrameReader(p.remote));
  const ps = pairs.map((p) => k.attach(p.local, { parser: P4 }));
  await k.send(frame('one'), { psock: ps[1]! });
  await k.send(frame('two'), { psock: ps[1]! });
  await k.send(frame('three'));
  await waitFor(() => readers[0]!.frames.length + readers[1]!.frames.length === 3, 5000, 'three messages');
  const lines = k.mux.toString().split('\n');
  assert.deepEqual(lines[1]!.trim().split(/\s+/), ['Object', 'RX-Msgs', 'RX-Bytes', 'TX-Msgs', 'TX-Bytes', 'Recv-Q', 'Rmem', 'Send-Q', 'Smem', 'Status'], '[ST-7] the Linux columns');
  const p1row = lines.find((l) => l.startsWith(`psock-${ps[1]!.index}`))!;
  assert.match(p1row, / Pinned-2( |$)/);
  const p0row = lines.find((l) => l.startsWith(`psock-${ps[0]!.index}`))!;
  assert.doesNotMatch(p0row, /Pinned|Dropped|PinQ/, 'no words where there was no pinned traffic');
  assert.match(lines.find((l) => l.startsWith('mux'))!, /KCMs: 1, Psocks 2, Pinned 2, Dropped 0$/);
  const prom = formatPrometheus(k.mux);
  assert.match(prom, /^kcm_mux_tx_dropped_total 0$/m);
  assert.match(prom, new RegExp(`^kcm_psock_tx_pinned_messages_total\\{psock="${ps[1]!.index}"\\} 2$`, 'm'));
  assert.match(prom, /^kcm_socket_tx_dropped_total\{socket="0"\} 0$/m);
});

test('[K-2] receiveFrom rejects with EBADF at close and on a closed socket', async () => {
  const k = KcmSocket.create();
  const pending = k.receiveFrom();
  k.close();
  await rejects(pending, 'EBADF');
  await rejects(k.receiveFrom(), 'EBADF');
});
