/**
 * A request/reply server for the discovery tests: every accepted connection gets its own
 * KCM socket, so a reply leaves on the connection its request came on; it counts the
 * requests per id. A request is `[u32 length][u32 id]`; the reply adds a one-byte tag
 * naming the server. A connection whose peer ends is ended gracefully after its replies.
 */
import * as net from 'node:net';
import { once } from 'node:events';
import { KcmSocket } from '../../src/index.js';
import type { KcmError } from '../../src/errors.js';
import { P4 } from './loopback.js';

export class IdServer {
  readonly host: string;
  readonly tag: number;
  readonly requests = new Map<number, number>();
  readonly server: net.Server;
  private readonly conns = new Set<{ t: net.Socket; k: KcmSocket }>();
  port = 0;
  handled = 0;

  private constructor(host: string, tag: number) {
    this.host = host;
    this.tag = tag;
    this.server = net.createServer((t) => this.accept(t));
  }

  static async start(host: string, tag: number, port = 0): Promise<IdServer> {
    const s = new IdServer(host, tag);
    s.server.listen(port, host);
    await once(s.server, 'listening');
    s.port = (s.server.address() as net.AddressInfo).port;
    return s;
  }

  /** Connections open now. */
  get connections(): number {
    return this.conns.size;
  }

  private accept(t: net.Socket): void {
    t.setNoDelay(true);
    const k = KcmSocket.create();
    const conn = { t, k };
    this.conns.add(conn);
    const psock = k.attach(t, { parser: P4 });
    const tag = Buffer.from([this.tag]);
    k.on('message', (m: Buffer) => {
      const id = m.readUInt32BE(4);
      this.requests.set(id, (this.requests.get(id) ?? 0) + 1);
      this.handled++;
      k.send(P4.frame([m.subarray(4), tag])).catch(() => {});
    });
    psock.on('error', (_err: KcmError) => {
      // The peer ended (a drain) or failed: what was written goes out, then FIN.
      try {
        k.unattach(t);
      } catch {}
      t.end();
      t.resume();
      k.close();
    });
    t.on('error', () => {});
    t.once('close', () => {
      this.conns.delete(conn);
      if (!k.closed) k.close();
    });
  }

  /** Stops listening and closes every connection (FIN). */
  async close(): Promise<void> {
    const closed = new Promise((r) => this.server.close(r));
    for (const { t } of this.conns) t.end();
    const deadline = Date.now() + 2000;
    while (this.conns.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    for (const { t } of this.conns) t.destroy();
    await closed;
  }
}

/** A request `[len][id]` of 8 bytes. */
export function idRequest(id: number): Buffer[] {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(id, 0);
  return P4.frame(b);
}

/** The id of a reply. */
export function replyId(m: Buffer): number {
  return m.readUInt32BE(4);
}

/** The tag of the server that sent a reply. */
export function replyTag(m: Buffer): number {
  return m[8]!;
}
