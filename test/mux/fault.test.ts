/**
 * Transport failures on the transmit side [T-16, T-20, T-21, X-16], unattach of a
 * reserved psock [U-4], close with unsent messages [O-6, X-13], the close/drain/unattach
 * races [B-8, B-17], and the fault test of issue 3: one of four transports killed
 * mid-message while traffic flows, checked from the receiving application [E-4, E-5].
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type * as net from 'node:net';
import { KcmSocket } from '../../src/index.js';
import type { Psock, PsockRef } from '../../src/mux/psock.js';
import { KcmError } from '../../src/errors.js';
import { P4, FrameReader, closeAll, frame, tcpPairs, tcpPair, waitFor, sleep, type TcpPair } from '../helpers/loopback.js';
import { closeMux } from '../helpers/mux.js';
import { RawCollector, checkFrame, errorsOf, rng, settles, skewedSize, tapeFrame, waitStalled } from '../helpers/traffic.js';

after(closeAll);

const BIG = 16 * 1024 * 1024;

function isCode(code: string): (err: unknown) => boolean {
  return (err: unknown) => err instanceof KcmError && err.code === code;
}

type Kill = 'destroy' | 'resetAndDestroy';

function kill(s: net.Socket, how: Kill): void {
  if (how === 'destroy') s.destroy();
  else s.resetAndDestroy();
}

/**
 * K0 with T0 (raw peer paused, so a big message stalls on it) and T1 (raw peer reading).
 * The send buffer defaults to more than the big message, so later sends queue behind it
 * instead of waiting [T-9].
 */
async function stalledRig(sendBufferSize = 64 * 1024 * 1024): Promise<{
  k: KcmSocket; pairs: TcpPair[]; p0: Psock; p1: Psock; c1: RawCollector; big: Buffer; errs0: Error[];
}> {
  const k = KcmSocket.create({ sendBufferSize });
  const pairs = await tcpPairs(2);
  pairs[0]!.remote.pause();
  const c1 = new RawCollector(pairs[1]!.remote);
  const p0 = k.attach(pairs[0]!.local, { parser: P4 });
  const p1 = k.attach(pairs[1]!.local, { parser: P4 });
  const errs0 = errorsOf(p0);
  const big = frame(randomBytes(BIG));
  await k.send(big);
  await waitStalled(p0);
  assert.equal(p0.stats().reservedBy, k.index);
  return { k, pairs, p0, p1, c1, big, errs0 };
}

test('[T-21][E-1] an idle psock whose transport is reset leaves rotation; the next send goes to T1', async (t) => {
  const k = KcmSocket.create();
  t.after(() => closeMux(k));
  const pairs = await tcpPairs(2);
  const readers = pairs.map((p) => new FrameReader(p.remote));
  const p0 = k.attach(pairs[0]!.local, { parser: P4 });
  k.attach(pairs[1]!.local, { parser: P4 });
  const errs0 = errorsOf(p0);
  const muxErrs: [Error, Psock][] = [];
  k.mux.on('psockerror', (err: Error, p: Psock) => muxErrs.push([err, p]));
  pairs[0]!.remote.resetAndDestroy();
  await waitFor(() => errs0.length === 1, 5000, 'the psock error');
  assert.ok(isCode('EPIPE')(errs0[0]), `EPIPE, got ${String(errs0[0])}`);
  assert.equal(muxErrs.length, 1);
  assert.equal(muxErrs[0]![1], p0, "'psockerror' names the psock");
  const m = frame('after the reset');
  await k.send(m);
  await waitFor(() => readers[1]!.frames.length === 1, 5000, 'the message on T1');
  assert.deepEqual(readers[1]!.frames, [m]);
  const s = k.mux.stats();
  assert.equal(s.psocks[0]!.txAborts, 1);
  assert.equal(s.psocks[0]!.txStopped, true);
  assert.equal(s.psocks[0]!.reserved, 0, 'never picked after it failed');
  assert.equal(s.txRetries, 0, 'nothing was in flight on it');
  await sleep(20);
  assert.equal(errs0.length, 1, "'error' is emitted once");
});

