import { KcmError, checkInteger, invalidArgType } from '../errors.js';
import { AbortError } from './abort-error.js';
import { Fifo } from './fifo.js';
import { badf, checkOptions, checkSignal } from './socket-args.js';
import { noop } from './noop.js';
import type { KcmSocket, ReceiveFromResult, ReceiveIntoResult, ReceiveOptions } from './kcm-socket.js';
import type { PsockRef } from './psock.js';

const RECEIVE = 0;
const RECEIVE_MANY = 1;
const RECEIVE_INTO = 2;
const RECEIVE_FROM = 3;

type MessageListener = (message: Buffer, origin: PsockRef) => void;

/** A receive call waiting for a message. */
interface Reader {
  kind: number;
  max: number;
  target: Uint8Array | undefined;
  resolve: (value: never) => void;
  reject: (err: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  /** With {@link ReceiveQueue.trackReads}: reads resolved to it whose caller has not run yet. */
  unseen: number;
}

/**
 * The receive side of a KCM socket: the whole messages steered to it, in order [S-1],
 * their bytes (Rmem) against `receiveBufferSize` [S-3], the receive calls waiting for
 * them, flowing delivery to `'message'` listeners, and the ST-1 receive counters.
 *
 * Messages leave it three ways: read (`receive*`, `tryReceive`, `'message'`), taken
 * whole for another socket [D-3, O-6], or delivered by the socket's endpoint.
 */
export class ReceiveQueue {
  /** Whole messages, oldest first. */
  readonly queue = new Fifo<Buffer>();
  /** [K-2] the origin of each queued message, in step with {@link queue}: no allocation per message. */
  readonly origins = new Fifo<PsockRef>();
  /** The origin of the message taken last. */
  from: PsockRef | undefined = undefined;
  /** Bytes of queued messages (Rmem) [S-3]. */
  rmem = 0;
  /** SEQPACKET: bytes of the head message already read. */
  offset = 0;
  /** [ST-1] */
  msgs = 0;
  /** [ST-1] */
  bytes = 0;
  /** Flowing delivery stopped by `pause()`. */
  paused = false;
  /**
   * Set for a socket adopted in a worker: a message resolved to a waiting receive call
   * counts as {@link unseen} until the call's caller runs (a reaction on its promise,
   * registered before the caller's, marks it seen), so a thread that ends in between
   * hands it on [O-6].
   */
  trackReads = false;
  /** Reads (as {@link msgs} counts them, a started partial one included) resolved to callers that have not run yet. */
  unseen = 0;
  private readonly readers = new Fifo<Reader>();
  /** The 'message' listeners as last read (wrappers of `once` ones included); undefined once they changed. */
  private listeners: MessageListener[] | undefined = undefined;
  private readonly owner: KcmSocket;
  private readonly limit: number;

  constructor(owner: KcmSocket, receiveBufferSize: number) {
    this.owner = owner;
    this.limit = receiveBufferSize;
  }

  get length(): number {
    return this.queue.length;
  }

  /** [S-3] room for one more message: an empty queue always takes one. */
  canTake(): boolean {
    return this.rmem === 0 || this.rmem < this.limit;
  }

  /** Queues a steered message with its origin [K-2]. */
  enqueue(message: Buffer, origin: PsockRef): void {
    this.queue.push(message);
    this.origins.push(origin);
    this.rmem += message.length;
  }

  /**
   * Takes every queued message for requeueing, without the ready routine [D-3]; with
   * `keepPartial` a partly read head message stays (its new owner would get only the rest).
   * Their origins are appended to `origins` [K-2].
   */
  takeAll(keepPartial: boolean, origins: PsockRef[]): Buffer[] {
    let head: Buffer | undefined;
    let headOrigin: PsockRef | undefined;
    if (this.offset > 0) {
      head = this.queue.shift();
      headOrigin = this.origins.shift();
      if (!keepPartial) {
        this.rmem -= head!.length;
        head = undefined;
        this.offset = 0;
      }
    }
    const all = this.queue.drain();
    for (const o of this.origins.drain()) origins.push(o);
    if (head !== undefined) {
      this.queue.push(head);
      this.origins.push(headOrigin!);
      this.rmem = head.length;
    } else {
      this.rmem = 0;
    }
    return all;
  }

