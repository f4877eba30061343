/**
 * Helpers for the multiplexor's receive-side tests: numbered frames that can be checked
 * for damage, bounded receives, error assertions and a raw byte collector for a
 * transport that was given back to the application.
 */
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { once } from 'node:events';
import { KcmError } from '../../src/errors.js';
import type { KcmSocket } from '../../src/mux/kcm-socket.js';
import type { Psock } from '../../src/mux/psock.js';
import { waitFor } from './loopback.js';

/** Closes every socket of `k`'s multiplexor, which unattaches its psocks [O-7]. */
export function closeMux(k: KcmSocket): void {
  for (const s of k.mux.sockets) s.close();
}

/**
 * A frame whose payload is `size` bytes (at least 4): its number `n` as a 4-byte
 * big-endian integer, then filler bytes derived from `n`, so damage or a mix-up shows.
 */
export function numbered(n: number, size = 8): Buffer {
  const size_ = Math.max(4, size);
  const out = Buffer.allocUnsafe(4 + size_);
  out.writeUInt32BE(size_, 0);
  out.writeUInt32BE(n, 4);
  for (let i = 8; i < out.length; i++) out[i] = (n + i) & 0xff;
  return out;
}

/** The number of a {@link numbered} frame, after checking its header and filler bytes. */
export function numberOf(message: Buffer): number {
  assert.ok(message.length >= 8, `message of ${message.length} bytes is too short to be numbered`);
  assert.equal(message.readUInt32BE(0), message.length - 4, 'length header matches the message length');
  const n = message.readUInt32BE(4);
  for (let i = 8; i < message.length; i++) {
    if (message[i] !== ((n + i) & 0xff)) assert.fail(`message ${n} is damaged at byte ${i}`);
  }
  return n;
}

/** `numbered(first) ‖ … ‖ numbered(first + count - 1)` as one buffer (one write). */
export function numberedRun(first: number, count: number, size = 8): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < count; i++) parts.push(numbered(first + i, size));
  return Buffer.concat(parts);
}

/** Receives `n` messages from `sock`, failing after `ms` milliseconds. */
export async function receiveN(sock: KcmSocket, n: number, ms = 10000): Promise<Buffer[]> {
  const signal = AbortSignal.timeout(ms);
  const out: Buffer[] = [];
  while (out.length < n) out.push(await sock.receive({ signal }));
  return out;
}

/** Collects the messages a socket delivers in flowing mode. */
export function collect(sock: KcmSocket): Buffer[] {
  const got: Buffer[] = [];
  sock.on('message', (m: Buffer) => got.push(m));
  return got;
}

/** Asserts that `err` is a KcmError with this code (and its Linux errno). */
export function assertKcmError(err: unknown, code: string, errno?: number): asserts err is KcmError {
  assert.ok(err instanceof KcmError, `expected a KcmError ${code}, got ${String(err)}`);
  assert.equal(err.code, code);
  if (errno !== undefined) assert.equal(err.errno, errno);
}

/** Asserts that `fn` throws a KcmError with this code. */
export function throwsKcm(fn: () => unknown, code: string): KcmError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught !== undefined, `expected ${code} to be thrown`);
  assertKcmError(caught, code);
  return caught;
}

/** Records every `'error'` of a psock. */
export function errorsOf(psock: Psock): KcmError[] {
  const errors: KcmError[] = [];
  psock.on('error', (err: KcmError) => errors.push(err));
  return errors;
}

/** Waits for the first `'error'` of a psock (bounded). */
export async function psockError(psock: Psock, ms = 10000): Promise<KcmError> {
  const errors = errorsOf(psock);
  await waitFor(() => errors.length > 0, ms, `an error on psock-${psock.index}`);
  return errors[0]!;
}

/**
 * Collects the raw bytes a plain socket reads from now on (the application's view of a
 * transport given back by unattach).
 */
export class RawCollector {
  private chunks: Buffer[] = [];

  constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => this.chunks.push(chunk));
  }

  get bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** A TCP port on 127.0.0.1 that nothing listens on (opened then closed). */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Lets the event loop turn a few times (I/O callbacks and ticks run). */
export async function turns(n = 5): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

/** Messages queued for reading on a socket (its Recv-Q). */
export function queued(k: KcmSocket): number {
  return k.mux.stats().sockets.find((s) => s.index === k.index)!.rxQueued;
}

/** Takes every queued message of a socket and returns their numbers, checking each. */
export function drainNumbers(k: KcmSocket): number[] {
  const out: number[] = [];
  for (let m = k.tryReceive(); m !== undefined && out.length < 100000; m = k.tryReceive()) out.push(numberOf(m));
  return out;
}
