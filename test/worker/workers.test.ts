/**
 * Sockets adopted in real worker threads: steering and load balancing [S-1 … S-6],
 * receive disable [D-3], worker death [O-6], transmit [T-11 … T-19], and the API's
 * errors in a worker.
 */
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { once } from 'node:events';
import { KcmSocket } from '../../src/index.js';
import { FrameReader, P4, closeAll, frame, payload, tcpPairs, waitFor } from '../helpers/loopback.js';

const fixture = new URL('./fixtures/socket-worker.js', import.meta.url);

interface Spawned {
  worker: Worker;
  got: string[];
  events: Record<string, unknown>[];
  exited: Promise<number>;
  /** The first event (at or after `from`) with key `key`. */
  event(key: string, from?: number, ms?: number): Promise<Record<string, unknown>>;
  send(cmd: Record<string, unknown>): void;
}

const workers = new Set<Worker>();
const sockets = new Set<KcmSocket>();

afterEach(async () => {
  await Promise.all([...workers].map((w) => w.terminate()));
  workers.clear();
  for (const s of sockets) s.close();
  sockets.clear();
  await closeAll();
});

async function spawn(sock: KcmSocket, mode: string, extra: Record<string, unknown> = {}): Promise<Spawned> {
  const port = sock.cloneForWorker();
  const worker = new Worker(fixture, { workerData: { port, mode, ...extra }, transferList: port.transferList });
  workers.add(worker);
  worker.on('error', () => {}); // crashes are part of some tests
  const got: string[] = [];
  const events: Record<string, unknown>[] = [];
  worker.on('message', (m: Record<string, unknown>) => {
    if (Array.isArray(m.got)) got.push(...(m.got as string[]));
    events.push(m);
  });
  const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
  const s: Spawned = {
    worker,
    got,
    events,
    exited,
    async event(key, from = 0, ms = 10000) {
      let found: Record<string, unknown> | undefined;
      await waitFor(() => (found = events.slice(from).find((e) => key in e)) !== undefined, ms, `worker event ${key}`);
      return found!;
    },
    send(cmd) {
      worker.postMessage(cmd);
    },
  };
  await s.event('ready');
  return s;
}

function main(options: Parameters<typeof KcmSocket.create>[0] = {}): KcmSocket {
  const k = KcmSocket.create(options);
  sockets.add(k);
  return k;
}

/** Frames `tag:0` … `tag:n-1`, written in `writes` separate writes. */
function writeFrames(remote: import('node:net').Socket, tag: string, n: number, writes = 1): string[] {
  const names: string[] = [];
  const frames: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    names.push(`${tag}:${i}`);
    frames.push(frame(`${tag}:${i}`));
  }
  const per = Math.ceil(n / writes);
  for (let i = 0; i < n; i += per) remote.write(Buffer.concat(frames.slice(i, i + per)));
  return names;
}

function assertExactlyOnce(seen: string[], expected: string[]): void {
  const counts = new Map<string, number>();
  for (const s of seen) counts.set(s, (counts.get(s) ?? 0) + 1);
  const dup = [...counts].filter(([, c]) => c > 1).map(([s]) => s);
  assert.deepEqual(dup, [], 'no message delivered twice');
  assert.deepEqual([...counts.keys()].sort(), [...expected].sort(), 'every message delivered');
}

