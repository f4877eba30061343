import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import { KcmError, checkInteger, invalidArgType } from '../errors.js';
import { Fifo } from './fifo.js';
import { Multiplexor, type KcmSocketMuxStats } from './multiplexor.js';
import { Psock, kPsock, type AttachOptions } from './psock.js';
import { TxMessage } from './tx-message.js';
import { isTcpStream } from './transport-check.js';
import { AbortError } from './abort-error.js';
import { cloneForWorker } from '../worker/proxy-socket.js';
import { adoptWorkerPort } from '../worker/adopted-socket.js';
import type { KcmWorkerPort } from '../worker/worker-port.js';
import { KcmConnector, type ConnectOptions } from '../helpers/kcm-connector.js';

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
}

/** A message, or the parts of one message (an iovec). */
export type Message = Uint8Array | readonly Uint8Array[];

/** Linux's `net.core.wmem_default` and `rmem_default`. */
const DEFAULT_BUFFER_SIZE = 212992;
/** Linux uses the TCP receive buffer, which autotuning grows to a few MiB [P-6, X-10]. */
const DEFAULT_MAX_MESSAGE_SIZE = 8 * 1024 * 1024;

const RECEIVE = 0;
const RECEIVE_MANY = 1;
const RECEIVE_INTO = 2;

