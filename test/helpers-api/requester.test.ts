import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import { KcmSocket } from '../../src/index.js';
import { KcmError } from '../../src/errors.js';
import { AbortError } from '../../src/mux/abort-error.js';
import { listen, type KcmServer } from '../../src/helpers/kcm-server.js';
import { Requester } from '../../src/helpers/requester.js';
import { P4, waitFor, sleep } from '../helpers/loopback.js';

/** The origin a message delivered by hand carries [K-2]. */
const ORIGIN = { id: 1 };

const HOST = '127.0.0.1';

/** A request or reply: 4-byte length, 4-byte id, body. */
function rpc(id: number, body = ''): Buffer[] {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(id, 0);
  return P4.frame([head, Buffer.from(body)]);
}
const idOf = (m: Buffer): number => m.readUInt32BE(4);
const bodyOf = (m: Buffer): string => m.subarray(8).toString();

/** An echo server over `sockets` KCM sockets, counting the requests per id; `delay` ms before each reply. */
async function echoServer(sockets = 4, delay = 0): Promise<{ server: KcmServer; requests: Map<number, number> }> {
  const server = await listen({ port: 0, host: HOST, parser: P4, sockets, closeTimeout: 500 });
  const requests = new Map<number, number>();
  for (const k of server.sockets) {
    k.on('message', (m: Buffer) => {
      const id = idOf(m);
      requests.set(id, (requests.get(id) ?? 0) + 1);
      if (delay === 0) void k.send(m).catch(() => {});
      else setTimeout(() => void k.send(m).catch(() => {}), delay);
    });
  }
  return { server, requests };
}

function portOf(server: net.Server): number {
  return (server.address() as net.AddressInfo).port;
}

/** A client socket and its clones: `n` sockets over `connections` connections. */
function client(port: number, n: number, connections: number): { sockets: KcmSocket[]; close: () => Promise<void> } {
  const first = KcmSocket.create();
  const sockets = [first];
  for (let i = 1; i < n; i++) sockets.push(first.clone());
  const connector = first.connect({ host: HOST, port, connections, parser: P4, closeTimeout: 500 });
  return {
    sockets,
    close: async () => {
      await connector.close();
      for (const s of sockets) s.close();
    },
  };
}

function rejectsWith(p: Promise<unknown>, check: (err: unknown) => boolean): Promise<void> {
  return assert.rejects(p, (err: unknown) => {
    assert.ok(check(err), String(err));
    return true;
  });
}
const isCode = (code: string) => (err: unknown) => err instanceof KcmError && err.code === code;

test('[S-1] 10,000 concurrent requests over 4 sockets x 4 connections: every reply matched once', async () => {
  const { server, requests } = await echoServer(4);
  const c = client(portOf(server), 4, 4);
  const r = new Requester(c.sockets, { id: idOf, timeout: 60_000 });
  try {
    const N = 10_000;
    const calls: Promise<Buffer>[] = [];
    for (let i = 0; i < N; i++) calls.push(r.request(rpc(i, `body ${i}`), i));
    assert.equal(r.pending, N);
    const replies = await Promise.all(calls);
    for (let i = 0; i < N; i++) {
      assert.equal(idOf(replies[i]!), i);
      assert.equal(bodyOf(replies[i]!), `body ${i}`);
    }
    assert.equal(requests.size, N);
    for (const n of requests.values()) assert.equal(n, 1);
    assert.deepEqual(r.stats(), { requests: N, replies: N, unmatched: 0, timeouts: 0, aborts: 0, failures: 0, pending: 0 });
    // Every socket sent a quarter and replies reached them all: the multiplexor steered them.
    for (const s of c.sockets) assert.equal(s.stats().txMsgs, N / 4);
    assert.equal(c.sockets.reduce((n, s) => n + s.stats().rxMsgs, 0), N);
    assert.equal(server.stats().connections, 4);
  } finally {
    r.close();
    await c.close();
    await new Promise((res) => server.close(res));
  }
});

