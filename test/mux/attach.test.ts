import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { once } from 'node:events';
import { KcmSocket } from '../../src/index.js';
import { P4, FrameReader, closeAll, frame, payload, sleep, tcpPair, tcpPairs, track, waitFor } from '../helpers/loopback.js';
import { RawCollector, assertKcmError, closedPort, errorsOf, numberOf, numberedRun, psockError, receiveN, throwsKcm } from '../helpers/mux.js';

after(closeAll);

const EVENTS = ['data', 'readable', 'end', 'close', 'error', 'drain', 'connect'] as const;

/** Destroys the sockets, then closes the server (close waits for its connections). */
function closeServer(server: net.Server, sockets: net.Socket[]): Promise<void> {
  for (const s of sockets) s.destroy();
  return new Promise<void>((resolve) => server.close(() => resolve()));
}

function listenerSnapshot(s: net.Socket): Record<string, Function[]> {
  const out: Record<string, Function[]> = {};
  for (const e of EVENTS) out[e] = s.listeners(e);
  return out;
}

test('[A-5][X-5][B-3] a UNIX-domain stream is rejected with EOPNOTSUPP and left untouched', async (t) => {
  const file = path.join(os.tmpdir(), `kcm-attach-${process.pid}-${Date.now()}.sock`);
  const server = net.createServer();
  server.listen(file);
  await once(server, 'listening');
  const client = track(net.connect(file));
  const [peer] = (await once(server, 'connection')) as [net.Socket];
  t.after(() => closeServer(server, [client, peer]));
  if (client.connecting) await once(client, 'connect');
  const onData = (): void => {};
  client.on('data', onData);
  const before = listenerSnapshot(client);
  const k = KcmSocket.create();
  try {
    const err = throwsKcm(() => k.attach(client, { parser: P4 }), 'EOPNOTSUPP');
    assert.equal(err.errno, 95);
    assert.deepEqual(listenerSnapshot(client), before);
    assert.equal(k.mux.stats().psockAttach, 0);
    assert.equal(k.mux.psocks.length, 0);
    throwsKcm(() => k.unattach(client), 'ENOENT');
    // The application still reads its own socket.
    const got = new RawCollector(client);
    peer.write('still mine');
    await waitFor(() => got.bytes.toString() === 'still mine', 5000, 'the UNIX stream to keep working');
  } finally {
    k.close();
  }
});

test('[A-6][A-4][X-5] destroyed, ended and never-connected sockets are rejected with EOPNOTSUPP, nothing changed', async () => {
  const [a, b] = await tcpPairs(2);
  const k = KcmSocket.create();
  try {
    a!.local.on('error', () => {});
    a!.local.destroy();
    b!.local.end();
    // a socket with no protocol object (Linux: EINVAL) is, here, a net.Socket with no
    // handle: never connected, so EOPNOTSUPP as any unconnected transport.
    const fresh = new net.Socket();
    for (const s of [a!.local, b!.local, fresh]) {
      const before = listenerSnapshot(s);
      throwsKcm(() => k.attach(s, { parser: P4 }), 'EOPNOTSUPP');
      assert.deepEqual(listenerSnapshot(s), before);
    }
    const s = k.mux.stats();
    assert.equal(s.psockAttach, 0);
    assert.equal(s.psocks.length, 0);
    fresh.destroy();
  } finally {
    k.close();
  }
});

