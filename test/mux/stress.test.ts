/**
 * Bounded stress tests of the multiplexor over loopback TCP: 4 KCM sockets on each of two
 * multiplexors joined by 4 connections, traffic both ways with random sizes; atomicity
 * under backpressure [T-17]; and a raw peer writing frames in random chunk splits. Every
 * message must arrive exactly once, intact, in per-socket order on each connection, and
 * the counters must add up [ST-1 … ST-3].
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { KcmSocket } from '../../src/index.js';
import type { MuxStats } from '../../src/mux/multiplexor.js';
import type { PsockRef } from '../../src/mux/psock.js';
import { closeAll, sleep, tcpPairs, waitFor } from '../helpers/loopback.js';
import { closeMux } from '../helpers/mux.js';
import { HEADER, RawCollector, checkFrame, loggingParser, rng, skewedSize, tapeFrame, tapeFrameBuffer, type ParseRecord } from '../helpers/traffic.js';

after(closeAll);

function sum(list: number[]): number {
  return list.reduce((a, n) => a + n, 0);
}

/** A receiving side: every message checked, counted once per (src, seq), arrival order kept per socket. */
class Sink {
  readonly seen = new Map<string, number>();
  readonly damaged: string[] = [];
  readonly arrivals: { src: number; seq: number }[][];
  bytes = 0;
  count = 0;

  constructor(sockets: KcmSocket[]) {
    this.arrivals = sockets.map(() => []);
    sockets.forEach((s, i) => s.on('message', (m: Buffer) => this.take(i, m)));
  }

  private take(socket: number, m: Buffer): void {
    this.count++;
    this.bytes += m.length;
    try {
      const id = checkFrame(m);
      const key = `${id.src}/${id.seq}`;
      this.seen.set(key, (this.seen.get(key) ?? 0) + 1);
      this.arrivals[socket]!.push(id);
    } catch (err) {
      this.damaged.push((err as Error).message);
    }
  }

  /** Asserts exactly-once delivery of `expected` keys, and order per (connection, source) in each socket. */
  check(expected: Set<string>, log: ParseRecord[]): void {
    assert.deepEqual(this.damaged, [], 'no damaged message');
    const dups = [...this.seen].filter(([, n]) => n > 1).map(([k]) => k);
    assert.deepEqual(dups, [], 'no message twice');
    const missing = [...expected].filter((k) => !this.seen.has(k));
    assert.deepEqual(missing.slice(0, 10), [], `${missing.length} messages missing`);
    assert.equal(this.seen.size, expected.size);
    // Which connection framed each message, and the order of each source on it [T-17].
    const conn = new Map<string, number>();
    const lastOnConn = new Map<string, number>();
    for (const r of log) {
      const key = `${r.src}/${r.seq}`;
      assert.equal(conn.has(key), false, `${key} framed twice`);
      conn.set(key, r.conn);
      const lane = `${r.conn}:${r.src}`;
      const last = lastOnConn.get(lane) ?? -1;
      assert.ok(r.seq > last, `[T-17] source ${r.src} out of order on connection ${r.conn}: ${r.seq} after ${last}`);
      lastOnConn.set(lane, r.seq);
    }
    // [S-2] a socket receives each connection's messages in the order they were framed.
    this.arrivals.forEach((list, socket) => {
      const last = new Map<string, number>();
      for (const { src, seq } of list) {
        const lane = `${conn.get(`${src}/${seq}`)}:${src}`;
        const prev = last.get(lane) ?? -1;
        assert.ok(seq > prev, `socket ${socket} got ${src}/${seq} after ${src}/${prev} from one connection`);
        last.set(lane, seq);
      }
    });
  }
}

/** Sends `count` frames from source `src` on `k`, mixing single sends, sendMany bursts and two-call messages. */
async function sendAll(k: KcmSocket, src: number, count: number, r: () => number, sizes: number[]): Promise<number> {
  let bytes = 0;
  let seq = 0;
  while (seq < count) {
    const x = r();
    if (x < 0.1) {
      const n = Math.min(count - seq, 1 + ((r() * 5) | 0));
      const batch = [];
      for (let i = 0; i < n; i++, seq++) {
        batch.push(tapeFrame(src, seq, sizes[seq]!));
        bytes += HEADER + sizes[seq]!;
      }
      await k.sendMany(batch);
    } else if (x < 0.2) {
      const [header, body] = tapeFrame(src, seq, sizes[seq]!);
      await k.send(header, { eor: false });
      await k.send(body);
      bytes += HEADER + sizes[seq]!;
      seq++;
    } else {
      await k.send(tapeFrame(src, seq, sizes[seq]!));
      bytes += HEADER + sizes[seq]!;
      seq++;
    }
    if (seq % 16 === 0) await new Promise((res) => setImmediate(res));
  }
  return bytes;
}

