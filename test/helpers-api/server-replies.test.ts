/**
 * A `listen()` server with many independent clients, replying to the origin of each
 * request [K-2, K-3]: every client gets exactly its own replies, each once, in order on
 * each of its connections; with 4 KCM sockets in this thread and with 4 worker sockets.
 * A client that disconnects mid-stream: its pending replies are dropped and counted
 * [K-6], no other client sees an error, nothing is retried on another connection.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { KcmSocket } from '../../src/index.js';
import type { Psock, PsockRef } from '../../src/mux/psock.js';
import { listen, type KcmServer } from '../../src/index.js';
import { P4, closeAll, sleep, track, waitFor } from '../helpers/loopback.js';
import { HEADER, checkFrame, rng, tapeFrame, tapeFrameBuffer } from '../helpers/traffic.js';

after(closeAll);

const HOST = '127.0.0.1';
const CLIENTS = 10;
const REQUESTS = 1000;
const CONNECTIONS = 2;
const fixture = new URL('../worker/fixtures/origin-worker.js', import.meta.url);

function portOf(server: net.Server): number {
  return (server.address() as net.AddressInfo).port;
}

/** A payload size from 1 B to 64 KiB, log-uniform, so that both ends of the range occur. */
function payloadSize(r: () => number): number {
  return Math.max(1, Math.min(65536, Math.round(Math.exp(r() * Math.log(65536)))));
}

/**
 * One independent client: its own multiplexor, one KCM socket, `CONNECTIONS` connections
 * from `connect()`. Requests are pinned to its connections in turn (so it knows where each
 * went); at most `window` are outstanding per connection. Every reply is checked: its
 * client id, its content, and that it is the oldest request outstanding on the
 * connection it came back on (each once, in order).
 */
class EchoClient {
  readonly sock = KcmSocket.create({ sendBufferSize: 4 * 1024 * 1024 });
  readonly errors: string[] = [];
  readonly foreign: string[] = [];
  replies = 0;
  private readonly outstanding = new Map<number, number[]>();
  private readonly sizes: number[];
  private next = 0;
  private psocks: Psock[] = [];
  private resolveDone: (() => void) | undefined;
  readonly done = new Promise<void>((resolve) => (this.resolveDone = resolve));

  constructor(readonly id: number, port: number, private readonly window: number) {
    const r = rng(0x5eed + id);
    this.sizes = Array.from({ length: REQUESTS }, () => payloadSize(r));
    // Both ends of the range, whatever the draw.
    this.sizes[0] = 1;
    this.sizes[1] = 65536;
    const connector = this.sock.connect({ host: HOST, port, connections: CONNECTIONS, parser: P4 });
    connector.on('error', (err: Error) => this.errors.push(`connector: ${err.message}`));
    this.sock.mux.on('psockerror', (err: Error) => this.errors.push(`psock: ${err.message}`));
    this.sock.on('message', (m: Buffer, origin: PsockRef) => this.onReply(m, origin));
  }

  async start(): Promise<void> {
    await waitFor(() => this.sock.mux.psocks.length === CONNECTIONS && this.sock.mux.psocks.every((p) => !p.transport.connecting), 10000, `client ${this.id} connected`);
    this.psocks = [...this.sock.mux.psocks];
    for (const p of this.psocks) this.outstanding.set(p.id, []);
    this.pump();
  }

  private pump(): void {
    for (const p of this.psocks) {
      const list = this.outstanding.get(p.id)!;
      while (list.length < this.window && this.next < REQUESTS) {
        const seq = this.next++;
        list.push(seq);
        this.sock.send(tapeFrame(this.id, seq, this.sizes[seq]!), { psock: p }).catch((err: Error) => this.errors.push(`send: ${err.message}`));
      }
    }
  }

