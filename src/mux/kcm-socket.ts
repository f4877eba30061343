import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import { KcmError, invalidArgType } from '../errors.js';
import { Multiplexor } from './multiplexor.js';
import type { AttachOptions, Psock, PsockRef } from './psock.js';
import type {
  KcmSocketEvents, KcmSocketInit, KcmSocketOptions, KcmSocketStats, KcmSocketType, Message, ReceiveFromResult, ReceiveIntoResult, ReceiveOptions,
  SendManyOptions, SendOptions,
} from './socket-types.js';
import { checkAttachOptions, checkAttachable } from './attach-options.js';
import { badf, checkSocketOptions } from './socket-args.js';
import { ReceiveQueue } from './receive-queue.js';
import { SendQueue } from './send-queue.js';
import { localEndpoint, type SocketEndpoint, type SocketHost } from './socket-endpoint.js';
import { socketExtensions } from './socket-extensions.js';
import type { KcmWorkerPort } from '../worker/worker-port.js';
import type { ConnectOptions, KcmConnector } from '../helpers/kcm-connector.js';

export type {
  KcmSocketType, KcmSocketOptions, SendOptions, SendManyOptions, ReceiveOptions, ReceiveIntoResult, ReceiveFromResult, KcmSocketStats, Message,
  KcmSocketEvents,
} from './socket-types.js';

/**
 * A message socket on a multiplexor (Linux: a socket of family AF_KCM).
 *
 * Messages written on it go out whole on one attached transport chosen for load
 * balancing [T-*]; messages parsed from the transports are steered to the sockets of
 * the multiplexor that are ready [S-*]. With a `'message'` listener it delivers each
 * message as it is steered to it (flowing mode, as node:dgram); otherwise messages wait
 * for the `receive*()` calls.
 *
 * The socket is a facade: its {@link SendQueue} and {@link ReceiveQueue} hold the two
 * directions, the multiplexor steers, and its endpoint says where messages go (this
 * thread, or a worker's socket).
 */
export class KcmSocket extends EventEmitter<KcmSocketEvents> {
  /** `'dgram'` or `'seqpacket'`. */
  readonly type: KcmSocketType;
  /** Its index in the multiplexor [O-2]. */
  readonly index: number;
  /** SO_SNDBUF [T-7]. */
  readonly sendBufferSize: number;
  /** SO_RCVBUF [S-3]. */
  readonly receiveBufferSize: number;

  /** @internal */ readonly host: SocketHost;
  /** @internal */ readonly endpoint: SocketEndpoint;
  /** @internal The receive side. */ readonly rx: ReceiveQueue;
  /** @internal The transmit side. */ readonly tx: SendQueue;
  /** @internal [D-*] */ rxDisabled = false;
  /** @internal On the receive waiters [S-1]. */ rxWait = false;
  /** @internal The psock whose burst is bound to it [S-2]. */ rxPsock: Psock | undefined = undefined;
  /** @internal Marked for delivery. */ rxTouched = false;
  /** @internal The reserved psock [T-13]. */ txPsock: Psock | undefined = undefined;
  /** @internal On the transmit waiters [T-19]. */ txWait = false;
  /** @internal Transmit work queued. */ txScheduled = false;
  private readonly muxRef: Multiplexor | undefined;
  private isClosed = false;

  /** @internal Use {@link KcmSocket.create}, {@link KcmSocket.clone} or {@link KcmSocket.adopt}. */
  constructor(init: KcmSocketInit) {
    super();
    this.type = init.type;
    this.sendBufferSize = init.sendBufferSize;
    this.receiveBufferSize = init.receiveBufferSize;
    this.endpoint = init.endpoint ?? localEndpoint;
    this.rx = new ReceiveQueue(this, init.receiveBufferSize);
    this.tx = new SendQueue(this, init.sendBufferSize, init.mux);
    this.rx.watchListeners();
    const mux = init.mux;
    this.muxRef = mux;
    if (mux === undefined) {
      this.host = init.host!;
      this.index = init.index!;
      return;
    }
    this.host = mux;
    this.index = mux.addSocket(this);
    // [O-1c] receive enabled, on the receive waiters at once.
    mux.enter();
    try {
      mux.socketReady(this);
    } finally {
      mux.leave();
    }
  }

