import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import { once } from 'node:events';
import { KcmSocket } from '../../src/index.js';
import { KcmError } from '../../src/errors.js';
import { listen } from '../../src/helpers/kcm-server.js';
import { Requester } from '../../src/helpers/requester.js';
import { P4, frame, payload, waitFor, sleep } from '../helpers/loopback.js';

const HOST = '127.0.0.1';

/** A port nobody listens on (just released). */
async function deadPort(): Promise<number> {
  const s = net.createServer().listen(0, HOST);
  await once(s, 'listening');
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

const isCode = (code: string) => (err: unknown) => err instanceof KcmError && err.code === code;

test('[T-18] failAfter: a client with no server rejects its sends ECONNREFUSED within the bound, with no listener', async () => {
  const port = await deadPort();
  const sock = KcmSocket.create();
  const t0 = performance.now();
  const connector = sock.connect({ host: HOST, port, parser: P4, failAfter: 300, backoff: { initial: 20, max: 50 } });
  try {
    const first = sock.send(frame('one'));
    const settled = await first.then(
      () => 'resolved',
      (err: unknown) => err,
    );
    const waited = performance.now() - t0;
    assert.ok(isCode('ECONNREFUSED')(settled), String(settled));
    assert.equal((settled as KcmError).errno, 111);
    assert.ok(waited >= 300 && waited < 300 + 1000, `rejected after ${waited.toFixed(0)} ms`);
    assert.match((settled as Error).message, /no connection for 300 ms/);
    // Later sends fail at once, all of them, on every socket of the multiplexor.
    await assert.rejects(sock.send(frame('two')), isCode('ECONNREFUSED'));
    await assert.rejects(sock.clone().send(frame('three')), isCode('ECONNREFUSED'));
    await assert.rejects(sock.sendMany([frame('four')]), isCode('ECONNREFUSED'));
    assert.throws(() => sock.trySend(frame('five')), isCode('ECONNREFUSED'));
    assert.equal(connector.stats().failing, true);
    assert.equal(connector.stats().failures, 1);
  } finally {
    await connector.close();
    sock.close();
  }
});

test("failAfter: 'error' is emitted once, when listened to; a Requester's requests reject with it", async () => {
  const port = await deadPort();
  const sock = KcmSocket.create();
  const connector = sock.connect({ host: HOST, port, parser: P4, failAfter: 200, backoff: { initial: 20, max: 50 } });
  const requester = new Requester(sock, { id: (m) => m.readUInt32BE(4) });
  const failures: KcmError[] = [];
  connector.on('error', (err: KcmError, slot: number) => {
    if (slot === -1) failures.push(err);
  });
  try {
    const head = Buffer.alloc(4);
    await assert.rejects(requester.request(P4.frame([head]), 0), isCode('ECONNREFUSED'));
    assert.equal(failures.length, 1);
    assert.ok(isCode('ECONNREFUSED')(failures[0]));
    assert.ok(failures[0]!.cause instanceof KcmError, 'the last connection failure is the cause');
    await sleep(100);
    assert.equal(failures.length, 1, 'emitted once per outage');
  } finally {
    requester.close();
    await connector.close();
    sock.close();
  }
});

test('failAfter: recovers when the server comes up; held sends go out when a connection is up in time', async () => {
  const port = await deadPort();
  const sock = KcmSocket.create();
  const connector = sock.connect({ host: HOST, port, parser: P4, failAfter: 250, backoff: { initial: 20, max: 40, jitter: false } });
  let server: Awaited<ReturnType<typeof listen>> | undefined;
  try {
    await assert.rejects(sock.send(frame('lost')), isCode('ECONNREFUSED'));
    server = await listen({ port, host: HOST, parser: P4, closeTimeout: 200 });
    const got: string[] = [];
    server.socket.on('message', (m: Buffer) => got.push(payload(m)));
    await waitFor(() => connector.connected === 1, 5000, 'the reconnection');
    assert.equal(connector.stats().failing, false);
    await sock.send(frame('back'));
    await waitFor(() => got.length === 1, 5000, 'the message');
    assert.deepEqual(got, ['back']);

    // An outage shorter than failAfter: a send waits, then goes out on the new connection.
    for (const t of server.transports) t.destroy();
    await waitFor(() => connector.connected === 0, 5000, 'the outage');
    const held = sock.send(frame('held'));
    let state = 'pending';
    held.then(() => (state = 'resolved'), () => (state = 'rejected'));
    await waitFor(() => connector.connected === 1, 5000, 'the reconnection');
    await held;
    assert.equal(state, 'resolved');
    await waitFor(() => got.length === 2, 5000, 'the held message');
    assert.deepEqual(got, ['back', 'held']);
  } finally {
    await connector.close();
    sock.close();
    if (server !== undefined) await new Promise((r) => server!.close(r));
  }
});

test('without failAfter sends queue as before [T-18]; closing the connector lifts the gate', async () => {
  const port = await deadPort();
  const sock = KcmSocket.create();
  const plain = sock.connect({ host: HOST, port, parser: P4, backoff: { initial: 20, max: 50 } });
  await sock.send(frame('queued')); // resolves at once
  await plain.close();
  const gated = sock.connect({ host: HOST, port, parser: P4, failAfter: 100000 });
  assert.equal(sock.trySend(frame('held')), false, 'held while no connection is up');
  await gated.close();
  assert.equal(sock.trySend(frame('queued again')), true);
  sock.close();
  assert.throws(() => sock.connect({ host: HOST, port, parser: P4, failAfter: 0 }), (err: unknown) => (err as { code?: string }).code === 'ERR_OUT_OF_RANGE' || (err as { code?: string }).code === 'EBADF');
  const other = KcmSocket.create();
  assert.throws(() => other.connect({ host: HOST, port, parser: P4, failAfter: -5 }), (err: unknown) => (err as { code?: string }).code === 'ERR_OUT_OF_RANGE');
  other.close();
});