interface Reader {
  kind: number;
  max: number;
  target: Uint8Array | undefined;
  resolve: (value: never) => void;
  reject: (err: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

interface SendRequest {
  parts: Buffer[];
  length: number;
  eor: boolean;
  batch: boolean;
  resolve: () => void;
  reject: (err: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

const resolved: Promise<void> = Promise.resolve();

/**
 * A message socket on a multiplexor (Linux: a socket of family AF_KCM).
 *
 * Messages written on it go out whole on one attached transport chosen for load
 * balancing [T-*]; messages parsed from the transports are steered to the sockets of
 * the multiplexor that are ready [S-*]. With a `'message'` listener it delivers each
 * message as it is steered to it (flowing mode, as node:dgram); otherwise messages wait
 * for the `receive*()` calls.
 */
export class KcmSocket extends EventEmitter {
  /** The multiplexor shared by this socket and all its clones. */
  readonly mux: Multiplexor;
  /** `'dgram'` or `'seqpacket'`. */
  readonly type: KcmSocketType;
  /** Its index in the multiplexor [O-2]. */
  index = 0;
  /** SO_SNDBUF [T-7]. */
  readonly sendBufferSize: number;
  /** SO_RCVBUF [S-3]. */
  readonly receiveBufferSize: number;
  /** True once closed. */
  closed = false;

  // ST-1 counters.
  /** @internal */ rxMsgs = 0;
  /** @internal */ rxBytes = 0;
  /** @internal */ txMsgs = 0;
  /** @internal */ txBytes = 0;

  // Receive state.
  /** @internal */ readonly rxQueue = new Fifo<Buffer>();
  /** @internal Bytes of queued messages (Rmem). */ rmem = 0;
  /** @internal SEQPACKET: bytes of the head message already read. */ rxOffset = 0;
  /** @internal [D-*] */ rxDisabled = false;
  /** @internal On the receive waiters [S-1]. */ rxWait = false;
  /** @internal The psock whose burst is bound to it [S-2]. */ rxPsock: Psock | undefined = undefined;
  /** @internal Marked for delivery. */ rxTouched = false;
  /** @internal */ readonly rxReaders = new Fifo<Reader>();
  private flowPaused = false;

  // Transmit state.
  /** @internal */ readonly txQueue = new Fifo<TxMessage>();
  /** @internal Bytes queued or open (Smem) [T-7]. */ smem = 0;
  /** @internal The message being built over several calls [T-1]. */ openMsg: TxMessage | undefined = undefined;
  /** @internal The reserved psock [T-13]. */ txPsock: Psock | undefined = undefined;
  /** @internal On the transmit waiters [T-19]. */ txWait = false;
  /** @internal Transmit work queued. */ txScheduled = false;
  /** @internal MSG_BATCH pending (`WMore`) [T-8]. */ batchPending = false;
  /** @internal Sends waiting for buffer space, in call order [T-9, B-15]. */ readonly sendWaiters = new Fifo<SendRequest>();

  /** @internal Use {@link KcmSocket.create} or {@link KcmSocket.clone}. */
  constructor(mux: Multiplexor, type: KcmSocketType, sendBufferSize: number, receiveBufferSize: number) {
    super();
    this.mux = mux;
    this.type = type;
    this.sendBufferSize = sendBufferSize;
    this.receiveBufferSize = receiveBufferSize;
    this.index = mux.addSocket(this);
    this.on('newListener', socketOnNewListener);
    // [O-1c] receive enabled, on the receive waiters at once.
    mux.enter();
    try {
      mux.socketReady(this);
    } finally {
      mux.leave();
    }
  }

  /**
   * `socket(AF_KCM, type, KCMPROTO_CONNECTED)`: a new multiplexor and its first socket [O-1].
   *
   * @throws KcmError `ESOCKTNOSUPPORT` for an unknown `type` [O-1a]; TypeError/RangeError
   * for other argument mistakes.
   */
  static create(options: KcmSocketOptions = {}): KcmSocket {
    if (options === null || typeof options !== 'object') throw invalidArgType('options', 'of type object', options);
    const type = options.type ?? 'dgram';
    if (typeof type !== 'string') throw invalidArgType('options.type', 'of type string', type);
    if (type !== 'dgram' && type !== 'seqpacket') {
      throw new KcmError('ESOCKTNOSUPPORT', `socket type '${type}' is not supported: use 'dgram' or 'seqpacket'`);
    }
    const sndbuf = options.sendBufferSize === undefined ? DEFAULT_BUFFER_SIZE : checkInteger('options.sendBufferSize', options.sendBufferSize, 1);
    const rcvbuf = options.receiveBufferSize === undefined ? DEFAULT_BUFFER_SIZE : checkInteger('options.receiveBufferSize', options.receiveBufferSize, 1);
    return new KcmSocket(new Multiplexor(), type, sndbuf, rcvbuf);
  }

  /** SIOCKCMCLONE: a new socket on the same multiplexor, same type and options [O-3]. */
  clone(): KcmSocket {
    this.checkOpen();
    return new KcmSocket(this.mux, this.type, this.sendBufferSize, this.receiveBufferSize);
  }

  /**
   * SIOCKCMCLONE for another thread: a new socket of this multiplexor, same type and
   * options, to be used in a worker. Pass the result in `workerData` (or `postMessage`)
   * with `transferList: port.transferList`, and call {@link KcmSocket.adopt} there. The
   * socket steers and transmits as any other from now on; a worker that exits or crashes
   * closes it, and its unread messages move to the other sockets [O-6].
   */
  cloneForWorker(): KcmWorkerPort {
    this.checkOpen();
    return cloneForWorker(this);
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
    return adoptWorkerPort(port);
  }

  // ------------------------------------------------------------------ attach

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
    if (!(transport instanceof net.Socket)) throw invalidArgType('transport', 'an instance of net.Socket', transport);
    if (options === null || typeof options !== 'object') throw invalidArgType('options', 'of type object', options);
    const parser = options.parser;
    if (typeof parser !== 'function') throw invalidArgType('options.parser', 'of type function', parser);
    const maxMessageSize = options.maxMessageSize === undefined
      ? DEFAULT_MAX_MESSAGE_SIZE
      : checkInteger('options.maxMessageSize', options.maxMessageSize, 1);
    const assemblyTimeout = options.assemblyTimeout === undefined
      ? 0
      : checkInteger('options.assemblyTimeout', options.assemblyTimeout, 0, 0x7fffffff);
    this.checkOpen();
    const reason = isTcpStream(transport);
    if (reason !== undefined) throw new KcmError('EOPNOTSUPP', `cannot attach: ${reason}`);
    const owner = (transport as net.Socket & { [kPsock]?: Psock })[kPsock];
    if (owner !== undefined) {
      throw new KcmError('EALREADY', owner.mux === this.mux
        ? `transport is already attached to this multiplexor (psock-${owner.index})`
        : 'transport is already attached to another multiplexor');
    }
    return this.mux.attach(transport, { parser, maxMessageSize, assemblyTimeout });
  }

  /**
   * SIOCKCMUNATTACH: detaches a transport, synchronously [U-*]. A partly received message
   * and a held one are dropped; a message not yet handed whole to the transport restarts
   * on another psock. The transport is left open and paused, unread bytes first [U-5].
   *
   * @throws KcmError `ENOENT` when the transport is not attached to this multiplexor.
   */
  unattach(transport: net.Socket): void {
    if (!(transport instanceof net.Socket)) throw invalidArgType('transport', 'an instance of net.Socket', transport);
    this.checkOpen();
    const psock = this.mux.findPsock(transport);
    if (psock === undefined) throw new KcmError('ENOENT', 'transport is not attached to this multiplexor');
    this.mux.unattach(psock);
  }

  /**
   * Keeps `options.connections` TCP connections to `host:port` attached to this socket's
   * multiplexor, and does E-4 for them: a connection whose psock errors is unattached,
   * destroyed and replaced after an exponential backoff. Messages sent meanwhile wait in
   * the socket [T-18]. Stops at `connector.close()`, when `options.signal` aborts or when
   * this socket closes.
   *
   * @throws KcmError `EBADF` when the socket is closed; TypeError/RangeError for argument mistakes.
   */
  connect(options: ConnectOptions): KcmConnector {
    return new KcmConnector(this, options);
  }

  // ------------------------------------------------------------------ send

  /**
   * sendmsg: queues a message (or the parts of one) for transmit [T-*]. Resolves once it is
   * in the socket's send queue [T-4], waiting only while that queue holds
   * `sendBufferSize` bytes or more [T-7, T-9], psock or not [T-18].
   *
   * The bytes are not copied: do not modify them afterwards, as with `net.Socket.write`.
   * Rejects with `EBADF` when the socket is or gets closed, with an `AbortError` when
   * `signal` aborts while waiting (a DGRAM message open from earlier calls is then
   * discarded [T-10c]).
   */
  send(message: Message, options?: SendOptions): Promise<void> {
    const parts = toParts(message);
    const length = partsLength(parts);
    let eor = true;
    let batch = false;
    let signal: AbortSignal | undefined;
    if (options !== undefined) {
      if (options === null || typeof options !== 'object') throw invalidArgType('options', 'of type object', options);
      eor = checkBool('options.eor', options.eor, true);
      batch = checkBool('options.batch', options.batch, false);
      signal = checkSignal(options.signal);
    }
    if (this.closed) return Promise.reject(badf('send'));
    if (this.mux.txGate instanceof Error) return Promise.reject(this.mux.txGate);
    if (signal !== undefined && signal.aborted) {
      this.sendFailed();
      return Promise.reject(new AbortError(signal.reason));
    }
    if (this.sendWaiters.length === 0 && this.admits()) {
      this.sendNow(parts, length, eor, batch);
      return resolved;
    }
    return this.sendLater(parts, length, eor, batch, signal);
  }

  /**
   * MSG_DONTWAIT: queues the message and returns true, or returns false and queues nothing
   * where {@link send} would wait [T-9, X-6].
   */
  trySend(message: Message, options?: Omit<SendOptions, 'signal'>): boolean {
    const parts = toParts(message);
    const length = partsLength(parts);
    let eor = true;
    let batch = false;
    if (options !== undefined) {
      if (options === null || typeof options !== 'object') throw invalidArgType('options', 'of type object', options);
      eor = checkBool('options.eor', options.eor, true);
      batch = checkBool('options.batch', options.batch, false);
    }
    this.checkOpen();
    if (this.mux.txGate instanceof Error) throw this.mux.txGate;
    if (this.sendWaiters.length > 0 || !this.admits()) {
      this.flushBatch();
      return false;
    }
    this.sendNow(parts, length, eor, batch);
    return true;
  }

  /**
   * sendmmsg: queues several messages written as one burst on one transport [T-8]. Each
   * entry is a message or the parts of one.
   */
  sendMany(messages: readonly Message[]): Promise<void> {
    if (!Array.isArray(messages)) throw invalidArgType('messages', 'an array of messages', messages);
    const all: Buffer[][] = new Array(messages.length);
    for (let i = 0; i < messages.length; i++) all[i] = toParts(messages[i]!, `messages[${i}]`);
    if (this.closed) return Promise.reject(badf('sendMany'));
    if (this.mux.txGate instanceof Error) return Promise.reject(this.mux.txGate);
    const last = all.length - 1;
    for (let i = 0; i <= last; i++) {
      const parts = all[i]!;
      const length = partsLength(parts);
      if (this.sendWaiters.length === 0 && this.admits()) {
        this.sendNow(parts, length, true, i < last);
        continue;
      }
      // Out of buffer space: the rest waits in order, the last one settles the call.
      let result: Promise<void> = resolved;
      for (let j = i; j <= last; j++) {
        const p = all[j]!;
        result = this.enqueueSend(p, partsLength(p), true, j < last, undefined);
        if (j < last) result.catch(noop);
      }
      this.kickSenders();
      return result;
    }
    return resolved;
  }

  /** [T-3 step 3] room for a new message, or a message is open [T-7b]. */
  private admits(): boolean {
    return this.openMsg !== undefined || (this.smem < this.sendBufferSize && this.mux.txGate === undefined);
  }

  /** @internal The multiplexor's send gate changed: waiting sends fail with its error, or proceed. */
  txGateChanged(): void {
    const gate = this.mux.txGate;
    if (gate instanceof Error) {
      for (const req of this.sendWaiters.drain()) {
        if (req.onAbort !== undefined) req.signal!.removeEventListener('abort', req.onAbort);
        req.reject(gate);
      }
      this.sendFailed();
    } else if (gate === undefined) {
      this.kickSenders();
    }
  }

  /** [T-3 steps 4-6] takes the bytes, completes and queues the message, starts writing. */
  private sendNow(parts: Buffer[], length: number, eor: boolean, batch: boolean): void {
    const mux = this.mux;
    mux.enter();
    try {
      if (length > 0) {
        if (this.openMsg === undefined) this.openMsg = new TxMessage(this, parts, length);
        else this.openMsg.append(parts, length);
        this.smem += length;
        this.txBytes += length;
      }
      if (!eor) return;
      // [T-5] an empty call completes the open message, if any; never an empty message.
      const msg = this.openMsg;
      this.openMsg = undefined;
      const wasEmpty = this.txQueue.length === 0;
      if (msg !== undefined) {
        this.txQueue.push(msg);
        this.txMsgs++;
      }
      if (batch) {
        if (msg !== undefined) this.batchPending = true;
      } else if (wasEmpty || this.batchPending) {
        this.batchPending = false;
        if (this.txQueue.length > 0) mux.scheduleTx(this);
      }
    } finally {
      mux.leave();
    }
  }

  private sendLater(parts: Buffer[], length: number, eor: boolean, batch: boolean, signal: AbortSignal | undefined): Promise<void> {
    const promise = this.enqueueSend(parts, length, eor, batch, signal);
    this.kickSenders();
    return promise;
  }

  private enqueueSend(parts: Buffer[], length: number, eor: boolean, batch: boolean, signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const req: SendRequest = { parts, length, eor, batch, resolve, reject, signal, onAbort: undefined };
      if (signal !== undefined) {
        req.onAbort = () => this.abortSend(req);
        signal.addEventListener('abort', req.onAbort, { once: true });
      }
      this.sendWaiters.push(req);
    });
  }

  /**
   * [T-3 step 3] a sender that has to wait flushes a pending batch first; writing it may
   * free space at once, and then the waiting sends proceed.
   */
  private kickSenders(): void {
    this.flushBatch();
    if (this.admits()) this.pumpSenders();
  }

  private abortSend(req: SendRequest): void {
    const waiters = this.sendWaiters.drain();
    for (const w of waiters) if (w !== req) this.sendWaiters.push(w);
    this.sendFailed();
    req.reject(new AbortError(req.signal?.reason));
    this.pumpSenders();
  }

  /** [T-10c] a failed DGRAM call discards the message being built; SEQPACKET keeps it [T-10b]. */
  private sendFailed(): void {
    if (this.type === 'dgram' && this.openMsg !== undefined) {
      this.smem -= this.openMsg.length;
      this.openMsg = undefined;
    }
  }

  private flushBatch(): void {
    if (!this.batchPending) return;
    this.batchPending = false;
    const mux = this.mux;
    mux.enter();
    try {
      mux.scheduleTx(this);
    } finally {
      mux.leave();
    }
  }

  /** @internal [T-9] buffer space freed: waiting sends proceed in call order. */
  pumpSenders(): void {
    const waiters = this.sendWaiters;
    while (waiters.length > 0 && !this.closed && this.admits()) {
      const req = waiters.shift()!;
      if (req.onAbort !== undefined) req.signal!.removeEventListener('abort', req.onAbort);
      this.sendNow(req.parts, req.length, req.eor, req.batch);
      req.resolve();
    }
    // [T-3 step 3] a sender still waiting flushes the batch its predecessors left open
    // (a sendMany() burst cut by the buffer limit), else nothing would write it.
    if (waiters.length > 0 && !this.closed) this.flushBatch();
  }

  /**
   * @internal [T-11] writes queued messages on the reserved psock, reserving one when
   * needed; releases it when the queue is empty [T-15].
   */
  txWork(): void {
    if (this.closed) return;
    const mux = this.mux;
    let psock = this.txPsock;
    if (psock !== undefined && psock.txStopped) {
      mux.releaseAborted(psock, this);
      psock = undefined;
    }
    const queue = this.txQueue;
    let freed = false;
    while (queue.length > 0) {
      if (psock === undefined) {
        psock = mux.reserve(this);
        if (psock === undefined) break;
      }
      if (psock.stalled) break; // [T-12] keep the reservation until 'drain'
      const msg = queue.peek()!;
      if (!psock.writeMessage(msg)) break; // stalled mid-message
      queue.shift();
      psock.txMsgs++;
      this.smem -= msg.length;
      freed = true;
    }
    if (queue.length === 0 && psock !== undefined) mux.release(psock, this);
    if (freed) this.pumpSenders();
  }

  /** @internal Puts a message whose write failed back in the queue [T-16]. */
  txRequeue(msg: TxMessage, at: number): void {
    this.txQueue.insert(Math.min(at, this.txQueue.length), msg);
    this.smem += msg.length;
  }

  // ------------------------------------------------------------------ receive

  /** recvmsg: one whole message [R-*]. Rejects with `EBADF` at close. */
  receive(options?: ReceiveOptions): Promise<Buffer> {
    const signal = options === undefined ? undefined : checkSignal(checkOptions(options).signal);
    if (this.closed) return Promise.reject(badf('receive'));
    if (signal !== undefined && signal.aborted) return Promise.reject(new AbortError(signal.reason));
    if (this.rxReaders.length === 0 && this.rxQueue.length > 0) return Promise.resolve(this.dequeue());
    return this.waitRead(RECEIVE, 0, undefined, signal);
  }

  /** MSG_DONTWAIT: a queued message, or undefined. */
  tryReceive(): Buffer | undefined {
    this.checkOpen();
    if (this.rxQueue.length === 0) return undefined;
    return this.dequeue();
  }

  /**
   * recvmmsg: waits for one message, then returns up to `max` (default: all) queued ones.
   */
  receiveMany(max?: number, options?: ReceiveOptions): Promise<Buffer[]> {
    const limit = max === undefined || max === Infinity ? Number.MAX_SAFE_INTEGER : checkInteger('max', max, 1);
    const signal = options === undefined ? undefined : checkSignal(checkOptions(options).signal);
    if (this.closed) return Promise.reject(badf('receiveMany'));
    if (signal !== undefined && signal.aborted) return Promise.reject(new AbortError(signal.reason));
    if (this.rxReaders.length === 0 && this.rxQueue.length > 0) return Promise.resolve(this.dequeueMany(limit));
    return this.waitRead(RECEIVE_MANY, limit, undefined, signal);
  }

  /**
   * recvmsg into a buffer: DGRAM discards the rest of a longer message (`truncated`)
   * SEQPACKET keeps it for the next call, `eor` false until its last byte.
   */
  receiveInto(target: Uint8Array, options?: ReceiveOptions): Promise<ReceiveIntoResult> {
    if (!(target instanceof Uint8Array)) throw invalidArgType('target', 'an instance of Uint8Array', target);
    const signal = options === undefined ? undefined : checkSignal(checkOptions(options).signal);
    if (this.closed) return Promise.reject(badf('receiveInto'));
    if (signal !== undefined && signal.aborted) return Promise.reject(new AbortError(signal.reason));
    if (this.rxReaders.length === 0 && this.rxQueue.length > 0) return Promise.resolve(this.readInto(target));
    return this.waitRead(RECEIVE_INTO, 0, target, signal);
  }

  /** Messages as they arrive; ends at {@link close}. */
  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    while (!this.closed) {
      let message: Buffer;
      try {
        message = await this.receive();
      } catch (err) {
        if (this.closed && err instanceof KcmError && err.code === 'EBADF') return;
        throw err;
      }
      yield message;
    }
  }

