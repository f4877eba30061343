/**
 * A psock the application has unattached emits nothing afterwards (API: "Attaching
 * transport sockets"), so the documented handler of E-4 — `'psockerror'` -> unattach —
 * never meets a psock it already unattached. Linux posts EPIPE on the TCP socket of a
 * psock unattached while reserved [U-4, E-2]; here the psock is the application's no more.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { KcmSocket, type KcmError, type Psock } from '../../src/index.js';
import { P4, closeAll, frame, sleep, tcpPairs, waitFor } from '../helpers/loopback.js';
import { RawCollector, waitStalled } from '../helpers/traffic.js';

after(closeAll);

test('[U-4][E-2][E-4] unattach mid-transmit: the restarted message arrives, and neither the psock nor the mux emits an error', async () => {
  const k = KcmSocket.create({ sendBufferSize: 64 * 1024 * 1024 });
  const uncaught: unknown[] = [];
  const onUncaught = (err: unknown): void => void uncaught.push(err);
  process.on('uncaughtException', onUncaught);
  try {
    const pairs = await tcpPairs(2);
    pairs[0]!.remote.pause();
    const c1 = new RawCollector(pairs[1]!.remote);
    const p0 = k.attach(pairs[0]!.local, { parser: P4 });
    k.attach(pairs[1]!.local, { parser: P4 });
    const psockErrors: KcmError[] = [];
    p0.on('error', (err) => psockErrors.push(err));
    const muxErrors: [KcmError, Psock][] = [];
    // The documented handler [E-4]: unattach the psock that failed.
    const handlerErrors: unknown[] = [];
    k.mux.on('psockerror', (err, psock) => {
      muxErrors.push([err, psock]);
      try {
        k.unattach(psock.transport);
      } catch (e) {
        handlerErrors.push(e); // ENOENT: it was unattached already
      }
    });
    const big = frame(randomBytes(8 * 1024 * 1024));
    await k.send(big);
    await waitStalled(p0);
    assert.equal(p0.stats().reservedBy, k.index, 'T0 is reserved mid-transmit');
    k.unattach(pairs[0]!.local);
    assert.equal(p0.stats().txAborts, 1, 'aborted for transmit [U-4]');
    await waitFor(() => c1.bytes >= big.length, 60000, 'the restarted message on T1');
    assert.ok(c1.frames().frames[0]!.equals(big));
    pairs[0]!.remote.resume();
    await sleep(50);
    assert.deepEqual(psockErrors, [], 'no error on the unattached psock');
    assert.deepEqual(muxErrors, [], "no 'psockerror' for it");
    assert.deepEqual(handlerErrors, []);
    assert.deepEqual(uncaught, []);
  } finally {
    process.off('uncaughtException', onUncaught);
    for (const s of k.mux.sockets) s.close();
  }
});

test("[E-4] a psock unattached by an earlier listener of the same flush gets no 'error' or 'psockerror'", async () => {
  const k0 = KcmSocket.create({ sendBufferSize: 64 * 1024 * 1024 });
  const k1 = k0.clone();
  const k2 = k0.clone();
  try {
    const pairs = await tcpPairs(3);
    pairs[0]!.remote.pause();
    pairs[1]!.remote.pause();
    const p0 = k0.attach(pairs[0]!.local, { parser: P4 });
    const p1 = k0.attach(pairs[1]!.local, { parser: P4 });
    k0.attach(pairs[2]!.local, { parser: P4 });
    // k0 holds T0 and k1 holds T1, each with a stalled message.
    await k0.send(frame(randomBytes(8 * 1024 * 1024)));
    await waitStalled(p0);
    await k1.send(frame(randomBytes(8 * 1024 * 1024)));
    await waitStalled(p1);
    assert.equal(p0.stats().reservedBy, k0.index);
    assert.equal(p1.stats().reservedBy, k1.index);
    const seen: number[] = [];
    p1.on('error', () => seen.push(-1));
    k2.mux.on('psockerror', (_err, psock) => {
      seen.push(psock.index);
      // The application handles every failure here, and closes the other sender too: its
      // psock's error is queued in this flush, then the application unattaches it.
      if (psock === p0) {
        k1.close();
        k2.unattach(p1.transport);
      }
    });
    k0.close(); // aborts T0 [O-6]: its EPIPE is emitted, and the listener runs
    await sleep(20);
    assert.deepEqual(seen, [0], 'only the psock still attached reported');
  } finally {
    for (const s of k2.mux.sockets) s.close();
  }
});