test('[A-2][X-5] a transport that is not a net.Socket is a TypeError ERR_INVALID_ARG_TYPE', async () => {
  const k = KcmSocket.create();
  const { local } = await tcpPair();
  try {
    for (const bad of [{}, null, undefined, 3, 'socket', { write() {} }]) {
      assert.throws(() => k.attach(bad as unknown as net.Socket, { parser: P4 }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
      assert.throws(() => k.unattach(bad as unknown as net.Socket), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    }
    assert.throws(() => k.attach(local, {} as never), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => k.attach(local, { parser: P4, maxMessageSize: 0 }), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => k.attach(local, { parser: P4, assemblyTimeout: -1 }), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    assert.equal(k.mux.stats().psockAttach, 0);
    // Still attachable after all those refusals.
    const p = k.attach(local, { parser: P4 });
    assert.equal(p.transport, local);
  } finally {
    k.close();
  }
});

test('[X-7][A-6] a socket still connecting is accepted, used once connected, and never gets an EPIPE', async (t) => {
  const server = net.createServer({ noDelay: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection');
  const { port } = server.address() as net.AddressInfo;
  const local = track(net.connect({ port, host: '127.0.0.1', noDelay: true }));
  const opened: net.Socket[] = [local];
  server.on('connection', (s: net.Socket) => opened.push(s));
  t.after(() => closeServer(server, opened));
  assert.equal(local.connecting, true);
  const k = KcmSocket.create();
  try {
    const psock = k.attach(local, { parser: P4 });
    const errors = errorsOf(psock);
    // Queued before the connection exists: it goes out once connected [T-18].
    await k.send(frame('early'));
    const [remote] = (await accepted) as [net.Socket];
    const reader = new FrameReader(remote);
    await waitFor(() => reader.frames.length === 1, 5000, 'the early frame');
    assert.deepEqual(reader.payloads(), ['early']);
    remote.write(Buffer.concat([frame('r1'), frame('r2')]));
    const got = await receiveN(k, 2);
    assert.deepEqual(got.map(payload), ['r1', 'r2']);
    await k.send(frame('late'));
    await waitFor(() => reader.frames.length === 2, 5000, 'the late frame');
    assert.deepEqual(reader.payloads(), ['early', 'late']);
    assert.equal(psock.error, undefined);
    assert.deepEqual(errors, []);
    assert.equal(psock.stats().txStopped, false);
  } finally {
    k.close();
  }
});

test('[X-7] a connect that fails is a psock error EPIPE with the connect error as cause', async () => {
  const port = await closedPort();
  const local = track(net.connect({ port, host: '127.0.0.1' }));
  const k = KcmSocket.create();
  try {
    const psock = k.attach(local, { parser: P4 });
    const muxErrors: unknown[][] = [];
    k.mux.on('psockerror', (...args: unknown[]) => muxErrors.push(args));
    const err = await psockError(psock);
    assertKcmError(err, 'EPIPE', 32);
    assert.ok(err.cause instanceof Error, 'the transport error is the cause');
    assert.equal((err.cause as NodeJS.ErrnoException).code, 'ECONNREFUSED');
    await waitFor(() => muxErrors.length === 1, 5000, 'psockerror');
    assert.equal(muxErrors[0]![0], err);
    assert.equal(muxErrors[0]![1], psock);
    // A message sent now waits for a working psock, none is lost on the failed one.
    await k.send(frame('x'));
    assert.equal(k.mux.stats().psocks[0]!.txMsgs, 0);
    assert.equal(psock.stats().txStopped, true);
  } finally {
    k.close();
  }
});

test('[A-8][B-4][B-18] a second attach through a clone or another multiplexor fails EALREADY; the first keeps working', async () => {
  const { local, remote } = await tcpPair();
  const k0 = KcmSocket.create();
  const k1 = k0.clone();
  const other = KcmSocket.create();
  try {
    const psock = k0.attach(local, { parser: P4 });
    const before = listenerSnapshot(local);
    const e1 = throwsKcm(() => k1.attach(local, { parser: P4 }), 'EALREADY');
    assert.equal(e1.errno, 114);
    throwsKcm(() => k0.attach(local, { parser: P4 }), 'EALREADY');
    throwsKcm(() => other.attach(local, { parser: P4 }), 'EALREADY');
    assert.deepEqual(listenerSnapshot(local), before);
    assert.equal(k0.mux.stats().psockAttach, 1);
    assert.deepEqual(k0.mux.psocks, [psock]);
    assert.equal(other.mux.stats().psockAttach, 0);
    throwsKcm(() => other.unattach(local), 'ENOENT');
    // The first attachment keeps working both ways.
    const reader = new FrameReader(remote);
    remote.write(numberedRun(0, 3));
    const got = [...(await receiveN(k0, 1)), ...(await receiveN(k0, 2))].map(numberOf);
    assert.deepEqual(got, [0, 1, 2]);
    await k1.send(frame('out'));
    await waitFor(() => reader.frames.length === 1, 5000, 'the sent frame');
    assert.deepEqual(reader.payloads(), ['out']);
    assert.equal(psock.error, undefined);
  } finally {
    other.close();
    k1.close();
    k0.close();
  }
});

test('[A-12] frames the peer sent before attach are all received, in order', async () => {
  const { local, remote } = await tcpPair();
  remote.write(numberedRun(0, 3, 20));
  // Let them reach the local end (the kernel queue or the stream's buffer).
  await sleep(50);
  const k = KcmSocket.create();
  try {
    k.attach(local, { parser: P4 });
    const got = await receiveN(k, 3);
    assert.deepEqual(got.map(numberOf), [0, 1, 2]);
    assert.equal(k.tryReceive(), undefined);
  } finally {
    k.close();
  }
});

test('[A-12][B-5] frames the application left unread in the stream buffer are parsed from the next unread byte', async () => {
  const { local, remote } = await tcpPair();
  local.pause();
  remote.write(Buffer.concat([frame('app-0'), numberedRun(1, 2)]));
  await waitFor(() => local.readableLength >= 9 + 24, 5000, 'the bytes to be buffered');
  // The application consumes the first frame itself, at a boundary.
  const first = local.read(9) as Buffer | null;
  assert.equal(first?.toString('latin1', 4), 'app-0');
  const k = KcmSocket.create();
  try {
    k.attach(local, { parser: P4 });
    const got = await receiveN(k, 2);
    assert.deepEqual(got.map(numberOf), [1, 2]);
  } finally {
    k.close();
  }
});

test('[A-13][U-2][U-5] unattach at a boundary, re-attach to another mux; app listeners work again after unattach', async () => {
  const { local, remote } = await tcpPair();
  const appData: Buffer[] = [];
  local.on('data', (c: Buffer) => appData.push(c));
  const a = KcmSocket.create();
  const b = KcmSocket.create();
  try {
    a.attach(local, { parser: P4 });
    remote.write(numberedRun(0, 2));
    assert.deepEqual((await receiveN(a, 2)).map(numberOf), [0, 1]);
    assert.equal(appData.length, 0, 'the application does not see bytes while attached');
    a.unattach(local);
    assert.equal(local.destroyed, false);
    assert.equal(local.isPaused(), true, 'the transport is left paused');
    assert.equal(a.mux.psocks.length, 0);
    throwsKcm(() => a.unattach(local), 'ENOENT');
    // Frames sent while detached wait in the transport.
    remote.write(numberedRun(2, 2));
    await sleep(30);
    const pb = b.attach(local, { parser: P4 });
    assert.equal(pb.index, 0);
    assert.deepEqual((await receiveN(b, 2)).map(numberOf), [2, 3]);
    assert.equal(a.tryReceive(), undefined);
    // And it transmits through its new mux.
    const reader = new FrameReader(remote);
    await b.send(frame('via-b'));
    await waitFor(() => reader.frames.length === 1, 5000, 'the frame via b');
    assert.deepEqual(reader.payloads(), ['via-b']);
    b.unattach(local);
    remote.write('plain bytes');
    await sleep(30);
    assert.equal(appData.length, 0, 'paused until the application resumes');
    local.resume();
    await waitFor(() => Buffer.concat(appData).toString() === 'plain bytes', 5000, 'the app listener');
    assert.equal(a.mux.stats().psockUnattach, 1);
    assert.equal(b.mux.stats().psockUnattach, 1);
    assert.equal(b.mux.stats().psockUnattachRsvd, 0);
  } finally {
    a.close();
    b.close();
  }
});

test('[U-2][§12-11] a partly received message is dropped at unattach; the transport holds none of its bytes', async () => {
  const { local, remote } = await tcpPair();
  const k = KcmSocket.create();
  try {
    const psock = k.attach(local, { parser: P4 });
    const whole = frame('abcdef'); // 10 bytes
    remote.write(whole.subarray(0, 6));
    await waitFor(() => psock.stats().rxPartialBytes === 6, 5000, 'the partial message');
    k.unattach(local);
    const raw = new RawCollector(local);
    local.resume();
    remote.write('XYZ');
    await waitFor(() => raw.bytes.length >= 3, 5000, 'bytes after unattach');
    await sleep(20);
    assert.equal(raw.bytes.toString(), 'XYZ');
    assert.equal(k.tryReceive(), undefined);
    assert.equal(k.mux.stats().rxReadyDrops, 0);
  } finally {
    k.close();
  }
});

test('[U-2][§12-12][S-4][U-5] a held message is dropped at unattach (rxReadyDrops 1); bytes behind it stay readable', async () => {
  const { local, remote } = await tcpPair();
  const k = KcmSocket.create();
  try {
    k.setRecvDisable(true);
    const psock = k.attach(local, { parser: P4 });
    const behind = numberedRun(1, 2);
    remote.write(Buffer.concat([frame('held'), behind]));
    await waitFor(() => psock.stats().rxPaused, 5000, 'the psock to hold a message');
    assert.equal(psock.stats().rxMsgs, 1);
    k.unattach(local);
    const s = k.mux.stats();
    assert.equal(s.rxReadyDrops, 1);
    assert.equal(s.psockUnattach, 1);
    k.setRecvDisable(false);
    await sleep(20);
    assert.equal(k.tryReceive(), undefined, 'the held message is never delivered');
    const raw = new RawCollector(local);
    local.resume();
    await waitFor(() => raw.bytes.length >= behind.length, 5000, 'the unread bytes');
    assert.deepEqual(raw.bytes, behind);
  } finally {
    k.close();
  }
});

test('[U-1] unattach of a transport not attached here throws ENOENT, also through another mux', async () => {
  const [t0, t1] = await tcpPairs(2);
  const a = KcmSocket.create();
  const a1 = a.clone();
  const b = KcmSocket.create();
  try {
    const e = throwsKcm(() => a.unattach(t0!.local), 'ENOENT');
    assert.equal(e.errno, 2);
    a.attach(t1!.local, { parser: P4 });
    throwsKcm(() => b.unattach(t1!.local), 'ENOENT');
    assert.equal(a.mux.psocks.length, 1, 'the failed unattach through b changed nothing');
    a1.unattach(t1!.local); // through any socket of the owning mux
    assert.equal(a.mux.psocks.length, 0);
    throwsKcm(() => a.unattach(t1!.local), 'ENOENT');
    assert.equal(a.mux.stats().psockUnattach, 1);
  } finally {
    b.close();
    a1.close();
    a.close();
  }
});