test('[T-16][T-21] a send that picks a reset transport is restarted whole on T1, unseen by the sender', async (t) => {
  const k = KcmSocket.create();
  t.after(() => closeMux(k));
  const pairs = await tcpPairs(2);
  const r1 = new FrameReader(pairs[1]!.remote);
  const p0 = k.attach(pairs[0]!.local, { parser: P4 });
  k.attach(pairs[1]!.local, { parser: P4 });
  const errs0 = errorsOf(p0);
  // The peer resets T0; in the same tick, before the transport can report it, a send picks T0.
  pairs[0]!.remote.resetAndDestroy();
  const m = frame(randomBytes(1000));
  await k.send(m);
  assert.equal(p0.stats().reserved, 1, 'the send picked T0 (the head of the available list)');
  await waitFor(() => r1.frames.length === 1, 5000, 'the retried message on T1');
  assert.deepEqual(r1.frames, [m]);
  await waitFor(() => errs0.length === 1, 5000, 'the psock error');
  assert.ok(isCode('EPIPE')(errs0[0]));
  const s = k.mux.stats();
  assert.equal(s.txRetries, 1, 'the failed write is counted as one retry');
  assert.equal(s.psocks[0]!.txAborts, 1);
  assert.equal(s.psocks[1]!.txMsgs, 1);
});

for (const how of ['resetAndDestroy', 'destroy'] as const) {
  test(`[T-16][T-20][X-16] a message stalled on T0 restarts whole on T1 when the peer calls ${how}()`, async (t) => {
    const { k, pairs, c1, big, errs0 } = await stalledRig();
    t.after(() => closeMux(k));
    const behind = frame('behind the big one');
    await k.send(behind);
    kill(pairs[0]!.remote, how);
    await waitFor(() => c1.bytes >= big.length + behind.length, 60000, 'the restarted messages on T1');
    const got = c1.frames();
    assert.equal(got.partial, 0);
    assert.equal(got.frames.length, 2);
    assert.ok(got.frames[0]!.equals(big), 'restarted from byte 0, intact');
    assert.deepEqual(got.frames[1], behind, 'the message queued behind it follows');
    await waitFor(() => errs0.length >= 1, 5000, 'the psock error');
    assert.equal(errs0.length, 1);
    assert.ok(isCode('EPIPE')(errs0[0]), `EPIPE, got ${String(errs0[0])}`);
    const s = k.mux.stats();
    assert.equal(s.psocks[0]!.txAborts, 1);
    assert.equal(s.txRetries, 1);
    assert.equal(s.psocks[0]!.txMsgs, 0);
    assert.equal(s.psocks[1]!.txMsgs, 2);
    assert.equal(s.txMsgs, 2, 'the aborted attempt is not a message sent');
  });
}

test('[U-4][T-16][ST-3][B-22][E-2] unattach while a message is stalled: it arrives whole on T1 (spec §12-13, §12-56)', async (t) => {
  const { k, pairs, p0, c1, big, errs0 } = await stalledRig();
  t.after(() => closeMux(k));
  k.unattach(pairs[0]!.local);
  await waitFor(() => c1.bytes >= big.length, 60000, 'the restarted message on T1');
  const got = c1.frames();
  assert.equal(got.partial, 0);
  assert.equal(got.frames.length, 1);
  assert.ok(got.frames[0]!.equals(big));
  await sleep(20);
  assert.deepEqual(errs0, [], 'a psock the application unattached emits nothing');
  assert.equal(p0.stats().txAborts, 1);
  // [U-5] the transport is left open and paused.
  assert.equal(pairs[0]!.local.destroyed, false);
  assert.equal(pairs[0]!.local.isPaused(), true);
  let s = k.mux.stats();
  assert.equal(s.psockUnattachRsvd, 1);
  assert.equal(s.psockUnattach, 1);
  assert.ok(s.txRetries >= 1, `txRetries ${s.txRetries}`);
  assert.equal(s.txRetries, 1);
  await waitFor(() => k.mux.psocks[0]!.stats().reservedBy === -1, 5000, 'the release of T1');
  k.unattach(pairs[1]!.local);
  s = k.mux.stats();
  assert.equal(s.psockAttach, 2);
  assert.equal(s.psockUnattach, 2, 'every unattach counts');
  assert.equal(s.psockUnattachRsvd, 1, 'only the reserved one counts here');
  assert.equal(s.txMsgs, 1);
  assert.equal(s.txBytes, p0.stats().txBytes + big.length, '[ST-2] bytes of the aborted attempt stay counted');
});

