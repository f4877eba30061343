/**
 * The buffers large messages are copied into at the call [T-3 step 4], used again once
 * their transport has taken them.
 *
 * A fresh buffer per large message costs more than its copy: an allocation outside the
 * JS heap, pages the kernel maps in on first touch, and garbage collection driven by
 * external memory. So a buffer whose message was written whole by its transport (its
 * last write completed without error, so no restart [T-16] can need its bytes) comes
 * back here, and the next large message of about its size is copied into it while it is
 * still warm in the cache.
 *
 * Bounded: buffers of up to {@link POOL_BUFFER_MAX} bytes, in size classes a quarter of a
 * power of two apart (a message uses at least four fifths of its buffer), at most
 * {@link POOL_PER_CLASS} free ones per class and {@link POOL_BYTES_MAX} bytes free in all;
 * anything beyond is left to the garbage collector. One pool per thread.
 *
 * The 64 KiB chunks small messages are copied into come back the same way, once every
 * message in a full chunk was written whole: at most {@link POOL_CHUNKS} of them.
 */
import type { TxChunk } from './tx-queue.js';

/** Largest buffer kept for reuse. */
export const POOL_BUFFER_MAX = 2 * 1024 * 1024;
/** Free buffers kept per size class. */
export const POOL_PER_CLASS = 8;
/** Free bytes kept in all. */
export const POOL_BYTES_MAX = 4 * 1024 * 1024;
/** Free chunks kept. */
export const POOL_CHUNKS = 16;

/** The size of the class a buffer for `len` bytes comes from (`len` ≤ {@link POOL_BUFFER_MAX}). */
export function poolClassSize(len: number): number {
  if (len <= 4096) return 4096;
  // 2^k < len ≤ 2^(k+1): steps of 2^k / 4.
  const step = (1 << (31 - Math.clz32(len - 1))) >>> 2;
  return Math.ceil(len / step) * step;
}

export class CopyPool {
  /** Free buffers by class size. */
  private readonly free = new Map<number, Buffer[]>();
  private freeBytes = 0;
  private readonly chunks: TxChunk[] = [];

  /** Buffers handed out that were reused rather than allocated (a counter for tests and benchmarks). */
  reused = 0;
  /** Buffers handed out that were allocated. */
  allocated = 0;

  /** Bytes of free buffers held. */
  get bytes(): number {
    return this.freeBytes;
  }

  /**
   * A buffer for a message of `len` bytes: at least that long (the message is its first
   * `len` bytes), its contents undefined. Only a buffer from here may be {@link give}n back.
   */
  take(len: number): Buffer {
    if (len > POOL_BUFFER_MAX) {
      this.allocated++;
      return Buffer.allocUnsafe(len);
    }
    const size = poolClassSize(len);
    const list = this.free.get(size);
    if (list !== undefined && list.length > 0) {
      this.freeBytes -= size;
      this.reused++;
      return list.pop()!;
    }
    this.allocated++;
    return Buffer.allocUnsafeSlow(size);
  }

  /**
   * Gives back a buffer from {@link take} that nothing refers to any more; kept when its
   * class and the pool have room, else left to the garbage collector.
   */
  give(buf: Buffer): void {
    const size = buf.length;
    if (size > POOL_BUFFER_MAX || this.freeBytes + size > POOL_BYTES_MAX) return;
    let list = this.free.get(size);
    if (list === undefined) {
      list = [];
      this.free.set(size, list);
    }
    if (list.length >= POOL_PER_CLASS) return;
    list.push(buf);
    this.freeBytes += size;
  }

  /** A free chunk, as new (no message, not full), or undefined. */
  takeChunk(): TxChunk | undefined {
    const c = this.chunks.pop();
    if (c === undefined) return undefined;
    this.reused++;
    c.total = -1;
    c.done = 0;
    c.lost = false;
    return c;
  }

  /** Gives back a full chunk whose messages were all written whole. */
  giveChunk(c: TxChunk): void {
    if (this.chunks.length < POOL_CHUNKS) this.chunks.push(c);
  }

  /** Drops every free buffer and chunk. */
  clear(): void {
    this.free.clear();
    this.freeBytes = 0;
    this.chunks.length = 0;
  }
}

/** The pool of this thread. */
export const copyPool = new CopyPool();
