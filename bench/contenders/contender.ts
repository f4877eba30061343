/**
 * What every contender of the end-to-end benchmark provides: a receiver and a sender for
 * throughput, an echo server and a client for ping-pong latency. Each runs in its own
 * process (see `../peer.ts`); the wire format is the same for all framed contenders: a
 * 4-byte big-endian length of the payload, then the payload.
 */
import * as net from 'node:net';
import { once } from 'node:events';

/** Counts the messages delivered to the application, touching each as a consumer would. */
export class Tally {
  messages = 0;
  bytes = 0;
  check = 0;

  onMessage(message: Buffer): void {
    this.messages++;
    this.bytes += message.length;
    this.check = (this.check + message[message.length - 1]!) | 0;
  }
}

export interface ReceiveOptions {
  /** Payload bytes of each message. */
  size: number;
  connections: number;
  /** Contender-specific variant (kcm: 'message' or 'many'). */
  mode: string;
}

export interface SendOptions extends ReceiveOptions {
  /** Where the receiver listens, as its `Endpoint.address`. */
  address: string;
}

export interface PingOptions {
  address: string;
  size: number;
  warmup: number;
  count: number;
}

/** A listening side: its address for the other process, and how to close it. */
export interface Endpoint {
  address: string;
  /** Bytes (raw TCP) rather than messages are counted: messages = bytes / frame size. */
  bytesOnly?: boolean;
  close(): Promise<void>;
}

/** A running sender. */
export interface Running {
  stop(): Promise<void>;
}

export interface Contender {
  readonly name: string;
  receive(o: ReceiveOptions, tally: Tally): Promise<Endpoint>;
  send(o: SendOptions): Promise<Running>;
  echo(o: { size: number }): Promise<Endpoint>;
  /** Round-trip times in microseconds, `count` of them after `warmup` unmeasured ones. */
  ping(o: PingOptions): Promise<number[]>;
}

/** A frame: the 4-byte big-endian payload length, then `size` payload bytes. */
export function makeFrame(size: number): Buffer {
  const frame = Buffer.allocUnsafe(4 + size);
  frame.writeUInt32BE(size, 0);
  for (let i = 4; i < frame.length; i++) frame[i] = i & 0xff;
  return frame;
}

/** A TCP server on 127.0.0.1, an ephemeral port, Nagle off for every connection. */
export async function listen(onConnection: (socket: net.Socket) => void): Promise<{ server: net.Server; address: string; sockets: Set<net.Socket> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', ignore);
    onConnection(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, address: String((server.address() as net.AddressInfo).port), sockets };
}

/** Closes a server from {@link listen} and destroys its connections. */
export async function closeServer(s: { server: net.Server; sockets: Set<net.Socket> }): Promise<void> {
  for (const socket of s.sockets) socket.destroy();
  await new Promise<void>((resolve) => s.server.close(() => resolve()));
}

/** Opens `n` connections to a port of 127.0.0.1, Nagle off. */
export async function connect(address: string, n: number): Promise<net.Socket[]> {
  const port = Number(address);
  const out: net.Socket[] = [];
  for (let i = 0; i < n; i++) {
    const s = net.connect({ port, host: '127.0.0.1', noDelay: true });
    s.on('error', ignore);
    out.push(s);
  }
  await Promise.all(out.map((s) => once(s, 'connect')));
  return out;
}

/** Microseconds since `start` (a `process.hrtime.bigint()`). */
export function microsSince(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1000;
}

export function ignore(): void {}

/**
 * Bytes a sender queues before it lets the event loop run (when nothing made it wait):
 * every sender yields on the same rule, so none of them starves its own I/O.
 */
export const YIELD_BYTES = 256 * 1024;

/** Lets the event loop run I/O once. */
export function yieldToLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Resolves at the socket's next 'drain', or when it closes (the sender is being stopped). */
export function drained(s: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      s.removeListener('drain', done);
      s.removeListener('close', done);
      resolve();
    };
    s.on('drain', done);
    s.on('close', done);
  });
}

/**
 * Writes `chunk` over and over on the sockets in turn, waiting for 'drain' where a socket
 * asks to, until stopped (the plain senders of the net and raw contenders).
 */
export function writeRoundRobin(sockets: net.Socket[], chunk: Buffer): Running {
  let running = true;
  const loop = async (): Promise<void> => {
    const n = sockets.length;
    let i = 0;
    let queued = 0;
    while (running) {
      const s = sockets[i]!;
      i = i + 1 === n ? 0 : i + 1;
      queued += chunk.length;
      if (queued >= YIELD_BYTES) {
        queued = 0;
        await yieldToLoop();
      }
      if (!s.write(chunk)) await drained(s);
    }
  };
  const done = loop().catch(() => undefined);
  return {
    async stop() {
      running = false;
      for (const s of sockets) s.destroy();
      void done;
    },
  };
}
