/**
 * A worker that ends while a message it took off its socket's queue for a pending read
 * has not reached the reader's code: that message moves to another socket, as every
 * message the worker's code never saw does [O-6]; what it saw is gone (exactly once).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { once } from 'node:events';
import { KcmSocket } from '../../src/index.js';
import { P4, closeAll, frame, payload, tcpPair, waitFor } from '../helpers/loopback.js';

after(closeAll);

const fixture = new URL('./fixtures/unseen-worker.js', import.meta.url);

test('[O-6] a worker that ends before a pending read resolved in it reached its caller: that message moves to another socket', async () => {
  for (let round = 0; round < 3; round++) {
    const k0 = KcmSocket.create();
    try {
      k0.setRecvDisable(true); // every message goes to the worker first
      const port = k0.cloneForWorker();
      const worker = new Worker(fixture, { workerData: { port }, transferList: port.transferList });
      const seen: string[] = [];
      let ready = false;
      worker.on('message', (m: { seen?: string; ready?: boolean }) => {
        if (m.ready === true) ready = true;
        if (m.seen !== undefined) seen.push(m.seen);
      });
      const exited = once(worker, 'exit');
      await waitFor(() => ready, 10000, 'the worker to wait on two reads');
      const { local, remote } = await tcpPair();
      k0.attach(local, { parser: P4 });
      const sent = ['m0', 'm1', 'm2', 'm3', 'm4'];
      remote.write(Buffer.concat(sent.map((s) => frame(s))));
      await exited;
      await waitFor(() => k0.mux.stats().sockets.length === 1, 10000, 'the worker socket to leave');
      k0.setRecvDisable(false);
      const moved: string[] = [];
      // Bounded: a lost message would keep this short of five; the assertions then say which.
      await waitFor(() => {
        for (let m = k0.tryReceive(); m !== undefined; m = k0.tryReceive()) moved.push(payload(m));
        return seen.length + moved.length >= sent.length;
      }, 3000, 'every message seen by the worker or moved').catch(() => {});
      assert.deepEqual(seen, ['m0'], `round ${round}: the worker's code saw the first message only`);
      assert.deepEqual(moved, ['m1', 'm2', 'm3', 'm4'], `round ${round}: the message of the second read, never seen, moved too`);
    } finally {
      for (const s of k0.mux.sockets) s.close();
    }
  }
});
