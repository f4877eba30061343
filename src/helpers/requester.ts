import { EventEmitter } from 'node:events';
import { KcmError, checkInteger, invalidArgType, invalidState } from '../errors.js';
import { AbortError } from '../mux/abort-error.js';
import type { KcmSocket, Message, SendOptions } from '../mux/kcm-socket.js';
import type { PsockRef } from '../mux/psock.js';

/** A request's id, as {@link RequesterOptions.id} reads it from a reply. */
export type RequestId = string | number | bigint;

export type { PsockRef };

/** Options of {@link Requester}. */
export interface RequesterOptions {
  /**
   * The request id a reply carries, or undefined for a message that is no reply. Called
   * once for every message arriving on any of the sockets; one that throws counts as
   * unmatched.
   */
  id: (reply: Buffer) => RequestId | undefined;
  /** Milliseconds from `request()` to its `ETIMEDOUT` rejection; default (and 0): none. */
  timeout?: number;
}

/** Options of {@link Requester.request}. */
export interface RequestOptions {
  /** Aborting it rejects the request with an `AbortError` and forgets it. */
  signal?: AbortSignal;
  /** Send on that psock only, as `send(message, { psock })`. */
  psock?: PsockRef;
}

/** Counters of a {@link Requester}, exact at the time of the call. */
export interface RequesterStats {
  /** Requests sent (accepted by a socket or waiting for room in its send queue). */
  requests: number;
  /** Requests resolved with their reply. */
  replies: number;
  /** Replies with no pending request (late, unknown, duplicate, or no id): dropped. */
  unmatched: number;
  /** Requests rejected with `ETIMEDOUT`. */
  timeouts: number;
  /** Requests rejected with an `AbortError`. */
  aborts: number;
  /** Requests rejected because their send failed, or with `EBADF` at a close. */
  failures: number;
  /** Requests waiting for their reply now. */
  pending: number;
}

const kRequester: unique symbol = Symbol('kcm.requester');
type OwnedSocket = KcmSocket & { [kRequester]?: Requester };

/**
 * One pending request: a node of the deadline list and the listener object of its
 * signal (`handleEvent`), so that a request allocates no closure for either.
 */
class Pending {
  prev: Pending | undefined = undefined;
  next: Pending | undefined = undefined;
  settled = false;
  constructor(
    readonly owner: Requester,
    readonly id: RequestId,
    readonly socket: number,
    readonly deadline: number,
    readonly signal: AbortSignal | undefined,
    readonly resolve: (reply: Buffer) => void,
    readonly reject: (err: Error) => void,
  ) {}

  /** The signal aborted. */
  handleEvent(): void {
    this.owner.abortPending(this);
  }

  /** The send of a request that waited for room in the socket's queue failed. */
  sendFailed(err: unknown): void {
    this.owner.failPending(this, err as Error);
  }
}

/**
 * Requests and their replies over one or several KCM sockets of a multiplexor: it sends
 * each request on the next socket in turn, reads every message arriving on any of them
 * (replies are steered to any socket of the multiplexor [S-1]), and hands each reply to
 * the request whose id it carries.
 *
 * A reply with no pending request (late, unknown, a duplicate) is dropped and counted
 * in `stats().unmatched`, never delivered to another request. Timeouts cost one timer
 * for the whole requester: requests wait in a list in deadline order.
 *
 * It takes the sockets' `'message'` events (flowing mode), so a socket serves one
 * requester and is not read otherwise. The sockets stay the application's: `close()`
 * does not close them; closing one rejects the requests sent on it with `EBADF`.
 */
export class Requester {
  /** The sockets requests are sent on, in turn. */
  readonly sockets: readonly KcmSocket[];
  /** The `timeout` option: 0 for none. */
  readonly timeout: number;

  private readonly idOf: (reply: Buffer) => RequestId | undefined;
  private readonly waiting = new Map<RequestId, Pending>();
  private readonly open: boolean[];
  private nOpen: number;
  private turn = 0;
  private head: Pending | undefined = undefined;
  private tail: Pending | undefined = undefined;
  private timer: NodeJS.Timeout | undefined = undefined;
  private timerAt = 0;
  private isClosed = false;
  private nRequests = 0;
  private nReplies = 0;
  private nUnmatched = 0;
  private nTimeouts = 0;
  private nAborts = 0;
  private nFailures = 0;