  /** Stops flowing delivery before the next message; the socket then queues up to `receiveBufferSize` [S-3]. */
  pause(): this {
    this.flowPaused = true;
    return this;
  }

  /** Restarts flowing delivery. */
  resume(): this {
    if (this.flowPaused) {
      this.flowPaused = false;
      process.nextTick(socketOnFlow, this);
    }
    return this;
  }

  /** True while flowing delivery is paused. */
  isPaused(): boolean {
    return this.flowPaused;
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
    const mux = this.mux;
    mux.enter();
    try {
      this.rxDisabled = disable;
      if (disable) {
        mux.leaveRxWaiters(this);
        mux.requeue(this.rxTakeAll(true));
      } else {
        mux.socketReady(this);
      }
    } finally {
      mux.leave();
    }
  }

  /** KCM_RECV_DISABLE as getsockopt reads it [D-2]. */
  getRecvDisable(): boolean {
    return this.rxDisabled;
  }

  /** @internal [S-3] room for one more message: an empty socket always takes one. */
  rxCanTake(): boolean {
    return !this.rxDisabled && !this.closed && (this.rmem === 0 || this.rmem < this.receiveBufferSize);
  }

  /** @internal */
  rxEnqueue(message: Buffer): void {
    this.rxQueue.push(message);
    this.rmem += message.length;
  }