  /** The multiplexor shared by this socket and all its clones. @throws KcmError `EOPNOTSUPP` on a socket adopted in a worker. */
  get mux(): Multiplexor {
    if (this.muxRef === undefined) throw this.unsupported('mux');
    return this.muxRef;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.isClosed;
  }

  /**
   * `socket(AF_KCM, type, KCMPROTO_CONNECTED)`: a new multiplexor and its first socket [O-1].
   *
   * @throws KcmError `ESOCKTNOSUPPORT` for an unknown `type` [O-1a]; TypeError/RangeError
   * for other argument mistakes.
   */
  static create(options: KcmSocketOptions = {}): KcmSocket {
    return new KcmSocket({ mux: new Multiplexor(), ...checkSocketOptions(options) });
  }

  /** SIOCKCMCLONE: a new socket on the same multiplexor, same type and options [O-3]. */
  clone(): KcmSocket {
    const mux = this.member('clone');
    return new KcmSocket({ mux, type: this.type, sendBufferSize: this.sendBufferSize, receiveBufferSize: this.receiveBufferSize });
  }

  /**
   * SIOCKCMCLONE for another thread: a new socket of this multiplexor, same type and
   * options, to be used in a worker. Pass the result in `workerData` (or `postMessage`)
   * with `transferList: port.transferList`, and call {@link KcmSocket.adopt} there. The
   * socket steers and transmits as any other from now on; a worker that exits or crashes
   * closes it, and its unread messages move to the other sockets [O-6].
   */
  cloneForWorker(): KcmWorkerPort {
    this.member('cloneForWorker');
    return socketExtensions('cloneForWorker').cloneForWorker(this);
  }

  /**
   * The socket of a port made by {@link KcmSocket.cloneForWorker}, in the thread that
   * received it. It sends, receives, iterates, disables receive, reports stats and closes
   * as any socket; `attach`, `unattach` and `clone` throw KcmError `EOPNOTSUPP`.
   *
   * @throws TypeError when `port` is not such a port; KcmError `EALREADY` when it was
   * adopted already.
   */
  static adopt(port: KcmWorkerPort): KcmSocket {
    return socketExtensions('adopt').adopt(port);
  }

  /**
   * SIOCKCMATTACH: attaches a TCP transport to the multiplexor [A-*]. Parsing starts at
   * its next unread byte; a socket still connecting joins transmit rotation once
   * connected.
   *
   * @throws KcmError `EOPNOTSUPP` (not a TCP stream, destroyed, ended),
   * `EALREADY` (already attached here or to another multiplexor), `EBADF` (closed);
   * nothing is changed then.
   */
  attach(transport: net.Socket, options: AttachOptions): Psock {
    if (this.muxRef === undefined) this.member('attach');
    if (!(transport instanceof net.Socket)) throw invalidArgType('transport', 'an instance of net.Socket', transport);
    const checked = checkAttachOptions(options);
    const mux = this.member('attach');
    checkAttachable(transport, mux);
    return mux.attach(transport, checked);
  }

  /**
   * SIOCKCMUNATTACH: detaches a transport, synchronously [U-*]. A partly received message
   * and a held one are dropped; a message not yet handed whole to the transport restarts
   * on another psock. The transport is left open and paused, unread bytes first [U-5].
   *
   * @throws KcmError `ENOENT` when the transport is not attached to this multiplexor.
   */
  unattach(transport: net.Socket): void {
    if (this.muxRef === undefined) this.member('unattach');
    if (!(transport instanceof net.Socket)) throw invalidArgType('transport', 'an instance of net.Socket', transport);
    const mux = this.member('unattach');
    const psock = mux.findPsock(transport);
    if (psock === undefined) throw new KcmError('ENOENT', 'transport is not attached to this multiplexor');
    mux.unattach(psock);
  }

  /**
   * Keeps `options.connections` TCP connections to `host:port` attached to this socket's
   * multiplexor, and does E-4 for them (see {@link KcmConnector}). Messages sent
   * meanwhile wait in the socket [T-18].
   *
   * @throws KcmError `EBADF` when the socket is closed; TypeError/RangeError for argument mistakes.
   */
  connect(options: ConnectOptions): KcmConnector {
    return socketExtensions('connect').connect(this, options);
  }

