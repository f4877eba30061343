/**
 * Unattach of a psock that holds no reservation [U-3], and what becomes of Linux's
 * "done" psock (unattached while reserved, freed only when its socket releases it) [U-6]:
 * here unattach is synchronous, so the psock leaves the multiplexor at once. Public API only.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { KcmError, KcmSocket } from '../../src/index.js';
import { P4, FrameReader, closeAll, frame, sleep, tcpPairs, waitFor } from '../helpers/loopback.js';
import { closeMux, numberedRun, numberOf, receiveN, throwsKcm } from '../helpers/mux.js';
import { RawCollector, errorsOf, waitStalled } from '../helpers/traffic.js';

after(closeAll);

test('[U-3] unattach of an idle psock: out of rotation and out of the mux, no abort, no error, transport free', async (t) => {
  const k = KcmSocket.create();
  t.after(() => closeMux(k));
  const pairs = await tcpPairs(2);
  const readers = pairs.map((p) => new FrameReader(p.remote));
  const p0 = k.attach(pairs[0]!.local, { parser: P4 });
  const p1 = k.attach(pairs[1]!.local, { parser: P4 });
  const errs0 = errorsOf(p0);
  assert.equal(p0.stats().reservedBy, -1, 'p0 is idle');
  k.unattach(pairs[0]!.local);
  assert.deepEqual(k.mux.psocks, [p1]);
  const s = k.mux.stats();
  assert.equal(s.psockUnattach, 1);
  assert.equal(s.psockUnattachRsvd, 0);
  assert.equal(p0.stats().txAborts, 0, 'not aborted: nothing was in flight');
  // Sends that would have alternated T0, T1 now all use T1.
  const msgs = [0, 1, 2, 3].map((i) => frame(`after ${i}`));
  for (const m of msgs) await k.send(m);
  await waitFor(() => readers[1]!.frames.length === 4, 5000, 'the messages on T1');
  assert.deepEqual(readers[1]!.frames, msgs);
  await sleep(20);
  assert.equal(readers[0]!.bytes, 0, 'nothing goes to the unattached transport');
  assert.deepEqual(errs0, [], 'no EPIPE: it was not reserved');
  // KCM's hold on the transport is gone: another multiplexor can attach it.
  assert.equal(pairs[0]!.local.destroyed, false);
  const other = KcmSocket.create();
  t.after(() => other.close());
  other.attach(pairs[0]!.local, { parser: P4 });
  pairs[0]!.remote.write(numberedRun(7, 1));
  assert.deepEqual((await receiveN(other, 1)).map(numberOf), [7]);
});

test('[U-6][U-4] unattach while reserved: the psock leaves the mux at once (no lingering Done), a second unattach is ENOENT', async (t) => {
  const k = KcmSocket.create({ sendBufferSize: 64 * 1024 * 1024 });
  t.after(() => closeMux(k));
  const pairs = await tcpPairs(2);
  pairs[0]!.remote.pause();
  const c1 = new RawCollector(pairs[1]!.remote);
  const p0 = k.attach(pairs[0]!.local, { parser: P4 });
  k.attach(pairs[1]!.local, { parser: P4 });
  const errs0 = errorsOf(p0);
  const big = frame(randomBytes(16 * 1024 * 1024));
  await k.send(big);
  await waitStalled(p0);
  assert.equal(p0.stats().reservedBy, k.index, 'p0 is reserved by the stalled send');
  k.unattach(pairs[0]!.local);
  // Synchronously gone: not listed, not in the table, counted once.
  assert.equal(k.mux.psocks.includes(p0), false);
  const s = k.mux.stats();
  assert.equal(s.psocks.length, 1);
  assert.equal(s.psockUnattachRsvd, 1);
  assert.equal(s.psockUnattach, 1);
  assert.doesNotMatch(k.mux.toString(), /\bDone\b/);
  assert.match(k.mux.toString(), /Psocks 1/);
  const err = throwsKcm(() => k.unattach(pairs[0]!.local), 'ENOENT');
  assert.equal(err instanceof KcmError && err.code, 'ENOENT', 'not EALREADY: nothing is left to wait for');
  // Never used again: the restarted message and later ones go to T1 only.
  await waitFor(() => c1.bytes >= big.length, 60000, 'the restarted message on T1');
  const later = frame('later');
  await k.send(later);
  await waitFor(() => c1.frames().frames.length === 2, 5000, 'the later message');
  assert.ok(c1.frames().frames[0]!.equals(big));
  assert.deepEqual(c1.frames().frames[1], later);
  const ps = p0.stats();
  assert.equal(ps.txStopped, true);
  assert.equal(ps.reserved, 1);
  assert.equal(ps.reservedBy, -1, 'released');
  await sleep(20);
  assert.deepEqual(errs0, [], 'aborted [U-4], but unattached by the application: it emits nothing');
});