test('timeouts are exact: each request rejects ETIMEDOUT at its own deadline, not before', async () => {
  // No transport: the socket queues the requests and nothing ever answers [T-18].
  const sock = KcmSocket.create();
  const r = new Requester(sock, { id: idOf, timeout: 150 });
  try {
    const started: number[] = [];
    const ended: number[] = [];
    const calls: Promise<void>[] = [];
    for (let i = 0; i < 5; i++) {
      started.push(performance.now());
      calls.push(
        r.request(rpc(i), i).then(
          () => assert.fail('resolved'),
          (err: unknown) => {
            ended[i] = performance.now();
            assert.ok(isCode('ETIMEDOUT')(err), String(err));
          },
        ),
      );
      await sleep(40);
    }
    await Promise.all(calls);
    for (let i = 0; i < 5; i++) {
      const waited = ended[i]! - started[i]!;
      assert.ok(waited >= 150, `request ${i} rejected after ${waited.toFixed(1)} ms, before its timeout`);
      assert.ok(waited < 150 + 1000, `request ${i} rejected ${waited.toFixed(1)} ms after it was made`);
    }
    // In deadline order: the earliest first.
    for (let i = 1; i < 5; i++) assert.ok(ended[i]! >= ended[i - 1]!);
    assert.equal(r.stats().timeouts, 5);
    assert.equal(r.pending, 0);
  } finally {
    r.close();
    sock.close();
  }
});

test('a request answered before its timeout is not rejected later; the timer is shared', async () => {
  const { server } = await echoServer(1);
  const c = client(portOf(server), 1, 1);
  const r = new Requester(c.sockets, { id: idOf, timeout: 1000 });
  try {
    await waitFor(() => server.stats().connections === 1 && c.sockets[0]!.mux.stats().psocks.length === 1, 10000, 'the connection');
    const reply = await r.request(rpc(1, 'quick'), 1);
    assert.equal(bodyOf(reply), 'quick');
    await sleep(1100);
    assert.deepEqual(r.stats(), { requests: 1, replies: 1, unmatched: 0, timeouts: 0, aborts: 0, failures: 0, pending: 0 });
  } finally {
    r.close();
    await c.close();
    await new Promise((res) => server.close(res));
  }
});

test('a late reply is counted as unmatched, never delivered to another request', async () => {
  const { server } = await echoServer(1, 200);
  const c = client(portOf(server), 2, 2);
  const r = new Requester(c.sockets, { id: idOf, timeout: 50 });
  try {
    await rejectsWith(r.request(rpc(7, 'late'), 7), isCode('ETIMEDOUT'));
    const other = r.request(rpc(8, 'other'), 8);
    await rejectsWith(other, isCode('ETIMEDOUT'));
    await waitFor(() => r.stats().unmatched === 2, 5000, 'the late replies');
    assert.equal(r.stats().replies, 0);
    assert.equal(r.stats().timeouts, 2);
  } finally {
    r.close();
    await c.close();
    await new Promise((res) => server.close(res));
  }
});

test('replies with an unknown id, or none, are counted and dropped; an id() that throws too', async () => {
  const sock = KcmSocket.create();
  const r = new Requester(sock, {
    id: (m) => {
      if (m.length < 8) return undefined;
      if (m[8] === 0x21) throw new Error('bad reply');
      return idOf(m);
    },
  });
  try {
    const pending = r.request(rpc(1), 1);
    // Deliver replies as the multiplexor would: through the socket's 'message' event.
    sock.emit('message', Buffer.concat(rpc(99, 'unknown')), ORIGIN);
    sock.emit('message', Buffer.from([0, 0, 0, 1, 9]), ORIGIN);
    sock.emit('message', Buffer.concat(rpc(1, '!')), ORIGIN);
    assert.equal(r.stats().unmatched, 3);
    assert.equal(r.pending, 1);
    sock.emit('message', Buffer.concat(rpc(1, 'ok')), ORIGIN);
    assert.equal(bodyOf(await pending), 'ok');
    sock.emit('message', Buffer.concat(rpc(1, 'again')), ORIGIN);
    assert.equal(r.stats().unmatched, 4);
  } finally {
    r.close();
    sock.close();
  }
});

