/**
 * Linux folds a destroyed multiplexor's counters into per-namespace totals [ST-5] and sums
 * namespace totals and live multiplexors in /proc/net/kcm_stats [ST-6], losing tx_retries
 * and swapping two columns on the way [B-22]. A process has no namespace totals: a
 * destroyed multiplexor keeps its final counters for whoever holds it, `Multiplexor.live()`
 * lists the live ones, and `formatPrometheus` is the kcm_stats view, with every counter
 * under its own name. Public API only.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { KcmSocket, Multiplexor, formatPrometheus } from '../../src/index.js';
import { P4, FrameReader, closeAll, frame, tcpPairs, waitFor } from '../helpers/loopback.js';
import { errorsOf, receiveN } from '../helpers/mux.js';

after(closeAll);

/** A mux with 2 psocks, 1 message received, 1 sent after a retry (T0 was reset), T0 then unattached. */
async function busyMux(): Promise<KcmSocket> {
  const k = KcmSocket.create();
  const pairs = await tcpPairs(2);
  const r1 = new FrameReader(pairs[1]!.remote);
  const p0 = k.attach(pairs[0]!.local, { parser: P4 });
  k.attach(pairs[1]!.local, { parser: P4 });
  const errs0 = errorsOf(p0);
  pairs[1]!.remote.write(frame('in'));
  await receiveN(k, 1);
  // The peer resets T0; in the same tick a send picks T0 and is restarted on T1 [T-16].
  pairs[0]!.remote.resetAndDestroy();
  await k.send(frame(randomBytes(1000)));
  await waitFor(() => r1.frames.length === 1 && errs0.length === 1, 5000, 'the retried message and the psock error');
  k.unattach(pairs[0]!.local);
  const s = k.mux.stats();
  assert.equal(s.txRetries, 1, 'setup: one retry');
  assert.equal(s.psockUnattach, 1);
  assert.equal(s.psockUnattachRsvd, 0);
  return k;
}

test('[ST-5][B-22] a destroyed multiplexor leaves the live list and keeps its final counters, tx_retries included', async () => {
  const k = await busyMux();
  const mux = k.mux;
  const before = mux.stats();
  assert.ok(Multiplexor.live().includes(mux));
  k.close();
  assert.equal(mux.alive, false);
  assert.equal(Multiplexor.live().includes(mux), false, 'not counted among the live multiplexors');
  const s = mux.stats();
  assert.equal(s.txRetries, 1, 'tx_retries is not lost with the multiplexor');
  assert.equal(s.rxMsgs, before.rxMsgs);
  assert.equal(s.rxBytes, before.rxBytes);
  assert.equal(s.txMsgs, before.txMsgs);
  assert.equal(s.txBytes, before.txBytes);
  assert.equal(s.psockAttach, 2);
  assert.equal(s.psockUnattach, 2, 'the last close unattached the other psock and counted it');
  assert.equal(s.psockUnattachRsvd, 0);
  assert.deepEqual(s.psocks, []);
  assert.deepEqual(s.sockets, []);
});

test('[ST-6][B-22] formatPrometheus over Multiplexor.live() shows tx_retries and the unattach counters under their own names', async () => {
  const k = await busyMux();
  const other = KcmSocket.create();
  try {
    const live = Multiplexor.live();
    const i = live.indexOf(k.mux);
    const j = live.indexOf(other.mux);
    assert.ok(i >= 0 && j >= 0);
    const text = formatPrometheus(live);
    const value = (name: string, mux: number): number => {
      const m = new RegExp(`^kcm_${name}\\{mux="${mux}"\\} (\\d+)$`, 'm').exec(text);
      assert.ok(m !== null, `${name} for mux ${mux} in\n${text}`);
      return Number(m[1]);
    };
    assert.equal(value('mux_tx_retries_total', i), 1, 'not always 0');
    assert.equal(value('mux_psock_attach_total', i), 2);
    assert.equal(value('mux_psock_unattach_total', i), 1, 'not swapped with the reserved column');
    assert.equal(value('mux_psock_unattach_reserved_total', i), 0);
    assert.equal(value('mux_rx_messages_total', i), 1);
    assert.equal(value('mux_tx_messages_total', i), k.mux.stats().txMsgs);
    assert.equal(value('mux_tx_retries_total', j), 0);
    assert.equal(value('mux_psock_attach_total', j), 0);
  } finally {
    other.close();
    for (const s of k.mux.sockets) s.close();
  }
});