  /** @internal Takes every queued message for requeueing, without the ready routine [D-3]. */
  rxTakeAll(keepPartial: boolean): Buffer[] {
    let head: Buffer | undefined;
    if (this.rxOffset > 0) {
      head = this.rxQueue.shift();
      if (!keepPartial) {
        this.rmem -= head!.length;
        head = undefined;
        this.rxOffset = 0;
      }
    }
    const all = this.rxQueue.drain();
    if (head !== undefined) {
      // [D-3] a partly read message is never moved: its new owner would get only the rest.
      this.rxQueue.push(head);
      this.rmem = head.length;
    } else {
      this.rmem = 0;
    }
    return all;
  }

  /**
   * @internal Delivers queued messages: waiting receive calls first, then `'message'`
   * listeners while flowing. Runs outside every state change.
   */
  rxFlush(): void {
    const readers = this.rxReaders;
    while (readers.length > 0 && this.rxQueue.length > 0) {
      const r = readers.shift()!;
      if (r.onAbort !== undefined) r.signal!.removeEventListener('abort', r.onAbort);
      if (r.kind === RECEIVE) r.resolve(this.dequeue() as never);
      else if (r.kind === RECEIVE_MANY) r.resolve(this.dequeueMany(r.max) as never);
      else r.resolve(this.readInto(r.target!) as never);
    }
    while (this.rxQueue.length > 0 && !this.flowPaused && !this.closed && this.listenerCount('message') > 0) {
      this.emit('message', this.dequeue());
    }
  }

