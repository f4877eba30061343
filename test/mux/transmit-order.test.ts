/**
 * A socket's messages leave in call order [T-17], also when a send picks an idle
 * transport whose peer reset it: the restart of T-21 happens inside the failing send,
 * before the next message exists.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { KcmSocket } from '../../src/index.js';
import { P4, FrameReader, closeAll, frame, tcpPairs, waitFor } from '../helpers/loopback.js';

after(closeAll);

for (const size of [16, 1000, 200_000]) {
  test(`[T-17][T-21] after an idle transport's reset, awaited sends of ${size} bytes leave in call order on the other`, async () => {
    for (let round = 0; round < 5; round++) {
      const k = KcmSocket.create({ sendBufferSize: 16 * 1024 * 1024 });
      try {
        const pairs = await tcpPairs(2);
        const r1 = new FrameReader(pairs[1]!.remote);
        const p0 = k.attach(pairs[0]!.local, { parser: P4 });
        k.attach(pairs[1]!.local, { parser: P4 });
        p0.on('error', () => {});
        pairs[0]!.remote.resetAndDestroy();
        const ms: Buffer[] = [];
        for (let i = 0; i < 6; i++) {
          const m = frame(Buffer.alloc(size, i));
          ms.push(m);
          await k.send(m);
        }
        await waitFor(() => r1.frames.length === 6, 10000, 'six messages on T1');
        assert.deepEqual(r1.frames.map((f) => f[4]), [0, 1, 2, 3, 4, 5], `round ${round}: call order`);
        assert.deepEqual(r1.frames, ms);
        assert.equal(p0.stats().reserved, 1, 'the first send picked T0');
      } finally {
        k.close();
      }
    }
  });
}