  private onReply(m: Buffer, origin: PsockRef): void {
    let id: { src: number; seq: number };
    try {
      id = checkFrame(m);
    } catch (err) {
      this.errors.push((err as Error).message);
      return;
    }
    if (id.src !== this.id) {
      this.foreign.push(`${id.src}/${id.seq}`);
      return;
    }
    const list = this.outstanding.get(origin.id);
    const expected = list?.shift();
    if (expected !== id.seq) {
      this.errors.push(`reply ${id.seq} on psock ${origin.id}, expected ${String(expected)}`);
      return;
    }
    if (m.length !== HEADER + this.sizes[id.seq]!) this.errors.push(`reply ${id.seq} has ${m.length} bytes`);
    this.replies++;
    if (this.replies === REQUESTS) this.resolveDone!();
    else this.pump();
  }

  close(): void {
    this.sock.close();
  }
}

async function runClients(server: KcmServer, window: number): Promise<void> {
  const port = portOf(server);
  const clients = Array.from({ length: CLIENTS }, (_, i) => new EchoClient(i + 1, port, window));
  try {
    await Promise.all(clients.map((c) => c.start()));
    const deadline = new Promise<string>((resolve) => setTimeout(resolve, 90000, 'timeout').unref());
    const result = await Promise.race([Promise.all(clients.map((c) => c.done)).then(() => 'done'), deadline]);
    for (const c of clients) {
      assert.deepEqual(c.foreign.slice(0, 5), [], `client ${c.id} got ${c.foreign.length} replies of other clients`);
      assert.deepEqual(c.errors.slice(0, 5), [], `client ${c.id}: ${c.errors.length} errors`);
      assert.equal(c.replies, REQUESTS, `client ${c.id} got every reply (${result})`);
    }
    const s = server.mux.stats();
    assert.equal(s.txDropped, 0);
    assert.equal(s.txRetries, 0);
    assert.equal(s.psocks.reduce((n, p) => n + p.txPinnedMsgs, 0), CLIENTS * REQUESTS, 'every reply was pinned');
  } finally {
    for (const c of clients) c.close();
  }
}

test(`[K-2][K-3][S-2] ${CLIENTS} independent clients x ${REQUESTS} requests (1 B - 64 KiB) against listen() with 4 sockets: each gets exactly its own replies, once, in order`, async () => {
  const server = await listen({ port: 0, host: HOST, parser: P4, sockets: 4, handler: (m) => m });
  try {
    await runClients(server, 8);
    // The requests were spread over the 4 sockets.
    assert.ok(server.mux.stats().sockets.every((k) => k.rxMsgs > 0), 'every socket took requests');
  } finally {
    await new Promise((r) => server.close(r));
  }
});

test(`[K-2][K-3] ${CLIENTS} independent clients x ${REQUESTS} requests against listen() with 4 worker sockets: each gets exactly its own replies, once, in order`, async () => {
  const server = await listen({ port: 0, host: HOST, parser: P4, sockets: 1 });
  server.socket.setRecvDisable(true);
  const workers: Worker[] = [];
  try {
    for (let i = 0; i < 4; i++) {
      const port = server.socket.cloneForWorker();
      const w = new Worker(fixture, { workerData: { port }, transferList: port.transferList });
      workers.push(w);
      await once(w, 'message');
    }
    // Requests of one connection may be answered by different workers: one outstanding
    // per connection keeps each connection's replies in order.
    await runClients(server, 1);
    const s = server.mux.stats();
    assert.ok(s.sockets.filter((k) => k.index !== 0).every((k) => k.rxMsgs > 0), 'every worker took requests');
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
    await new Promise((r) => server.close(r));
  }
});