  private dequeue(): Buffer {
    const message = this.takeHead();
    if (this.rmem === 0) this.drained();
    return message;
  }

  private dequeueMany(max: number): Buffer[] {
    const n = Math.min(max, this.rxQueue.length);
    const out: Buffer[] = new Array(n);
    for (let i = 0; i < n; i++) out[i] = this.takeHead();
    if (this.rmem === 0) this.drained();
    return out;
  }

  /** Takes the head message (the rest of it, after a partial read) and counts it [ST-1]. */
  private takeHead(): Buffer {
    let message = this.rxQueue.shift()!;
    this.rmem -= message.length;
    if (this.rxOffset > 0) {
      message = message.subarray(this.rxOffset);
      this.rxOffset = 0;
    }
    this.rxMsgs++;
    this.rxBytes += message.length;
    return message;
  }

  private readInto(target: Uint8Array): ReceiveIntoResult {
    const message = this.rxQueue.peek()!;
    const start = this.rxOffset;
    const rest = message.length - start;
    const bytes = Math.min(rest, target.length);
    message.copy(target, 0, start, start + bytes);
    this.rxBytes += bytes;
    if (bytes === rest || this.type === 'dgram') {
      // whole rest read, or DGRAM: the rest is discarded.
      this.rxQueue.shift();
      this.rmem -= message.length;
      this.rxOffset = 0;
      this.rxMsgs++;
      if (this.rmem === 0) this.drained();
      return { bytes, eor: true, truncated: bytes < rest };
    }
    // SEQPACKET: the rest stays at the head.
    this.rxOffset = start + bytes;
    return { bytes, eor: false, truncated: false };
  }