/** Mux totals = sum of psocks = sum of sockets = what was sent and received. */
function checkStats(s: MuxStats, tx: { msgs: number; bytes: number }, rx: { msgs: number; bytes: number }, what: string): void {
  assert.equal(s.txMsgs, tx.msgs, `${what} txMsgs`);
  assert.equal(s.txBytes, tx.bytes, `${what} txBytes`);
  assert.equal(sum(s.psocks.map((p) => p.txMsgs)), tx.msgs, `${what} psock txMsgs`);
  assert.equal(sum(s.psocks.map((p) => p.txBytes)), tx.bytes, `${what} psock txBytes`);
  assert.equal(sum(s.sockets.map((k) => k.txMsgs)), tx.msgs, `${what} socket txMsgs`);
  assert.equal(sum(s.sockets.map((k) => k.txBytes)), tx.bytes, `${what} socket txBytes`);
  assert.equal(s.rxMsgs, rx.msgs, `${what} rxMsgs`);
  assert.equal(s.rxBytes, rx.bytes, `${what} rxBytes`);
  assert.equal(sum(s.psocks.map((p) => p.rxMsgs)), rx.msgs, `${what} psock rxMsgs`);
  assert.equal(sum(s.sockets.map((k) => k.rxMsgs)), rx.msgs, `${what} socket rxMsgs`);
  assert.equal(sum(s.sockets.map((k) => k.rxBytes)), rx.bytes, `${what} socket rxBytes`);
  assert.equal(s.txRetries, 0, `${what} txRetries`);
  assert.equal(sum(s.psocks.map((p) => p.reserved)), sum(s.psocks.map((p) => p.unreserved)), `${what} every reservation released`);
  assert.equal(s.rxReadyDrops, 0);
}

test('[T-17][S-2][ST-3] stress: 4 KCM sockets x 4 connections, both directions, 1 B - 256 KiB', async (t) => {
  const seed = Number(process.env.KCM_STRESS_SEED ?? 0x4b434d);
  const PER = 400;
  const r = rng(seed);
  t.diagnostic(`seed ${seed} (KCM_STRESS_SEED replays it)`);
  const client = KcmSocket.create();
  const server = KcmSocket.create();
  const cs = [client, client.clone(), client.clone(), client.clone()];
  const ss = [server, server.clone(), server.clone(), server.clone()];
  t.after(() => { closeMux(client); closeMux(server); });
  const pairs = await tcpPairs(4);
  const clientLog: ParseRecord[] = [];
  const serverLog: ParseRecord[] = [];
  pairs.forEach((p, i) => {
    client.attach(p.local, { parser: loggingParser(i, clientLog) });
    server.attach(p.remote, { parser: loggingParser(i, serverLog) });
  });
  const atServer = new Sink(ss);
  const atClient = new Sink(cs);
  const senders = [...cs, ...ss];
  const sizes = senders.map(() => Array.from({ length: PER }, () => Math.max(0, skewedSize(r) - HEADER + 1)));
  const bytes = await Promise.all(senders.map((k, src) => sendAll(k, src, PER, rng(seed + src + 1), sizes[src]!)));
  const total = 4 * PER;
  await waitFor(() => atServer.count >= total && atClient.count >= total, 60000, 'every message');
  const key = (src: number) => Array.from({ length: PER }, (_, seq) => `${src}/${seq}`);
  atServer.check(new Set([0, 1, 2, 3].flatMap(key)), serverLog);
  atClient.check(new Set([4, 5, 6, 7].flatMap(key)), clientLog);
  const up = { msgs: total, bytes: sum(bytes.slice(0, 4)) };
  const down = { msgs: total, bytes: sum(bytes.slice(4)) };
  assert.equal(atServer.bytes, up.bytes);
  assert.equal(atClient.bytes, down.bytes);
  await waitFor(() => client.mux.stats().psocks.every((p) => p.reservedBy === -1), 5000, 'the releases');
  checkStats(client.mux.stats(), up, down, 'client');
  checkStats(server.mux.stats(), down, up, 'server');
  // Traffic was spread: every connection carried messages both ways.
  for (let conn = 0; conn < 4; conn++) {
    assert.ok(serverLog.some((x) => x.conn === conn), `connection ${conn} carried client messages`);
    assert.ok(clientLog.some((x) => x.conn === conn), `connection ${conn} carried server messages`);
  }
});