test('messages from 2 transports spread over 4 worker sockets, each handled once [S-1, S-2, S-3]', async () => {
  const k0 = main({ receiveBufferSize: 2048 });
  k0.setRecvDisable(true); // only the workers read
  const [t0, t1] = await tcpPairs(2);
  k0.attach(t0!.local, { parser: P4 });
  k0.attach(t1!.local, { parser: P4 });
  const ws: Spawned[] = [];
  for (let i = 0; i < 4; i++) ws.push(await spawn(k0, i % 2 === 0 ? 'flow' : 'iterate'));
  const expected = [...writeFrames(t0!.remote, 'a', 2000, 40), ...writeFrames(t1!.remote, 'b', 2000, 40)];
  await waitFor(() => ws.reduce((n, w) => n + w.got.length, 0) >= expected.length, 20000, 'all messages');
  await new Promise((r) => setTimeout(r, 50)); // a duplicate would show up now
  assertExactlyOnce(ws.flatMap((w) => w.got), expected);
  for (const [i, w] of ws.entries()) assert.ok(w.got.length > 0, `worker ${i} received messages`);
  // [S-6] each socket sees a transport's messages in order.
  for (const w of ws) {
    for (const tag of ['a', 'b']) {
      const seq = w.got.filter((s) => s.startsWith(`${tag}:`)).map((s) => Number(s.split(':')[1]));
      assert.deepEqual(seq, [...seq].sort((x, y) => x - y), 'in stream order per socket');
    }
  }
  const rows = k0.mux.stats().sockets;
  assert.equal(rows.length, 5);
  for (const r of rows.slice(1)) assert.equal(r.rxQueuedBytes, 0, 'every worker drained, memory freed');
  assert.equal(rows.slice(1).reduce((n, r) => n + r.rxMsgs, 0), expected.length);
});

test('a worker busy with a message takes nothing new while the others drain the stream [S-3, S-4]', async () => {
  const k0 = main({ receiveBufferSize: 1 });
  k0.setRecvDisable(true);
  const [t0] = await tcpPairs(1);
  k0.attach(t0!.local, { parser: P4 });
  const release = new SharedArrayBuffer(4);
  const busy = await spawn(k0, 'flow', { blockFirst: true, blockMs: 200, release });
  const others = [await spawn(k0, 'flow'), await spawn(k0, 'iterate')];
  t0!.remote.write(frame('first'));
  await busy.event('blocked');
  const expected = writeFrames(t0!.remote, 'n', 200, 20);
  // The busy worker blocks until released; the others must take the whole stream meanwhile.
  await waitFor(() => others[0]!.got.length + others[1]!.got.length >= 200, 15000, 'the others to drain');
  Atomics.store(new Int32Array(release), 0, 1);
  await busy.event('got');
  assert.deepEqual(busy.got, ['first'], 'the busy worker got only its first message');
  assertExactlyOnce([...others[0]!.got, ...others[1]!.got], expected);
  assert.ok(others[0]!.got.length > 0 && others[1]!.got.length > 0, 'both other workers took a share');
});

test('a stalled worker holds at most receiveBufferSize bytes; the rest goes elsewhere [S-3]', async () => {
  const k0 = main({ receiveBufferSize: 4096 });
  k0.setRecvDisable(true);
  const [t0] = await tcpPairs(1);
  k0.attach(t0!.local, { parser: P4 });
  const stalled = await spawn(k0, 'hold');
  const big = Buffer.alloc(1000, 7);
  const frames: Buffer[] = [];
  for (let i = 0; i < 1000; i++) frames.push(frame(Buffer.concat([Buffer.from(`s:${i}:`), big])));
  t0!.remote.write(Buffer.concat(frames));
  const row = () => k0.mux.stats().sockets.find((r) => r.index === 1)!;
  await waitFor(() => row().rxQueuedBytes >= 4096, 10000, 'the worker socket to fill');
  await new Promise((r) => setTimeout(r, 100));
  assert.ok(row().rxQueuedBytes < 4096 + 1100, `at most receiveBufferSize plus one message (${row().rxQueuedBytes})`);
  // The main socket takes the rest once it can.
  const seen: string[] = [];
  k0.on('message', (m: Buffer) => seen.push(payload(m).split(':').slice(0, 2).join(':')));
  k0.setRecvDisable(false);
  await waitFor(() => seen.length + row().rxQueued >= 1000, 10000, 'the main socket to take the rest');
  assert.ok(row().rxQueuedBytes < 4096 + 1100);
  stalled.send({ cmd: 'read', n: 1000 });
  const read = await stalled.event('read');
  assert.equal(seen.length + (read.read as number), 1000);
  assertExactlyOnce([...seen, ...stalled.got.map((s) => s.split(':').slice(0, 2).join(':'))], frames.map((_, i) => `s:${i}`));
});

