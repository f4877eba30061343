import { invalidArgType } from '../errors.js';
import type { PsockRef } from './psock.js';
import { AbortError } from './abort-error.js';
import { Fifo } from './fifo.js';
import { badf, checkBool, checkSignal, messageLength, partsLength } from './socket-args.js';
import { TxMessage } from './tx-message.js';
import { CHUNK_MESSAGE_MAX, TxQueue, bufferOf } from './tx-queue.js';
import type { KcmSocket, Message, SendManyOptions, SendOptions } from './kcm-socket.js';
import type { Multiplexor } from './multiplexor.js';

/** A send call waiting for buffer space [T-9]: one message, or the rest of a sendMany() from `next`. */
interface SendRequest {
  message: Message | undefined;
  messages: readonly Message[] | undefined;
  next: number;
  length: number;
  eor: boolean;
  batch: boolean;
  /** [K-3] the psock it is pinned to, checked again when it proceeds [K-5]. */
  pin: PsockRef | undefined;
  /** The `copy` option: false when the caller handed its buffers over. */
  copy: boolean;
  resolve: () => void;
  reject: (err: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

const resolved: Promise<void> = Promise.resolve();

/**
 * The transmit side of a KCM socket: admission against `sendBufferSize` (Smem) [T-7],
 * the message being built over several calls [T-1], the queue of complete messages, the
 * sends waiting for space in call order [T-9, B-15], MSG_BATCH [T-8], the ST-1 transmit
 * counters, and the transmit work that writes the queue on the reserved psock [T-11].
 */
export class SendQueue {
  /**
   * Complete messages, in send order [T-17], and the one being built over several calls
   * [T-1]: their bytes copied at the call [T-3 step 4], a compact record per burst.
   */
  readonly queue = new TxQueue();
  /** Bytes queued or open (Smem) [T-7]. */
  smem = 0;
  /** MSG_BATCH pending (`WMore`) [T-8]. */
  batchPending = false;
  /** [ST-1] */
  msgs = 0;
  /** [ST-1] */
  bytes = 0;
  /** [K-6] pinned messages dropped. */
  dropped = 0;
  /** [K-7] pinned messages held by MSG_BATCH, in call order. */
  pinHeld: TxMessage[] = [];
  /** Sends waiting for buffer space, in call order [T-9, B-15]. */
  readonly waiters = new Fifo<SendRequest>();
  private readonly owner: KcmSocket;
  private readonly limit: number;
  /** The multiplexor of this thread, whose send gate holds or fails sends; none in a worker. */
  private readonly mux: Multiplexor | undefined;
  private pumping = false;
  private pumpAgain = false;
  private wakeScheduled = false;

  constructor(owner: KcmSocket, sendBufferSize: number, mux: Multiplexor | undefined) {
    this.owner = owner;
    this.limit = sendBufferSize;
    this.mux = mux;
  }

  /** The multiplexor's send gate: `true` holds sends, an error fails them. */
  private gate(): Error | true | undefined {
    return this.mux === undefined ? undefined : this.mux.txGate;
  }

  /** Throws what a call on a closed socket, or through a failed send gate, fails with. */
  private checkOpen(what: string): void {
    if (this.owner.closed) throw badf(what);
    const gate = this.gate();
    if (gate instanceof Error) throw gate;
  }

  /** [K-5] the psock a `psock` option names, checked now; throws `ENOENT` or `EPIPE`. */
  private pinOf(ref: PsockRef | undefined): PsockRef | undefined {
    return ref === undefined ? undefined : this.owner.endpoint.pinTarget(this.owner, ref);
  }

  /** sendmsg [T-*]. */
  send(message: Message, options: SendOptions | undefined): Promise<void> {
    const length = messageLength(message, -1);
    readOptions(options, true, true);
    const { eor, batch, signal, ref, copy } = call;
    let pin: PsockRef | undefined;
    try {
      this.checkOpen('send');
      if (signal !== undefined && signal.aborted) {
        this.sendFailed();
        throw new AbortError(signal.reason);
      }
      pin = this.pinOf(ref);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.waiters.length === 0 && this.admits()) {
      this.sendNow(message, length, eor, batch, pin, copy);
      return resolved;
    }
    const promise = this.enqueueSend(message, undefined, 0, length, eor, batch, signal, pin, copy);
    this.kickSenders();
    return promise;
  }

  /** MSG_DONTWAIT [T-9, X-6]. */
  trySend(message: Message, options: Omit<SendOptions, 'signal'> | undefined): boolean {
    const length = messageLength(message, -1);
    readOptions(options, true, false);
    const { eor, batch, ref, copy } = call;
    this.checkOpen('the socket is closed');
    const pin = this.pinOf(ref);
    if (this.waiters.length > 0 || !this.admits()) {
      this.flushBatch();
      return false;
    }
    this.sendNow(message, length, eor, batch, pin, copy);
    return true;
  }

  /** sendmmsg: one burst [T-8]. */
  sendMany(messages: readonly Message[], options: SendManyOptions | undefined): Promise<void> {
    if (!Array.isArray(messages)) throw invalidArgType('messages', 'an array of messages', messages);
    // Every entry is checked before any is queued: a mistake queues nothing.
    for (let i = 0; i < messages.length; i++) if (!(messages[i] instanceof Uint8Array)) messageLength(messages[i], i);
    readOptions(options, false, false);
    const { ref, copy } = call;
    let pin: PsockRef | undefined;
    try {
      this.checkOpen('sendMany');
      pin = this.pinOf(ref);
    } catch (err) {
      return Promise.reject(err);
    }
    if (messages.length === 0) return resolved;
    let next = 0;
    if (this.waiters.length === 0) {
      if (pin === undefined) {
        next = this.queueMany(messages, 0, copy);
      } else {
        // Pinned: each message to its psock [K-3], the burst held until its last one [K-7].
        const last = messages.length - 1;
        for (; next <= last && this.admits(); next++) {
          const m = messages[next]!;
          this.sendNow(m, messageLength(m, next), true, next < last, pin, copy);
        }
      }
    }
    if (next === messages.length) return resolved;
    // Out of buffer space: the rest waits in order, as one request [T-9].
    const promise = this.enqueueSend(undefined, messages, next, 0, true, false, undefined, pin, copy);
    this.kickSenders();
    return promise;
  }

  /**
   * [T-3, T-8] queues unpinned `messages` from `from` on, each admitted on its own [T-7],
   * as one burst: every one but the last with MSG_BATCH. Returns where it stopped for want
   * of buffer space (`messages.length` when all are queued). `copy` false: a large whole
   * message goes by reference.
   */
  private queueMany(messages: readonly Message[], from: number, copy: boolean): number {
    const q = this.queue;
    const owner = this.owner;
    const host = owner.host;
    const last = messages.length - 1;
    // A closed gate admits no new message, as a full buffer.
    const limit = this.gate() === undefined ? this.limit : 0;
    const wasEmpty = q.length === 0;
    let smem = this.smem;
    let bytes = 0;
    let msgs = 0;
    let lastQueued = false;
    let i = from;
    host.enter();
    try {
      for (; i <= last; i++) {
        const open = q.openLength > 0;
        if (smem >= limit && !open) break; // [T-3 step 3]
        const m = messages[i]!;
        if (!open) {
          // Whole messages, nothing open: a run of them copied straight into the chunk,
          // else this one on its own.
          const count = q.length;
          const queued = q.bytes;
          const next = q.pushRun(messages, i, last, limit - smem);
          if (next > i) {
            const added = q.bytes - queued;
            smem += added;
            bytes += added;
            msgs += q.length - count;
            lastQueued = entryLength(messages[next - 1]!) > 0;
            i = next - 1;
            continue;
          }
          const len = entryLength(m);
          lastQueued = len > 0;
          if (!lastQueued) continue; // [T-5]
          if (m instanceof Uint8Array) {
            q.push(m, len, !copy);
            smem += len;
            bytes += len;
            msgs++;
            continue;
          }
          if (len <= CHUNK_MESSAGE_MAX) {
            q.pushParts(m, len);
            smem += len;
            bytes += len;
            msgs++;
            continue;
          }
        }
        const len = entryLength(m);
        if (len > 0) {
          q.append(m, len);
          smem += len;
          bytes += len;
        }
        lastQueued = q.complete(); // [T-5] never an empty message
        if (lastQueued) msgs++;
      }
    } finally {
      this.smem = smem;
      this.bytes += bytes;
      this.msgs += msgs;
      // [T-8] every message but the last carries MSG_BATCH: the burst is written when the
      // last one is queued, or stays pending when the buffer limit cut it.
      if (i > last) {
        const before = msgs - (lastQueued ? 1 : 0);
        if ((wasEmpty && before === 0) || this.batchPending || before > 0) {
          this.batchPending = false;
          if (q.length > 0) host.scheduleTx(owner);
          if (this.pinHeld.length > 0) this.releasePinned();
        }
      } else if (msgs > 0) {
        this.batchPending = true;
      }
      host.leave();
    }
    return i;
  }

  /** [T-3 step 3] room for a new message, or a message is open [T-7b]. */
  admits(): boolean {
    return this.queue.openLength > 0 || (this.smem < this.limit && this.gate() === undefined);
  }

  /** The multiplexor's send gate changed: waiting sends fail with its error, or proceed. */
  gateChanged(): void {
    const gate = this.gate();
    if (gate instanceof Error) {
      this.rejectAll(gate);
      this.sendFailed();
    } else if (gate === undefined) {
      this.kickSenders();
    }
  }

  /**
   * [T-3 steps 4-6] takes the bytes, completes and queues the message, starts writing.
   * A pinned message [K-3] goes to its psock's queue, through {@link pinHeld} while a
   * batch holds it [K-7]; the call that completes a message decides where it goes.
   */
  private sendNow(message: Message, length: number, eor: boolean, batch: boolean, pin: PsockRef | undefined, copy: boolean): void {
    if (length > 0 && eor && pin === undefined && this.queue.openLength === 0 && (message instanceof Uint8Array || length <= CHUNK_MESSAGE_MAX)) {
      this.sendWhole(message, length, batch, copy);
    } else {
      this.sendParts(message, length, eor, batch, pin, copy);
    }
  }

  /**
   * The common case of {@link sendNow}, small enough to inline into the calls: a whole
   * unpinned message (`length` > 0; parts only when small), nothing open, copied straight
   * into the queue (a large one handed over by reference when `copy` is false).
   */
  private sendWhole(message: Message, length: number, batch: boolean, copy: boolean): void {
    const q = this.queue;
    const start = q.length === 0;
    // Copying into the queue calls nothing out: the operation bracket is needed only for
    // the transmit work the message starts.
    if (message instanceof Uint8Array) q.push(message, length, !copy);
    else q.pushParts(message, length);
    this.smem += length;
    this.bytes += length;
    this.msgs++;
    if (batch) {
      this.batchPending = true;
      return;
    }
    if (!start && !this.batchPending) return; // the transmit work under way takes it [T-11, T-12]
    this.batchPending = false;
    this.startTx();
  }

  /**
   * [T-11] starts the transmit work, written when this operation ends (as sendmsg writes:
   * reserve, write, release), and hands on the pinned messages a batch held [K-7].
   */
  private startTx(): void {
    const host = this.owner.host;
    host.enter();
    try {
      host.scheduleTx(this.owner);
      if (this.pinHeld.length > 0) this.releasePinned();
    } finally {
      host.leave();
    }
  }

  /** {@link sendNow} for parts, an open message, a pinned or an empty one. */
  private sendParts(message: Message, length: number, eor: boolean, batch: boolean, pin: PsockRef | undefined, copy: boolean): void {
    const owner = this.owner;
    const host = owner.host;
    const q = this.queue;
    host.enter();
    try {
      // A large whole pinned message handed over goes by reference.
      let shared: Buffer | undefined;
      if (length > 0) {
        if (!copy && pin !== undefined && eor && length > CHUNK_MESSAGE_MAX && q.openLength === 0 && message instanceof Uint8Array) {
          shared = bufferOf(message);
        } else {
          q.append(message, length);
        }
        this.smem += length;
        this.bytes += length;
      }
      if (!eor) return;
      // [T-5] an empty call completes the open message, if any; never an empty message.
      let queued = false;
      let start = false;
      if (pin !== undefined) {
        const bytes = shared ?? q.completeDetached();
        if (bytes !== undefined) {
          queued = true;
          this.msgs++;
          const msg = new TxMessage(owner, [bytes], bytes.length);
          msg.pin = pin;
          if (!batch && !this.batchPending) {
            owner.endpoint.pinned(owner, msg); // the common case: straight to its psock [K-4]
            return;
          }
          this.pinHeld.push(msg);
          start = true;
        }
      } else {
        start = q.length === 0;
        queued = q.complete();
        if (queued) this.msgs++;
      }
      if (batch) {
        if (queued) this.batchPending = true;
      } else if (start || this.batchPending) {
        this.batchPending = false;
        if (q.length > 0) host.scheduleTx(owner);
        if (this.pinHeld.length > 0) this.releasePinned();
      }
    } finally {
      host.leave();
    }
  }

  /** [K-4, K-7] hands the held pinned messages on, in call order. */
  private releasePinned(): void {
    const held = this.pinHeld;
    this.pinHeld = [];
    const owner = this.owner;
    for (const msg of held) owner.endpoint.pinned(owner, msg);
  }

  private enqueueSend(
    message: Message | undefined, messages: readonly Message[] | undefined, next: number, length: number,
    eor: boolean, batch: boolean, signal: AbortSignal | undefined, pin: PsockRef | undefined, copy: boolean,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const req: SendRequest = { message, messages, next, length, eor, batch, pin, copy, resolve, reject, signal, onAbort: undefined };
      if (signal !== undefined) {
        req.onAbort = () => this.abortSend(req);
        signal.addEventListener('abort', req.onAbort, { once: true });
      }
      this.waiters.push(req);
    });
  }

