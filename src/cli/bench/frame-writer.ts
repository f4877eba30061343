/**
 * The sending half of the hand-written framing: small frames are copied into a batch
 * buffer of about 64 KiB that goes out with one `write()` when full (or at `flush()`);
 * a large frame is not copied but written by reference after the batch, both under
 * `cork()` so that they leave in one `writev` (alone, it is one plain `write()`). The caller respects backpressure: `write`
 * and `flush` return false once the socket asked to wait for 'drain'.
 *
 *   frames  [len|payload] [len|payload] ... [len|big payload..........]
 *   writes  [batch: len|payload len|payload ...]  +  [len|big payload....]   (one writev)
 */
import type * as net from 'node:net';

/** Default batch buffer size. */
export const BATCH_BYTES = 64 * 1024;
/** Frames above this size are written by reference instead of copied. */
export const COPY_LIMIT = 16 * 1024;

export class FrameWriter {
  private batch: Buffer;
  private used = 0;

  constructor(
    private readonly socket: net.Socket,
    private readonly batchBytes = BATCH_BYTES,
    private readonly copyLimit = COPY_LIMIT,
  ) {
    this.batch = Buffer.allocUnsafeSlow(batchBytes);
  }

  /** Queues one whole frame (header included); false once the socket asks to wait. */
  write(frame: Uint8Array): boolean {
    if (frame.length > this.copyLimit) {
      if (this.used === 0) {
        this.socket.write(frame);
      } else {
        this.socket.cork();
        this.flush();
        this.socket.write(frame);
        this.socket.uncork();
      }
    } else {
      if (this.used + frame.length > this.batchBytes) this.flush();
      this.batch.set(frame, this.used);
      this.used += frame.length;
    }
    return !this.socket.writableNeedDrain;
  }

  /** Writes the batch so far; false when the socket asks to wait for 'drain'. */
  flush(): boolean {
    if (this.used === 0) return !this.socket.writableNeedDrain;
    // The socket keeps the written buffer until the kernel took it: start a fresh one.
    const out = this.batch.subarray(0, this.used);
    this.batch = Buffer.allocUnsafeSlow(this.batchBytes);
    this.used = 0;
    return this.socket.write(out);
  }
}
