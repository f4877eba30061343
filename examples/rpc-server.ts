/**
 * An RPC server: one multiplexor with 4 KCM sockets, each serving requests as they are
 * steered to it, over every TCP connection the server accepts.
 *
 *   node dist/examples/rpc-server.js [--port 7070]
 *
 * It prints `listening on <port>` and serves until SIGINT or SIGTERM, then closes
 * gracefully (replies already queued go out) and prints the multiplexor's table.
 */
import { pathToFileURL } from 'node:url';
import type { AddressInfo } from 'node:net';
import { listen, type KcmServer, type KcmSocket } from '../src/index.js';
import { parser, decode, encode, ECHO, REVERSE, SUM, FAILED } from './rpc-protocol.js';

export async function startRpcServer(options: { port?: number; host?: string; sockets?: number } = {}): Promise<KcmServer> {
  const server = await listen({ port: options.port ?? 0, host: options.host ?? '127.0.0.1', parser, sockets: options.sockets ?? 4 });
  for (const sock of server.sockets) serve(sock);
  return server;
}

/** Each socket answers the requests steered to it, on whichever connection is free. */
function serve(sock: KcmSocket): void {
  sock.on('message', (frame: Buffer) => {
    const { id, method, payload } = decode(frame);
    let reply: Buffer;
    if (method === ECHO) reply = encode(id, ECHO, payload);
    else if (method === REVERSE) reply = encode(id, REVERSE, Buffer.from(payload).reverse());
    else if (method === SUM && payload.length % 4 === 0) {
      let sum = 0;
      for (let i = 0; i < payload.length; i += 4) sum = (sum + payload.readUInt32BE(i)) >>> 0;
      const out = Buffer.alloc(4);
      out.writeUInt32BE(sum, 0);
      reply = encode(id, SUM, out);
    } else reply = encode(id, FAILED, Buffer.from(`unknown method ${method}`));
    sock.send(reply).catch(() => {}); // EBADF once the server has closed
  });
}

async function main(): Promise<void> {
  const at = process.argv.indexOf('--port');
  const port = at > 0 ? Number(process.argv[at + 1]) : 7070;
  const server = await startRpcServer({ port });
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
