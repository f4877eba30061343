/**
 * A KCM socket's send queue [T-3 … T-7]: the bytes of its messages, copied at the call as
 * sendmsg copies them, with compact per-burst records.
 *
 * Small messages are copied back to back into a shared 64 KiB chunk, so that the
 * messages of a burst lie next to each other and go to the transport as one write; their
 * lengths go into a typed array beside the chunk. A larger message is copied into a
 * buffer of its own, taken from the copy pool (`CopyPool`) and given back by the psock
 * that wrote it whole. The queue is a list of segments, each a run of whole messages lying
 * back to back in one buffer: queueing a small message writes its bytes and one length,
 * and a transport takes a whole segment at once, so there is no object, array or promise
 * per message. A chunk is never written over while in use: a later message takes the
 * bytes after it, a full chunk is replaced by another, and it goes back to the copy pool
 * only once every message in it was written whole, so a segment stays valid for as long as
 * anything (a transport's write, a restart [T-16]) refers to it.
 *
 * The queue also holds the open message (built over several calls [T-1]): one contiguous
 * run of bytes behind the last complete message, never handed to a transport before it
 * is complete.
 */
import { copyPool } from './copy-pool.js';
import { Fifo } from './fifo.js';
import type { PsockRef } from './psock.js';

/** Messages up to this length (header included) are copied into the shared chunk. */
export const CHUNK_MESSAGE_MAX = 16 * 1024;
/** Size of a chunk. */
export const CHUNK_SIZE = 64 * 1024;
/** Messages one chunk records at most (a chunk of tiny messages is left partly unused). */
const CHUNK_MESSAGES = 8192;
/**
 * The piece of a large message handed to `transport.write()` at once, so a stall can fall
 * mid-message [T-12]; the last piece of a message may be up to twice as long.
 */
export const WRITE_PIECE = 64 * 1024;

/**
 * Whole messages lying back to back in `buf` from `start` to `end`: `count` of them, whose
 * lengths are `lens[li]` on (a chunk's), or one message of `end - start` bytes (`lens`
 * undefined: a large or restarted message).
 */
export interface TxSegment {
  buf: Buffer;
  start: number;
  end: number;
  count: number;
  lens: Uint16Array | undefined;
  li: number;
  /** The psock its one message is pinned to [K-3] (a worker's queue carries them in call order). */
  pin: PsockRef | undefined;
  /**
   * `buf` is a large message's copy from the {@link copyPool}, given back once written
   * whole (never set on a restarted message [T-16]: an earlier attempt may still hold it).
   */
  pooled: boolean;
  /** The chunk `buf` is, for a run of small messages. */
  chunk: TxChunk | undefined;
}

/**
 * A chunk and the lengths of its messages, with what it takes to know when nothing
 * refers to it any more: it is full (`total` messages, -1 while messages still join it)
 * and `done` of them were written whole, and none of its bytes went anywhere else
 * (`lost`: a restart [T-16], a failed write, a pinned message, a worker's batch).
 */
export interface TxChunk {
  readonly buf: Buffer;
  readonly lens: Uint16Array;
  total: number;
  done: number;
  lost: boolean;
}

/** `n` more messages of chunk `c` were written whole: back to the pool once all were. */
export function chunkWritten(c: TxChunk, n: number): void {
  c.done += n;
  if (c.done === c.total && !c.lost) {
    c.lost = true; // given back once
    copyPool.giveChunk(c);
  }
}

export class TxQueue {
  private readonly segs = new Fifo<TxSegment>();
  /** Complete messages queued. */
  private count = 0;
  /** Bytes of complete queued messages. */
  private queued = 0;

  /** Where small messages are copied; bytes from `chunkAt` on are free. */
  private chunk: Buffer | undefined = undefined;
  private chunkAt = 0;
  /** Lengths of the chunk's messages, `chunkN` of them. */
  private chunkLens: Uint16Array | undefined = undefined;
  private chunkN = 0;
  /** The chunk's record. */
  private chunkRef: TxChunk | undefined = undefined;
  /** The chunk's segment, while it is the last one of the queue: new messages extend it. */
  private tail: TxSegment | undefined = undefined;

  /** The open message: `openLen` bytes at `openBuf[openStart]` (in the chunk or a buffer of its own). */
  private openBuf: Buffer | undefined = undefined;
  private openStart = 0;
  private openLen = 0;

  /** Bytes of the head message handed to a transport in its current attempt [T-11, T-12]. */
  headWritten = 0;

  /** Complete messages queued (Send-Q). */
  get length(): number {
    return this.count;
  }

  /** Bytes of complete queued messages. */
  get bytes(): number {
    return this.queued;
  }

  /** Bytes of the open message [T-1]. */
  get openLength(): number {
    return this.openLen;
  }