  /** recvmsg with its source [K-2]. */
  receiveFrom(options: ReceiveOptions | undefined): Promise<ReceiveFromResult> {
    const signal = options === undefined ? undefined : checkSignal(checkOptions(options).signal);
    if (this.owner.closed) return Promise.reject(badf('receiveFrom'));
    if (signal !== undefined && signal.aborted) return Promise.reject(new AbortError(signal.reason));
    if (this.readers.length === 0 && this.queue.length > 0) {
      const message = this.dequeue();
      return Promise.resolve({ message, origin: this.from! });
    }
    return this.waitRead(RECEIVE_FROM, 0, undefined, signal);
  }

  /** recvmsg [R-*]. */
  receive(options: ReceiveOptions | undefined): Promise<Buffer> {
    const signal = options === undefined ? undefined : checkSignal(checkOptions(options).signal);
    if (this.owner.closed) return Promise.reject(badf('receive'));
    if (signal !== undefined && signal.aborted) return Promise.reject(new AbortError(signal.reason));
    if (this.readers.length === 0 && this.queue.length > 0) return Promise.resolve(this.dequeue());
    return this.waitRead(RECEIVE, 0, undefined, signal);
  }

  /** MSG_DONTWAIT. */
  tryReceive(): Buffer | undefined {
    if (this.owner.closed) throw badf('the socket is closed');
    if (this.queue.length === 0) return undefined;
    return this.dequeue();
  }

  /** recvmmsg. */
  receiveMany(max: number | undefined, options: ReceiveOptions | undefined): Promise<Buffer[]> {
    const limit = max === undefined || max === Infinity ? Number.MAX_SAFE_INTEGER : checkInteger('max', max, 1);
    const signal = options === undefined ? undefined : checkSignal(checkOptions(options).signal);
    if (this.owner.closed) return Promise.reject(badf('receiveMany'));
    if (signal !== undefined && signal.aborted) return Promise.reject(new AbortError(signal.reason));
    if (this.readers.length === 0 && this.queue.length > 0) return Promise.resolve(this.dequeueMany(limit));
    return this.waitRead(RECEIVE_MANY, limit, undefined, signal);
  }

  /** recvmsg into a buffer. */
  receiveInto(target: Uint8Array, options: ReceiveOptions | undefined): Promise<ReceiveIntoResult> {
    if (!(target instanceof Uint8Array)) throw invalidArgType('target', 'an instance of Uint8Array', target);
    const signal = options === undefined ? undefined : checkSignal(checkOptions(options).signal);
    if (this.owner.closed) return Promise.reject(badf('receiveInto'));
    if (signal !== undefined && signal.aborted) return Promise.reject(new AbortError(signal.reason));
    if (this.readers.length === 0 && this.queue.length > 0) return Promise.resolve(this.readInto(target));
    return this.waitRead(RECEIVE_INTO, 0, target, signal);
  }

  /** The socket's async iterator: messages as they arrive, until close. */
  async *iterate(): AsyncGenerator<Buffer, void, undefined> {
    const owner = this.owner;
    while (!owner.closed) {
      let message: Buffer;
      try {
        message = await this.receive(undefined);
      } catch (err) {
        if (owner.closed && err instanceof KcmError && err.code === 'EBADF') return;
        throw err;
      }
      yield message;
    }
  }

  /**
   * Delivers queued messages here: waiting receive calls first, then `'message'`
   * listeners while flowing. Runs outside every state change.
   */
  flush(): void {
    const readers = this.readers;
    while (readers.length > 0 && this.queue.length > 0) {
      const r = readers.shift()!;
      if (r.onAbort !== undefined) r.signal!.removeEventListener('abort', r.onAbort);
      if (this.trackReads) {
        // What this read adds to msgs (plus one for a partial head started): unseen until its caller runs.
        const takes = r.kind === RECEIVE_MANY ? Math.min(r.max, this.queue.length) : 1;
        r.unseen = takes - (this.offset > 0 ? 1 : 0);
        this.unseen += r.unseen;
      }
      if (r.kind === RECEIVE) r.resolve(this.dequeue() as never);
      else if (r.kind === RECEIVE_MANY) r.resolve(this.dequeueMany(r.max) as never);
      else if (r.kind === RECEIVE_FROM) {
        const message = this.dequeue();
        r.resolve({ message, origin: this.from! } as never);
      } else r.resolve(this.readInto(r.target!) as never);
    }
    // Flowing mode: each message to the listeners as emit() would call them, without
    // emit's per-call work; the listeners are read again only once they changed.
    const owner = this.owner;
    const queue = this.queue;
    while (queue.length > 0 && !this.paused && !owner.closed) {
      let fns = this.listeners;
      if (fns === undefined) fns = this.listeners = owner.rawListeners('message') as MessageListener[];
      const n = fns.length;
      if (n === 0) break;
      // [K-2] the origin travels as the second argument.
      const message = this.dequeue();
      if (n === 1) {
        fns[0]!.call(owner, message, this.from!);
      } else {
        for (let i = 0; i < n; i++) fns[i]!.call(owner, message, this.from!);
      }
    }
  }

