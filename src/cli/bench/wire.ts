/**
 * What the contenders of the benchmark share: the frame they carry (a 4-byte big-endian
 * payload length, then the payload), loopback servers and clients with Nagle off, the
 * count of delivered messages, and the pacing rules of the senders.
 */
import * as net from 'node:net';
import { once } from 'node:events';

/** Counts the messages delivered to the application, touching each as a consumer would. */
export class Tally {
  messages = 0;
  bytes = 0;
  check = 0;

  onMessage(message: Uint8Array): void {
    this.messages++;
    this.bytes += message.length;
    this.check = (this.check + message[message.length - 1]!) | 0;
  }

  /** Bytes that arrived without being framed (a receiver that discards). */
  onBytes(chunk: Uint8Array): void {
    this.bytes += chunk.length;
    this.check = (this.check + chunk[chunk.length - 1]!) | 0;
  }
}

/** A frame: the 4-byte big-endian payload length, then `size` payload bytes. */
export function makeFrame(size: number): Buffer {
  const frame = Buffer.allocUnsafe(4 + size);
  frame.writeUInt32BE(size, 0);
  for (let i = 4; i < frame.length; i++) frame[i] = i & 0xff;
  return frame;
}

/** Frames per burst handed to a sender loop: as many as fill about 64 KiB, at most 256. */
export function burstOf(frameLength: number): number {
  return Math.max(1, Math.min(256, Math.floor(65536 / frameLength)));
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
 * Bytes a hand-written sender queues before it lets the event loop run when nothing made
 * it wait, so that it does not starve its own I/O.
 */
export const YIELD_BYTES = 256 * 1024;

/**
 * Whether a sender loop goes on: until `stop()`, and never past `ms` after its start. A
 * loop that never waits (its writes all complete at once) keeps its process from running
 * timers and I/O, so it cannot be told to stop; the deadline ends it anyway. The clock is
 * read once every 256 calls.
 */
export class Deadline {
  private readonly end: number;
  private calls = 0;
  private running = true;

  constructor(ms: number) {
    this.end = performance.now() + ms;
  }

  on(): boolean {
    if (!this.running) return false;
    if ((++this.calls & 255) === 0 && performance.now() >= this.end) this.running = false;
    return this.running;
  }

  stop(): void {
    this.running = false;
  }
}

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
