/**
 * A worker thread of `rpc-server.ts --workers`: adopts the KCM socket it was given and
 * answers the requests steered to it, each on the connection it came from (the origin
 * is a plain `{ id }` here). The multiplexor and the TCP connections stay in the main
 * thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { KcmSocket } from '../src/index.js';
import { serve } from './rpc-server.js';

const adopt = (KcmSocket as unknown as { adopt(port: unknown): KcmSocket }).adopt;
serve(adopt((workerData as { port: unknown }).port));
parentPort!.postMessage('ready');
