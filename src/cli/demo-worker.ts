/**
 * A server socket of `kcm demo --workers`: adopts the socket handed over by the main thread
 * and echoes every message back to the connection it came from, until the main thread
 * closes it or ends the worker.
 */
import { workerData } from 'node:worker_threads';
import { KcmSocket } from '../index.js';
import { echoToOrigin } from './demo.js';

echoToOrigin(KcmSocket.adopt((workerData as { port: Parameters<typeof KcmSocket.adopt>[0] }).port), (err) => {
  throw err;
});
