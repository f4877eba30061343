import type { KcmSocket } from './kcm-socket.js';
import type { PsockRef } from './psock.js';

/**
 * The piece of a large message handed to `transport.write()` at once, so a stall can fall
 * mid-message [T-12]; the last piece of a part may be up to twice as long.
 */
export const WRITE_PIECE = 64 * 1024;

/**
 * One message on a KCM socket's transmit queue: its parts (an iovec, never copied) and
 * the write cursor of its current attempt. A restart [T-16] rewinds the cursor to byte 0.
 */
export class TxMessage {
  /** The parts, in order; empty parts are never stored. */
  readonly parts: Buffer[];
  /** Total bytes. */
  length: number;
  readonly owner: KcmSocket;
  /** Index of the part being written. */
  part = 0;
  /** Offset in that part. */
  offset = 0;
  /** Bytes of this attempt handed to the transport. */
  written = 0;
  /** Bumped at each restart, so that late write callbacks of an old attempt are ignored. */
  attempt = 0;
  /** True once every byte of the current attempt was handed to the transport. */
  handed = false;
  /**
   * The psock it is pinned to [K-3]: it goes out there or nowhere. A Psock in the
   * multiplexor's thread; the `{ id }` the user gave in a worker.
   */
  pin: PsockRef | undefined = undefined;

  constructor(owner: KcmSocket, parts: Buffer[], length: number) {
    this.owner = owner;
    this.parts = parts;
    this.length = length;
  }

  append(parts: Buffer[], length: number): void {
    for (const part of parts) this.parts.push(part);
    this.length += length;
  }

  /** Back to byte 0 for a new attempt on another transport [T-16]. */
  rewind(): void {
    this.part = 0;
    this.offset = 0;
    this.written = 0;
    this.handed = false;
    this.attempt++;
  }
}
