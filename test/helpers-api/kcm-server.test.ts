import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import { once } from 'node:events';
import { KcmSocket } from '../../src/index.js';
import { KcmError } from '../../src/errors.js';
import { KcmServer, listen, type ServerConnectionEvent } from '../../src/helpers/kcm-server.js';
import { P4, frame, payload, FrameReader, waitFor, sleep, track, closeAll } from '../helpers/loopback.js';

const HOST = '127.0.0.1';

function portOf(server: net.Server): number {
  return (server.address() as net.AddressInfo).port;
}

async function dial(port: number): Promise<net.Socket> {
  const s = track(net.connect({ port, host: HOST, noDelay: true }));
  await once(s, 'connect');
  return s;
}

function closed(s: net.Socket): Promise<void> {
  return s.closed ? Promise.resolve() : new Promise((resolve) => s.once('close', () => resolve()));
}

test('listen resolves once listening, with N sockets on one new multiplexor', async () => {
  const server = await listen({ port: 0, host: HOST, parser: P4, sockets: 4 });
  try {
    assert.ok(server instanceof KcmServer);
    assert.ok(server instanceof net.Server);
    assert.ok(server.listening);
    assert.ok(portOf(server) > 0);
    assert.equal(server.sockets.length, 4);
    assert.ok(server.sockets.every((k) => k.mux === server.mux));
    assert.equal(server.socket, server.sockets[0]);
    assert.deepEqual(server.mux.sockets.map((k) => k.index), [0, 1, 2, 3]);
  } finally {
    await new Promise((r) => server.close(r));
  }
  assert.ok(server.sockets.every((k) => k.closed));
});

test('accepted connections are attached; messages are steered to the sockets', async () => {
  const server = await listen({ port: 0, host: HOST, parser: P4, sockets: 2 });
  const attached: ServerConnectionEvent[] = [];
  server.on('attach', (e: ServerConnectionEvent) => attached.push(e));
  try {
    const a = await dial(portOf(server));
    const b = await dial(portOf(server));
    await waitFor(() => server.stats().connections === 2, 10000, '2 attached');
    assert.equal(attached.length, 2);
    assert.equal(server.mux.psocks.length, 2);
    a.write(Buffer.concat([frame('a1'), frame('a2')]));
    b.write(frame('b1'));
    const got: string[] = [];
    for (const k of server.sockets) k.on('message', (m: Buffer) => got.push(payload(m)));
    await waitFor(() => got.length === 3, 10000, '3 messages');
    assert.deepEqual(got.sort(), ['a1', 'a2', 'b1']);
  } finally {
    await new Promise((r) => server.close(r));
    await closeAll();
  }
});

test('maxConnections: connections beyond the limit are refused', async () => {
  const server = await listen({ port: 0, host: HOST, parser: P4, maxConnections: 2 });
  try {
    const a = await dial(portOf(server));
    const b = await dial(portOf(server));
    await waitFor(() => server.stats().connections === 2, 10000, '2 attached');
    const c = await dial(portOf(server));
    await closed(c);
    assert.equal(server.stats().refused, 1);
    assert.equal(server.stats().connections, 2);
    assert.equal(server.mux.psocks.length, 2);
    // The accepted ones still work.
    a.write(frame('still here'));
    assert.equal(payload(await server.socket.receive()), 'still here');
    // A freed place is taken again.
    b.destroy();
    await waitFor(() => server.stats().connections === 1, 10000, 'b gone');
    const d = await dial(portOf(server));
    await waitFor(() => server.stats().connections === 2, 10000, 'd attached');
    d.write(frame('d'));
    assert.equal(payload(await server.socket.receive()), 'd');
    assert.equal(server.stats().refused, 1);
  } finally {
    await new Promise((r) => server.close(r));
    await closeAll();
  }
});

test('a connection whose psock errors is unattached and destroyed (E-4)', async () => {
  const server = await listen({ port: 0, host: HOST, parser: P4, maxMessageSize: 100 });
  const disconnects: (ServerConnectionEvent & { error: KcmError })[] = [];
  server.on('disconnect', (e: ServerConnectionEvent & { error: KcmError }) => disconnects.push(e));
  try {
    const good = await dial(portOf(server));
    const bad = await dial(portOf(server));
    await waitFor(() => server.stats().connections === 2, 10000, '2 attached');
    const header = Buffer.alloc(4);
    header.writeUInt32BE(1000, 0);
    bad.write(header);
    await closed(bad);
    await waitFor(() => disconnects.length === 1, 10000, 'disconnect');
    assert.equal(disconnects[0]!.error.code, 'EMSGSIZE');
    assert.equal(server.stats().disconnects, 1);
    assert.equal(server.stats().connections, 1);
    assert.equal(server.mux.psocks.length, 1);
    good.write(frame('ok'));
    assert.equal(payload(await server.socket.receive()), 'ok');
  } finally {
    await new Promise((r) => server.close(r));
    await closeAll();
  }
});

