/** The public types of a {@link KcmSocket}'s calls: options, results, counters, events. */
import type { KcmSocket } from './kcm-socket.js';
import type { Multiplexor } from './multiplexor.js';
import type { PsockRef } from './psock.js';
import type { SocketEndpoint, SocketHost } from './socket-endpoint.js';

/** The socket type [O-1a]. */
export type KcmSocketType = 'dgram' | 'seqpacket';

/** Options of {@link KcmSocket.create}. */
export interface KcmSocketOptions {
  /** `'dgram'` (default) or `'seqpacket'`. */
  type?: KcmSocketType;
  /** Bytes queued for transmit before `send()` waits (SO_SNDBUF) [T-7]; default 212992. */
  sendBufferSize?: number;
  /** Bytes of whole messages queued before steering skips the socket (SO_RCVBUF) [S-3]; default 212992. */
  receiveBufferSize?: number;
}

/** Options of {@link KcmSocket.send}. */
export interface SendOptions {
  /** This call ends the message; default true. False keeps it open for the next call [T-1]. */
  eor?: boolean;
  /** MSG_BATCH: hold the write until a call without batch [T-8]. */
  batch?: boolean;
  signal?: AbortSignal;
  /**
   * Pins the message to this psock [K-3]: it goes out on that transport only, whole, in
   * call order with the socket's other messages to it, or is dropped and counted
   * (`txDropped`) if the psock fails first [K-6]. A `Psock`, or the `origin` of a
   * received message (a plain `{ id }` in a worker).
   */
  psock?: PsockRef;
  /**
   * Default true: the bytes are copied at the call, as sendmsg copies them [T-3 step 4].
   * `false` hands the buffer over instead: the caller promises never to change it again
   * (a constant frame, or a buffer built for this message and then dropped), and a whole
   * message over 16 KiB goes out by reference, without the copy. Smaller messages, the
   * parts of an iovec and messages built over several calls are copied all the same: the
   * copy is what lets a burst of small messages leave as one write.
   */
  copy?: boolean;
}

/** Options of {@link KcmSocket.sendMany}. */
export interface SendManyOptions {
  /** Pins every message of the call to this psock [K-3]; they go out back to back there [T-8]. */
  psock?: PsockRef;
  /** `false`: every message of the call is handed over, as {@link SendOptions.copy} says. */
  copy?: boolean;
}

/** Result of {@link KcmSocket.receiveFrom}. */
export interface ReceiveFromResult {
  message: Buffer;
  /** The psock the message was parsed from [K-2]: a `Psock`, or a plain `{ id }` in a worker. */
  origin: PsockRef;
}

/** Options of the receive calls. */
export interface ReceiveOptions {
  signal?: AbortSignal;
}

/** Result of {@link KcmSocket.receiveInto}. */
export interface ReceiveIntoResult {
  /** Bytes copied into the target. */
  bytes: number;
  /** The message's last byte was copied (MSG_EOR). */
  eor: boolean;
  /** DGRAM: the rest of a longer message was discarded (MSG_TRUNC). */
  truncated: boolean;
}

/** Counters of one KCM socket [ST-1]. */
export interface KcmSocketStats {
  rxMsgs: number;
  rxBytes: number;
  txMsgs: number;
  txBytes: number;
  /**
   * Pinned messages dropped because their psock failed or was unattached first [K-6].
   * Not enumerable, so the object shows the four ST-1 counters of Linux.
   */
  txDropped: number;
}

/** A message, or the parts of one message (an iovec). */
export type Message = Uint8Array | readonly Uint8Array[];

/** The events of a {@link KcmSocket}, with their listeners' arguments. */
export interface KcmSocketEvents {
  /**
   * A message, in flowing mode (while a listener is attached and the socket is not
   * paused), with its origin: the psock it was parsed from [K-2], to pass back as
   * `send(reply, { psock: origin })`.
   */
  message: [message: Buffer, origin: PsockRef];
  /** The socket closed. */
  close: [];
  /**
   * Never emitted by the socket: a transport's failure is its psock's [E-6]. Listed so
   * that a defensive listener, as on any emitter, type-checks.
   */
  error: [error: Error];
  newListener: [eventName: string | symbol, listener: (...args: any[]) => void];
  removeListener: [eventName: string | symbol, listener: (...args: any[]) => void];
}

/** @internal How a socket is made: on a multiplexor of this thread, or (a worker's) on a host of its own. */
export interface KcmSocketInit {
  type: KcmSocketType;
  sendBufferSize: number;
  receiveBufferSize: number;
  /** The multiplexor it joins; absent for a socket whose multiplexor is in another thread. */
  mux?: Multiplexor;
  /** Required without `mux`. */
  host?: SocketHost;
  endpoint?: SocketEndpoint;
  /** Required without `mux`: its index in the multiplexor of the other thread. */
  index?: number;
}