  /**
   * Copies a whole message of `len` (> 0) bytes and queues it: the fast path of
   * {@link append} then {@link complete}, when no message is open. `shared`: the caller
   * handed the message over (it never changes it again), so a large one is queued by
   * reference instead of copied.
   */
  push(message: Uint8Array, len: number, shared = false): void {
    if (len > CHUNK_MESSAGE_MAX) {
      if (shared) {
        this.pushOwn(bufferOf(message), 0, len);
        return;
      }
      // A buffer of its own, used again once written (see CopyPool).
      const buf = copyPool.take(len);
      buf.set(message, 0);
      this.pushOwn(buf, 0, len, true);
      return;
    }
    const at = this.place(len);
    this.chunk!.set(message, at);
    this.placed(at, len);
  }

  /**
   * {@link push} for a small message given as parts (`len`, their total, > 0 and at most
   * {@link CHUNK_MESSAGE_MAX}): the parts are copied back to back into the chunk.
   */
  pushParts(parts: readonly Uint8Array[], len: number): void {
    const at = this.place(len);
    copyParts(this.chunk!, parts, at);
    this.placed(at, len);
  }

  /**
   * Where a small message of `len` bytes goes: the free bytes of the chunk, behind the
   * tail segment; a new chunk or a new tail segment first when needed.
   */
  private place(len: number): number {
    let at = this.chunkAt;
    if (this.tail === undefined || at + len > CHUNK_SIZE || this.chunkN === CHUNK_MESSAGES) {
      if (at + len > CHUNK_SIZE || this.chunkN === CHUNK_MESSAGES || this.chunk === undefined) this.newChunk();
      at = this.chunkAt;
      this.newTail(at);
    }
    return at;
  }

  /** Queues the small message of `len` bytes just copied at `at` (from {@link place}) in the tail segment. */
  private placed(at: number, len: number): void {
    const seg = this.tail!;
    this.chunkAt = seg.end = at + len;
    this.chunkLens![this.chunkN++] = len;
    seg.count++;
    this.count++;
    this.queued += len;
  }

  /**
   * {@link push} for a run of whole messages `messages[from]` to `messages[last]` at most:
   * copies them back to back into the chunk of the tail segment while each (a Uint8Array
   * or the parts of one) fits there and fewer than `room` bytes were taken before it (each
   * message is admitted on its own [T-7]); empty entries are skipped [T-5]. The queue's
   * counters are updated once for the run. Returns the index of the first entry not
   * taken (`from` when none was: the caller goes on with {@link push}). Only when no
   * message is open.
   */
  pushRun(messages: readonly (Uint8Array | readonly Uint8Array[])[], from: number, last: number, room: number): number {
    const seg = this.tail;
    const chunk = this.chunk;
    const lens = this.chunkLens;
    if (seg === undefined || chunk === undefined || lens === undefined) return from;
    let at = this.chunkAt;
    let n = this.chunkN;
    let taken = 0;
    let i = from;
    for (; i <= last && taken < room; i++) {
      const m = messages[i]!;
      if (m instanceof Uint8Array) {
        const len = m.length;
        if (len === 0) continue;
        if (len > CHUNK_MESSAGE_MAX || at + len > CHUNK_SIZE || n === CHUNK_MESSAGES) break;
        chunk.set(m, at);
        at += len;
        lens[n++] = len;
        taken += len;
        continue;
      }
      // The parts of one message (a header and a payload, as frame() gives them).
      let len = 0;
      for (let j = 0; j < m.length; j++) len += m[j]!.length;
      if (len === 0) continue;
      if (len > CHUNK_MESSAGE_MAX || at + len > CHUNK_SIZE || n === CHUNK_MESSAGES) break;
      copyParts(chunk, m, at);
      at += len;
      lens[n++] = len;
      taken += len;
    }
    const count = n - this.chunkN;
    if (count > 0) {
      this.chunkAt = seg.end = at;
      this.chunkN = n;
      seg.count += count;
      this.count += count;
      this.queued += taken;
    }
    return i;
  }

  /**
   * Copies `length` bytes (`message` is one Uint8Array or the parts of one) onto the open
   * message, opening one if none is. `length` is their total, as the caller counted it.
   */
  append(message: Uint8Array | readonly Uint8Array[], length: number): void {
    if (length === 0) return;
    const total = this.openLen + length;
    let buf = this.openBuf;
    if (buf === undefined || this.openStart + total > buf.length || (buf === this.chunk && total > CHUNK_MESSAGE_MAX)) {
      buf = this.room(total);
    }
    let at = this.openStart + this.openLen;
    if (message instanceof Uint8Array) {
      buf.set(message, at);
    } else {
      for (let i = 0; i < message.length; i++) {
        const part = message[i]!;
        buf.set(part, at);
        at += part.length;
      }
    }
    this.openLen = total;
    if (buf === this.chunk) this.chunkAt = this.openStart + total;
  }

