import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import { once } from 'node:events';
import { KcmSocket } from '../../src/index.js';
import { KcmError } from '../../src/errors.js';
import { listen, type KcmServer } from '../../src/helpers/kcm-server.js';
import type { KcmConnector, ReconnectingEvent } from '../../src/helpers/kcm-connector.js';
import { P4, waitFor, sleep } from '../helpers/loopback.js';

const HOST = '127.0.0.1';

/** A request or response: 4-byte length, 4-byte id, body. */
function rpcFrame(id: number, body = ''): Buffer {
  const b = Buffer.from(body);
  const out = Buffer.alloc(8 + b.length);
  out.writeUInt32BE(4 + b.length, 0);
  out.writeUInt32BE(id, 4);
  b.copy(out, 8);
  return out;
}

/** An echo RPC server over `sockets` KCM sockets, counting the requests it got per id. */
async function echoServer(sockets = 2): Promise<{ server: KcmServer; requests: Map<number, number> }> {
  const server = await listen({ port: 0, host: HOST, parser: P4, sockets, closeTimeout: 500 });
  const requests = new Map<number, number>();
  for (const k of server.sockets) {
    k.on('message', (m: Buffer) => {
      const id = m.readUInt32BE(4);
      requests.set(id, (requests.get(id) ?? 0) + 1);
      void k.send(m).catch(() => {});
    });
  }
  return { server, requests };
}

function portOf(server: net.Server): number {
  return (server.address() as net.AddressInfo).port;
}

async function closeServer(server: net.Server): Promise<void> {
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  s.listen(0, HOST);
  await once(s, 'listening');
  const port = portOf(s);
  await closeServer(s);
  return port;
}

test('connect opens M connections, attaches them and messages flow both ways', async () => {
  const { server, requests } = await echoServer(2);
  const client = KcmSocket.create();
  const conn = client.connect({ host: HOST, port: portOf(server), connections: 3, parser: P4 });
  const connects: number[] = [];
  conn.on('connect', (e) => connects.push(e.slot));
  try {
    await waitFor(() => conn.connected === 3 && server.stats().connections === 3, 10000, '3 connections');
    assert.deepEqual(connects.sort(), [0, 1, 2]);
    assert.equal(client.mux.psocks.length, 3);
    for (const t of conn.transports) assert.equal(t.remoteAddress, HOST);
    const got = new Map<number, number>();
    client.on('message', (m: Buffer) => got.set(m.readUInt32BE(4), (got.get(m.readUInt32BE(4)) ?? 0) + 1));
    for (let id = 0; id < 60; id++) await client.send(rpcFrame(id, 'x'.repeat(id)));
    await waitFor(() => got.size === 60, 10000, '60 replies');
    for (let id = 0; id < 60; id++) {
      assert.equal(requests.get(id), 1);
      assert.equal(got.get(id), 1);
    }
    const { endpoints, ...totals } = conn.stats();
    assert.deepEqual(totals, { connections: 3, connected: 3, connects: 3, disconnects: 0, connectFailures: 0, reconnects: 0, failures: 0, failing: false, resolutions: 0, resolveFailures: 0, drained: 0, replaced: 0 });
    assert.equal(endpoints.length, 1);
    assert.equal(endpoints[0]!.endpoint, `${HOST}:${portOf(server)}`);
    assert.equal(endpoints[0]!.connected, 3);
  } finally {
    await conn.close();
    client.close();
    await closeServer(server);
  }
  assert.equal(conn.connected, 0);
  assert.equal(client.mux.psocks.length, 0);
});

/**
 * A request/response client that resends unanswered requests after a reconnect and
 * hands each response to the application once (deduplicated by id).
 */
class RpcClient {
  readonly pending = new Map<number, Buffer>();
  readonly delivered = new Map<number, number>();
  readonly raw = new Map<number, number>();

  constructor(readonly sock: KcmSocket, conn: KcmConnector) {
    sock.on('message', (m: Buffer) => {
      const id = m.readUInt32BE(4);
      this.raw.set(id, (this.raw.get(id) ?? 0) + 1);
      if (!this.pending.delete(id)) return; // a late duplicate: already answered
      this.delivered.set(id, (this.delivered.get(id) ?? 0) + 1);
    });
    conn.on('connect', () => {
      for (const req of this.pending.values()) void sock.send(req).catch(() => {});
    });
  }