  /** [S-5] the queue emptied: the socket becomes ready again. */
  private drained(): void {
    const mux = this.mux;
    mux.enter();
    try {
      mux.socketReady(this);
    } finally {
      mux.leave();
    }
  }

  private waitRead<T>(kind: number, max: number, target: Uint8Array | undefined, signal: AbortSignal | undefined): Promise<T> {
    if (signal !== undefined && signal.aborted) return Promise.reject(new AbortError(signal.reason));
    return new Promise<T>((resolve, reject) => {
      const r: Reader = { kind, max, target, resolve: resolve as (v: never) => void, reject, signal, onAbort: undefined };
      if (signal !== undefined) {
        r.onAbort = () => {
          const all = this.rxReaders.drain();
          for (const x of all) if (x !== r) this.rxReaders.push(x);
          reject(new AbortError(signal.reason));
        };
        signal.addEventListener('abort', r.onAbort, { once: true });
      }
      this.rxReaders.push(r);
    });
  }

  // ------------------------------------------------------------------ close, stats

  /**
   * close: unsent messages are discarded and a psock held for them is aborted; unread
   * messages move to the other sockets [O-6, C-1]. Pending calls reject with `EBADF`;
   * iterators end. The last close unattaches every psock, leaving transports open [O-7].
   */
  close(): void {
    if (this.closed) return;
    const mux = this.mux;
    mux.enter();
    try {
      // [O-6 steps 1-4] transmit side.
      this.openMsg = undefined;
      this.txQueue.clear();
      this.smem = 0;
      this.batchPending = false;
      const psock = this.txPsock;
      if (psock !== undefined) mux.abortOnClose(psock, this);
      // [O-6 step 5, C-1] receive side: counts as disabled, unread messages move.
      mux.leaveRxWaiters(this);
      this.rxDisabled = true;
      this.closed = true;
      mux.requeue(this.rxTakeAll(false));
      mux.removeSocket(this);
      // Settled before leave(): the listeners it runs may throw, and the calls pending
      // here must reject with EBADF all the same.
      const err = badf('the socket was closed');
      for (const req of this.sendWaiters.drain()) {
        if (req.onAbort !== undefined) req.signal!.removeEventListener('abort', req.onAbort);
        req.reject(err);
      }
      for (const r of this.rxReaders.drain()) {
        if (r.onAbort !== undefined) r.signal!.removeEventListener('abort', r.onAbort);
        r.reject(err);
      }
    } finally {
      mux.leave();
    }
    this.emit('close');
  }