  /** Queues a whole message pinned to a psock [K-3], by reference (its bytes are a copy already). */
  pushPinned(buf: Buffer, pin: PsockRef): void {
    this.pushOwn(buf, 0, buf.length);
    this.segs.at(this.segs.length - 1)!.pin = pin;
  }

  /**
   * Completes the open message and takes it out of the queue instead of queueing it: a
   * view of its copy, which nothing writes over (a message pinned to a psock [K-3]).
   * Undefined when none is open [T-5].
   */
  completeDetached(): Buffer | undefined {
    const len = this.openLen;
    if (len === 0) return undefined;
    const buf = this.openBuf!;
    const start = this.openStart;
    this.openBuf = undefined;
    this.openStart = 0;
    this.openLen = 0;
    // Its bytes in the chunk stay its own: the next message starts behind them. The chunk
    // can no longer tell when they are written.
    if (buf === this.chunk) {
      this.tail = undefined;
      this.chunkRef!.lost = true;
    }
    return buf.subarray(start, start + len);
  }

  /** Completes the open message; false when there was none (zero bytes) [T-5]. */
  complete(): boolean {
    const len = this.openLen;
    if (len === 0) return false;
    const buf = this.openBuf!;
    const start = this.openStart;
    this.openBuf = undefined;
    this.openStart = 0;
    this.openLen = 0;
    if (buf !== this.chunk) {
      this.pushOwn(buf, start, len);
      return true;
    }
    // room() made sure the chunk can record it.
    let seg = this.tail;
    if (seg === undefined || seg.end !== start) seg = this.newTail(start);
    seg.end = start + len;
    this.chunkLens![this.chunkN++] = len;
    seg.count++;
    this.count++;
    this.queued += len;
    return true;
  }

  /** Drops the open message [T-10c]; returns its length. */
  discardOpen(): number {
    const len = this.openLen;
    if (len === 0) return 0;
    if (this.openBuf === this.chunk) this.chunkAt = this.openStart;
    this.openBuf = undefined;
    this.openStart = 0;
    this.openLen = 0;
    return len;
  }

  /** The segment holding the head message (undefined when the queue is empty). */
  head(): TxSegment | undefined {
    if (this.count === 0) return undefined;
    const segs = this.segs;
    let seg = segs.peek()!;
    while (seg.count === 0) {
      // An emptied segment: gone once it no longer receives messages.
      segs.shift();
      if (seg === this.tail) this.tail = undefined;
      seg = segs.peek()!;
    }
    return seg;
  }

  /** The head message's length (0 when empty). */
  get headLength(): number {
    const seg = this.head();
    if (seg === undefined) return 0;
    return seg.lens === undefined ? seg.end - seg.start : seg.lens[seg.li]!;
  }

  /**
   * Takes every message of the head segment `seg` (from {@link head}, none started),
   * handed whole to a transport; returns their bytes.
   */
  takeSegment(seg: TxSegment): number {
    const bytes = seg.end - seg.start;
    this.count -= seg.count;
    this.queued -= bytes;
    seg.start = seg.end;
    seg.li += seg.count;
    seg.count = 0;
    this.headWritten = 0;
    if (seg !== this.tail) this.segs.shift();
    return bytes;
  }

  /** Takes the head message, handed whole to a transport; returns its length. */
  takeHead(): number {
    const seg = this.head()!;
    const len = seg.lens === undefined ? seg.end - seg.start : seg.lens[seg.li]!;
    seg.start += len;
    seg.li++;
    seg.count--;
    this.count--;
    this.queued -= len;
    this.headWritten = 0;
    if (seg.count === 0 && seg !== this.tail) this.segs.shift();
    return len;
  }

  /**
   * Takes the head message (none started) and returns a view of its bytes. Its copy is
   * the caller's until it no longer needs the view: then a pooled one goes back to the
   * pool, and a chunk's is counted written ({@link chunkWritten}); see {@link head}.
   */
  takeView(): Buffer {
    const seg = this.head()!;
    const start = seg.start;
    return seg.buf.subarray(start, start + this.takeHead());
  }

  /** [T-11 step 1, T-16] the head message restarts from byte 0. */
  rewindHead(): void {
    // Pieces of it went to the transport it leaves, which may still hold them: its copy
    // is never given back to the pool.
    if (this.headWritten > 0) this.head()!.pooled = false;
    this.headWritten = 0;
  }