  call(id: number): void {
    const req = rpcFrame(id, `request ${id}`);
    this.pending.set(id, req);
    void this.sock.send(req).catch(() => {});
  }
}

test('reconnect after the server drops a connection: no request lost or answered twice', async () => {
  const { server, requests } = await echoServer(2);
  const client = KcmSocket.create();
  const conn = client.connect({ host: HOST, port: portOf(server), connections: 2, parser: P4, backoff: { initial: 20, max: 200 } });
  const events: string[] = [];
  conn.on('disconnect', (e) => {
    assert.ok(e.error instanceof KcmError);
    assert.equal(e.error.code, 'EPIPE');
    events.push(`disconnect ${e.slot}`);
  });
  conn.on('reconnecting', (e: ReconnectingEvent) => events.push(`reconnecting ${e.slot} ${e.attempt}`));
  conn.on('connect', (e) => events.push(`connect ${e.slot}`));
  const rpc = new RpcClient(client, conn);
  try {
    await waitFor(() => conn.connected === 2 && server.stats().connections === 2, 10000, '2 connections');
    // A: before the drop.
    for (let id = 0; id < 100; id++) rpc.call(id);
    await waitFor(() => rpc.delivered.size === 100, 10000, 'batch A');

    // C: the drop happens while requests are in flight.
    for (let id = 100; id < 300; id++) {
      rpc.call(id);
      if (id === 150) server.transports[0]!.destroy();
      if (id % 20 === 0) await sleep(1);
    }
    await waitFor(() => conn.stats().disconnects === 1 && conn.connected === 2, 15000, 'reconnect');
    await waitFor(() => rpc.pending.size === 0, 15000, 'batch C answered');

    // B: after the reconnect, on a full set of connections.
    for (let id = 300; id < 400; id++) rpc.call(id);
    await waitFor(() => rpc.pending.size === 0 && rpc.delivered.size === 400, 10000, `batch B ${rpc.pending.size} ${rpc.delivered.size} ${[...rpc.pending.keys()]} ${client.mux.toString()} ${server.mux.toString()}`);

    for (let id = 0; id < 400; id++) assert.equal(rpc.delivered.get(id), 1, `id ${id} delivered once`);
    for (let id = 0; id < 100; id++) assert.equal(requests.get(id), 1, `A ${id} reached the server once`);
    for (let id = 300; id < 400; id++) {
      assert.equal(requests.get(id), 1, `B ${id} reached the server once`);
      assert.equal(rpc.raw.get(id), 1, `B ${id} answered once`);
    }
    const s = conn.stats();
    assert.equal(s.disconnects, 1);
    assert.equal(s.connects, 3);
    assert.equal(s.connected, 2);
    const slot = events.find((e) => e.startsWith('disconnect '))!.split(' ')[1];
    const order = events.filter((e) => e.split(' ')[1] === slot);
    assert.deepEqual(order.slice(-3), [`disconnect ${slot}`, `reconnecting ${slot} 1`, `connect ${slot}`]);
    assert.equal(server.stats().disconnects, 1);
  } finally {
    await conn.close();
    client.close();
    await closeServer(server);
  }
});

test('a refused connection is retried with bounded exponential backoff, then connects', async () => {
  const port = await freePort();
  const client = KcmSocket.create();
  const conn = client.connect({ host: HOST, port, parser: P4, backoff: { initial: 10, max: 40, factor: 2, jitter: false } });
  const retries: ReconnectingEvent[] = [];
  const errors: KcmError[] = [];
  conn.on('reconnecting', (e) => retries.push(e));
  conn.on('error', (err: KcmError, slot: number) => {
    assert.equal(slot, 0);
    errors.push(err);
  });
  let server: KcmServer | undefined;
  try {
    await waitFor(() => retries.length >= 6, 15000, '6 retries');
    assert.deepEqual(retries.slice(0, 6).map((e) => e.delay), [10, 20, 40, 40, 40, 40]);
    assert.deepEqual(retries.slice(0, 6).map((e) => e.attempt), [1, 2, 3, 4, 5, 6]);
    assert.ok(errors.length >= 6);
    assert.ok(errors.every((e) => e instanceof KcmError && e.code === 'EPIPE'));
    assert.equal((errors[0]!.cause as NodeJS.ErrnoException).code, 'ECONNREFUSED');
    assert.equal(conn.stats().connects, 0);
    assert.ok(conn.stats().connectFailures >= 6);
    // A message sent meanwhile waits in the socket [T-18] and leaves once connected.
    const sent = client.send(rpcFrame(7, 'queued'));
    server = (await listen({ port, host: HOST, parser: P4 }));
    const got = server.socket.receive();
    await waitFor(() => conn.connected === 1, 15000, 'connected');
    await sent;
    assert.equal((await got).readUInt32BE(4), 7);
    // After a success, the next failure starts again from the initial delay.
    const before = retries.length;
    server.transports[0]!.destroy();
    await waitFor(() => retries.length > before, 10000, 'retry after drop');
    assert.equal(retries[before]!.delay, 10);
    assert.equal(retries[before]!.attempt, 1);
  } finally {
    await conn.close();
    client.close();
    if (server !== undefined) await closeServer(server);
  }
});