  /**
   * sendmsg: queues a message (or the parts of one) for transmit [T-*]. Resolves once it is
   * in the socket's send queue [T-4], waiting only while that queue holds
   * `sendBufferSize` bytes or more [T-7, T-9], psock or not [T-18].
   *
   * The bytes are copied at the call, as sendmsg copies them: once the promise resolves
   * (or `trySend()` returned true) the caller may reuse or change its buffers. Small
   * messages are copied back to back into 64 KiB chunks (a burst leaves as one write), a
   * larger one into a buffer of its own; a call that waits copies when it proceeds.
   * `copy: false` hands a large message over by reference instead ({@link SendOptions.copy}).
   * Rejects with `EBADF` when the socket is or gets closed, with an `AbortError` when
   * `signal` aborts while waiting (a DGRAM message open from earlier calls is then
   * discarded [T-10c]).
   *
   * With `psock` (a `Psock`, or a message's `origin`) the message goes out on that psock
   * only, whole, in call order with the socket's other messages to it [K-3]; it is dropped
   * and counted (`txDropped`) if the psock fails first, never sent elsewhere [K-6].
   * Rejects with KcmError `EPIPE` when that psock is done, `ENOENT` when it is unknown or
   * of another multiplexor [K-5].
   */
  send(message: Message, options?: SendOptions): Promise<void> {
    return this.tx.send(message, options);
  }

  /**
   * MSG_DONTWAIT: queues the message and returns true, or returns false and queues nothing
   * where {@link send} would wait [T-9, X-6]. With `psock`, throws KcmError `EPIPE` or
   * `ENOENT` as {@link send} rejects [K-5].
   */
  trySend(message: Message, options?: Omit<SendOptions, 'signal'>): boolean {
    return this.tx.trySend(message, options);
  }

  /**
   * sendmmsg: queues several messages written as one burst on one transport [T-8]. Each
   * entry is a message or the parts of one. With `options.psock` every message is pinned
   * to that psock [K-3, K-7], as with {@link send}; `options.copy` as with {@link send}.
   */
  sendMany(messages: readonly Message[], options?: SendManyOptions): Promise<void> {
    return this.tx.sendMany(messages, options);
  }

  /** recvmsg: one whole message [R-*]. Rejects with `EBADF` at close. */
  receive(options?: ReceiveOptions): Promise<Buffer> {
    return this.rx.receive(options);
  }

  /**
   * recvmsg with its source: one whole message and the psock it was parsed from [K-2]
   * (in a worker, a plain `{ id }`), to pass back as `send(reply, { psock: origin })`.
   * Rejects with `EBADF` at close.
   */
  receiveFrom(options?: ReceiveOptions): Promise<ReceiveFromResult> {
    return this.rx.receiveFrom(options);
  }

  /** MSG_DONTWAIT: a queued message, or undefined. */
  tryReceive(): Buffer | undefined {
    return this.rx.tryReceive();
  }

  /** recvmmsg: waits for one message, then returns up to `max` (default: all) queued ones. */
  receiveMany(max?: number, options?: ReceiveOptions): Promise<Buffer[]> {
    return this.rx.receiveMany(max, options);
  }

  /**
   * recvmsg into a buffer: DGRAM discards the rest of a longer message (`truncated`)
   * SEQPACKET keeps it for the next call, `eor` false until its last byte.
   */
  receiveInto(target: Uint8Array, options?: ReceiveOptions): Promise<ReceiveIntoResult> {
    return this.rx.receiveInto(target, options);
  }