test('[K-6][K-5][E-4] a client that disconnects mid-stream: its pending replies are dropped and counted, the others get all theirs, nothing is retried elsewhere', async () => {
  let handled = 0;
  const server = await listen({
    port: 0, host: HOST, parser: P4, sockets: 4,
    socketOptions: { sendBufferSize: 64 * 1024 * 1024 },
    handler: (m) => {
      handled++;
      // Big replies, so that the one who stops reading stalls its connection.
      return m.readUInt32BE(4) === 99 ? tapeFrame(99, m.readUInt32BE(8), 256 * 1024) : m;
    },
  });
  const disconnects: unknown[] = [];
  server.on('disconnect', (e: unknown) => disconnects.push(e));
  const port = portOf(server);
  const clients = [new EchoClient(1, port, 4), new EchoClient(2, port, 4)];
  try {
    // The rude client: raw TCP, writes 200 requests whose replies are 256 KiB, never reads.
    const rude = track(net.connect({ port, host: HOST, noDelay: true }));
    await once(rude, 'connect');
    rude.pause();
    for (let seq = 0; seq < 200; seq++) rude.write(tapeFrameBuffer(99, seq, 16));
    await waitFor(() => handled >= 200, 10000, 'the rude client\'s requests handled');
    await waitFor(() => server.mux.stats().psocks.some((p) => p.txPinnedQueued > 0 && p.txStalled), 10000, 'its replies stalled');
    await Promise.all(clients.map((c) => c.start()));
    await sleep(20);
    rude.resetAndDestroy(); // mid-stream
    await Promise.race([Promise.all(clients.map((c) => c.done)), new Promise((resolve) => setTimeout(resolve, 60000).unref())]);
    for (const c of clients) {
      assert.deepEqual(c.errors.slice(0, 5), [], `client ${c.id} saw no error`);
      assert.deepEqual(c.foreign.slice(0, 5), [], `client ${c.id} got none of the rude client's replies`);
      assert.equal(c.replies, REQUESTS, `client ${c.id} got every reply`);
    }
    await waitFor(() => disconnects.length === 1, 5000, 'the server unattached the rude connection');
    const s = server.mux.stats();
    assert.ok(s.txDropped > 0, `its pending replies were dropped and counted (txDropped ${s.txDropped})`);
    assert.equal(s.txRetries, 0, 'nothing was retried on another connection');
    const dropped = s.sockets.reduce((n, k) => n + k.txDropped, 0) + server.stats().repliesDropped;
    assert.ok(dropped >= s.txDropped, 'the sockets count their drops');
    assert.ok(s.txDropped + server.stats().repliesDropped <= 200, 'no reply of another client was dropped');
  } finally {
    for (const c of clients) c.close();
    await new Promise((r) => server.close(r));
  }
});