test('[O-6][X-13][E-2] close with messages queued on a write-blocked transport (spec §12-27)', async (t) => {
  const { k, pairs, p0, c1, errs0 } = await stalledRig(1024 * 1024);
  const k1 = k.clone();
  t.after(() => closeMux(k1));
  const pending = [k.send(frame('waits 1')), k.send(frame('waits 2'))];
  assert.equal(await settles(pending[0]!), false, 'the send queue is full');
  k.close();
  for (const p of pending) await assert.rejects(p, isCode('EBADF'));
  await waitFor(() => errs0.length === 1, 5000, 'the psock error');
  assert.ok(isCode('EPIPE')(errs0[0]));
  const ps = p0.stats();
  assert.equal(ps.txAborts, 1);
  assert.equal(ps.txStopped, true);
  assert.equal(ps.reservedBy, -1);
  const msgs = [frame('clone 1'), frame('clone 2'), frame('clone 3')];
  for (const m of msgs) await k1.send(m);
  await waitFor(() => c1.bytes === msgs.reduce((a, m) => a + m.length, 0), 5000, "the clone's messages on T1");
  assert.deepEqual(c1.frames().frames, msgs, 'T0 never returns to rotation; nothing of the closed socket is sent');
  assert.equal(p0.stats().reserved, 1);
  void pairs;
});

const raceOrders = ['close, drain, unattach', 'unattach, close, drain', 'close+unattach, drain'] as const;
for (const order of raceOrders) {
  test(`[B-8][B-17] close while drain and unattach race (${order}): nothing reaches the closed socket (spec §12-61)`, async (t) => {
    const k0 = KcmSocket.create();
    const k1 = k0.clone();
    t.after(() => closeMux(k1));
    const { local, remote } = await tcpPair();
    remote.pause();
    const c0 = new RawCollector(remote);
    const p0 = k0.attach(local, { parser: P4 });
    const errs0 = errorsOf(p0);
    await k0.send(frame(randomBytes(BIG)));
    await waitStalled(p0);
    const calls: string[] = [];
    const spy = (name: string) => () => { calls.push(name); };
    const arm = (): void => {
      const target = k0 as unknown as Record<string, unknown>;
      for (const name of ['txWork', 'rxFlush', 'txRequeue']) target[name] = spy(name);
      k0.emit = ((event: string) => { calls.push(`emit ${event}`); return false; }) as typeof k0.emit;
    };
    if (order === 'close, drain, unattach') {
      k0.close();
      arm();
      remote.resume();
      await waitFor(() => local.writableLength === 0, 30000, 'the drain');
      await sleep(20);
      k1.unattach(local);
    } else if (order === 'unattach, close, drain') {
      k0.unattach(local);
      k0.close();
      arm();
      remote.resume();
      await waitFor(() => local.writableLength === 0, 30000, 'the drain');
    } else {
      k0.close();
      arm();
      k1.unattach(local);
      remote.resume();
      await waitFor(() => local.writableLength === 0, 30000, 'the drain');
    }
    await sleep(20);
    assert.deepEqual(calls, [], 'no transmit work, delivery or event on the closed socket');
    if (order === 'unattach, close, drain') {
      assert.deepEqual(errs0, [], 'unattached by the application first: it emits nothing');
    } else {
      assert.equal(errs0.length, 1);
      assert.ok(isCode('EPIPE')(errs0[0]));
    }
    const s = k1.mux.stats();
    assert.equal(s.psockAttach, 1);
    assert.equal(s.psockUnattach, 1);
    assert.equal(s.psockUnattachRsvd, order === 'unattach, close, drain' ? 1 : 0);
    assert.equal(s.txRetries, order === 'unattach, close, drain' ? 1 : 0);
    assert.equal(s.psocks.length, 0);
    assert.equal(p0.stats().txAborts, 1);
    assert.deepEqual(s.sockets.map((x) => x.index), [1]);
    // The surviving clone still sends; nothing of the closed socket follows its message.
    const t1 = await tcpPair();
    const r1 = new FrameReader(t1.remote);
    k1.attach(t1.local, { parser: P4 });
    const m = frame('from the clone');
    await k1.send(m);
    await waitFor(() => r1.frames.length === 1, 5000, "the clone's message");
    await sleep(20);
    assert.deepEqual(r1.frames, [m]);
    assert.equal(r1.partial, 0);
    void c0;
  });
}

