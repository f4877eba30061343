/**
 * An RPC client: 4 KCM sockets on one multiplexor kept connected to the server over 4
 * TCP connections by `sock.connect()`. Calls go out on any connection; replies come back
 * on any connection to any of the sockets, and are matched by id. A call whose
 * connection fails is sent again once a replacement connects.
 *
 *   node dist/examples/rpc-client.js --port 7070 [--calls 1000]
 */
import { pathToFileURL } from 'node:url';
import { KcmSocket, type KcmConnector } from '../src/index.js';
import { parser, decode, encode, ECHO, REVERSE, SUM, FAILED } from './rpc-protocol.js';

interface Call {
  request: Buffer[];
  resolve: (payload: Buffer) => void;
  reject: (err: Error) => void;
}

export class RpcClient {
  readonly sockets: KcmSocket[];
  readonly connector: KcmConnector;
  private readonly pending = new Map<number, Call>();
  private nextId = 1;
  private turn = 0;

  constructor(options: { port: number; host?: string; connections?: number; sockets?: number }) {
    const first = KcmSocket.create();
    this.sockets = [first];
    for (let i = 1; i < (options.sockets ?? 4); i++) this.sockets.push(first.clone());
    for (const sock of this.sockets) sock.on('message', (frame: Buffer) => this.reply(frame));
    this.connector = first.connect({
      host: options.host ?? '127.0.0.1',
      port: options.port,
      connections: options.connections ?? 4,
      parser,
      backoff: { initial: 50, max: 2000 },
    });
    // A request written on a connection that then failed may be lost: send it again.
    // The methods are idempotent; a late duplicate reply is ignored below.
    this.connector.on('connect', () => {
      if (this.connector.stats().disconnects === 0) return;
      for (const call of this.pending.values()) this.write(call.request);
    });
  }

  call(method: number, payload: Uint8Array): Promise<Buffer> {
    const id = this.nextId++;
    const request = encode(id, method, payload);
    return new Promise<Buffer>((resolve, reject) => {
      this.pending.set(id, { request, resolve, reject });
      this.write(request);
    });
  }

  private write(request: Buffer[]): void {
    // Spread the calls over the sockets; each queues until a connection takes it.
    const sock = this.sockets[this.turn++ % this.sockets.length]!;
    sock.send(request).catch(() => {});
  }

  private reply(frame: Buffer): void {
    const { id, method, payload } = decode(frame);
    const call = this.pending.get(id);
    if (call === undefined) return; // a duplicate of an answered call
    this.pending.delete(id);
    if (method === FAILED) call.reject(new Error(payload.toString()));
    else call.resolve(payload);
  }

  async close(): Promise<void> {
    await this.connector.close();
    for (const sock of this.sockets) sock.close();
    for (const call of this.pending.values()) call.reject(new Error('client closed'));
    this.pending.clear();
  }
}

/** Makes `calls` concurrent calls of every method and checks each answer. */
export async function runRpcClient(options: { port: number; host?: string; calls?: number }): Promise<{ calls: number; ms: number }> {
  const client = new RpcClient(options);
  const calls = options.calls ?? 1000;
  const started = Date.now();
  try {
    const checks: Promise<void>[] = [];
    for (let i = 0; i < calls; i++) {
      const text = Buffer.from(`call ${i} `.repeat(1 + (i % 7)));
      if (i % 3 === 0) checks.push(client.call(ECHO, text).then((r) => expect(r.equals(text), `echo ${i}`)));
      if (i % 3 === 1) checks.push(client.call(REVERSE, text).then((r) => expect(r.equals(Buffer.from(text).reverse()), `reverse ${i}`)));
      if (i % 3 === 2) {
        const nums = Buffer.alloc(12);
        nums.writeUInt32BE(i, 0);
        nums.writeUInt32BE(2 * i, 4);
        nums.writeUInt32BE(3, 8);
        checks.push(client.call(SUM, nums).then((r) => expect(r.readUInt32BE(0) === 3 * i + 3, `sum ${i}`)));
      }
    }
    await Promise.all(checks);
  } finally {
    await client.close();
  }
  return { calls, ms: Date.now() - started };
}

function expect(ok: boolean, what: string): void {
  if (!ok) throw new Error(`wrong answer to ${what}`);
}

async function main(): Promise<void> {
  const arg = (name: string, dflt: number): number => {
    const at = process.argv.indexOf(name);
    return at > 0 ? Number(process.argv[at + 1]) : dflt;
  };
  const { calls, ms } = await runRpcClient({ port: arg('--port', 7070), calls: arg('--calls', 1000) });
  process.stdout.write(`${calls} calls answered correctly in ${ms} ms over 4 connections\n`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