test('[K-2][K-5][K-6] in a worker: origin is a frozen { id }, one object per psock; EPIPE and ENOENT at the call; txDropped crosses back', async (t) => {
  const server = await listen({ port: 0, host: HOST, parser: P4, sockets: 1 });
  server.socket.setRecvDisable(true);
  const port = server.socket.cloneForWorker();
  const w = new Worker(fixture, { workerData: { port, report: true }, transferList: port.transferList });
  const events: Record<string, unknown>[] = [];
  w.on('message', (m: Record<string, unknown>) => events.push(m));
  t.after(async () => {
    await w.terminate();
    await new Promise((r) => server.close(r));
  });
  await waitFor(() => events.length > 0, 10000, 'the worker');
  const a = track(net.connect({ port: portOf(server), host: HOST, noDelay: true }));
  const b = track(net.connect({ port: portOf(server), host: HOST, noDelay: true }));
  await Promise.all([once(a, 'connect'), once(b, 'connect')]);
  await waitFor(() => server.stats().connections === 2, 5000, 'two connections');
  const echoes: Buffer[][] = [[], []];
  a.on('data', (d: Buffer) => echoes[0]!.push(d));
  b.on('data', (d: Buffer) => echoes[1]!.push(d));
  const f = (s: string): Buffer => { const x = Buffer.alloc(4 + s.length); x.writeUInt32BE(s.length); x.write(s, 4); return x; };
  a.write(f('a1'));
  await waitFor(() => events.some((e) => e.got === 'a1'), 5000, 'a1');
  a.write(f('a2'));
  b.write(f('b1'));
  await waitFor(() => events.filter((e) => 'got' in e).length === 3, 5000, 'three messages');
  const got = events.filter((e) => 'got' in e);
  const byText = new Map(got.map((e) => [e.got, e]));
  const psocks = server.mux.psocks;
  const idOf = (s: net.Socket): number => psocks.find((p) => p.transport.remotePort === s.localPort)!.id;
  assert.equal(byText.get('a1')!.origin, idOf(a));
  assert.equal(byText.get('a2')!.origin, idOf(a));
  assert.equal(byText.get('b1')!.origin, idOf(b));
  assert.ok(got.every((e) => e.frozen === true && e.same === true), 'a frozen { id }, the same object for every message of a psock');
  await waitFor(() => Buffer.concat(echoes[0]!).length === 12 && Buffer.concat(echoes[1]!).length === 6, 5000, 'the echoes, each on its own connection');
  // ENOENT: an id never given. EPIPE: a psock that is gone.
  w.postMessage({ cmd: 'send', id: 9999, text: 'nowhere' });
  w.postMessage({ cmd: 'trySend', id: 9999, text: 'nowhere-try' });
  await waitFor(() => events.filter((e) => 'sendError' in e).length === 2, 5000, 'the ENOENT errors');
  assert.deepEqual(events.filter((e) => 'sendError' in e).map((e) => e.sendError), ['ENOENT', 'ENOENT']);
  const bId = idOf(b);
  b.resetAndDestroy();
  await waitFor(() => server.stats().disconnects === 1, 5000, 'the server dropped b');
  await sleep(20);
  w.postMessage({ cmd: 'send', id: bId, text: 'to-b' });
  w.postMessage({ cmd: 'send', id: bId, text: 'to-b-many', many: true });
  w.postMessage({ cmd: 'trySend', id: bId, text: 'to-b-try' });
  await waitFor(() => events.filter((e) => 'sendError' in e).length === 5, 5000, 'the EPIPE errors');
  assert.deepEqual(events.filter((e) => 'sendError' in e).slice(2).map((e) => e.sendError), ['EPIPE', 'EPIPE', 'EPIPE']);
  w.postMessage({ cmd: 'stats' });
  await waitFor(() => events.some((e) => 'stats' in e), 5000, 'the stats');
  assert.deepEqual(events.find((e) => 'stats' in e)!.stats, { txMsgs: 3, txDropped: 0 });
  // [K-6] replies to a that stall, then a resets: dropped in this thread, counted in the worker's stats.
  a.pause();
  for (let i = 0; i < 32; i++) w.postMessage({ cmd: 'send', id: idOf(a), text: `big-${i}`, size: 1024 * 1024 });
  const settled = (): number => events.filter((e) => String(e.sent ?? e.text ?? '').startsWith('big-')).length;
  await waitFor(() => server.mux.stats().psocks.some((p) => p.txPinnedQueued > 0 && p.txStalled), 10000, 'a stalled');
  a.resetAndDestroy();
  // Those accepted are dropped here; those still waiting for buffer space reject EPIPE there.
  await waitFor(() => settled() === 32, 10000, 'every big send settled');
  await sleep(20);
  const dropped = server.mux.stats().txDropped;
  assert.ok(dropped > 0, 'some were dropped');
  w.postMessage({ cmd: 'stats' });
  await waitFor(() => events.filter((e) => 'stats' in e).length === 2, 5000, 'the stats again');
  const after = events.filter((e) => 'stats' in e)[1]!.stats as { txDropped: number };
  assert.equal(after.txDropped, dropped, 'the worker socket\'s txDropped');
  assert.equal(server.mux.stats().sockets.find((k) => k.index !== 0)!.txDropped, dropped);
});
