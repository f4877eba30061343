/**
 * An RPC client: 4 KCM sockets on one multiplexor kept connected to the server over 4
 * TCP connections by `sock.connect()`, and a `Requester` over the 4 sockets. Calls go
 * out on the sockets in turn; replies come back on any connection to any of the
 * sockets, and the requester matches them by id. A call unanswered within its timeout
 * (its request or reply was on a connection that failed) is made again: the methods
 * are idempotent, and a late reply to the first attempt is counted as unmatched.
 *
 *   node dist/examples/rpc-client.js --port 7070 [--calls 1000] [--fail-after 3000]
 *
 * With no server it exits with status 1 and one line on stderr after `--fail-after` ms.
 */
import { pathToFileURL } from 'node:url';
import { KcmError, KcmSocket, Requester, type KcmConnector } from '../src/index.js';
import { parser, decode, encode, ECHO, REVERSE, SUM, FAILED } from './rpc-protocol.js';

export class RpcClient {
  readonly sockets: KcmSocket[];
  readonly connector: KcmConnector;
  readonly requester: Requester;
  private nextId = 1;
  private readonly attempts: number;

  /**
   * `failAfter`: ms with no connection up before calls fail (`ECONNREFUSED` …) instead of
   * waiting; default 3000.
   */
  constructor(options: { port: number; host?: string; connections?: number; sockets?: number; timeout?: number; attempts?: number; failAfter?: number }) {
    const first = KcmSocket.create();
    this.sockets = [first];
    for (let i = 1; i < (options.sockets ?? 4); i++) this.sockets.push(first.clone());
    this.connector = first.connect({
      host: options.host ?? '127.0.0.1',
      port: options.port,
      connections: options.connections ?? 4,
      parser,
      backoff: { initial: 50, max: 2000 },
      failAfter: options.failAfter ?? 3000,
    });
    this.requester = new Requester(this.sockets, { id: (reply) => reply.readUInt32BE(4), timeout: options.timeout ?? 1000 });
    this.attempts = options.attempts ?? 3;
  }

  async call(method: number, payload: Uint8Array): Promise<Buffer> {
    const id = this.nextId;
    this.nextId = (id + 1) >>> 0 || 1;
    const request = encode(id, method, payload);
    for (let attempt = 1; ; attempt++) {
      try {
        const reply = decode(await this.requester.request(request, id));
        if (reply.method === FAILED) throw new Error(reply.payload.toString());
        return reply.payload;
      } catch (err) {
        if (!(err instanceof KcmError && err.code === 'ETIMEDOUT') || attempt >= this.attempts) throw err;
      }
    }
  }

  async close(): Promise<void> {
    this.requester.close(); // pending calls reject EBADF
    await this.connector.close();
    for (const sock of this.sockets) sock.close();
  }
}

/** Makes `calls` concurrent calls of every method and checks each answer. */
export async function runRpcClient(options: { port: number; host?: string; calls?: number; failAfter?: number }): Promise<{ calls: number; ms: number }> {
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
  const { calls, ms } = await runRpcClient({ port: arg('--port', 7070), calls: arg('--calls', 1000), failAfter: arg('--fail-after', 3000) });
  process.stdout.write(`${calls} calls answered correctly in ${ms} ms over 4 connections\n`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err) => {
    // A server that is down is reported in one line, not a stack trace.
    if (err instanceof KcmError && err.message.startsWith('no connection')) console.error(`rpc-client: cannot reach the server: ${err.code} (${err.message})`);
    else console.error(err);
    process.exit(1);
  });
}