test('ids: a duplicate pending id throws ERR_INVALID_STATE; strings, numbers and bigints are distinct', async () => {
  const sock = KcmSocket.create();
  const r = new Requester(sock, { id: (m) => m.subarray(8).toString() });
  try {
    const a = r.request(rpc(0, 'a'), 'a');
    assert.throws(() => r.request(rpc(0, 'a'), 'a'), (err: unknown) => (err as { code?: string }).code === 'ERR_INVALID_STATE');
    assert.equal(r.pending, 1);
    assert.equal(r.stats().requests, 1);
    const n = r.request(rpc(0), 1);
    const b = r.request(rpc(0), 1n);
    assert.equal(r.pending, 3);
    sock.emit('message', Buffer.concat(rpc(0, 'a')), ORIGIN);
    await a;
    // Settled: the id may be used again.
    const again = r.request(rpc(0, 'a'), 'a');
    sock.emit('message', Buffer.concat(rpc(0, 'a')), ORIGIN);
    await again;
    assert.throws(() => r.request(rpc(0), {} as unknown as string), (err: unknown) => (err as { code?: string }).code === 'ERR_INVALID_ARG_TYPE');
    r.close();
    await rejectsWith(n, isCode('EBADF'));
    await rejectsWith(b, isCode('EBADF'));
  } finally {
    r.close();
    sock.close();
  }
});

test('abort: the request rejects with an AbortError at once and is forgotten; its reply is unmatched', async () => {
  const sock = KcmSocket.create();
  const r = new Requester(sock, { id: idOf, timeout: 10_000 });
  try {
    const ac = new AbortController();
    const p = r.request(rpc(1), 1, { signal: ac.signal });
    const kept = r.request(rpc(2), 2, { signal: new AbortController().signal });
    assert.equal(r.pending, 2);
    ac.abort(new Error('no longer needed'));
    assert.equal(r.pending, 1, 'forgotten synchronously');
    await rejectsWith(p, (err) => err instanceof AbortError && (err as Error).name === 'AbortError' && ((err as Error).cause as Error).message === 'no longer needed');
    sock.emit('message', Buffer.concat(rpc(1)), ORIGIN);
    assert.equal(r.stats().unmatched, 1);
    // Already aborted: rejects without sending.
    const tx = sock.stats().txMsgs;
    await rejectsWith(r.request(rpc(3), 3, { signal: AbortSignal.abort() }), (err) => err instanceof AbortError);
    assert.equal(sock.stats().txMsgs, tx);
    sock.emit('message', Buffer.concat(rpc(2, 'two')), ORIGIN);
    assert.equal(bodyOf(await kept), 'two');
    assert.equal(r.stats().aborts, 2);
  } finally {
    r.close();
    sock.close();
  }
});

test('[O-6] close rejects pending requests EBADF and later ones too; closing the socket does as well', async () => {
  const sock = KcmSocket.create();
  const r = new Requester(sock, { id: idOf, timeout: 10_000 });
  const p1 = r.request(rpc(1), 1);
  r.close();
  await rejectsWith(p1, isCode('EBADF'));
  await rejectsWith(r.request(rpc(2), 2), isCode('EBADF'));
  assert.equal(r.pending, 0);
  assert.equal(sock.listenerCount('message'), 0, 'it stopped reading the socket');
  assert.equal(sock.closed, false, 'the socket stays the application\'s');

  const r2 = new Requester(sock, { id: idOf });
  const p2 = r2.request(rpc(3), 3);
  sock.close();
  await rejectsWith(p2, isCode('EBADF'));
  assert.equal(r2.closed, true);
  await rejectsWith(r2.request(rpc(4), 4), isCode('EBADF'));
});

