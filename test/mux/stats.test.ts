import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { KcmSocket } from '../../src/index.js';
import { Multiplexor } from '../../src/mux/multiplexor.js';
import { formatKcmTable } from '../../src/mux/kcm-table.js';
import { P4, closeAll, frame, sleep, tcpPair, tcpPairs, waitFor } from '../helpers/loopback.js';
import { errorsOf, numbered, numberOf, numberedRun, receiveN } from '../helpers/mux.js';

after(closeAll);

test('[ST-1] socket receive counters: messages and bytes read, counting a truncated dgram read as one message', async () => {
  const { local, remote } = await tcpPair();
  const k = KcmSocket.create();
  try {
    k.attach(local, { parser: P4 });
    assert.deepEqual(k.stats(), { rxMsgs: 0, rxBytes: 0, txMsgs: 0, txBytes: 0 });
    remote.write(Buffer.concat([numbered(0, 10), numbered(1, 20), numbered(2, 30), numbered(3, 96)]));
    await receiveN(k, 1); // 14 bytes
    await waitFor(() => k.mux.stats().sockets[0]!.rxQueued === 3, 5000, 'the rest queued');
    assert.deepEqual(k.stats(), { rxMsgs: 1, rxBytes: 14, txMsgs: 0, txBytes: 0 }, 'queued messages are not counted until read');
    await k.receiveMany(2); // 24 + 34
    const r = await k.receiveInto(Buffer.alloc(10)); // 10 of 100
    assert.equal(r.truncated, true);
    assert.deepEqual(k.stats(), { rxMsgs: 4, rxBytes: 14 + 24 + 34 + 10, txMsgs: 0, txBytes: 0 });
  } finally {
    k.close();
  }
});

test('[ST-2][B-22] psock receive counters: rxBytes is exactly the stream bytes consumed, also for split messages', async () => {
  const { local, remote } = await tcpPair();
  const k = KcmSocket.create();
  try {
    const psock = k.attach(local, { parser: P4 });
    const f = numbered(5, 996); // 1000 bytes
    const cuts = [2, 500, 1000]; // header split, body split
    let from = 0;
    for (const to of cuts) {
      remote.write(f.subarray(from, to));
      await waitFor(() => psock.stats().rxBytes === to, 5000, `${to} bytes consumed`);
      from = to;
    }
    assert.equal(numberOf((await receiveN(k, 1))[0]!), 5);
    remote.write(numberedRun(0, 3, 16)); // 60 bytes in one burst
    await receiveN(k, 3);
    const s = psock.stats();
    assert.equal(s.rxMsgs, 4);
    assert.equal(s.rxBytes, 1060, 'never double counted');
    assert.equal(s.rxNeedMoreHdr, 1, 'one parse call returned 0 (the 2-byte header piece)');
    assert.equal(s.rxMsgTooBig + s.rxMsgTimeouts + s.rxBadHdrLen + s.rxMemFail, 0);
    assert.equal(s.rxPartialBytes, 0);
    const m = k.mux.stats();
    assert.equal(m.rxMsgs, 4);
    assert.equal(m.rxBytes, 1060);
  } finally {
    k.close();
  }
});

test('[ST-3][ST-4] mux receive totals are exact (no lag) and keep the counts of unattached psocks', async () => {
  const [t0, t1] = await tcpPairs(2);
  const k0 = KcmSocket.create();
  const k1 = k0.clone();
  try {
    const p0 = k0.attach(t0!.local, { parser: P4 });
    const p1 = k0.attach(t1!.local, { parser: P4 });
    t0!.remote.write(numberedRun(0, 4)); // 4 x 12
    t1!.remote.write(numberedRun(10, 2, 20)); // 2 x 24
    // A partial message counts its consumed bytes at once.
    t1!.remote.write(frame('partial!').subarray(0, 5));
    await waitFor(() => p0.stats().rxMsgs === 4 && p1.stats().rxMsgs === 2 && p1.stats().rxBytes === 53, 5000, 'all bytes');
    let m = k0.mux.stats();
    assert.equal(m.rxMsgs, 6);
    assert.equal(m.rxBytes, 48 + 48 + 5);
    assert.deepEqual(m.psocks.map((p) => [p.index, p.rxMsgs, p.rxBytes]), [[0, 4, 48], [1, 2, 53]]);
    k1.unattach(t1!.local);
    m = k0.mux.stats();
    assert.equal(m.rxMsgs, 6, 'the unattached psock stays counted');
    assert.equal(m.rxBytes, 101);
    assert.equal(m.psocks.length, 1);
    assert.equal(m.psockAttach, 2);
    assert.equal(m.psockUnattach, 1);
    // The socket rows sum the messages read.
    const all = [...(await k0.receiveMany()), ...(await k1.receiveMany())];
    assert.equal(all.length, 6);
    const rows = k0.mux.stats().sockets;
    assert.equal(rows[0]!.rxMsgs + rows[1]!.rxMsgs, 6);
    assert.equal(rows[0]!.rxBytes + rows[1]!.rxBytes, 96);
  } finally {
    k1.close();
    k0.close();
  }
});