/** A worker that holds `n` unread messages (after reading `readFirst`), with K0 enabled to take moved ones. */
async function backlog(n: number, readFirst: number) {
  const k0 = main();
  k0.setRecvDisable(true);
  const [t0] = await tcpPairs(1);
  k0.attach(t0!.local, { parser: P4 });
  const w = await spawn(k0, 'hold');
  const expected = writeFrames(t0!.remote, 'q', n, 5);
  await waitFor(() => k0.mux.stats().sockets[1]!.rxQueued === n, 10000, 'the backlog to reach the worker');
  if (readFirst > 0) {
    w.send({ cmd: 'read', n: readFirst, exact: true });
    await w.event('read');
  }
  const moved: string[] = [];
  k0.on('message', (m: Buffer) => moved.push(payload(m)));
  k0.setRecvDisable(false);
  return { k0, w, expected, moved };
}

test('setRecvDisable(true) in a worker moves its backlog to the other sockets [D-3, D-7]', async () => {
  const { k0, w, expected, moved } = await backlog(50, 10);
  assert.equal(w.got.length, 10);
  w.send({ cmd: 'disable' });
  const ev = await w.event('disabled');
  assert.equal(ev.disabled, true);
  assert.equal(ev.left, 0, 'nothing left to read in the worker [D-4]');
  await waitFor(() => moved.length >= 40, 10000, 'the backlog to move');
  assertExactlyOnce([...w.got, ...moved], expected);
  assert.deepEqual(moved, expected.slice(10), 'moved in order');
  // Re-enabled, it takes messages again.
  w.send({ cmd: 'enable' });
  await w.event('enabled');
  await waitFor(() => k0.mux.stats().sockets[1]!.rxWait, 5000, 'the worker socket to rejoin the waiters');
});

for (const death of ['exit', 'crash', 'terminate', 'close'] as const) {
  test(`a worker's ${death} moves its unread messages to the other sockets, once [O-6]`, async () => {
    const { k0, w, expected, moved } = await backlog(60, 15);
    if (death === 'terminate') await w.worker.terminate();
    else w.send({ cmd: death === 'exit' ? 'exit' : death, code: 3 });
    await waitFor(() => moved.length >= 45, 10000, 'the unread messages to move');
    if (death !== 'close') await w.exited;
    await new Promise((r) => setTimeout(r, 50));
    assertExactlyOnce([...w.got, ...moved], expected);
    assert.equal(w.got.length, 15, 'the messages the worker read are gone');
    assert.equal(k0.mux.stats().sockets.length, 1, 'the worker socket left the multiplexor');
  });
}

test('sending from workers: every message whole, ordered per socket [O-8, T-11 … T-19]', async () => {
  const k0 = main({ sendBufferSize: 16384 });
  const [t0, t1] = await tcpPairs(2);
  const readers = [new FrameReader(t0!.remote), new FrameReader(t1!.remote)];
  k0.attach(t0!.local, { parser: P4 });
  k0.attach(t1!.local, { parser: P4 });
  const ws: Spawned[] = [];
  for (let i = 0; i < 3; i++) ws.push(await spawn(k0, 'hold'));
  const count = 300;
  ws.forEach((w, i) => w.send({ cmd: 'send', tag: `w${i}`, count, maxSize: 65536, seed: 11 + i }));
  for (const w of ws) await w.event('sent', 0, 30000);
  await waitFor(() => readers[0]!.frames.length + readers[1]!.frames.length >= 3 * count, 30000, 'all frames');
  const seen: string[] = [];
  for (const r of readers) {
    assert.equal(r.partial, 0, 'no partial frame left');
    const last = new Map<string, number>();
    for (const f of r.frames) {
      const body = f.subarray(4);
      const [tag, num] = body.toString('latin1').split(':');
      const i = Number(num);
      const head = `${tag}:${i}:`.length;
      // [T-17] whole and unmixed: the padding is the message's own byte.
      assert.ok(body.subarray(head).every((b) => b === (i & 0xff)), `frame ${tag}:${i} intact`);
      assert.ok((last.get(tag!) ?? -1) < i, `${tag} in order on one transport`);
      last.set(tag!, i);
      seen.push(`${tag}:${i}`);
    }
  }
  const expected = ws.flatMap((_, w) => Array.from({ length: count }, (_, i) => `w${w}:${i}`));
  assertExactlyOnce(seen, expected);
  const rows = k0.mux.stats().sockets;
  for (const r of rows.slice(1)) {
    assert.equal(r.txMsgs, count);
    assert.equal(r.txQueuedBytes, 0);
  }
});