for (const how of ['destroy', 'resetAndDestroy'] as const) {
  test(`[E-4][E-5][T-16][X-16] fault: one of 4 transports killed mid-message (${how}) while traffic flows`, async (t) => {
    const seed = 0x5eed + (how === 'destroy' ? 1 : 2);
    const r = rng(seed);
    const client = KcmSocket.create();
    const server = KcmSocket.create();
    const clients = [client, client.clone(), client.clone(), client.clone()];
    const servers = [server, server.clone(), server.clone(), server.clone()];
    t.after(() => { closeMux(client); closeMux(server); });
    const pairs = await tcpPairs(4);
    const cps = pairs.map((p) => client.attach(p.local, { parser: P4 }));
    const sps = pairs.map((p) => server.attach(p.remote, { parser: P4 }));

    // The receiving application.
    const received = new Map<string, number>();
    const damaged: string[] = [];
    let count = 0;
    for (const s of servers) {
      s.on('message', (m: Buffer) => {
        count++;
        try {
          const { src, seq } = checkFrame(m);
          const key = `${src}/${seq}`;
          received.set(key, (received.get(key) ?? 0) + 1);
        } catch (err) {
          damaged.push((err as Error).message);
        }
      });
    }
    const serverErrs: Psock[] = [];
    server.mux.on('psockerror', (_err: Error, p: Psock) => {
      serverErrs.push(p);
      server.unattach(p.transport); // [E-4]
    });

    // [E-4] the application's duty: unattach the failed psock and close its transport.
    const victim = cps[0]!;
    const clientErrs: Error[] = [];
    const firstAfter: number[] = [-1, -1, -1, -1];
    const sent = [0, 0, 0, 0];
    victim.on('error', (err: Error) => {
      clientErrs.push(err);
      for (let i = 0; i < 4; i++) firstAfter[i] = sent[i]!;
      client.unattach(victim.transport);
      victim.transport.destroy();
    });

    const PER_SOCKET = 400;
    const sizes = clients.map(() => Array.from({ length: PER_SOCKET }, () => 1024 + skewedSize(r) * 2));
    let killed = false;
    const senders = clients.map(async (k, i) => {
      for (let seq = 0; seq < PER_SOCKET; seq++) {
        await k.send(tapeFrame(i, seq, Math.min(sizes[i]![seq]!, 500 * 1024)));
        sent[i] = seq + 1;
        if (seq % 8 === 0) await new Promise((res) => setImmediate(res));
      }
    });

    // Kill T0 from the peer's side at the end of a receive burst that left part of a
    // message in its parser: the psock's own 'data' listener ran first.
    let killedWith = 0;
    pairs[0]!.remote.on('data', () => {
      const partial = sps[0]!.stats().rxPartialBytes;
      if (killed || count < 100 || partial === 0) return;
      killed = true;
      killedWith = partial;
      kill(pairs[0]!.remote, how);
    });
    await Promise.all(senders);
    assert.ok(killed, 'T0 was killed while its receiver held part of a message');
    assert.ok(killedWith > 0);
    await waitFor(() => clientErrs.length === 1, 10000, 'the client psock error');
    assert.ok(isCode('EPIPE')(clientErrs[0]), `EPIPE, got ${String(clientErrs[0])}`);

    // Every message queued after the failure arrives, exactly once, intact.
    const must: string[] = [];
    for (let i = 0; i < 4; i++) for (let seq = firstAfter[i]!; seq < PER_SOCKET; seq++) must.push(`${i}/${seq}`);
    await waitFor(() => must.every((key) => received.has(key)), 30000, 'every message sent after the failure');
    await sleep(50);
    assert.deepEqual(damaged, [], 'no corrupted message reached the application');
    const dups = [...received].filter(([, n]) => n > 1).map(([key]) => key);
    assert.deepEqual(dups, [], 'no message delivered twice');
    assert.ok(must.length > 0);
    const lost = 4 * PER_SOCKET - received.size;
    t.diagnostic(`seed ${seed}: ${received.size} delivered, ${lost} lost on the killed transport before the failure was seen, ${must.length} sent after it`);

    const cs = client.mux.stats();
    assert.equal(cs.psockUnattach, 1);
    assert.equal(cs.psocks.length, 3);
    assert.equal(victim.stats().txAborts, 1);
    assert.equal(victim.stats().txStopped, true);
    assert.deepEqual(cs.sockets.map((s) => s.txQueued), [0, 0, 0, 0], 'every queued message was handed to a transport');
    assert.ok(cs.txMsgs >= 4 * PER_SOCKET, `mux txMsgs ${cs.txMsgs}`);
    assert.deepEqual(serverErrs, [sps[0]], 'the server side of T0 failed too, and only it');
    assert.equal(server.mux.stats().psockUnattach, 1);
  });
}