  /** Counters of this socket [ST-1], exact. */
  stats(): KcmSocketStats {
    return { rxMsgs: this.rxMsgs, rxBytes: this.rxBytes, txMsgs: this.txMsgs, txBytes: this.txBytes };
  }

  /** @internal The socket's row of the multiplexor's statistics [ST-7]. */
  muxStats(): KcmSocketMuxStats {
    return {
      index: this.index,
      rxMsgs: this.rxMsgs,
      rxBytes: this.rxBytes,
      txMsgs: this.txMsgs,
      txBytes: this.txBytes,
      rxQueued: this.rxQueue.length,
      rxQueuedBytes: this.rmem,
      txQueued: this.txQueue.length,
      txQueuedBytes: this.smem,
      txPsock: this.txPsock === undefined ? -1 : this.txPsock.index,
      txWait: this.txWait,
      batchPending: this.batchPending,
      rxWait: this.rxWait,
      rxDisabled: this.rxDisabled,
    };
  }

  private checkOpen(): void {
    if (this.closed) throw badf('the socket is closed');
  }
}

function socketOnNewListener(this: KcmSocket, event: string | symbol): void {
  if (event === 'message') process.nextTick(socketOnFlow, this);
}

function socketOnFlow(sock: KcmSocket): void {
  if (sock.closed || sock.rxQueue.length === 0) return;
  sock.mux.touch(sock);
  sock.mux.flushLater();
}

