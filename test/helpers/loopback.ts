/**
 * Loopback TCP helpers shared by the multiplexor tests: connected pairs on 127.0.0.1,
 * 4-byte big-endian frames, a raw frame reader for the peer side, bounded waits.
 */
import * as net from 'node:net';
import { once } from 'node:events';
import { lengthField } from '../../src/parsers/length-field.js';

/** `lengthField({ size: 4, adjust: 4 })`: a 4-byte big-endian length that excludes itself. */
export const P4 = lengthField({ size: 4, adjust: 4 });

/** A frame: 4-byte big-endian payload length, then the payload. */
export function frame(payload: Buffer | string): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const out = Buffer.allocUnsafe(4 + body.length);
  out.writeUInt32BE(body.length, 0);
  body.copy(out, 4);
  return out;
}

/** Writes a frame of `size` payload bytes, every one `fill`, into `scratch`; returns its view. */
export function frameInto(scratch: Buffer, size: number, fill: number): Buffer {
  scratch.writeUInt32BE(size, 0);
  scratch.fill(fill, 4, 4 + size);
  return scratch.subarray(0, 4 + size);
}

/** A new frame of `size` payload bytes, every one `fill`. */
export function filledFrame(size: number, fill: number): Buffer {
  return frameInto(Buffer.allocUnsafe(4 + size), size, fill);
}

/** The payload of a frame. */
export function payload(message: Buffer): string {
  return message.subarray(4).toString();
}

/** A connected TCP pair on 127.0.0.1: `local` is attached to a multiplexor, `remote` is the raw peer. */
export interface TcpPair {
  local: net.Socket;
  remote: net.Socket;
}

const servers = new Set<net.Server>();
const sockets = new Set<net.Socket>();

/** Opens `n` connected pairs. Close them all with {@link closeAll}. */
export async function tcpPairs(n: number): Promise<TcpPair[]> {
  const server = net.createServer({ noDelay: true });
  servers.add(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  const accepted: net.Socket[] = [];
  const pairs: TcpPair[] = [];
  for (let i = 0; i < n; i++) {
    const local = net.connect({ port, host: '127.0.0.1', noDelay: true });
    sockets.add(local);
    const [remote] = (await once(server, 'connection')) as [net.Socket];
    await onceConnected(local);
    sockets.add(remote);
    remote.setNoDelay(true);
    accepted.push(remote);
    pairs.push({ local, remote });
  }
  return pairs;
}

/** One connected pair. */
export async function tcpPair(): Promise<TcpPair> {
  return (await tcpPairs(1))[0]!;
}

async function onceConnected(s: net.Socket): Promise<void> {
  if (!s.connecting) return;
  await once(s, 'connect');
}

/** Destroys every socket and server the helpers opened. */
export async function closeAll(): Promise<void> {
  for (const s of sockets) s.destroy();
  sockets.clear();
  const closing = [...servers].map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
  servers.clear();
  await Promise.all(closing);
}

/** Registers a socket for {@link closeAll}. */
export function track<T extends net.Socket>(s: T): T {
  sockets.add(s);
  return s;
}

/**
 * Reads frames from a raw socket (the peer's side), recording each whole frame and the
 * raw bytes. Detects framing damage: `frames` only ever holds whole frames.
 */
export class FrameReader {
  readonly frames: Buffer[] = [];
  bytes = 0;
  private buf: Buffer = Buffer.alloc(0);

  constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.bytes += chunk.length;
      this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
      while (this.buf.length >= 4) {
        const len = this.buf.readUInt32BE(0) + 4;
        if (this.buf.length < len) break;
        this.frames.push(Buffer.from(this.buf.subarray(0, len)));
        this.buf = this.buf.subarray(len);
      }
    });
  }

  /** Bytes received that do not complete a frame yet. */
  get partial(): number {
    return this.buf.length;
  }

  payloads(): string[] {
    return this.frames.map(payload);
  }
}

/** Waits until `cond()` is true, checking every few milliseconds; fails after `ms`. */
export async function waitFor(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Lets pending I/O and timers run for `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