  /**
   * @throws TypeError `ERR_INVALID_ARG_TYPE` for sockets that are not KCM sockets, a
   *   missing `id` function; RangeError `ERR_OUT_OF_RANGE` for a bad `timeout`;
   *   `ERR_INVALID_STATE` for a socket already read by another requester.
   */
  constructor(sockets: KcmSocket | readonly KcmSocket[], options: RequesterOptions) {
    const list: KcmSocket[] = Array.isArray(sockets) ? [...(sockets as readonly KcmSocket[])] : [sockets as KcmSocket];
    if (list.length === 0) throw invalidArgType('sockets', 'a KcmSocket or a non-empty array of them', sockets);
    for (let i = 0; i < list.length; i++) {
      const s = list[i] as unknown;
      if (!(s instanceof EventEmitter) || typeof (s as KcmSocket).send !== 'function' || typeof (s as KcmSocket).trySend !== 'function') {
        throw invalidArgType(Array.isArray(sockets) ? `sockets[${i}]` : 'sockets', 'a KcmSocket', s);
      }
      if ((s as OwnedSocket)[kRequester] !== undefined) throw invalidState(`socket ${i} is already read by a Requester`);
      if (list.indexOf(s as KcmSocket) !== i) throw invalidState(`socket ${i} is given twice`);
    }
    if (options === null || typeof options !== 'object') throw invalidArgType('options', 'of type object', options);
    if (typeof options.id !== 'function') throw invalidArgType('options.id', 'of type function', options.id);
    this.idOf = options.id;
    this.timeout = options.timeout === undefined ? 0 : checkInteger('options.timeout', options.timeout, 0, 0x7fffffff);
    this.sockets = list;
    this.open = list.map((s) => !s.closed);
    this.nOpen = 0;
    for (const s of list) {
      (s as OwnedSocket)[kRequester] = this;
      s.on('message', socketOnMessage);
      s.on('close', socketOnClose);
      if (!s.closed) this.nOpen++;
    }
  }

  /** Requests waiting for their reply. */
  get pending(): number {
    return this.waiting.size;
  }

  /** True once {@link close} was called or every socket closed. */
  get closed(): boolean {
    return this.isClosed;
  }

  /**
   * Sends `message` (one message, or the parts of one) on the next open socket and
   * resolves with the reply whose `id()` is `id`. Rejects with `KcmError` `ETIMEDOUT` once
   * `timeout` ms have passed, an `AbortError` when `signal` aborts, `EBADF` when the
   * requester or the socket it went out on closes, or the send's own error (`EPIPE`,
   * `ENOENT` for a pinned `psock`, …). A rejected request is forgotten: its reply, if
   * one comes, counts as unmatched.
   *
   * @throws `ERR_INVALID_STATE` when a request with the same id is pending;
   *   `ERR_INVALID_ARG_TYPE` for an id that is not a string, number or bigint, or a bad
   *   message or option.
   */
  request(message: Message, id: RequestId, options?: RequestOptions): Promise<Buffer> {
    if (typeof id !== 'string' && typeof id !== 'number' && typeof id !== 'bigint') throw invalidArgType('id', 'of type string, number or bigint', id);
    let signal: AbortSignal | undefined;
    // `psock` passes through to send(); older sockets ignore what they do not know.
    let sendOptions: (SendOptions & { psock?: PsockRef }) | undefined;
    if (options !== undefined) {
      if (options === null || typeof options !== 'object') throw invalidArgType('options', 'of type object', options);
      signal = options.signal;
      if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalidArgType('options.signal', 'an instance of AbortSignal', signal);
      if (options.psock !== undefined) {
        if (options.psock === null || typeof options.psock !== 'object') throw invalidArgType('options.psock', 'a Psock or { id: number }', options.psock);
        sendOptions = { psock: options.psock };
      }
    }
    if (this.waiting.has(id)) throw invalidState(`a request with id ${String(id)} is pending`);
    if (this.isClosed) return Promise.reject(new KcmError('EBADF', 'request: the requester is closed'));
    if (signal?.aborted) {
      this.nAborts++;
      return Promise.reject(new AbortError(signal.reason));
    }
    const index = this.nextSocket();
    const sock = this.sockets[index]!;
    let resolve!: (reply: Buffer) => void;
    let reject!: (err: Error) => void;
    const promise = new Promise<Buffer>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const p = new Pending(this, id, index, this.timeout > 0 ? performance.now() + this.timeout : 0, signal, resolve, reject);
    // Fast path: the socket takes the message now, no promise of its own [T-9].
    let sent: boolean;
    try {
      sent = sock.trySend(message, sendOptions);
    } catch (err) {
      if (!(err instanceof KcmError)) throw err; // an argument mistake: nothing is pending
      this.nRequests++;
      this.nFailures++;
      return Promise.reject(err);
    }
    this.waiting.set(id, p);
    this.nRequests++;
    if (this.timeout > 0) this.enlist(p);
    if (signal !== undefined) signal.addEventListener('abort', p, { once: true });
    if (!sent) {
      const opts: SendOptions | undefined = signal === undefined ? sendOptions : { ...sendOptions, signal };
      sock.send(message, opts).then(undefined, (err: unknown) => p.sendFailed(err));
    }
    return promise;
  }

  /** Counters, exact at the time of the call. */
  stats(): RequesterStats {
    return {
      requests: this.nRequests,
      replies: this.nReplies,
      unmatched: this.nUnmatched,
      timeouts: this.nTimeouts,
      aborts: this.nAborts,
      failures: this.nFailures,
      pending: this.waiting.size,
    };
  }

