import { invalidArgType } from '../errors.js';
import type { PsockRef } from './psock.js';
import { AbortError } from './abort-error.js';
import { Fifo } from './fifo.js';
import { noop } from './noop.js';
import { badf, checkBool, checkSignal, partsLength, toParts } from './socket-args.js';
import { TxMessage } from './tx-message.js';
import type { KcmSocket, Message, SendManyOptions, SendOptions } from './kcm-socket.js';
import type { Multiplexor } from './multiplexor.js';

/** A send call waiting for buffer space [T-9]. */
interface SendRequest {
  parts: Buffer[];
  length: number;
  eor: boolean;
  batch: boolean;
  /** [K-3] the psock it is pinned to, checked again when it proceeds [K-5]. */
  pin: PsockRef | undefined;
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
  /** Complete messages, in send order [T-17]. */
  readonly queue = new Fifo<TxMessage>();
  /** Bytes queued or open (Smem) [T-7]. */
  smem = 0;
  /** The message being built over several calls [T-1]. */
  openMsg: TxMessage | undefined = undefined;
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

  constructor(owner: KcmSocket, sendBufferSize: number, mux: Multiplexor | undefined) {
    this.owner = owner;
    this.limit = sendBufferSize;
    this.mux = mux;
  }

  /** The multiplexor's send gate: `true` holds sends, an error fails them. */
  private gate(): Error | true | undefined {
    return this.mux === undefined ? undefined : this.mux.txGate;
  }

  /** sendmsg [T-*]. */
  send(message: Message, options: SendOptions | undefined): Promise<void> {
    const parts = toParts(message);
    const length = partsLength(parts);
    let eor = true;
    let batch = false;
    let signal: AbortSignal | undefined;
    let ref: PsockRef | undefined;
    if (options !== undefined) {
      if (options === null || typeof options !== 'object') throw invalidArgType('options', 'of type object', options);
      eor = checkBool('options.eor', options.eor, true);
      batch = checkBool('options.batch', options.batch, false);
      signal = checkSignal(options.signal);
      ref = checkPsockRef(options.psock);
    }
    const owner = this.owner;
    if (owner.closed) return Promise.reject(badf('send'));
    const gate = this.gate();
    if (gate instanceof Error) return Promise.reject(gate);
    if (signal !== undefined && signal.aborted) {
      this.sendFailed();
      return Promise.reject(new AbortError(signal.reason));
    }
    let pin: PsockRef | undefined;
    if (ref !== undefined) {
      try {
        pin = owner.endpoint.pinTarget(owner, ref);
      } catch (err) {
        return Promise.reject(err);
      }
    }
    if (this.waiters.length === 0 && this.admits()) {
      this.sendNow(parts, length, eor, batch, pin);
      return resolved;
    }
    const promise = this.enqueueSend(parts, length, eor, batch, signal, pin);
    this.kickSenders();
    return promise;
  }

  /** MSG_DONTWAIT [T-9, X-6]. */
  trySend(message: Message, options: Omit<SendOptions, 'signal'> | undefined): boolean {
    const parts = toParts(message);
    const length = partsLength(parts);
    let eor = true;
    let batch = false;
    let ref: PsockRef | undefined;
    if (options !== undefined) {
      if (options === null || typeof options !== 'object') throw invalidArgType('options', 'of type object', options);
      eor = checkBool('options.eor', options.eor, true);
      batch = checkBool('options.batch', options.batch, false);
      ref = checkPsockRef(options.psock);
    }
    const owner = this.owner;
    if (owner.closed) throw badf('the socket is closed');
    const gate = this.gate();
    if (gate instanceof Error) throw gate;
    const pin = ref === undefined ? undefined : owner.endpoint.pinTarget(owner, ref);
    if (this.waiters.length > 0 || !this.admits()) {
      this.flushBatch();
      return false;
    }
    this.sendNow(parts, length, eor, batch, pin);
    return true;
  }

  /** sendmmsg: one burst [T-8]. */
  sendMany(messages: readonly Message[], options: SendManyOptions | undefined): Promise<void> {
    if (!Array.isArray(messages)) throw invalidArgType('messages', 'an array of messages', messages);
    const all: Buffer[][] = new Array(messages.length);
    for (let i = 0; i < messages.length; i++) all[i] = toParts(messages[i]!, `messages[${i}]`);
    let ref: PsockRef | undefined;
    if (options !== undefined) {
      if (options === null || typeof options !== 'object') throw invalidArgType('options', 'of type object', options);
      ref = checkPsockRef(options.psock);
    }
    const owner = this.owner;
    if (owner.closed) return Promise.reject(badf('sendMany'));
    const gate = this.gate();
    if (gate instanceof Error) return Promise.reject(gate);
    let pin: PsockRef | undefined;
    if (ref !== undefined) {
      try {
        pin = owner.endpoint.pinTarget(owner, ref);
      } catch (err) {
        return Promise.reject(err);
      }
    }
    const last = all.length - 1;
    for (let i = 0; i <= last; i++) {
      const parts = all[i]!;
      const length = partsLength(parts);
      if (this.waiters.length === 0 && this.admits()) {
        this.sendNow(parts, length, true, i < last, pin);
        continue;
      }
      // Out of buffer space: the rest waits in order, the last one settles the call.
      let result: Promise<void> = resolved;
      for (let j = i; j <= last; j++) {
        const p = all[j]!;
        result = this.enqueueSend(p, partsLength(p), true, j < last, undefined, pin);
        if (j < last) result.catch(noop);
      }
      this.kickSenders();
      return result;
    }
    return resolved;
  }