for (const [what, size, burst] of [['large messages', 48 * 1024, 8], ['small messages', 3000, 64]] as const) {
test(`[T-3][T-17] ${what} a worker builds in one reused buffer arrive intact and in order`, async () => {
  const k0 = main();
  const [t0] = await tcpPairs(1);
  const reader = new FrameReader(t0!.remote);
  k0.attach(t0!.local, { parser: P4 });
  const w = await spawn(k0, 'hold');
  const count = 400;
  w.send({ cmd: 'sendScratch', tag: 'big', count, size, burst });
  await w.event('sent', 0, 30000);
  await waitFor(() => reader.frames.length >= count, 30000, 'all frames');
  assert.equal(reader.partial, 0);
  for (let i = 0; i < count; i++) {
    const body = reader.frames[i]!.subarray(4);
    const head = `big:${i}:`;
    assert.equal(body.length, size);
    assert.equal(body.subarray(0, head.length).toString('latin1'), head, `message ${i} in order`);
    assert.ok(body.subarray(head.length).every((b) => b === (i & 0xff)), `message ${i} as it was at the call`);
  }
});
}

test('a worker send waits for sendBufferSize, psock or not [T-7, T-9, T-18]', async () => {
  const k0 = main({ sendBufferSize: 1024 });
  const w = await spawn(k0, 'hold');
  w.send({ cmd: 'trySend', size: 4000, count: 3 });
  const ev = await w.event('trySend');
  assert.deepEqual(ev.trySend, [true, false, false], 'the first is accepted, then the queue is full');
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(w.events.some((e) => 'waitedSend' in e), false, 'send() waits while no psock drains the queue');
  const [t0] = await tcpPairs(1);
  const reader = new FrameReader(t0!.remote);
  k0.attach(t0!.local, { parser: P4 });
  await w.event('waitedSend');
  await waitFor(() => reader.frames.length === 2, 5000, 'both frames');
  assert.deepEqual(reader.frames.map((f) => f.subarray(4, 8).toString('latin1')), ['t:0:', 't:3:']);
});

test('in a worker: instanceof KcmSocket, EOPNOTSUPP for attach/unattach/clone, EBADF after close [O-5]', async () => {
  const k0 = main({ type: 'seqpacket' });
  const w = await spawn(k0, 'hold');
  w.send({ cmd: 'probe' });
  const { probe } = (await w.event('probe')) as { probe: { before: Record<string, unknown>; after: Record<string, unknown> } };
  assert.deepEqual(probe.before, {
    isKcmSocket: true,
    type: 'seqpacket',
    attach: 'EOPNOTSUPP',
    unattach: 'EOPNOTSUPP',
    clone: 'EOPNOTSUPP',
    cloneForWorker: 'EOPNOTSUPP',
    stats: { rxMsgs: 0, rxBytes: 0, txMsgs: 0, txBytes: 0 },
  });
  assert.deepEqual(probe.after, {
    pendingReceive: 'EBADF',
    send: 'EBADF',
    receive: 'EBADF',
    receiveMany: 'EBADF',
    tryReceive: 'EBADF',
    trySend: 'EBADF',
    setRecvDisable: 'EBADF',
    clone: 'EBADF',
  });
  await waitFor(() => k0.mux.stats().sockets.length === 1, 5000, 'the proxy to close');
});

test('adopt() rejects what is not a worker port; cloneForWorker() on a closed socket is EBADF', () => {
  assert.throws(() => KcmSocket.adopt({} as never), { code: 'ERR_INVALID_ARG_TYPE' });
  assert.throws(() => KcmSocket.adopt(undefined as never), { code: 'ERR_INVALID_ARG_TYPE' });
  const k0 = main();
  const k1 = k0.clone();
  k1.close();
  assert.throws(() => k1.cloneForWorker(), { code: 'EBADF' });
  const port = k0.cloneForWorker();
  const s = KcmSocket.adopt(port); // works in the same thread too
  sockets.add(s);
  assert.throws(() => KcmSocket.adopt(port), { code: 'EALREADY' });
  void once;
});