  /** Messages as they arrive; ends at {@link close}. */
  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    return this.rx.iterate();
  }

  /** Stops flowing delivery before the next message; the socket then queues up to `receiveBufferSize` [S-3]. */
  pause(): this {
    this.rx.paused = true;
    return this;
  }

  /** Restarts flowing delivery. */
  resume(): this {
    this.rx.resume();
    return this;
  }

  /** True while flowing delivery is paused. */
  isPaused(): boolean {
    return this.rx.paused;
  }

  /**
   * KCM_RECV_DISABLE: disabling moves the queued messages to other sockets (or the hold
   * queue) and takes no new ones [D-3]; enabling takes from the hold queue and ready
   * psocks first [D-6].
   */
  setRecvDisable(disable: boolean): void {
    if (typeof disable !== 'boolean') throw invalidArgType('disable', 'of type boolean', disable);
    this.checkOpen();
    if (disable === this.rxDisabled) return; // [D-1] no-op
    this.endpoint.recvDisable(this, disable);
  }

  /** KCM_RECV_DISABLE as getsockopt reads it [D-2]. */
  getRecvDisable(): boolean {
    return this.rxDisabled;
  }

  /**
   * close: unsent messages are discarded and a psock held for them is aborted; unread
   * messages move to the other sockets [O-6, C-1]. Pending calls reject with `EBADF`;
   * iterators end. The last close unattaches every psock, leaving transports open [O-7].
   */
  close(): void {
    if (this.isClosed) return;
    this.endpoint.close(this);
  }

  /** Counters of this socket [ST-1], exact. */
  stats(): KcmSocketStats {
    const there = this.endpoint.readElsewhere(this); // [ST-1] read in a worker, not yet acknowledged
    const rxMsgs = this.rx.msgs + (there === undefined ? 0 : there.msgs);
    const rxBytes = this.rx.bytes + (there === undefined ? 0 : there.bytes);
    const s = { rxMsgs, rxBytes, txMsgs: this.tx.msgs, txBytes: this.tx.bytes } as KcmSocketStats;
    // [K-6] present, but not enumerable: the ST-1 shape stays the four Linux counters.
    Object.defineProperty(s, 'txDropped', { value: this.endpoint.droppedCount(this), writable: true, configurable: true, enumerable: false });
    return s;
  }

  // ---------------------------------------------------------------- the multiplexor's side

  /** @internal [S-3] room for one more message. */
  rxCanTake(): boolean {
    return !this.rxDisabled && !this.isClosed && this.rx.canTake();
  }

  /** @internal Queues a steered message with its origin [K-2]. */
  rxEnqueue(message: Buffer, origin: PsockRef): void {
    this.rx.enqueue(message, origin);
  }

  /** @internal Deliveries, outside every state change. */
  rxFlush(): void {
    this.endpoint.deliver(this);
  }

  /** @internal [T-11] */
  txWork(): void {
    this.endpoint.transmit(this);
  }

  /** @internal Puts a message whose write failed back in the queue, `at` places from its head [T-16]. */
  txRequeue(buf: Buffer, start: number, len: number, at: number): void {
    this.endpoint.requeue(this, buf, start, len, at);
  }

  /**
   * @internal The close of {@link localEndpoint}, and the last step of the others: the
   * transmit side is discarded and its psock aborted [O-6 steps 1-4], the receive side
   * counts as disabled and its unread messages move to other sockets [O-6 step 5, C-1].
   */
  finishClose(): void {
    if (this.isClosed) return;
    const host = this.host;
    const mux = this.muxRef;
    host.enter();
    try {
      this.tx.discard();
      const psock = this.txPsock;
      if (mux !== undefined) {
        if (psock !== undefined) mux.abortOnClose(psock, this);
        mux.leaveRxWaiters(this);
      }
      this.rxDisabled = true;
      this.isClosed = true;
      const origins: PsockRef[] = [];
      const unread = this.rx.takeAll(false, origins);
      if (mux !== undefined) {
        mux.requeue(unread, origins);
        mux.removeSocket(this);
      }
      // Settled before leave(): the listeners it runs may throw, and the calls pending
      // here must reject with EBADF all the same.
      const err = badf('the socket was closed');
      this.tx.rejectAll(err);
      this.rx.rejectAll(err);
    } finally {
      host.leave();
    }
    this.emit('close');
  }

  /** The multiplexor, for the calls only a member of this thread's multiplexor makes. */
  private member(what: string): Multiplexor {
    if (this.isClosed) throw badf(what);
    if (this.muxRef === undefined) throw this.unsupported(what);
    return this.muxRef;
  }

  private unsupported(what: string): KcmError {
    return new KcmError('EOPNOTSUPP', `${what} is not available on a socket adopted in a worker: use the multiplexor's thread`);
  }

  private checkOpen(): void {
    if (this.isClosed) throw badf('the socket is closed');
  }
}