test('[T-17][T-12] atomicity under backpressure: 4 sockets x 200 messages over 2 slow-reading peers (spec §12-24)', async (t) => {
  const seed = 0x17a;
  const r = rng(seed);
  const k = KcmSocket.create();
  const ks = [k, k.clone(), k.clone(), k.clone()];
  t.after(() => closeMux(k));
  const pairs = await tcpPairs(2);
  const collectors = pairs.map((p) => new RawCollector(p.remote));
  for (const p of pairs) k.attach(p.local, { parser: loggingParser(0, []) });
  // The peers read in fits and starts, so the transports keep stalling mid-message.
  let ticks = 0;
  const flapper = setInterval(() => {
    ticks++;
    for (const p of pairs) {
      if (r() < 0.5) p.remote.pause();
      else p.remote.resume();
    }
  }, 3);
  t.after(() => clearInterval(flapper));
  const PER = 200;
  const sizes = ks.map(() => Array.from({ length: PER }, () => (r() < 0.1 ? (r() * 256 * 1024) | 0 : (r() * 4096) | 0)));
  const expectBytes = sum(ks.map((_, src) => sum(sizes[src]!.map((n) => n + HEADER))));
  await Promise.all(ks.map((s, src) => sendAll(s, src, PER, rng(seed + src), sizes[src]!)));
  clearInterval(flapper);
  for (const p of pairs) p.remote.resume();
  await waitFor(() => sum(collectors.map((c) => c.bytes)) === expectBytes, 30000, 'every byte');
  assert.ok(ticks > 0, 'the peers flapped while the messages were sent');
  const seen = new Set<string>();
  collectors.forEach((c, conn) => {
    const { frames, partial } = c.frames();
    assert.equal(partial, 0, `transport ${conn} ends on a frame boundary`);
    const last = [-1, -1, -1, -1];
    for (const f of frames) {
      const { src, seq } = checkFrame(f); // throws on any interleaving or damage
      assert.ok(seq > last[src]!, `socket ${src} out of order on transport ${conn}`);
      last[src] = seq;
      assert.equal(seen.has(`${src}/${seq}`), false);
      seen.add(`${src}/${seq}`);
    }
  });
  assert.equal(seen.size, 4 * PER);
  assert.ok(k.mux.stats().psocks.every((p) => p.txMsgs > 0), 'both transports were used');
});

test('[P-2][S-2][ST-2] a raw peer writing frames in random chunk splits: each message once, intact, in order', async (t) => {
  const seed = 0xc4f;
  const r = rng(seed);
  const k = KcmSocket.create();
  const ks = [k, k.clone(), k.clone(), k.clone()];
  t.after(() => closeMux(k));
  const pairs = await tcpPairs(4);
  const log: ParseRecord[] = [];
  pairs.forEach((p, i) => k.attach(p.remote, { parser: loggingParser(i, log) }));
  const sink = new Sink(ks);
  const PER = 300;
  let totalBytes = 0;
  const writers = pairs.map(async (p, conn) => {
    const stream = Buffer.concat(Array.from({ length: PER }, (_, seq) => tapeFrameBuffer(100 + conn, seq, skewedSize(r))));
    totalBytes += stream.length;
    const cr = rng(seed + conn);
    let at = 0;
    while (at < stream.length) {
      const x = cr();
      const n = x < 0.3 ? 1 + ((cr() * 16) | 0) : x < 0.7 ? 17 + ((cr() * 2048) | 0) : 2049 + ((cr() * 63 * 1024) | 0);
      const chunk = stream.subarray(at, at + n);
      at += chunk.length;
      if (!p.local.write(chunk)) await once(p.local, 'drain');
      else if (cr() < 0.3) await new Promise((res) => setImmediate(res));
    }
  });
  await Promise.all(writers);
  await waitFor(() => sink.count >= 4 * PER, 60000, 'every message');
  const expected = new Set(pairs.flatMap((_, conn) => Array.from({ length: PER }, (_, seq) => `${100 + conn}/${seq}`)));
  sink.check(expected, log);
  const s = k.mux.stats();
  assert.equal(s.rxMsgs, 4 * PER);
  assert.equal(s.rxBytes, totalBytes, '[B-22] rxBytes equals the stream bytes consumed');
  assert.equal(sum(s.psocks.map((p) => p.rxBytes)), totalBytes);
  assert.equal(sum(s.sockets.map((x) => x.rxMsgs)), 4 * PER);
  assert.equal(sink.bytes, totalBytes);
  assert.ok(sum(s.psocks.map((p) => p.rxNeedMoreHdr)) > 0, 'headers were split across chunks');
});

