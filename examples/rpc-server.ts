/**
 * An RPC server: one multiplexor with 4 KCM sockets, each serving requests as they are
 * steered to it, over every TCP connection the server accepts. Each reply goes back on
 * the connection its request came from (its origin), so any number of independent
 * clients can use it at once. With `--workers` the 4 sockets live in 4 worker threads.
 *
 *   node dist/examples/rpc-server.js [--port 7070] [--workers]
 *
 * It prints `listening on <port>` and serves until SIGINT or SIGTERM, then closes
 * gracefully (replies already queued go out) and prints the multiplexor's table.
 */
import { pathToFileURL } from 'node:url';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { Worker, type TransferListItem } from 'node:worker_threads';
import { KcmSocket as KcmSocketClass, listen, type KcmServer, type KcmSocket, type PsockRef } from '../src/index.js';
import { parser, decode, encode, ECHO, REVERSE, SUM, FAILED } from './rpc-protocol.js';

export async function startRpcServer(options: { port?: number; host?: string; sockets?: number } = {}): Promise<KcmServer> {
  // handler: each answer goes back to the connection its request came from.
  return listen({ port: options.port ?? 0, host: options.host ?? '127.0.0.1', parser, sockets: options.sockets ?? 4, handler: answer });
}

/**
 * By hand, what `handler` does: each socket answers the requests steered to it on the
 * connection each came from. (A plain `sock.send(reply)` would leave on any connection:
 * right for equivalent peers, wrong for a server's clients.)
 */
export function serve(sock: KcmSocket): void {
  sock.on('message', (frame: Buffer, origin: PsockRef) => {
    // EPIPE: that client is gone; EBADF: the server has closed. Nobody else gets it.
    sock.send(answer(frame), { psock: origin }).catch(() => {});
  });
}

/** The reply to one request. */
export function answer(frame: Buffer): Buffer[] {
  const { id, method, payload } = decode(frame);
  if (method === ECHO) return encode(id, ECHO, payload);
  if (method === REVERSE) return encode(id, REVERSE, Buffer.from(payload).reverse());
  if (method === SUM && payload.length % 4 === 0) {
    let sum = 0;
    for (let i = 0; i < payload.length; i += 4) sum = (sum + payload.readUInt32BE(i)) >>> 0;
    const out = Buffer.alloc(4);
    out.writeUInt32BE(sum, 0);
    return encode(id, SUM, out);
  }
  return encode(id, FAILED, Buffer.from(`unknown method ${method}`));
}

/** Worker sockets, where this build has them (`sock.cloneForWorker()`, `KcmSocket.adopt()`). */
export const hasWorkerSockets = typeof (KcmSocketClass.prototype as { cloneForWorker?: unknown }).cloneForWorker === 'function';

/**
 * The same server with its 4 sockets in 4 worker threads: the multiplexor and the TCP
 * connections stay in this thread, each worker adopts one socket and answers the
 * requests steered to it. The main thread's own socket does not receive.
 */
export async function startRpcServerInWorkers(options: { port?: number; host?: string; workers?: number } = {}): Promise<{ server: KcmServer; workers: Worker[] }> {
  if (!hasWorkerSockets) throw new Error('this build has no worker sockets (KcmSocket#cloneForWorker)');
  const server = await listen({ port: options.port ?? 0, host: options.host ?? '127.0.0.1', parser, sockets: 1 });
  server.socket.setRecvDisable(true);
  const workers: Worker[] = [];
  const online: Promise<unknown>[] = [];
  for (let i = 0; i < (options.workers ?? 4); i++) {
    const port = (server.socket as unknown as { cloneForWorker(): { transferList: TransferListItem[] } }).cloneForWorker();
    const worker = new Worker(new URL('./rpc-worker.js', import.meta.url), { workerData: { port }, transferList: port.transferList });
    online.push(once(worker, 'message')); // 'ready' once it has adopted its socket
    workers.push(worker);
  }
  await Promise.all(online);
  server.once('close', () => {
    for (const w of workers) void w.terminate();
  });
  return { server, workers };
}

async function main(): Promise<void> {
  const at = process.argv.indexOf('--port');
  const port = at > 0 ? Number(process.argv[at + 1]) : 7070;
  const server = process.argv.includes('--workers') ? (await startRpcServerInWorkers({ port })).server : await startRpcServer({ port });
  process.stdout.write(`listening on ${(server.address() as AddressInfo).port}\n`);
  const stop = (): void => {
    const table = server.mux.toString();
    server.close(() => {
      process.stdout.write(table);
      process.exit(0);
    });
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