test('abort via signal closes the connections and stops reconnecting', async () => {
  const { server } = await echoServer(1);
  const client = KcmSocket.create();
  const ac = new AbortController();
  const conn = client.connect({ host: HOST, port: portOf(server), connections: 2, parser: P4, signal: ac.signal });
  try {
    await waitFor(() => conn.connected === 2 && server.stats().connections === 2, 10000, '2 connections');
    const transports = conn.transports;
    const closed = once(conn, 'close');
    ac.abort();
    assert.equal(conn.closed, true);
    await closed;
    assert.ok(transports.every((t) => t.destroyed));
    assert.equal(client.mux.psocks.length, 0);
    await waitFor(() => server.stats().connections === 0, 10000, 'server side closed');
    // Closed connections are not replaced.
    await sleep(100);
    assert.equal(server.stats().accepted, 2);
    assert.equal(conn.stats().reconnects, 0);
    assert.equal(client.closed, false);
  } finally {
    client.close();
    await closeServer(server);
  }
});

test('abort while waiting to retry cancels the retry', async () => {
  const port = await freePort();
  const client = KcmSocket.create();
  const ac = new AbortController();
  const conn = client.connect({ host: HOST, port, parser: P4, signal: ac.signal, backoff: { initial: 60_000, jitter: false } });
  try {
    // (events.once would reject on the connector's 'error' event.)
    const e = await new Promise<ReconnectingEvent>((resolve) => conn.once('reconnecting', resolve));
    assert.equal(e.delay, 60_000);
    ac.abort();
    await once(conn, 'close');
    assert.equal(conn.stats().reconnects, 1);
    assert.equal(conn.transports.length, 0);
  } finally {
    client.close();
  }
});

test('an already aborted signal never dials', async () => {
  const client = KcmSocket.create();
  const conn = client.connect({ host: HOST, port: 1, parser: P4, signal: AbortSignal.abort() });
  await once(conn, 'close');
  assert.equal(conn.closed, true);
  assert.equal(conn.stats().connectFailures, 0);
  assert.equal(client.mux.psocks.length, 0);
  client.close();
});

test('closing the KCM socket stops the connector', async () => {
  const { server } = await echoServer(1);
  const client = KcmSocket.create();
  const conn = client.connect({ host: HOST, port: portOf(server), connections: 2, parser: P4 });
  try {
    await waitFor(() => conn.connected === 2, 10000, '2 connections');
    const closed = once(conn, 'close');
    client.close();
    await closed;
    assert.equal(conn.closed, true);
    assert.equal(conn.connected, 0);
    await waitFor(() => server.stats().connections === 0, 10000, 'server side closed');
    assert.equal(conn.stats().reconnects, 0);
  } finally {
    client.close();
    await closeServer(server);
  }
});

test('connect argument errors', () => {
  const sock = KcmSocket.create();
  try {
    assert.throws(() => sock.connect(undefined as never), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => sock.connect({ parser: P4 } as never), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => sock.connect({ port: 70000, parser: P4 }), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => sock.connect({ port: 1, parser: undefined as never }), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => sock.connect({ port: 1, parser: P4, connections: 0 }), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => sock.connect({ port: 1, parser: P4, backoff: { initial: -1 } }), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => sock.connect({ port: 1, parser: P4, signal: {} as AbortSignal }), { code: 'ERR_INVALID_ARG_TYPE' });
  } finally {
    sock.close();
  }
  assert.throws(() => sock.connect({ port: 1, parser: P4 }), (err: unknown) => err instanceof KcmError && err.code === 'EBADF');
});