  /** [T-3 step 3] room for a new message, or a message is open [T-7b]. */
  admits(): boolean {
    return this.openMsg !== undefined || (this.smem < this.limit && this.gate() === undefined);
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
  private sendNow(parts: Buffer[], length: number, eor: boolean, batch: boolean, pin: PsockRef | undefined): void {
    const owner = this.owner;
    const host = owner.host;
    host.enter();
    try {
      if (length > 0) {
        if (this.openMsg === undefined) this.openMsg = new TxMessage(owner, parts, length);
        else this.openMsg.append(parts, length);
        this.smem += length;
        this.bytes += length;
      }
      if (!eor) return;
      // [T-5] an empty call completes the open message, if any; never an empty message.
      const msg = this.openMsg;
      this.openMsg = undefined;
      let start = false;
      if (msg !== undefined) {
        this.msgs++;
        if (pin !== undefined) {
          msg.pin = pin;
          if (!batch && !this.batchPending) {
            owner.endpoint.pinned(owner, msg); // the common case: straight to its psock [K-4]
            return;
          }
          this.pinHeld.push(msg);
          start = true;
        } else {
          start = this.queue.length === 0;
          this.queue.push(msg);
        }
      }
      if (batch) {
        if (msg !== undefined) this.batchPending = true;
      } else if (start || this.batchPending) {
        this.batchPending = false;
        if (this.queue.length > 0) host.scheduleTx(owner);
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

  private enqueueSend(parts: Buffer[], length: number, eor: boolean, batch: boolean, signal: AbortSignal | undefined, pin: PsockRef | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const req: SendRequest = { parts, length, eor, batch, pin, resolve, reject, signal, onAbort: undefined };
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
    if (this.owner.type === 'dgram' && this.openMsg !== undefined) {
      this.smem -= this.openMsg.length;
      this.openMsg = undefined;
    }
  }

  private flushBatch(): void {
    if (!this.batchPending) return;
    this.batchPending = false;
    const host = this.owner.host;
    host.enter();
    try {
      host.scheduleTx(this.owner);
      if (this.pinHeld.length > 0) this.releasePinned();
    } finally {
      host.leave();
    }
  }

  /** [T-9] buffer space freed: waiting sends proceed in call order. */
  pump(): void {
    const waiters = this.waiters;
    const owner = this.owner;
    while (waiters.length > 0 && !owner.closed && this.admits()) {
      const req = waiters.shift()!;
      if (req.onAbort !== undefined) req.signal!.removeEventListener('abort', req.onAbort);
      if (req.pin !== undefined) {
        try {
          owner.endpoint.pinTarget(owner, req.pin); // [K-5] the psock died while the call waited
        } catch (err) {
          this.sendFailed();
          req.reject(err);
          continue;
        }
      }
      this.sendNow(req.parts, req.length, req.eor, req.batch, req.pin);
      req.resolve();
    }
    // [T-3 step 3] a sender still waiting flushes the batch its predecessors left open
    // (a sendMany() burst cut by the buffer limit), else nothing would write it.
    if (waiters.length > 0 && !owner.closed) this.flushBatch();
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
    const queue = this.queue;
    let freed = false;
    while (queue.length > 0) {
      if (psock === undefined) {
        psock = mux.reserve(owner);
        if (psock === undefined) break;
      }
      if (psock.stalled) break; // [T-12] keep the reservation until 'drain'
      const msg = queue.peek()!;
      if (!psock.writeMessage(msg)) break; // stalled mid-message
      queue.shift();
      psock.txMsgs++;
      this.smem -= msg.length;
      freed = true;
      if (psock.txDrain && queue.length > 0) {
        // A draining psock leaves at a message boundary; the rest goes on another.
        mux.release(psock, owner);
        psock = undefined;
      }
    }
    if (queue.length === 0 && psock !== undefined) mux.release(psock, owner);
    if (freed || this.waiters.length > 0) this.pump();
  }

  /** Puts a message whose write failed back in the queue [T-16]. */
  requeue(msg: TxMessage, at: number): void {
    this.queue.insert(Math.min(at, this.queue.length), msg);
    this.smem += msg.length;
  }

  /** close [O-6 steps 1-3]: unsent messages are discarded. */
  discard(): void {
    this.openMsg = undefined;
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

/** [K-5] a `psock` option: an object with a numeric `id` (whether it names a psock is checked later). */
function checkPsockRef(ref: unknown): PsockRef | undefined {
  if (ref === undefined) return undefined;
  if (ref === null || typeof ref !== 'object' || typeof (ref as { id?: unknown }).id !== 'number') {
    throw invalidArgType('options.psock', 'a Psock or an object with a numeric id (a message origin)', ref);
  }
  return ref as PsockRef;
}