test('one of several sockets closing fails only the requests sent on it; the others still get replies', async () => {
  const a = KcmSocket.create();
  const b = a.clone();
  const r = new Requester([a, b], { id: idOf });
  try {
    const onA = r.request(rpc(1), 1);
    const onB = r.request(rpc(2), 2);
    a.close();
    await rejectsWith(onA, isCode('EBADF'));
    assert.equal(r.closed, false);
    b.emit('message', Buffer.concat(rpc(2, 'b')), ORIGIN);
    assert.equal(bodyOf(await onB), 'b');
    // Requests now go out on b only.
    const next = r.request(rpc(3), 3);
    b.emit('message', Buffer.concat(rpc(3, 'b again')), ORIGIN);
    assert.equal(bodyOf(await next), 'b again');
  } finally {
    r.close();
    a.close();
    b.close();
  }
});

test('a request waiting for room in a full send queue still times out and aborts', async () => {
  const sock = KcmSocket.create({ sendBufferSize: 16 });
  const r = new Requester(sock, { id: idOf, timeout: 80 });
  try {
    const big = r.request(rpc(1, 'x'.repeat(64)), 1); // fills the queue (no transport)
    const ac = new AbortController();
    const waiting = r.request(rpc(2), 2, { signal: ac.signal }); // send() waits
    const timed = r.request(rpc(3), 3);
    ac.abort();
    await Promise.all([rejectsWith(waiting, (err) => err instanceof AbortError), rejectsWith(timed, isCode('ETIMEDOUT')), rejectsWith(big, isCode('ETIMEDOUT'))]);
    assert.equal(r.pending, 0);
  } finally {
    r.close();
    sock.close();
  }
});

test('argument validation', () => {
  const sock = KcmSocket.create();
  try {
    const code = (c: string) => (err: unknown) => (err as { code?: string }).code === c;
    assert.throws(() => new Requester([] as KcmSocket[], { id: idOf }), code('ERR_INVALID_ARG_TYPE'));
    assert.throws(() => new Requester({} as KcmSocket, { id: idOf }), code('ERR_INVALID_ARG_TYPE'));
    assert.throws(() => new Requester(sock, {} as { id: () => undefined }), code('ERR_INVALID_ARG_TYPE'));
    assert.throws(() => new Requester(sock, { id: idOf, timeout: -1 }), code('ERR_OUT_OF_RANGE'));
    assert.throws(() => new Requester([sock, sock], { id: idOf }), code('ERR_INVALID_STATE'));
    const r = new Requester(sock, { id: idOf });
    assert.throws(() => new Requester(sock, { id: idOf }), code('ERR_INVALID_STATE'), 'a socket serves one requester');
    assert.throws(() => r.request(rpc(1), 1, { signal: {} as AbortSignal }), code('ERR_INVALID_ARG_TYPE'));
    assert.throws(() => r.request('text' as unknown as Buffer, 1), code('ERR_INVALID_ARG_TYPE'));
    assert.equal(r.pending, 0, 'a bad message leaves nothing pending');
    r.close();
    new Requester(sock, { id: idOf }).close(); // free again once closed
  } finally {
    sock.close();
  }
});

const hasPinnedSends = typeof (KcmSocket.prototype as { receiveFrom?: unknown }).receiveFrom === 'function';

test('psock: the request goes out on that connection only', { skip: hasPinnedSends ? false : 'this build has no pinned sends (send(m, { psock }))' }, async () => {
  const { server } = await echoServer(1);
  const c = client(portOf(server), 1, 2);
  const r = new Requester(c.sockets, { id: idOf, timeout: 10_000 });
  try {
    await waitFor(() => c.sockets[0]!.mux.stats().psocks.length === 2 && server.stats().connections === 2, 5000, '2 connections');
    const psocks = c.sockets[0]!.mux.stats().psocks as unknown as { txMsgs: number }[];
    const target = (c.sockets[0]!.mux as unknown as { psocks?: Iterable<{ id: number }> }).psocks;
    assert.ok(target !== undefined);
    const chosen = [...target][1]!;
    for (let i = 0; i < 20; i++) await r.request(rpc(i), i, { psock: chosen });
    const after = c.sockets[0]!.mux.stats().psocks as unknown as { txMsgs: number }[];
    assert.equal(after[1]!.txMsgs - (psocks[1]?.txMsgs ?? 0), 20);
  } finally {
    r.close();
    await c.close();
    await new Promise((res) => server.close(res));
  }
});