function noop(): void {}

function badf(what: string): KcmError {
  return new KcmError('EBADF', `${what}: the KCM socket is closed`);
}

function toParts(message: unknown, name = 'message'): Buffer[] {
  if (message instanceof Uint8Array) {
    if (message.length === 0) return [];
    return [Buffer.isBuffer(message) ? message : Buffer.from(message.buffer, message.byteOffset, message.byteLength)];
  }
  if (Array.isArray(message)) {
    const parts: Buffer[] = [];
    for (let i = 0; i < message.length; i++) {
      const part: unknown = message[i];
      if (!(part instanceof Uint8Array)) throw invalidArgType(`${name}[${i}]`, 'an instance of Uint8Array', part);
      if (part.length === 0) continue;
      parts.push(Buffer.isBuffer(part) ? part : Buffer.from(part.buffer, part.byteOffset, part.byteLength));
    }
    return parts;
  }
  throw invalidArgType(name, 'an instance of Uint8Array or an array of Uint8Array', message);
}

function partsLength(parts: Buffer[]): number {
  let n = 0;
  for (const p of parts) n += p.length;
  return n;
}

function checkBool(name: string, value: unknown, dflt: boolean): boolean {
  if (value === undefined) return dflt;
  if (typeof value !== 'boolean') throw invalidArgType(name, 'of type boolean', value);
  return value;
}

function checkSignal(signal: unknown): AbortSignal | undefined {
  if (signal === undefined) return undefined;
  if (!(signal instanceof AbortSignal)) throw invalidArgType('options.signal', 'an instance of AbortSignal', signal);
  return signal;
}

function checkOptions<T>(options: T): T {
  if (options === null || typeof options !== 'object') throw invalidArgType('options', 'of type object', options);
  return options;
}

