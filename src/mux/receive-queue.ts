import { KcmError, checkInteger, invalidArgType } from '../errors.js';
import { AbortError } from './abort-error.js';
import { Fifo } from './fifo.js';
import { MessageRuns } from './message-runs.js';
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
  /**
   * Whole messages, oldest first, each with its origin [K-2]: the messages a psock cut from
   * one chunk are one run, and become `subarray`s only when read.
   */
  readonly queue = new MessageRuns<PsockRef>();
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
  /**
   * The only 'message' listener bound to the socket, made when {@link listeners} is read:
   * a call through it keeps `this` the socket, as emit() does, and can be inlined where a
   * `call()` of a listener read from a list cannot.
   */
  private single: ((message: Buffer, origin: PsockRef) => void) | undefined = undefined;
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
    this.queue.push(message, origin);
    this.rmem += message.length;
  }

  /**
   * Queues, from the run of whole messages cut from `buf` (message `i` ends at `ends[i]`,
   * message `from` starts at `start`), those from `from` on while there is room [S-3]:
   * each is taken if the queue is empty or below `receiveBufferSize` before it. Returns the
   * index of the first message not taken (`to` when all were); `from` when the socket takes
   * none (disabled or closed).
   */
  enqueueRun(buf: Buffer, start: number, ends: Uint32Array, from: number, to: number, origin: PsockRef): number {
    const owner = this.owner;
    if (owner.rxDisabled || owner.closed) return from;
    const rmem = this.rmem;
    const limit = this.limit;
    let end = to;
    // Below the limit before the last message: before every one.
    if (to - from > 1 && rmem + (ends[to - 2]! - start) >= limit) {
      let r = rmem;
      let pos = start;
      end = from;
      while (end < to && (r === 0 || r < limit)) {
        r += ends[end]! - pos;
        pos = ends[end]!;
        end++;
      }
      if (end === from) return from;
    } else if (rmem !== 0 && rmem >= limit) {
      return from;
    }
    this.queue.pushRun(buf, start, ends, from, end, origin);
    this.rmem = rmem + (ends[end - 1]! - start);
    return end;
  }

  /**
   * Queues the messages `from` to `to - 1` of a run as {@link enqueueRun} does, all of
   * them: for a worker's socket, whose messages were admitted by its proxy [S-3].
   */
  enqueueAll(buf: Buffer, start: number, ends: Uint32Array, from: number, to: number, origin: PsockRef): void {
    if (to <= from) return;
    this.queue.pushRun(buf, start, ends, from, to, origin);
    this.rmem += ends[to - 1]! - start;
  }

  /**
   * Takes every queued message for requeueing, without the ready routine [D-3]; with
   * `keepPartial` a partly read head message stays (its new owner would get only the rest).
   * Their origins are appended to `origins` [K-2].
   */
  takeAll(keepPartial: boolean, origins: PsockRef[]): Buffer[] {
    const queue = this.queue;
    let head: Buffer | undefined;
    let headOrigin: PsockRef | undefined;
    if (this.offset > 0) {
      head = queue.shift();
      headOrigin = queue.origin;
      if (!keepPartial) {
        this.rmem -= head.length;
        head = undefined;
        this.offset = 0;
      }
    }
    const all: Buffer[] = [];
    queue.drain(all, origins);
    if (head !== undefined) {
      queue.push(head, headOrigin!);
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
      return Promise.resolve({ message, origin: this.queue.origin! });
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
        r.resolve({ message, origin: this.queue.origin! } as never);
      } else r.resolve(this.readInto(r.target!) as never);
    }
    // Flowing mode: each message to the listeners as emit() would call them, without
    // emit's per-call work; the listeners are read again only once they changed.
    const owner = this.owner;
    const queue = this.queue;
    while (queue.length > 0 && !this.paused && !owner.closed) {
      let fns = this.listeners;
      if (fns === undefined) {
        fns = this.listeners = owner.rawListeners('message') as MessageListener[];
        this.single = fns.length === 1 ? fns[0]!.bind(owner) : undefined;
      }
      const n = fns.length;
      if (n === 0) break;
      if (n === 1) {
        // One listener: a tight loop until the queue empties or the listener changes the
        // state (pause, close, listeners). [K-2] the origin travels as the second argument.
        this.flowTo(this.single!, fns);
        continue;
      }
      const message = this.dequeue();
      const origin = queue.origin!;
      for (let i = 0; i < n; i++) fns[i]!.call(owner, message, origin);
    }
  }

  /**
   * Flowing delivery to a single listener: message after message until the queue empties
   * or the listener changes the state (pause, close, the listeners). Each message leaves
   * the queue, counted, before the listener sees it, so that everything it may call sees
   * an exact state.
   */
  private flowTo(fn: (message: Buffer, origin: PsockRef) => void, fns: MessageListener[]): void {
    const owner = this.owner;
    const queue = this.queue;
    const endpoint = owner.endpoint;
    const tracked = this.trackReads;
    do {
      let message: Buffer;
      if (this.offset > 0) {
        message = this.takeHead();
      } else {
        message = queue.shift();
        const len = message.length;
        this.rmem -= len;
        this.msgs++;
        this.bytes += len;
      }
      // [O-6] only an endpoint that tracks reads (a worker's socket) does anything on taken().
      if (tracked) endpoint.taken(owner);
      if (this.rmem === 0) this.drained();
      const origin = queue.origin!;
      fn(message, origin);
    } while (queue.length > 0 && !this.paused && !owner.closed && this.listeners === fns);
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
    this.single = undefined;
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
    const queue = this.queue;
    const n = Math.min(max, queue.length);
    const out: Buffer[] = new Array(n);
    let i = 0;
    if (this.offset > 0) out[i++] = this.takeHead();
    // Whole messages: counted once for the batch [ST-1].
    const bytes = queue.takeInto(out, i, n - i);
    this.rmem -= bytes;
    this.bytes += bytes;
    this.msgs += n - i;
    this.owner.endpoint.taken(this.owner);
    if (this.rmem === 0) this.drained();
    return out;
  }

  /** Takes the head message (the rest of it, after a partial read) and counts it [ST-1]. */
  private takeHead(): Buffer {
    const queue = this.queue;
    let message: Buffer;
    if (this.offset > 0) {
      this.rmem -= queue.headLength();
      message = queue.shift(this.offset);
      this.offset = 0;
    } else {
      message = queue.shift();
      this.rmem -= message.length;
    }
    this.msgs++;
    this.bytes += message.length;
    return message;
  }

  private readInto(target: Uint8Array): ReceiveIntoResult {
    const queue = this.queue;
    const buf = queue.headBuffer()!;
    const first = queue.headStart();
    const end = queue.headEnd();
    const start = first + this.offset;
    const rest = end - start;
    const bytes = Math.min(rest, target.length);
    buf.copy(target, 0, start, start + bytes);
    this.bytes += bytes;
    if (bytes === rest || this.owner.type === 'dgram') {
      // whole rest read, or DGRAM: the rest is discarded.
      this.rmem -= queue.discard();
      this.offset = 0;
      this.msgs++;
      this.owner.endpoint.taken(this.owner);
      if (this.rmem === 0) this.drained();
      return { bytes, eor: true, truncated: bytes < rest };
    }
    // SEQPACKET: the rest stays at the head.
    this.offset += bytes;
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