  /**
   * Puts a message back so that it becomes the message `at` places from the head, for a
   * restart [T-16]: its bytes are referenced, never copied again.
   */
  insert(at: number, buf: Buffer, start: number, len: number): void {
    const segs = this.segs;
    const seg: TxSegment = { buf, start, end: start + len, count: 1, lens: undefined, li: 0, pin: undefined, pooled: false, chunk: undefined };
    // The segment index where `at` messages lie before it, splitting a segment if needed.
    let i = 0;
    let before = 0;
    while (i < segs.length && before < at) {
      const s = segs.at(i)!;
      if (before + s.count > at) {
        // Split `s` after its first `at - before` messages.
        const k = at - before;
        let bytes = 0;
        for (let j = 0; j < k; j++) bytes += s.lens![s.li + j]!;
        const rest: TxSegment = { buf: s.buf, start: s.start + bytes, end: s.end, count: s.count - k, lens: s.lens, li: s.li + k, pin: undefined, pooled: false, chunk: s.chunk };
        s.end = s.start + bytes;
        s.count = k;
        if (this.tail === s) this.tail = rest;
        segs.insert(i + 1, rest);
      }
      before += s.count;
      i++;
    }
    segs.insert(i, seg);
    if (i === segs.length - 1) this.tail = undefined;
    this.count++;
    this.queued += len;
  }

  /** Drops everything, the open message included [O-6]. */
  clear(): void {
    this.segs.clear();
    this.count = 0;
    this.queued = 0;
    this.headWritten = 0;
    this.openBuf = undefined;
    this.openStart = 0;
    this.openLen = 0;
    this.chunk = undefined;
    this.chunkLens = undefined;
    this.chunkRef = undefined;
    this.chunkAt = 0;
    this.chunkN = 0;
    this.tail = undefined;
  }

  /** Queues one whole message that has a buffer of its own (`pooled`: from the copy pool). */
  private pushOwn(buf: Buffer, start: number, len: number, pooled = false): void {
    this.segs.push({ buf, start, end: start + len, count: 1, lens: undefined, li: 0, pin: undefined, pooled, chunk: undefined });
    this.tail = undefined;
    this.count++;
    this.queued += len;
  }

  private newChunk(): void {
    const old = this.chunkRef;
    const c = copyPool.takeChunk() ?? { buf: Buffer.allocUnsafeSlow(CHUNK_SIZE), lens: new Uint16Array(CHUNK_MESSAGES), total: -1, done: 0, lost: false };
    this.chunkRef = c;
    this.chunk = c.buf;
    this.chunkLens = c.lens;
    // The old one is full: once all its messages are written, it can be used again (after
    // the new one is taken, so that room() still finds the bytes it moves).
    if (old !== undefined) {
      old.total = this.chunkN;
      chunkWritten(old, 0);
    }
    this.chunkAt = 0;
    this.chunkN = 0;
    this.tail = undefined;
  }

  /** A new segment in the chunk from `start`, at the end of the queue. */
  private newTail(start: number): TxSegment {
    const seg: TxSegment = { buf: this.chunk!, start, end: start, count: 0, lens: this.chunkLens, li: this.chunkN, pin: undefined, pooled: false, chunk: this.chunkRef };
    this.segs.push(seg);
    this.tail = seg;
    return seg;
  }

  /**
   * A place for an open message growing to `total` bytes: the chunk when it is small (and
   * the chunk can record one more message), else a buffer of its own (twice the size when
   * the message is still open, so that appends cost linear time). The bytes so far move
   * there; returns the buffer.
   */
  private room(total: number): Buffer {
    const old = this.openBuf;
    const oldStart = this.openStart;
    const oldLen = this.openLen;
    const inChunk = old !== undefined && old === this.chunk;
    if (inChunk) this.chunkAt = oldStart; // its bytes in the chunk are free again
    let buf: Buffer;
    let start: number;
    if (total <= CHUNK_MESSAGE_MAX) {
      if (this.chunk === undefined || this.chunkAt + total > CHUNK_SIZE || this.chunkN === CHUNK_MESSAGES) this.newChunk();
      buf = this.chunk!;
      start = this.chunkAt;
    } else {
      buf = Buffer.allocUnsafe(oldLen === 0 ? total : Math.max(total, 2 * oldLen));
      start = 0;
    }
    if (oldLen > 0 && (buf !== old || start !== oldStart)) old!.copy(buf, start, oldStart, oldStart + oldLen);
    this.openBuf = buf;
    this.openStart = start;
    return buf;
  }
}

/** Copies the parts of a message back to back into `buf` from `at`. */
function copyParts(buf: Buffer, parts: readonly Uint8Array[], at: number): void {
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    const len = part.length;
    if (len <= 8) {
      // A header: a byte loop costs half of set()'s fixed price at this size.
      for (let j = 0; j < len; j++) buf[at + j] = part[j]!;
    } else {
      buf.set(part, at);
    }
    at += len;
  }
}

/** A Buffer over the bytes of `message`, without copying them. */
export function bufferOf(message: Uint8Array): Buffer {
  return Buffer.isBuffer(message) ? message : Buffer.from(message.buffer, message.byteOffset, message.byteLength);
}
