import type { KcmSocket } from './kcm-socket.js';
import type { Psock, PsockRef } from './psock.js';
import type { TxMessage } from './tx-message.js';

/**
 * What a KCM socket needs of the multiplexor it runs on: the operation bracket of the
 * enter/leave discipline (work queued inside runs when the outermost operation ends, user
 * code only in the flush after it), the scheduling of its transmit work and deliveries,
 * and the ready routine [S-5]. The {@link Multiplexor} is one; a socket adopted in a
 * worker, whose multiplexor lives in another thread, brings its own.
 */
export interface SocketHost {
  enter(): void;
  leave(): void;
  /** Marks the socket for delivery at the end of the operation. */
  touch(k: KcmSocket): void;
  /** Queues the socket's transmit work [T-14]. */
  scheduleTx(k: KcmSocket): void;
  /** [S-5] the socket's receive queue emptied: it is ready again. */
  socketReady(k: KcmSocket): void;
  /** Runs a flush outside any operation. */
  flushLater(): void;
}

/**
 * Where a KCM socket's messages go: the strategy the socket delegates to at the four
 * points where a socket of this thread and a socket living in a worker differ. The
 * default, {@link localEndpoint}, delivers to this thread's readers and listeners and
 * writes on the multiplexor's psocks; `src/worker/` implements the proxy (the
 * multiplexor's side of a worker's socket) and the adopted socket (the worker's side)
 * against this interface, so neither subclasses the socket.
 */
export interface SocketEndpoint {
  /** Delivers the queued received messages. Runs in a flush, outside every state change. */
  deliver(sock: KcmSocket): void;
  /** [T-11] Moves the queued transmit messages on. Runs at the end of an operation. */
  transmit(sock: KcmSocket): void;
  /** [T-16] Puts a message whose write failed back in the send queue, `at` places from its head. */
  requeue(sock: KcmSocket, buf: Buffer, start: number, len: number, at: number): void;
  /** close [O-6]: called once, on an open socket. */
  close(sock: KcmSocket): void;
  /** KCM_RECV_DISABLE [D-3, D-6]: called on a change only, the socket open. */
  recvDisable(sock: KcmSocket, disable: boolean): void;
  /** A read took messages off the receive queue; user code has not seen them yet. */
  taken(sock: KcmSocket): void;
  /** Messages steered to the socket and held outside its queue (posted to a worker): they count as queued. */
  readonly held: number;
  /**
   * Of the {@link held} messages, those already read where they are (a worker's code took
   * them) but not yet acknowledged, with their bytes: statistics count them as read, not
   * queued, so they are exact at the time of the call [ST-1]. Undefined when none.
   */
  readElsewhere(sock: KcmSocket): { msgs: number; bytes: number } | undefined;
  /** [K-5] the psock a pinned send names, checked at the call: throws KcmError `ENOENT` or `EPIPE`. */
  pinTarget(sock: KcmSocket, ref: PsockRef): PsockRef;
  /** [K-4] a complete pinned message goes on: to its psock's queue, or to the worker's proxy. */
  pinned(sock: KcmSocket, msg: TxMessage): void;
  /** [K-4, K-6] bytes of pinned messages left the send queue: handed whole, or dropped [T-7]. */
  freed(sock: KcmSocket, bytes: number): void;
  /** [K-6] a pinned message of the socket was dropped. */
  dropped(sock: KcmSocket): void;
  /** [K-6] the socket's `txDropped`. */
  droppedCount(sock: KcmSocket): number;
  /** [K-5] a psock was attached, or is done (a worker's socket mirrors the list). */
  psockChanged(sock: KcmSocket, psock: Psock): void;
}

/** The endpoint of a socket of the multiplexor's thread. */
export const localEndpoint: SocketEndpoint = {
  deliver(sock: KcmSocket): void {
    sock.rx.flush();
  },
  transmit(sock: KcmSocket): void {
    sock.tx.work();
  },
  requeue(sock: KcmSocket, buf: Buffer, start: number, len: number, at: number): void {
    sock.tx.requeue(buf, start, len, at);
  },
  close(sock: KcmSocket): void {
    sock.finishClose();
  },
  recvDisable(sock: KcmSocket, disable: boolean): void {
    const mux = sock.mux;
    mux.enter();
    try {
      sock.rxDisabled = disable;
      if (disable) {
        mux.leaveRxWaiters(sock);
        const origins: PsockRef[] = [];
        mux.requeue(sock.rx.takeAll(true, origins), origins);
      } else {
        mux.socketReady(sock);
      }
    } finally {
      mux.leave();
    }
  },
  taken(): void {},
  held: 0,
  readElsewhere(): undefined {
    return undefined;
  },
  pinTarget(sock: KcmSocket, ref: PsockRef): PsockRef {
    return sock.mux.pinTarget(ref);
  },
  pinned(sock: KcmSocket, msg: TxMessage): void {
    sock.mux.pin(msg.pin as Psock, msg);
  },
  freed(sock: KcmSocket, bytes: number): void {
    sock.tx.freed(bytes);
  },
  dropped(sock: KcmSocket): void {
    sock.tx.dropped++;
  },
  droppedCount(sock: KcmSocket): number {
    return sock.tx.dropped;
  },
  psockChanged(): void {},
};