  /**
   * [T-3 step 3] a sender that has to wait flushes a pending batch first; writing it may
   * free space at once, and then the waiting sends proceed.
   */
  private kickSenders(): void {
    this.flushBatch();
    if (this.admits()) this.pump();
  }

  private abortSend(req: SendRequest): void {
    this.waiters.remove(req);
    this.sendFailed();
    req.reject(new AbortError(req.signal?.reason));
    this.pump();
  }

  /** [T-10c] a failed DGRAM call discards the message being built; SEQPACKET keeps it [T-10b]. */
  private sendFailed(): void {
    if (this.owner.type === 'dgram') this.smem -= this.queue.discardOpen();
  }

  private flushBatch(): void {
    if (!this.batchPending) return;
    this.batchPending = false;
    this.startTx();
  }

  /** [T-9] buffer space freed: waiting sends proceed in call order. */
  pump(): void {
    if (this.pumping) {
      // Writing what a waiter queued freed space again: the loop below goes on.
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    const waiters = this.waiters;
    const owner = this.owner;
    try {
      do {
        this.pumpAgain = false;
        while (waiters.length > 0 && !owner.closed && this.admits()) {
          const req = waiters.peek()!;
          if (req.pin !== undefined) {
            try {
              owner.endpoint.pinTarget(owner, req.pin); // [K-5] the psock died while the call waited
            } catch (err) {
              waiters.shift();
              if (req.onAbort !== undefined) req.signal!.removeEventListener('abort', req.onAbort);
              this.sendFailed();
              req.reject(err);
              continue;
            }
          }
          const messages = req.messages;
          if (messages !== undefined) {
            if (req.pin === undefined) {
              req.next = this.queueMany(messages, req.next, req.copy);
            } else {
              const last = messages.length - 1;
              for (; req.next <= last && this.admits(); req.next++) {
                const m = messages[req.next]!;
                this.sendNow(m, messageLength(m, req.next), true, req.next < last, req.pin, req.copy);
              }
            }
            if (req.next < messages.length) continue; // the rest waits [T-9]
          } else {
            this.sendNow(req.message!, req.length, req.eor, req.batch, req.pin, req.copy);
          }
          waiters.shift();
          if (req.onAbort !== undefined) req.signal!.removeEventListener('abort', req.onAbort);
          req.resolve();
        }
        // [T-3 step 3] a sender still waiting flushes the batch its predecessors left open
        // (a sendMany() burst cut by the buffer limit), else nothing would write it.
        if (waiters.length > 0 && !owner.closed) this.flushBatch();
      } while (this.pumpAgain && waiters.length > 0 && !owner.closed);
    } finally {
      this.pumping = false;
    }
  }

  /**
   * [T-9] space freed while sends wait: they go on from the event loop, not from the
   * write callback chain that freed it, so that a sender that never yields cannot starve
   * timers and I/O when the transport takes every write at once.
   */
  private wake(): void {
    if (this.wakeScheduled || this.waiters.length === 0) return;
    this.wakeScheduled = true;
    setImmediate(sendQueueOnWake, this);
  }

  /** @internal */
  woken(): void {
    this.wakeScheduled = false;
    this.pump();
  }

  /** Bytes left the queue elsewhere (a worker's proxy credits them): waiting sends proceed [T-9]. */
  credit(bytes: number): void {
    this.smem -= bytes;
    this.pump();
  }

  /**
   * [K-4, K-6] bytes of pinned messages left the send queue (handed whole, or dropped),
   * inside an operation: waiting sends proceed in the transmit work that ends it [T-9].
   */
  freed(bytes: number): void {
    this.smem -= bytes;
    if (this.waiters.length > 0) this.owner.host.scheduleTx(this.owner);
  }

  /**
   * [T-11] writes queued messages on the reserved psock, reserving one when needed;
   * releases it when the queue is empty [T-15].
   */
  work(): void {
    const owner = this.owner;
    if (owner.closed) return;
    const mux = owner.mux;
    let psock = owner.txPsock;
    if (psock !== undefined && psock.txStopped) {
      mux.releaseAborted(psock, owner);
      psock = undefined;
    }
    const q = this.queue;
    let freed = 0;
    while (q.length > 0) {
      if (psock === undefined) {
        psock = mux.reserve(owner);
        if (psock === undefined) break;
      }
      if (psock.stalled) break; // [T-12] keep the reservation until 'drain'
      if (psock.txDrain && q.headWritten === 0) {
        // A draining psock leaves at a message boundary; the rest goes on another.
        mux.release(psock, owner);
        psock = undefined;
        continue;
      }
      freed += psock.writeFrom(q, owner);
      // [T-21] the transport failed inside the write: aborted and released, the message
      // back at the head; it goes on the next psock now.
      if (owner.txPsock !== psock) psock = undefined;
    }
    this.smem -= freed;
    if (q.length === 0 && psock !== undefined) mux.release(psock, owner);
    if (this.waiters.length > 0) {
      if (freed > 0) this.wake();
      else this.pump();
    }
  }

  /** Puts a message whose write failed back in the queue, `at` places from its head [T-16]. */
  requeue(buf: Buffer, start: number, len: number, at: number): void {
    this.queue.insert(at, buf, start, len);
    this.smem += len;
  }

  /** close [O-6 steps 1-3]: unsent messages are discarded. */
  discard(): void {
    this.queue.clear();
    // [O-6 step 2] pinned messages are discarded too (skipped by their psocks) [K-8].
    this.pinHeld = [];
    this.smem = 0;
    this.batchPending = false;
  }

  /** Rejects every waiting send (close). */
  rejectAll(err: Error): void {
    for (const req of this.waiters.drain()) {
      if (req.onAbort !== undefined) req.signal!.removeEventListener('abort', req.onAbort);
      req.reject(err);
    }
  }
}

/** The bytes of a sendMany() entry, checked before: a Uint8Array, or the parts of one message. */
function entryLength(m: Message): number {
  return m instanceof Uint8Array ? m.length : partsLength(m);
}

/** The options of the send call under way, read by {@link readOptions}: one record, reused. */
const call = {
  eor: true,
  batch: false,
  signal: undefined as AbortSignal | undefined,
  ref: undefined as PsockRef | undefined,
  copy: true,
};

/**
 * Checks a send call's options into {@link call}, defaults where absent: `psock` and
 * `copy` always, `eor` and `batch` with `perMessage` (send, trySend), `signal` with
 * `signal` (send).
 */
function readOptions(options: unknown, perMessage: boolean, signal: boolean): void {
  call.eor = true;
  call.batch = false;
  call.signal = undefined;
  call.ref = undefined;
  call.copy = true;
  if (options === undefined) return;
  if (options === null || typeof options !== 'object') throw invalidArgType('options', 'of type object', options);
  const o = options as SendOptions;
  if (perMessage) {
    call.eor = checkBool('options.eor', o.eor, true);
    call.batch = checkBool('options.batch', o.batch, false);
  }
  if (signal) call.signal = checkSignal(o.signal);
  call.ref = checkPsockRef(o.psock);
  call.copy = checkBool('options.copy', o.copy, true);
}

/** [K-5] a `psock` option: an object with a numeric `id` (whether it names a psock is checked later). */
function checkPsockRef(ref: unknown): PsockRef | undefined {
  if (ref === undefined) return undefined;
  if (ref === null || typeof ref !== 'object' || typeof (ref as { id?: unknown }).id !== 'number') {
    throw invalidArgType('options.psock', 'a Psock or an object with a numeric id (a message origin)', ref);
  }
  return ref as PsockRef;
}

function sendQueueOnWake(q: SendQueue): void {
  q.woken();
}