  /**
   * Rejects every pending request with `KcmError` `EBADF`, stops reading the sockets
   * (leaving them open) and refuses later requests with `EBADF`. Idempotent.
   */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    for (const s of this.sockets) {
      s.removeListener('message', socketOnMessage);
      s.removeListener('close', socketOnClose);
      delete (s as OwnedSocket)[kRequester];
    }
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    const all = [...this.waiting.values()];
    for (const p of all) this.settle(p);
    for (const p of all) {
      this.nFailures++;
      p.reject(new KcmError('EBADF', 'request: the requester was closed'));
    }
  }

  /** @internal A message arrived on one of the sockets. */
  reply(message: Buffer): void {
    let id: RequestId | undefined;
    try {
      id = this.idOf(message);
    } catch {
      id = undefined;
    }
    const p = id === undefined ? undefined : this.waiting.get(id);
    if (p === undefined) {
      this.nUnmatched++;
      return;
    }
    this.settle(p);
    this.nReplies++;
    p.resolve(message);
  }

  /** @internal */
  abortPending(p: Pending): void {
    if (p.settled) return;
    this.settle(p);
    this.nAborts++;
    p.reject(new AbortError(p.signal?.reason));
  }

  /** @internal */
  failPending(p: Pending, err: Error): void {
    if (p.settled) return;
    this.settle(p);
    if (err instanceof AbortError) {
      this.nAborts++;
    } else {
      this.nFailures++;
    }
    p.reject(err);
  }

  /** @internal One of the sockets closed: its requests fail; the last one closes the requester. */
  socketClosed(sock: KcmSocket): void {
    const index = this.sockets.indexOf(sock);
    if (index < 0 || !this.open[index]) return;
    this.open[index] = false;
    this.nOpen--;
    if (this.nOpen === 0) {
      this.close();
      return;
    }
    const lost: Pending[] = [];
    for (const p of this.waiting.values()) if (p.socket === index) lost.push(p);
    for (const p of lost) this.failPending(p, new KcmError('EBADF', 'request: its socket was closed'));
  }

  /** @internal The deadline timer fired: reject every request past its deadline. */
  expire(): void {
    this.timer = undefined;
    const now = performance.now();
    let p = this.head;
    const due: Pending[] = [];
    while (p !== undefined && p.deadline <= now) {
      due.push(p);
      p = p.next;
    }
    for (const d of due) this.settle(d);
    for (const d of due) {
      this.nTimeouts++;
      d.reject(new KcmError('ETIMEDOUT', `request ${String(d.id)}: no reply within ${this.timeout} ms`));
    }
    this.arm();
  }

  private nextSocket(): number {
    const n = this.sockets.length;
    for (let i = 0; i < n; i++) {
      const index = this.turn;
      this.turn = index + 1 === n ? 0 : index + 1;
      if (this.open[index]) return index;
    }
    return 0;
  }

  /** Appends to the deadline list: one timeout for all, so insertion order is deadline order. */
  private enlist(p: Pending): void {
    p.prev = this.tail;
    if (this.tail === undefined) this.head = p;
    else this.tail.next = p;
    this.tail = p;
    if (this.timer === undefined) this.arm();
  }

  /** Forgets a request: out of the id map, the deadline list and its signal. */
  private settle(p: Pending): void {
    p.settled = true;
    this.waiting.delete(p.id);
    if (p.signal !== undefined) p.signal.removeEventListener('abort', p);
    if (this.timeout === 0) return;
    if (p.prev === undefined) {
      if (this.head === p) this.head = p.next;
    } else {
      p.prev.next = p.next;
    }
    if (p.next === undefined) {
      if (this.tail === p) this.tail = p.prev;
    } else {
      p.next.prev = p.prev;
    }
    p.prev = undefined;
    p.next = undefined;
  }

  /**
   * Sets the one timer for the earliest deadline. A timer left for a request settled
   * since fires early and re-arms, cheaper than clearing it at every reply.
   */
  private arm(): void {
    const head = this.head;
    if (head === undefined || this.isClosed) return;
    if (this.timer !== undefined) {
      if (this.timerAt <= head.deadline) return;
      clearTimeout(this.timer);
    }
    // Never early: a timer may fire up to a millisecond before performance.now() says.
    const delay = Math.max(1, Math.ceil(head.deadline - performance.now()));
    this.timerAt = head.deadline;
    this.timer = setTimeout(requesterOnTimer, delay, this);
  }
}

function socketOnMessage(this: OwnedSocket, message: Buffer): void {
  const r = this[kRequester];
  if (r !== undefined) r.reply(message);
}

function socketOnClose(this: OwnedSocket): void {
  const r = this[kRequester];
  if (r !== undefined) r.socketClosed(this);
}

function requesterOnTimer(r: Requester): void {
  r.expire();
}
