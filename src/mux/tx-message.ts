import type { KcmSocket } from './kcm-socket.js';
import type { PsockRef } from './psock.js';

/**
 * One message pinned to a psock [K-3], on its way to that psock's queue: its bytes (one
 * part, copied at the call; see `TxQueue`) and the write cursor. Unpinned messages need
 * no object: they are records of the socket's `TxQueue`.
 */
export class TxMessage {
  /** Its bytes: one part, a copy nothing writes over. */
  readonly parts: Buffer[];
  /** Total bytes. */
  length: number;
  readonly owner: KcmSocket;
  /** Bytes of this attempt handed to the transport. */
  written = 0;
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
}