test('[K-3][K-4][T-17][S-2] stress with replies pinned to their origin: 4 independent clients, 4 server sockets, pinned and unpinned mixed', async (t) => {
  const seed = Number(process.env.KCM_STRESS_SEED ?? 0x4b434e);
  const PER = 300;
  const r = rng(seed);
  t.diagnostic(`seed ${seed} (KCM_STRESS_SEED replays it)`);
  const server = KcmSocket.create();
  const ss = [server, server.clone(), server.clone(), server.clone()];
  const clients = [0, 1, 2, 3].map(() => KcmSocket.create());
  t.after(() => { closeMux(server); for (const c of clients) closeMux(c); });
  const pairs = await tcpPairs(4);
  const serverLog: ParseRecord[] = [];
  const clientLogs: ParseRecord[][] = clients.map(() => []);
  pairs.forEach((p, i) => {
    clients[i]!.attach(p.local, { parser: loggingParser(i, clientLogs[i]!) });
    server.attach(p.remote, { parser: loggingParser(i, serverLog) });
  });
  // Each server socket echoes every request pinned to its origin, and every 4th time also
  // sends a message of its own, unpinned (round-robin over the 4 clients).
  const unpinnedSeq = [0, 0, 0, 0];
  const serverErrors: string[] = [];
  ss.forEach((s, i) => s.on('message', (m: Buffer, from: PsockRef) => {
    s.send(m, { psock: from }).catch((err: Error) => serverErrors.push(err.message));
    if (m.readUInt32BE(8) % 4 === i) {
      const seq = unpinnedSeq[i]!++;
      s.send(tapeFrame(100 + i, seq, (seq * 37) % 3000)).catch((err: Error) => serverErrors.push(err.message));
    }
  }));
  const own = clients.map(() => [] as number[]);
  const foreign: string[] = [];
  const unpinned = new Map<string, number>();
  const damaged: string[] = [];
  let total = 0;
  clients.forEach((c, i) => c.on('message', (m: Buffer) => {
    total++;
    let id: { src: number; seq: number };
    try {
      id = checkFrame(m);
    } catch (err) {
      damaged.push((err as Error).message);
      return;
    }
    if (id.src >= 100) unpinned.set(`${id.src}/${id.seq}`, (unpinned.get(`${id.src}/${id.seq}`) ?? 0) + 1);
    else if (id.src === i) own[i]!.push(id.seq);
    else foreign.push(`${id.src}/${id.seq} at client ${i}`);
  }));
  const sizes = clients.map(() => Array.from({ length: PER }, () => Math.max(0, skewedSize(r) - HEADER + 1)));
  await Promise.all(clients.map((c, src) => sendAll(c, src, PER, rng(seed + src + 1), sizes[src]!)));
  await waitFor(() => own.every((l) => l.length >= PER), 60000, 'every echo');
  const expectUnpinned = (): number => unpinnedSeq.reduce((a, n) => a + n, 0);
  await waitFor(() => unpinned.size >= expectUnpinned(), 30000, 'every unpinned message');
  await sleep(20);
  assert.deepEqual(damaged, [], 'no damaged message');
  assert.deepEqual(foreign.slice(0, 5), [], 'no client got another client\'s echo');
  assert.deepEqual(serverErrors, []);
  own.forEach((list, i) => assert.deepEqual(list, Array.from({ length: PER }, (_, n) => n), `[K-3] client ${i}: each echo once, in order`));
  assert.equal(unpinned.size, expectUnpinned(), 'every unpinned message arrived');
  assert.ok([...unpinned.values()].every((n) => n === 1), 'each unpinned message once');
  assert.equal(total, 4 * PER + expectUnpinned());
  const s = server.mux.stats();
  assert.equal(s.txDropped, 0);
  assert.equal(s.txRetries, 0);
  assert.equal(sum(s.psocks.map((p) => p.txPinnedMsgs)), 4 * PER, 'every echo was pinned');
  assert.equal(s.txMsgs, 4 * PER + expectUnpinned());
  assert.ok(s.psocks.every((p) => p.txMsgs > p.txPinnedMsgs), '[T-13] unpinned messages went over every connection too');
  await waitFor(() => server.mux.stats().psocks.every((p) => p.reservedBy === -1 && p.txPinnedQueued === 0), 5000, 'the releases');
  const after = server.mux.stats();
  assert.equal(sum(after.psocks.map((p) => p.reserved)), sum(after.psocks.map((p) => p.unreserved)), 'every reservation released');
});