for (const how of ['destroy', 'resetAndDestroy'] as const) {
  test(`[K-6][E-4][T-16] a client killed (${how}) while replies pinned to it wait: they are dropped and counted, the other clients get theirs exactly once`, async (t) => {
    const server = KcmSocket.create({ sendBufferSize: 64 * 1024 * 1024 });
    const ss = [server, server.clone(), server.clone(), server.clone()];
    const clients = [1, 2, 3].map(() => KcmSocket.create());
    t.after(() => { closeMux(server); for (const c of clients) closeMux(c); });
    const pairs = await tcpPairs(4);
    // Connection 0: a raw client that sends requests whose replies are 1 MiB and reads nothing.
    const sps = pairs.map((p) => server.attach(p.remote, { parser: P4 }));
    pairs.slice(1).forEach((p, i) => clients[i]!.attach(p.local, { parser: P4 }));
    const serverErrs: Psock[] = [];
    server.mux.on('psockerror', (_err: Error, p: Psock) => {
      serverErrs.push(p);
      server.unattach(p.transport); // [E-4]
    });
    const big = randomBytes(1024 * 1024);
    ss.forEach((s) => s.on('message', (m: Buffer, from: PsockRef) => {
      const reply = from === sps[0] ? frame(big) : m;
      s.send(reply, { psock: from }).catch(() => {});
    }));
    pairs[0]!.local.pause();
    for (let i = 0; i < 40; i++) pairs[0]!.local.write(frame(`rude-${i}`));
    await waitFor(() => sps[0]!.stats().txPinnedQueued > 0 && sps[0]!.stats().txStalled, 10000, 'the replies to connection 0 stalled');
    // The others talk while it stalls, and after it dies.
    const PER = 200;
    const got = clients.map(() => [] as string[]);
    clients.forEach((c, i) => c.on('message', (m: Buffer) => got[i]!.push(m.subarray(4).toString())));
    const sending = clients.map(async (c, i) => {
      for (let n = 0; n < PER; n++) {
        await c.send(frame(`c${i}-${n}`));
        if (n === PER / 2 && i === 0) kill(pairs[0]!.local, how); // mid-stream
        if (n % 16 === 0) await new Promise((res) => setImmediate(res));
      }
    });
    await Promise.all(sending);
    await waitFor(() => got.every((g) => g.length >= PER), 30000, 'every echo of the other clients');
    await waitFor(() => serverErrs.length === 1, 10000, 'the server saw the rude client go');
    await sleep(30);
    got.forEach((g, i) => assert.deepEqual(g, Array.from({ length: PER }, (_, n) => `c${i}-${n}`), `client ${i}: its own echoes, once, in order`));
    const s = server.mux.stats();
    const p0 = s.psocks.find((p) => p.index === sps[0]!.index);
    assert.equal(p0, undefined, 'unattached');
    assert.ok(s.txDropped > 0, `the pending replies were dropped and counted (${s.txDropped})`);
    assert.equal(s.txDropped, s.sockets.reduce((n, k) => n + k.txDropped, 0), 'per socket too');
    assert.equal(s.txRetries, 0, '[K-6] no reply went to another connection');
    assert.equal(s.psocks.reduce((n, p) => n + p.txPinnedMsgs, 0), 3 * PER, 'the other connections carried exactly their echoes');
  });
}