test('graceful close: replies already queued go out, connections end, own sockets close', async () => {
  const server = await listen({ port: 0, host: HOST, parser: P4, sockets: 2 });
  const client = await dial(portOf(server));
  const reader = new FrameReader(client);
  try {
    await waitFor(() => server.stats().connections === 1, 10000, 'attached');
    for (let i = 0; i < 20; i++) client.write(frame(`q${i}`));
    const got: Buffer[] = [];
    for (const k of server.sockets) k.on('message', (m: Buffer) => got.push(m));
    await waitFor(() => got.length === 20, 10000, '20 requests');
    // Replies are queued, then the server closes at once.
    const big = Buffer.alloc(256 * 1024, 1);
    for (const m of got) void server.socket.send([frame(`r${payload(m).slice(1)}`), frame(big)]);
    const serverClosed = new Promise<Error | undefined>((resolve) => server.close(resolve));
    assert.equal(server.listening, false);
    await closed(client);
    assert.equal(await serverClosed, undefined);
    assert.equal(reader.frames.length, 40);
    assert.equal(reader.partial, 0);
    const replies = reader.payloads().filter((p) => p.startsWith('r')).sort();
    assert.deepEqual(replies, Array.from({ length: 20 }, (_, i) => `r${i}`).sort());
    assert.ok(server.sockets.every((k) => k.closed));
    assert.equal(server.stats().connections, 0);
  } finally {
    await closeAll();
  }
});

test('a given socket is used and left open at close', async () => {
  const sock = KcmSocket.create();
  const server = await listen({ port: 0, host: HOST, parser: P4, socket: sock });
  try {
    assert.equal(server.mux, sock.mux);
    assert.deepEqual(server.sockets, [sock]);
    const c = await dial(portOf(server));
    c.write(frame('hello'));
    assert.equal(payload(await sock.receive()), 'hello');
    await new Promise((r) => server.close(r));
    assert.equal(sock.closed, false);
    assert.equal(sock.mux.psocks.length, 0);
    await closed(c);
  } finally {
    sock.close();
    await closeAll();
  }
});

test('abort via signal closes the server; an aborted signal rejects listen', async () => {
  const ac = new AbortController();
  const server = await listen({ port: 0, host: HOST, parser: P4, signal: ac.signal });
  const c = await dial(portOf(server));
  await waitFor(() => server.stats().connections === 1, 10000, 'attached');
  const serverClosed = once(server, 'close');
  ac.abort();
  await serverClosed;
  await closed(c);
  assert.ok(server.socket.closed);
  await assert.rejects(listen({ port: 0, host: HOST, parser: P4, signal: AbortSignal.abort() }), { name: 'AbortError' });
  await closeAll();
});

test('listen rejects with the listen error and leaves nothing open', async () => {
  const first = await listen({ port: 0, host: HOST, parser: P4 });
  try {
    await assert.rejects(listen({ port: portOf(first), host: HOST, parser: P4 }), { code: 'EADDRINUSE' });
  } finally {
    await new Promise((r) => first.close(r));
  }
  await sleep(10);
});

test('server argument errors', async () => {
  assert.throws(() => new KcmServer(undefined as never), { code: 'ERR_INVALID_ARG_TYPE' });
  assert.throws(() => new KcmServer({} as never), { code: 'ERR_INVALID_ARG_TYPE' });
  assert.throws(() => new KcmServer({ parser: P4, maxConnections: 0 }), { code: 'ERR_OUT_OF_RANGE' });
  assert.throws(() => new KcmServer({ parser: P4, sockets: 0 }), { code: 'ERR_OUT_OF_RANGE' });
  const sock = KcmSocket.create();
  assert.throws(() => new KcmServer({ parser: P4, socket: sock, sockets: 2 }), { code: 'ERR_INVALID_ARG_VALUE' });
  sock.close();
  assert.throws(() => new KcmServer({ parser: P4, socket: sock }), (e: unknown) => e instanceof KcmError && e.code === 'EBADF');
  await assert.rejects(listen({ port: -1, parser: P4 }), { code: 'ERR_OUT_OF_RANGE' });
});
