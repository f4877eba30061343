/**
 * The public contract of the socket, multiplexor and psock, as the API reference states
 * it, exercised through the package's entry point over loopback TCP (and TLS).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import * as tls from 'node:tls';
import * as os from 'node:os';
import * as path from 'node:path';
import * as fs from 'node:fs';
import { once } from 'node:events';
import { Duplex } from 'node:stream';
import { KcmSocket, KcmError, Multiplexor, Psock, lengthField, loadBpf } from '../../src/index.js';
import { P4, closeAll, frame, payload, tcpPair, track, waitFor, FrameReader } from '../helpers/loopback.js';
import { assertKcmError, receiveN, throwsKcm } from '../helpers/mux.js';

after(closeAll);

const KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQglJ8R+bbXhddDt+pJ
A1H0WGXpdgMSLplXUCweepS1Eu+hRANCAASGxj6/o9KVYd2rihYJhGXWwN3XscCE
C6ettgO9il9zhhMbrd9a4LjIU5fOkwgeO3ojbVXpi4jzWR+GZQ3C4OW3
-----END PRIVATE KEY-----
`;
const CERT = `-----BEGIN CERTIFICATE-----
MIIBmzCCAUGgAwIBAgIUIMdXZbfODKORINKUbglm8HH1OVEwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTEyNDE2MDYxNFoYDzIxMjYxMDMx
MTYwNjE0WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAASGxj6/o9KVYd2rihYJhGXWwN3XscCEC6ettgO9il9zhhMbrd9a4LjI
U5fOkwgeO3ojbVXpi4jzWR+GZQ3C4OW3o28wbTAdBgNVHQ4EFgQUcoVZso0KhdPK
0rzRLCUd7arwbqEwHwYDVR0jBBgwFoAUcoVZso0KhdPK0rzRLCUd7arwbqEwDwYD
VR0TAQH/BAUwAwEB/zAaBgNVHREEEzARhwR/AAABgglsb2NhbGhvc3QwCgYIKoZI
zj0EAwIDSAAwRQIgEk9WezDCiV5a6vMude51bwebVnLhJ/Y3HzGdP3hv1q8CIQDU
j9Cj2Ftduq+2ANhlvDtT5S1gww3YOxDvCuGnqIG92g==
-----END CERTIFICATE-----
`;

const tlsServers = new Set<net.Server>();
after(async () => {
  await Promise.all([...tlsServers].map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
});

/** A TLS server on 127.0.0.1 or a UNIX path; its secure connections are tracked for closeAll. */
async function tlsServer(where: { path?: string } = {}): Promise<{ server: tls.Server; connect: () => tls.TLSSocket }> {
  const server = tls.createServer({ key: KEY, cert: CERT });
  tlsServers.add(server);
  server.on('secureConnection', (s) => track(s));
  if (where.path !== undefined) server.listen(where.path);
  else server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const connect = (): tls.TLSSocket => {
    const opts = where.path !== undefined
      ? { path: where.path, ca: CERT, servername: 'localhost' }
      : { port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', ca: CERT };
    return track(tls.connect(opts));
  };
  return { server, connect };
}

test('the entry point exports the classes, parsers and error of the contract', () => {
  assert.equal(typeof KcmSocket.create, 'function');
  assert.equal(typeof Multiplexor, 'function');
  assert.equal(typeof Psock, 'function');
  assert.equal(typeof lengthField, 'function');
  assert.equal(typeof loadBpf, 'function');
  const err = new KcmError('EMSGSIZE');
  assert.ok(err instanceof Error);
  assert.equal(err.code, 'EMSGSIZE');
  assert.equal(err.errno, 90);
  const sock = KcmSocket.create();
  try {
    assert.ok(sock.mux instanceof Multiplexor);
  } finally {
    sock.close();
  }
});

test('a TLS transport, attached while its handshake is still running, carries messages both ways', async () => {
  const { server, connect } = await tlsServer();
  const client = connect();
  const serverSide = once(server, 'secureConnection');
  const a = KcmSocket.create();
  const b = KcmSocket.create();
  try {
    const pa = a.attach(client, { parser: P4 });
    assert.ok(pa instanceof Psock);
    assert.equal(pa.transport, client);
    await a.send(frame('hello'));
    const [remote] = (await serverSide) as [tls.TLSSocket];
    b.attach(remote, { parser: P4 });
    const [m] = await receiveN(b, 1);
    assert.equal(payload(m!), 'hello');
    await b.send(frame('back'));
    const [r] = await receiveN(a, 1);
    assert.equal(payload(r!), 'back');
  } finally {
    a.close();
    b.close();
  }
});

test('zero-length sends and an empty sendMany resolve and put nothing on the wire', async () => {
  const { local, remote } = await tcpPair();
  const reader = new FrameReader(remote);
  const sock = KcmSocket.create();
  try {
    sock.attach(local, { parser: P4 });
    await sock.send(Buffer.alloc(0));
    await sock.send([]);
    await sock.send([Buffer.alloc(0), new Uint8Array(0)]);
    await sock.sendMany([]);
    await sock.sendMany([Buffer.alloc(0), []]);
    assert.equal(sock.trySend(Buffer.alloc(0)), true);
    await sock.send(frame('end'));
    await waitFor(() => reader.frames.length === 1, 5000, 'the frame');
    assert.equal(reader.bytes, frame('end').length);
    assert.deepEqual(sock.stats(), { rxMsgs: 0, rxBytes: 0, txMsgs: 1, txBytes: frame('end').length });
  } finally {
    sock.close();
  }
});

test('calls on a closed socket: receives reject EBADF, tryReceive throws EBADF, iteration ends at once', async () => {
  const sock = KcmSocket.create();
  sock.close();
  await assert.rejects(sock.receive(), (e) => (assertKcmError(e, 'EBADF', 9), true));
  await assert.rejects(sock.receiveMany(), (e) => (assertKcmError(e, 'EBADF', 9), true));
  await assert.rejects(sock.receiveMany(2), (e) => (assertKcmError(e, 'EBADF', 9), true));
  await assert.rejects(sock.receiveInto(Buffer.alloc(4)), (e) => (assertKcmError(e, 'EBADF', 9), true));
  throwsKcm(() => sock.tryReceive(), 'EBADF');
  throwsKcm(() => sock.setRecvDisable(true), 'EBADF');
  throwsKcm(() => sock.clone(), 'EBADF');
  const { local } = await tcpPair();
  throwsKcm(() => sock.attach(local, { parser: P4 }), 'EBADF');
  throwsKcm(() => sock.unattach(local), 'EBADF');
  const it = sock[Symbol.asyncIterator]();
  assert.deepEqual(await it.next(), { value: undefined, done: true });
  let n = 0;
  for await (const _ of sock) n++;
  assert.equal(n, 0);
  sock.close(); // a second close is harmless
});

test('receiveMany(max) bounds: max below 1 or not an integer is a RangeError, not a number a TypeError', async () => {
  const sock = KcmSocket.create();
  try {
    for (const bad of [0, -1, 1.5, Number.NaN, -Infinity]) {
      assert.throws(() => sock.receiveMany(bad), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }, String(bad));
    }
    assert.throws(() => sock.receiveMany('2' as unknown as number), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
  } finally {
    sock.close();
  }
});

test('seqpacket receiveInto with a zero-length target copies nothing and keeps the message', async () => {
  const { local, remote } = await tcpPair();
  const sock = KcmSocket.create({ type: 'seqpacket' });
  try {
    sock.attach(local, { parser: P4 });
    remote.write(frame('keep'));
    const r = await sock.receiveInto(new Uint8Array(0), { signal: AbortSignal.timeout(5000) });
    assert.deepEqual(r, { bytes: 0, eor: false, truncated: false });
    const m = await sock.receive({ signal: AbortSignal.timeout(5000) });
    assert.equal(payload(m), 'keep');
    assert.deepEqual(sock.stats(), { rxMsgs: 1, rxBytes: frame('keep').length, txMsgs: 0, txBytes: 0 });
  } finally {
    sock.close();
  }
});

test('[ST-8][ST-2] stats shapes: sock.stats(), mux.stats() with sockets and psocks arrays, psock.stats() fields', async () => {
  const { local, remote } = await tcpPair();
  const sock = KcmSocket.create();
  const clone = sock.clone();
  try {
    const psock = sock.attach(local, { parser: P4 });
    clone.setRecvDisable(true);
    remote.write(frame('in'));
    await receiveN(sock, 1);
    assert.deepEqual(Object.keys(sock.stats()).sort(), ['rxBytes', 'rxMsgs', 'txBytes', 'txMsgs']);
    const m = sock.mux.stats();
    for (const k of ['rxMsgs', 'rxBytes', 'txMsgs', 'txBytes', 'txRetries', 'rxReadyDrops', 'psockAttach', 'psockUnattach', 'psockUnattachRsvd'] as const) {
      assert.equal(typeof m[k], 'number', k);
    }
    assert.ok(Array.isArray(m.sockets));
    assert.ok(Array.isArray(m.psocks));
    assert.equal(m.sockets.length, 2);
    assert.equal(m.psocks.length, 1);
    assert.equal(m.psockAttach, 1);
    assert.equal(m.rxMsgs, 1);
    const ps = psock.stats();
    for (const k of ['rxMsgs', 'rxBytes', 'txMsgs', 'txBytes', 'reserved', 'unreserved', 'txAborts', 'rxMemFail', 'rxNeedMoreHdr',
      'rxMsgTooBig', 'rxMsgTimeouts', 'rxBadHdrLen', 'rxInterrupted'] as const) {
      assert.equal(typeof ps[k], 'number', k);
    }
    assert.equal(ps.rxMsgs, 1);
    assert.equal(ps.rxBytes, frame('in').length);
    assert.deepEqual(m.psocks[0], ps);
    sock.unattach(local);
    assert.equal(psock.stats().rxMsgs, 1, 'an unattached psock still reports its counters');
    const after = sock.mux.stats();
    assert.equal(after.psocks.length, 0);
    assert.equal(after.psockUnattach, 1);
    assert.equal(after.rxMsgs, 1);
  } finally {
    sock.close();
    clone.close();
  }
});

test('[A-5][X-5] TLS over a UNIX-domain stream or over a JS stream is not TCP: EOPNOTSUPP, nothing changed', async () => {
  const p = path.join(os.tmpdir(), `kcm-contract-${process.pid}.sock`);
  fs.rmSync(p, { force: true });
  const { connect } = await tlsServer({ path: p });
  const overPipe = connect();
  await once(overPipe, 'secureConnect');
  const overStream = track(new tls.TLSSocket(new Duplex({ read() {}, write(_c, _e, cb) { cb(); } })));
  overStream.on('error', () => {});
  const sock = KcmSocket.create();
  try {
    for (const t of [overPipe, overStream]) {
      const listeners = t.listenerCount('data');
      throwsKcm(() => sock.attach(t, { parser: P4 }), 'EOPNOTSUPP');
      assert.equal(t.listenerCount('data'), listeners);
    }
    assert.equal(sock.mux.stats().psockAttach, 0);
    assert.equal(sock.mux.stats().psocks.length, 0);
  } finally {
    sock.close();
    fs.rmSync(p, { force: true });
  }
});

test('[O-6][X-13] calls pending at close() reject with EBADF even when a psockerror listener of the close throws', async () => {
  const { local, remote } = await tcpPair();
  remote.pause();
  const sock = KcmSocket.create();
  const psock = sock.attach(local, { parser: P4 });
  const big = Buffer.alloc(8 * 1024 * 1024);
  big.writeUInt32BE(big.length - 4, 0);
  await sock.send(big);
  await waitFor(() => psock.stats().txStalled, 5000, 'a stall');
  // Closing the socket that holds the psock aborts it (EPIPE); the listener does what the
  // contract tells an application to do with a failed psock, on a socket now closed.
  const seen: string[] = [];
  sock.mux.on('psockerror', (err: KcmError, p: Psock) => {
    seen.push(err.code);
    sock.unattach(p.transport);
  });
  const signal = AbortSignal.timeout(5000);
  const receiving = sock.receive({ signal });
  const sending = sock.send(frame('waits'), { signal });
  let thrown: unknown;
  try {
    sock.close();
  } catch (err) {
    thrown = err;
  }
  assertKcmError(thrown, 'EBADF'); // the listener's unattach on the closed socket
  assert.deepEqual(seen, ['EPIPE']);
  await assert.rejects(receiving, (e) => (assertKcmError(e, 'EBADF', 9), true));
  await assert.rejects(sending, (e) => (assertKcmError(e, 'EBADF', 9), true));
  assert.equal(sock.mux.stats().psocks.length, 0, 'the last close unattached the psock');
});

test('[R-6][X-2] seqpacket: after a partial receiveInto, receive() returns the rest of that message, then the next one', async () => {
  const { local, remote } = await tcpPair();
  const sock = KcmSocket.create({ type: 'seqpacket' });
  try {
    sock.attach(local, { parser: P4 });
    remote.write(Buffer.concat([frame('abcdef'), frame('next')]));
    const head = Buffer.alloc(6);
    const signal = AbortSignal.timeout(5000);
    assert.deepEqual(await sock.receiveInto(head, { signal }), { bytes: 6, eor: false, truncated: false });
    assert.equal(head.subarray(4).toString(), 'ab');
    assert.equal((await sock.receive({ signal })).toString(), 'cdef');
    const rest = await sock.receiveMany(undefined, { signal });
    assert.deepEqual(rest.map(payload), ['next']);
    assert.deepEqual(sock.stats(), { rxMsgs: 2, rxBytes: frame('abcdef').length + frame('next').length, txMsgs: 0, txBytes: 0 });
  } finally {
    sock.close();
  }
});

test('receive calls with an already aborted signal reject with AbortError even when a message waits', async () => {
  const { local, remote } = await tcpPair();
  const k = KcmSocket.create();
  try {
    k.attach(local, { parser: P4 });
    remote.write(frame('waiting'));
    await waitFor(() => k.mux.stats().sockets[0]!.rxQueued === 1, 5000, 'the message');
    const signal = AbortSignal.abort();
    for (const call of [() => k.receive({ signal }), () => k.receiveMany(1, { signal }), () => k.receiveInto(Buffer.alloc(16), { signal })]) {
      await assert.rejects(call(), (e: unknown) => (e as Error).name === 'AbortError' && (e as { code?: string }).code === 'ABORT_ERR');
    }
    assert.equal(payload(await k.receive()), 'waiting', 'the message is still there');
  } finally {
    k.close();
  }
});

test('receiveMany(Infinity) takes every queued message, as the default does', async () => {
  const { local, remote } = await tcpPair();
  const k = KcmSocket.create();
  try {
    k.attach(local, { parser: P4 });
    remote.write(Buffer.concat([frame('a'), frame('b'), frame('c')]));
    await waitFor(() => k.mux.stats().sockets[0]!.rxQueued === 3, 5000, 'three messages');
    assert.deepEqual((await k.receiveMany(Infinity)).map(payload), ['a', 'b', 'c']);
  } finally {
    k.close();
  }
});

test('[A-5] a transport that decodes its data as strings (setEncoding) cannot be attached: EOPNOTSUPP', async () => {
  const { local, remote } = await tcpPair();
  const k = KcmSocket.create();
  try {
    local.setEncoding('utf8');
    throwsKcm(() => k.attach(local, { parser: P4 }), 'EOPNOTSUPP');
    assert.deepEqual(k.mux.psocks, []);
    const got: string[] = [];
    local.on('data', (d: string) => got.push(d));
    remote.write('still a plain socket');
    await waitFor(() => got.join('') === 'still a plain socket', 5000, 'the plain read');
  } finally {
    k.close();
  }
});
