/**
 * Counters of a worker's socket, as the multiplexor's thread reads them, are exact at the
 * time of the call [ST-1, ST-3]: a message the worker's code has taken counts as read
 * there (and no longer as queued) at once, not when the worker's acknowledgement arrives.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { once } from 'node:events';
import { KcmSocket } from '../../src/index.js';
import { FrameReader, P4, closeAll, frame, tcpPair, waitFor } from '../helpers/loopback.js';

after(closeAll);

const fixture = new URL('./fixtures/echo-worker.js', import.meta.url);

test('[ST-1][ST-3] once a worker has echoed 100 messages, its socket row reads them received, none queued', async () => {
  for (let round = 0; round < 3; round++) {
    const k0 = KcmSocket.create();
    let worker: Worker | undefined;
    try {
      k0.setRecvDisable(true); // every message goes to the worker
      const port = k0.cloneForWorker();
      // The worker stays busy for a while after its 100th echo: its acknowledgement waits.
      worker = new Worker(fixture, { workerData: { port, busyAfter: 100, busyMs: 1500 }, transferList: port.transferList });
      await once(worker, 'message');
      const { local, remote } = await tcpPair();
      const echoes = new FrameReader(remote);
      k0.attach(local, { parser: P4 });
      const sent: Buffer[] = [];
      for (let i = 0; i < 100; i++) sent.push(frame(`echo ${i}`));
      remote.write(Buffer.concat(sent));
      await waitFor(() => echoes.frames.length === 100, 10000, 'the 100 echoes');
      // Read at once: no waiting for the worker's acknowledgement.
      const row = k0.mux.stats().sockets.find((s) => s.index !== k0.index)!;
      const bytes = sent.reduce((a, m) => a + m.length, 0);
      assert.deepEqual(
        { rxMsgs: row.rxMsgs, rxBytes: row.rxBytes, rxQueued: row.rxQueued, rxQueuedBytes: row.rxQueuedBytes, txMsgs: row.txMsgs },
        { rxMsgs: 100, rxBytes: bytes, rxQueued: 0, rxQueuedBytes: 0, txMsgs: 100 },
        `round ${round}`,
      );
      const proxy = k0.mux.sockets.find((s) => s !== k0)!;
      assert.equal(proxy.stats().rxMsgs, 100);
      assert.match(k0.mux.toString(), /\b100\b/);
    } finally {
      for (const s of k0.mux.sockets) s.close();
      await worker?.terminate();
    }
  }
});