test('[ST-3][B-22][§12-56] psockUnattach counts every unattach, psockUnattachRsvd only reserved ones (not swapped)', async () => {
  const pairs = await tcpPairs(2);
  const k = KcmSocket.create();
  try {
    const p0 = k.attach(pairs[0]!.local, { parser: P4 });
    const p1 = k.attach(pairs[1]!.local, { parser: P4 });
    const e1 = errorsOf(p1);
    // p0 takes the first message and keeps it reserved: its peer does not read.
    pairs[0]!.remote.pause();
    await k.send(numbered(0, 32 * 1024 * 1024));
    await waitFor(() => p0.stats().txStalled, 10000, 'p0 to stall');
    assert.equal(p0.stats().reservedBy, k.index);
    assert.equal(p1.stats().reservedBy, -1);
    k.unattach(pairs[1]!.local); // idle
    let s = k.mux.stats();
    assert.deepEqual([s.psockAttach, s.psockUnattach, s.psockUnattachRsvd], [2, 1, 0]);
    assert.deepEqual(e1, [], 'an idle unattach posts no error');
    const e0 = errorsOf(p0);
    k.unattach(pairs[0]!.local); // reserved
    s = k.mux.stats();
    assert.deepEqual([s.psockAttach, s.psockUnattach, s.psockUnattachRsvd], [2, 2, 1]);
    assert.equal(s.psocks.length, 0);
    await sleep(20);
    assert.deepEqual(e0, [], 'aborted, but unattached by the application: it emits nothing');
    assert.equal(s.rxReadyDrops, 0);
  } finally {
    k.close();
  }
});

/** The cells of a table row, the status words joined back. */
function cells(line: string): string[] {
  const parts = line.trim().split(/\s+/);
  return [...parts.slice(0, 9), parts.slice(9).join(' ')];
}

test('[ST-7] mux.toString() prints the /proc/net/kcm layout: header, a mux row, kcm-N and psock-N rows with exact counters', async () => {
  const { local, remote } = await tcpPair();
  const k0 = KcmSocket.create();
  const k1 = k0.clone();
  try {
    const psock = k0.attach(local, { parser: P4 });
    remote.write(numberedRun(0, 3)); // 3 x 12 bytes, one burst: all to K0
    await waitFor(() => k0.mux.stats().sockets[0]!.rxQueued === 3, 5000, 'three queued');
    k0.tryReceive();
    k1.setRecvDisable(true);
    const text = k0.mux.toString();
    const lines = text.trimEnd().split('\n');
    assert.equal(lines[0], '*** KCM statistics (1 MUX) ****');
    assert.deepEqual(lines[1]!.trim().split(/\s+/), ['Object', 'RX-Msgs', 'RX-Bytes', 'TX-Msgs', 'TX-Bytes', 'Recv-Q', 'Rmem', 'Send-Q', 'Smem', 'Status']);
    const byName = new Map(lines.slice(2).map((l) => [l.trim().split(/\s+/)[0]!, cells(l)]));
    assert.deepEqual([...byName.keys()], ['mux', 'kcm-0', 'kcm-1', 'psock-0']);
    assert.deepEqual(byName.get('mux'), ['mux', '3', '36', '0', '0', '-', '-', '-', '-', 'KCMs: 2, Psocks 1']);
    const kcm0 = byName.get('kcm-0')!;
    assert.deepEqual(kcm0.slice(0, 8), ['kcm-0', '1', '12', '0', '0', '2', '24', '0']);
    assert.match(kcm0[9]!, /RxWait/);
    const kcm1 = byName.get('kcm-1')!;
    assert.deepEqual(kcm1.slice(0, 8), ['kcm-1', '0', '0', '0', '0', '0', '0', '0']);
    assert.doesNotMatch(kcm1[9]!, /RxWait/);
    const ps = byName.get('psock-0')!;
    assert.deepEqual(ps.slice(0, 5), ['psock-0', '3', '36', '0', '0']);
    assert.doesNotMatch(ps[9]!, /TxStop|RxStop|RxPause/);
    // A failed psock shows its stop flags.
    remote.destroy();
    await waitFor(() => psock.error !== undefined, 5000, 'the psock error');
    const after = cells(k0.mux.toString().split('\n').find((l) => l.startsWith('psock-0'))!);
    assert.match(after[9]!, /TxStop/);
    assert.match(after[9]!, /RxStop/);
    // The formatter lists several multiplexors.
    const other = KcmSocket.create();
    try {
      const both = formatKcmTable([k0.mux, other.mux]);
      assert.equal(both.split('\n')[0], '*** KCM statistics (2 MUX) ****');
      assert.equal(both.split('\n').filter((l) => l.startsWith('mux ')).length, 2);
      assert.ok(Multiplexor.live().includes(other.mux));
    } finally {
      other.close();
    }
    assert.ok(!Multiplexor.live().includes(other.mux), 'a closed mux leaves the live list');
  } finally {
    k1.close();
    k0.close();
  }
});