  /** [S-5] the queue emptied: the socket becomes ready again. */
  private drained(): void {
    const host = this.owner.host;
    host.enter();
    try {
      host.socketReady(this.owner);
    } finally {
      host.leave();
    }
  }

  /** Follows the owner's `'message'` listeners: flowing delivery starts when one is added. */
  watchListeners(): void {
    this.owner.on('newListener', socketOnNewListener);
    this.owner.on('removeListener', socketOnRemoveListener);
  }

  /** Restarts flowing delivery after `pause()`. */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    process.nextTick(socketOnFlow, this.owner);
  }

  /** The socket's 'message' listeners changed. */
  listenersChanged(): void {
    this.listeners = undefined;
  }

  /** Rejects every waiting receive call (close). */
  rejectAll(err: Error): void {
    for (const r of this.readers.drain()) {
      if (r.onAbort !== undefined) r.signal!.removeEventListener('abort', r.onAbort);
      r.reject(err);
    }
  }

  private dequeue(): Buffer {
    const message = this.takeHead();
    this.owner.endpoint.taken(this.owner);
    if (this.rmem === 0) this.drained();
    return message;
  }

  private dequeueMany(max: number): Buffer[] {
    const n = Math.min(max, this.queue.length);
    const out: Buffer[] = new Array(n);
    for (let i = 0; i < n; i++) out[i] = this.takeHead();
    this.owner.endpoint.taken(this.owner);
    if (this.rmem === 0) this.drained();
    return out;
  }

  /** Takes the head message (the rest of it, after a partial read) and counts it [ST-1]. */
  private takeHead(): Buffer {
    let message = this.queue.shift()!;
    this.from = this.origins.shift();
    this.rmem -= message.length;
    if (this.offset > 0) {
      message = message.subarray(this.offset);
      this.offset = 0;
    }
    this.msgs++;
    this.bytes += message.length;
    return message;
  }

  private readInto(target: Uint8Array): ReceiveIntoResult {
    const message = this.queue.peek()!;
    const start = this.offset;
    const rest = message.length - start;
    const bytes = Math.min(rest, target.length);
    message.copy(target, 0, start, start + bytes);
    this.bytes += bytes;
    if (bytes === rest || this.owner.type === 'dgram') {
      // whole rest read, or DGRAM: the rest is discarded.
      this.queue.shift();
      this.from = this.origins.shift();
      this.rmem -= message.length;
      this.offset = 0;
      this.msgs++;
      this.owner.endpoint.taken(this.owner);
      if (this.rmem === 0) this.drained();
      return { bytes, eor: true, truncated: bytes < rest };
    }
    // SEQPACKET: the rest stays at the head.
    this.offset = start + bytes;
    this.owner.endpoint.taken(this.owner);
    return { bytes, eor: false, truncated: false };
  }

  private waitRead<T>(kind: number, max: number, target: Uint8Array | undefined, signal: AbortSignal | undefined): Promise<T> {
    let reader: Reader | undefined;
    const promise = new Promise<T>((resolve, reject) => {
      const r: Reader = { kind, max, target, resolve: resolve as (v: never) => void, reject, signal, onAbort: undefined, unseen: 0 };
      if (signal !== undefined) {
        r.onAbort = () => {
          this.readers.remove(r);
          reject(new AbortError(signal.reason));
        };
        signal.addEventListener('abort', r.onAbort, { once: true });
      }
      this.readers.push(r);
      reader = r;
    });
    // First reaction on the promise: it runs right before the caller's.
    if (this.trackReads) promise.then(() => this.seen(reader!), noop);
    return promise;
  }

  /** The caller of a tracked read is about to run: its messages count as read. */
  private seen(r: Reader): void {
    if (r.unseen === 0) return;
    this.unseen -= r.unseen;
    r.unseen = 0;
    this.owner.endpoint.taken(this.owner);
  }
}

function socketOnNewListener(this: KcmSocket, event: string | symbol): void {
  if (event !== 'message') return;
  this.rx.listenersChanged();
  process.nextTick(socketOnFlow, this);
}

function socketOnRemoveListener(this: KcmSocket, event: string | symbol): void {
  if (event === 'message') this.rx.listenersChanged();
}

function socketOnFlow(sock: KcmSocket): void {
  if (sock.closed || sock.rx.length === 0) return;
  sock.host.touch(sock);
  sock.host.flushLater();
}
