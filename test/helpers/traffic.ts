/**
 * Traffic helpers for the transmit, stress and fault tests: a seeded random generator,
 * self-checking frames cut from a shared random tape, a parser that logs which
 * connection carried each message, and a wait for a transport that TCP has stalled.
 */
import type * as net from 'node:net';
import type { Psock } from '../../src/mux/psock.js';
import type { Parser } from '../../src/parsers/parser.js';
import { sleep, waitFor } from './loopback.js';

/** mulberry32: a small seeded generator, so a failing run can be replayed from its seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Bytes of the frame header: length (4), source (4), sequence (4). */
export const HEADER = 12;
const TAPE_SPAN = 512 * 1024;
const TAPE = (() => {
  const r = rng(0x6b636d);
  const t = Buffer.allocUnsafe(TAPE_SPAN * 2);
  for (let i = 0; i < t.length; i++) t[i] = (r() * 256) | 0;
  return t;
})();

function tapeOffset(src: number, seq: number): number {
  return (Math.imul(src + 1, 0x9e3779b1) ^ Math.imul(seq + 1, 0x85ebca6b)) >>> 0 & (TAPE_SPAN - 1);
}

/**
 * A frame for P4-style framing whose body is `bodyLength` bytes of the random tape at an
 * offset derived from `(src, seq)`: any misplaced, missing or foreign byte shows up in
 * {@link checkFrame}. Returned as parts (header, body); the body is not copied.
 */
export function tapeFrame(src: number, seq: number, bodyLength: number): [Buffer, Buffer] {
  const header = Buffer.allocUnsafe(HEADER);
  header.writeUInt32BE(HEADER - 4 + bodyLength, 0);
  header.writeUInt32BE(src, 4);
  header.writeUInt32BE(seq, 8);
  const at = tapeOffset(src, seq);
  return [header, TAPE.subarray(at, at + bodyLength)];
}

/** {@link tapeFrame} as one buffer. */
export function tapeFrameBuffer(src: number, seq: number, bodyLength: number): Buffer {
  return Buffer.concat(tapeFrame(src, seq, bodyLength));
}

/** Checks a whole frame made by {@link tapeFrame}; returns its source and sequence, throws on any damage. */
export function checkFrame(frame: Buffer): { src: number; seq: number } {
  if (frame.length < HEADER) throw new Error(`frame of ${frame.length} bytes is shorter than its header`);
  const len = frame.readUInt32BE(0) + 4;
  if (len !== frame.length) throw new Error(`frame length field says ${len}, frame has ${frame.length} bytes`);
  const src = frame.readUInt32BE(4);
  const seq = frame.readUInt32BE(8);
  const bodyLength = frame.length - HEADER;
  if (bodyLength > TAPE_SPAN) throw new Error(`frame ${src}/${seq} body too long: ${bodyLength}`);
  const at = tapeOffset(src, seq);
  if (!frame.subarray(HEADER).equals(TAPE.subarray(at, at + bodyLength))) {
    throw new Error(`frame ${src}/${seq} (${frame.length} bytes) has a corrupted body`);
  }
  return { src, seq };
}

/** A body size from 0 to 256 KiB, skewed small so that bulk runs stay fast. */
export function skewedSize(r: () => number): number {
  const x = r();
  if (x < 0.8) return (r() * 512) | 0;
  if (x < 0.97) return (r() * 16384) | 0;
  return (r() * 256 * 1024) | 0;
}

/** Where a message was parsed: the connection and the frame's source and sequence. */
export interface ParseRecord {
  conn: number;
  src: number;
  seq: number;
}

/**
 * A length parser for {@link tapeFrame} frames that also records, per connection, the
 * order in which whole messages were framed. It asks for the whole 12-byte header first
 * (returning 0 until then), which P-4 allows since the length always reaches past it.
 */
export function loggingParser(conn: number, log: ParseRecord[]): Parser {
  return (data: Buffer) => {
    if (data.length < HEADER) return 0;
    log.push({ conn, src: data.readUInt32BE(4), seq: data.readUInt32BE(8) });
    return data.readUInt32BE(0) + 4;
  };
}

/**
 * Waits until the psock's transport is stalled by TCP: the psock waits for 'drain' and
 * the bytes the transport holds stop moving across several checks.
 */
export async function waitStalled(psock: Psock, ms = 20000): Promise<void> {
  const t: net.Socket = psock.transport;
  const deadline = Date.now() + ms;
  let last = -1;
  let same = 0;
  while (same < 4) {
    if (Date.now() > deadline) throw new Error(`psock-${psock.index} did not stall within ${ms} ms`);
    await sleep(25);
    const held = t.writableLength;
    if (psock.stats().txStalled && held > 0 && held === last) same++;
    else same = 0;
    last = held;
  }
}

/** Collects a psock's (or multiplexor's) 'error' events. */
export function errorsOf(emitter: { on(event: 'error', l: (err: Error) => void): unknown }): Error[] {
  const list: Error[] = [];
  emitter.on('error', (err: Error) => list.push(err));
  return list;
}

/** Resolves with whether `p` settled within a few turns of the event loop (false: still pending). */
export async function settles(p: Promise<unknown>, ms = 50): Promise<boolean> {
  let done = false;
  p.then(() => { done = true; }, () => { done = true; });
  await sleep(ms);
  return done;
}

export { waitFor };

/**
 * Collects the raw bytes a peer socket receives, without copying per chunk, so that
 * multi-megabyte frames stay cheap; {@link frames} splits them once at the end.
 */
export class RawCollector {
  bytes = 0;
  private chunks: Buffer[] = [];

  constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.bytes += chunk.length;
      this.chunks.push(chunk);
    });
  }

  /** Whole 4-byte-length frames received so far, and the count of trailing bytes that do not complete one. */
  frames(): { frames: Buffer[]; partial: number } {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    this.chunks = all.length === 0 ? [] : [all];
    const frames: Buffer[] = [];
    let at = 0;
    while (all.length - at >= 4) {
      const len = all.readUInt32BE(at) + 4;
      if (all.length - at < len) break;
      frames.push(all.subarray(at, at + len));
      at += len;
    }
    return { frames, partial: all.length - at };
  }
}
