/**
 * Messages that never left the process restart on another psock, even when their
 * transport is unattached or destroyed before they were written [T-16, U-4, E-4].
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { KcmSocket } from '../../src/index.js';
import { FrameReader, P4, closeAll, frame, tcpPairs, waitFor } from '../helpers/loopback.js';

after(closeAll);

for (const order of ['unattach, then destroy', 'destroy, then unattach'] as const) {
  test(`[U-4][T-16] messages staged on a transport that dies in the same tick restart elsewhere (${order})`, async () => {
    const [t0, t1] = await tcpPairs(2);
    const k = KcmSocket.create();
    k.mux.on('psockerror', () => {});
    try {
      k.attach(t0!.local, { parser: P4 });
      k.attach(t1!.local, { parser: P4 });
      const r0 = new FrameReader(t0!.remote);
      const r1 = new FrameReader(t1!.remote);
      // One tick: a → T0 (written at once), b → T1 (at once), c → T0 and d → T1 (staged
      // until the end of the tick) [T-13].
      for (const p of ['a', 'b', 'c', 'd']) assert.equal(k.trySend(frame(p)), true);
      if (order === 'unattach, then destroy') {
        k.unattach(t0!.local);
        t0!.local.destroy();
      } else {
        t0!.local.destroy();
        k.unattach(t0!.local);
      }
      await waitFor(() => r0.frames.length + r1.frames.length >= 4, 5000, 'four frames');
      const all = [...r0.payloads(), ...r1.payloads()].sort();
      assert.deepEqual(all, ['a', 'b', 'c', 'd'], 'each message exactly once');
      if (order === 'destroy, then unattach') {
        // c never reached the destroyed transport: it restarted on T1.
        assert.deepEqual(r0.payloads(), ['a']);
        assert.ok(k.mux.stats().txRetries >= 1);
      } else {
        // Unattach handed c to the still open transport, which wrote it [U-2].
        assert.deepEqual(r0.payloads(), ['a', 'c']);
      }
    } finally {
      k.close();
    }
  });
}
