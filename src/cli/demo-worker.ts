/**
 * A server socket of `kcm demo --workers`: adopts the socket handed over by the main thread
 * and echoes every message back until the main thread closes it or ends the worker.
 */
import { workerData } from 'node:worker_threads';
import { KcmSocket } from '../index.js';

interface AdoptedSocket {
  closed: boolean;
  receiveMany(): Promise<Buffer[]>;
  sendMany(messages: readonly Buffer[]): Promise<void>;
}

const adopt = (KcmSocket as unknown as { adopt?: (port: unknown) => AdoptedSocket }).adopt;
if (typeof adopt !== 'function') throw new Error('KcmSocket.adopt is not available in this build');
const sock = adopt.call(KcmSocket, (workerData as { port: unknown }).port);

for (;;) {
  let batch: Buffer[];
  try {
    batch = await sock.receiveMany();
    await sock.sendMany(batch);
  } catch (err) {
    if (sock.closed) break;
    throw err;
  }
}
