/**
 * A worker thread of `rpc-server.ts --workers`: adopts the KCM socket it was given and
 * answers the requests steered to it. The multiplexor and the TCP connections stay in
 * the main thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { KcmSocket } from '../src/index.js';
import { answer } from './rpc-server.js';

const adopt = (KcmSocket as unknown as { adopt(port: unknown): KcmSocket }).adopt;
const sock = adopt((workerData as { port: unknown }).port);
sock.on('message', (frame: Buffer) => {
  sock.send(answer(frame)).catch(() => {});
});
parentPort!.postMessage('ready');
