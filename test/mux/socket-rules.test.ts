/**
 * Rules about the KCM socket as a whole, and the userspace decisions that replace the
 * kernel-only ones: sockets of a mux are interchangeable [O-4], the socket operations
 * KCM does not support [O-5], readiness as exposed instead of poll [O-9, X-6], no error
 * ever reaches a KCM socket from a transport [E-6], no peek, no zero-length
 * message, no size limit on send [T-6]. Public API only.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { KcmSocket, type Psock } from '../../src/index.js';
import { P4, FrameReader, closeAll, frame, sleep, tcpPair, tcpPairs, waitFor } from '../helpers/loopback.js';
import { closeMux, numberedRun, numberOf, psockError, queued, receiveN } from '../helpers/mux.js';
import { RawCollector, errorsOf, settles } from '../helpers/traffic.js';

after(closeAll);

test('[O-4] the sockets of a mux are peers: each sends on any psock and receives from any', async (t) => {
  const k0 = KcmSocket.create();
  const k1 = k0.clone();
  t.after(() => closeMux(k0));
  const pairs = await tcpPairs(2);
  const readers = pairs.map((p) => new FrameReader(p.remote));
  k0.attach(pairs[0]!.local, { parser: P4 });
  k1.attach(pairs[1]!.local, { parser: P4 });
  // Two sequential sends per socket over two idle psocks: each socket uses both.
  const sent = [frame('k0 a'), frame('k0 b'), frame('k1 a'), frame('k1 b')];
  await k0.send(sent[0]!);
  await k0.send(sent[1]!);
  await k1.send(sent[2]!);
  await k1.send(sent[3]!);
  await waitFor(() => readers[0]!.frames.length + readers[1]!.frames.length === 4, 5000, 'the 4 messages');
  const on = (m: Buffer): number => readers.findIndex((r) => r.frames.some((f) => f.equals(m)));
  assert.deepEqual(new Set([on(sent[0]!), on(sent[1]!)]), new Set([0, 1]), 'k0 sent on both transports');
  assert.deepEqual(new Set([on(sent[2]!), on(sent[3]!)]), new Set([0, 1]), 'k1 sent on both transports');
  // Single-frame bursts from either transport reach either socket.
  const from: [number, number][] = [];
  for (let i = 0; i < 4; i++) {
    pairs[i % 2]!.remote.write(numberedRun(i, 1));
    await waitFor(() => queued(k0) + queued(k1) === 1, 5000, `message ${i}`);
    const [k, m] = queued(k0) === 1 ? [0, k0.tryReceive()!] : [1, k1.tryReceive()!];
    from.push([numberOf(m), k]);
  }
  assert.deepEqual(from, [[0, 0], [1, 1], [2, 0], [3, 1]], 'the transport attached through k1 delivers to k0 too, and back');
});

test('[O-5] bind, listen, accept, shutdown and the like do not exist on a KCM socket', () => {
  const k = KcmSocket.create();
  try {
    for (const name of ['bind', 'listen', 'accept', 'shutdown', 'getsockname', 'getpeername', 'socketpair', 'mmap', 'address', 'remoteAddress', 'end', 'write']) {
      assert.equal((k as unknown as Record<string, unknown>)[name], undefined, `KcmSocket#${name}`);
    }
    // What does exist is the KCM set.
    for (const name of ['attach', 'unattach', 'clone', 'send', 'trySend', 'sendMany', 'receive', 'tryReceive', 'receiveInto', 'receiveMany', 'setRecvDisable', 'getRecvDisable', 'close', 'stats']) {
      assert.equal(typeof (k as unknown as Record<string, unknown>)[name], 'function', `KcmSocket#${name}`);
    }
  } finally {
    k.close();
  }
});

test('[O-9][X-6] readiness as exposed: readable when a message is queued, writable only below sendBufferSize, never hung up', async (t) => {
  const k = KcmSocket.create({ sendBufferSize: 100 });
  t.after(() => closeMux(k));
  // [O-9c, X-6] real writability: trySend is false once the queue holds sendBufferSize bytes.
  assert.equal(k.trySend(frame(Buffer.alloc(200))), true);
  assert.equal(k.trySend(frame('x')), false, 'not writable at sendBufferSize, unlike POLLOUT');
  // [O-9a] readable iff the receive queue is not empty.
  assert.equal(k.tryReceive(), undefined);
  assert.equal(queued(k), 0);
  const { local, remote } = await tcpPair();
  const reader = new FrameReader(remote);
  const psock = k.attach(local, { parser: P4 });
  await waitFor(() => reader.frames.length === 1, 5000, 'the queued message to go out');
  await waitFor(() => k.trySend(frame('writable again')), 5000, 'writable once the queue drained');
  remote.write(numberedRun(0, 1));
  await waitFor(() => queued(k) === 1, 5000, 'the message');
  assert.equal(numberOf(k.tryReceive()!), 0);
  assert.equal(k.tryReceive(), undefined);
  // [O-9d] no hang-up: the peer's FIN errors the psock, not the KCM socket.
  const pending = k.receive();
  remote.end();
  assert.equal((await psockError(psock)).code, 'EPIPE');
  assert.equal(await settles(pending, 50), false, 'a receive stays pending: no end-of-file on a KCM socket');
  k.close();
  await assert.rejects(pending, { code: 'EBADF' });
});

test('[E-6][T-16] a failing transport never reaches the KCM socket: no error event, sends resolve, receives wait', async (t) => {
  const k = KcmSocket.create();
  t.after(() => closeMux(k));
  const socketErrors: unknown[] = [];
  k.on('error', (err: unknown) => socketErrors.push(err));
  const pairs = await tcpPairs(2);
  const r1 = new FrameReader(pairs[1]!.remote);
  const p0 = k.attach(pairs[0]!.local, { parser: P4 });
  k.attach(pairs[1]!.local, { parser: P4 });
  const psockErrors: [Error, Psock][] = [];
  k.mux.on('psockerror', (err: Error, p: Psock) => psockErrors.push([err, p]));
  const pending = k.receive({ signal: AbortSignal.timeout(10000) });
  pairs[0]!.remote.resetAndDestroy();
  const m = frame(randomBytes(1000));
  await k.send(m); // picks the reset T0 first: restarted on T1, unseen by the sender
  await waitFor(() => psockErrors.length === 1 && r1.frames.length === 1, 5000, 'the psock error and the retried message');
  assert.equal(psockErrors[0]![1], p0);
  assert.deepEqual(r1.frames, [m]);
  assert.equal(await settles(pending, 30), false, 'the pending receive is not failed by the transport');
  pairs[1]!.remote.write(numberedRun(5, 1));
  assert.equal(numberOf(await pending), 5);
  await k.send(frame('and again'));
  assert.deepEqual(socketErrors, [], 'no error on the KCM socket itself');
  assert.equal(k.closed, false);
});

test('[R-7][ST-1] there is no peek; the queue is seen through mux stats without consuming or counting', async (t) => {
  const k = KcmSocket.create();
  t.after(() => closeMux(k));
  const { local, remote } = await tcpPair();
  k.attach(local, { parser: P4 });
  assert.equal((k as unknown as Record<string, unknown>)['peek'], undefined);
  const first = numberedRun(0, 1);
  remote.write(Buffer.concat([first, numberedRun(1, 1)]));
  await waitFor(() => queued(k) === 2, 5000, 'two queued messages');
  for (let i = 0; i < 3; i++) {
    const s = k.mux.stats().sockets[0]!;
    assert.equal(s.rxQueued, 2);
    assert.equal(s.rxQueuedBytes, 2 * first.length);
    assert.match(k.mux.toString(), new RegExp(`kcm-0\\s+0\\s+0\\s+0\\s+0\\s+2\\s+${2 * first.length}`));
  }
  assert.deepEqual(k.stats(), { rxMsgs: 0, rxBytes: 0, txMsgs: 0, txBytes: 0 }, 'looking counts nothing');
  assert.deepEqual((await receiveN(k, 2)).map(numberOf), [0, 1], 'the head message is still the first');
});

test('[R-10][P-3] no zero-length message: 0 from the parser means need more, never an empty message', async (t) => {
  const k = KcmSocket.create();
  t.after(() => closeMux(k));
  const { local, remote } = await tcpPair();
  const calls: number[] = [];
  // A parser for 3-byte records that wants all three bytes before it answers.
  const psock = k.attach(local, { parser: (d: Buffer) => (calls.push(d.length), d.length < 3 ? 0 : 3) });
  const got: Buffer[] = [];
  k.on('message', (m: Buffer) => got.push(m));
  for (const b of ['a', 'b', 'c']) {
    remote.write(b);
    await sleep(20);
  }
  await waitFor(() => got.length === 1, 5000, 'the record');
  assert.deepEqual(got.map((m) => m.toString()), ['abc']);
  assert.equal(psock.stats().rxNeedMoreHdr, calls.filter((n) => n < 3).length);
  assert.ok(psock.stats().rxNeedMoreHdr >= 1);
  // And a zero-length send is no message either: nothing reaches the peer [T-5].
  const raw = new RawCollector(remote);
  await k.send(Buffer.alloc(0));
  await k.sendMany([Buffer.alloc(0), []]);
  await sleep(20);
  assert.equal(raw.bytes, 0);
  for (const m of got) assert.ok(m.length > 0);
});

test('[T-6][P-6] send has no size limit: 9 MiB goes out whole; only the receiver\'s maxMessageSize refuses it', async (t) => {
  const a = KcmSocket.create({ sendBufferSize: 1024 });
  t.after(() => closeMux(a));
  const pairs = await tcpPairs(2);
  const raw = new RawCollector(pairs[0]!.remote);
  a.attach(pairs[0]!.local, { parser: P4 });
  const huge = frame(randomBytes(9 * 1024 * 1024)); // above the 8 MiB default receive limit
  await a.send(huge);
  await waitFor(() => raw.bytes >= huge.length, 60000, 'the 9 MiB message');
  const got = raw.frames();
  assert.equal(got.partial, 0);
  assert.ok(got.frames[0]!.equals(huge));
  // A receiving multiplexor with a smaller limit refuses the stream, not the sender.
  const b = KcmSocket.create();
  t.after(() => closeMux(b));
  const sender = KcmSocket.create();
  t.after(() => closeMux(sender));
  sender.attach(pairs[1]!.local, { parser: P4 });
  const bp = b.attach(pairs[1]!.remote, { parser: P4, maxMessageSize: 1024 });
  const errs = errorsOf(bp);
  const ok = frame(Buffer.alloc(1020));
  await sender.send(ok);
  await sender.send(frame(Buffer.alloc(4096)));
  assert.deepEqual(await receiveN(b, 1), [ok]);
  await waitFor(() => errs.length === 1, 5000, 'EMSGSIZE on the receiving psock');
  assert.equal((errs[0] as { code?: string }).code, 'EMSGSIZE');
  assert.deepEqual(sender.mux.stats().psocks.map((p) => p.txMsgs), [2]);
});
