import { EventEmitter } from 'node:events';
import type * as net from 'node:net';
import { KcmError } from '../errors.js';
import { Fifo } from './fifo.js';
import type { KcmSocket } from './kcm-socket.js';
import { Psock, kPsock, type PsockRef, type PsockStats } from './psock.js';
import type { TxMessage } from './tx-message.js';
import { formatKcmTable } from './kcm-table.js';
import * as diag from '../diagnostics.js';

/** Counters of one KCM socket as the multiplexor lists them [ST-1, ST-7]. */
export interface KcmSocketMuxStats {
  index: number;
  rxMsgs: number;
  rxBytes: number;
  txMsgs: number;
  txBytes: number;
  /** Pinned messages dropped: their psock failed or was unattached before they were handed whole [K-6]. */
  txDropped: number;
  /** Messages queued for reading (Recv-Q). */
  rxQueued: number;
  /** Bytes of those messages (Rmem). */
  rxQueuedBytes: number;
  /** Messages queued for transmit (Send-Q). */
  txQueued: number;
  /** Bytes queued or open for transmit (Smem). */
  txQueuedBytes: number;
  /** Index of the psock reserved for transmit, or -1 (`Psck-N`). */
  txPsock: number;
  /** Waiting for a psock (`TxWait`). */
  txWait: boolean;
  /** A batch is pending (`WMore`). */
  batchPending: boolean;
  /** On the receive-waiter list (`RxWait`). */
  rxWait: boolean;
  /** Receive disabled [D-*]. */
  rxDisabled: boolean;
}

/** Counters of a multiplexor [ST-3], exact at the time of the call. */
export interface MuxStats {
  rxMsgs: number;
  rxBytes: number;
  txMsgs: number;
  txBytes: number;
  txRetries: number;
  /** Pinned messages dropped, never sent elsewhere [K-6]. */
  txDropped: number;
  rxReadyDrops: number;
  psockAttach: number;
  psockUnattach: number;
  psockUnattachRsvd: number;
  /** Messages waiting in the hold queue [D-5]. */
  rxHoldQueued: number;
  sockets: KcmSocketMuxStats[];
  psocks: PsockStats[];
}

type PsockCounters = Omit<PsockStats, 'index' | 'id' | 'reservedBy' | 'txStopped' | 'rxStopped' | 'rxPaused' | 'txStalled' | 'rxPartialBytes' | 'txQueuedBytes' | 'txPinnedQueued'>;

const counterNames = [
  'rxMsgs', 'rxBytes', 'txMsgs', 'txBytes', 'reserved', 'unreserved', 'txAborts', 'txUncertain', 'rxMemFail', 'rxNeedMoreHdr',
  'rxMsgTooBig', 'rxMsgTimeouts', 'rxBadHdrLen', 'rxAborted', 'rxInterrupted', 'rxUnrecovIntr', 'txPinnedMsgs', 'txPinnedBytes',
  'txDropped',
] as const satisfies readonly (keyof PsockCounters)[];

/** The events of a {@link Multiplexor}, with their listeners' arguments. */
export interface MultiplexorEvents {
  /** Every psock error, with the psock that reported it (as its own `'error'`). */
  psockerror: [error: KcmError, psock: Psock];
}

/** Weak, so that a multiplexor its user dropped without closing is not kept alive by the listing. */
const liveMuxes = new Set<WeakRef<Multiplexor>>();

/**
 * The multiplexor (Linux: `struct kcm_mux`) shared by a KCM socket and its clones. Not
 * constructed by users: it is `sock.mux`.
 *
 * Its steering and reservation logic is a state machine over the lists of the spec's
 * model: receive waiters, ready psocks, available psocks, transmit waiters and the hold
 * queue. Work that follows from a change (transmit work, psocks to resume, deliveries,
 * error events) is queued and run when the outermost operation ends, so no list is
 * ever seen half-changed and no user code runs inside a state change.
 *
 * Emits `'psockerror'` `(err, psock)` for every psock error.
 */
export class Multiplexor extends EventEmitter<MultiplexorEvents> {
  /** @internal KCM sockets, in index order. */ readonly socketList: KcmSocket[] = [];
  /** @internal Psocks, in index order. */ readonly psockList: Psock[] = [];
  /** @internal [S-1] sockets ready to take received messages. */ readonly rxWaiters: KcmSocket[] = [];
  /** @internal [S-4] psocks holding one message nobody could take. */ readonly psocksReady: Psock[] = [];
  /** @internal [T-13] psocks idle for transmit, idle longest first. */ readonly psocksAvail: Psock[] = [];
  /** @internal [T-19] sockets waiting for a psock. */ readonly txWaiters: KcmSocket[] = [];
  /** @internal [D-3] orphaned received messages. */ readonly holdQueue = new Fifo<Buffer>();
  /** @internal [K-2] the origin of each message of the hold queue. */ readonly holdOrigins = new Fifo<PsockRef>();

  private txRetries = 0;
  private txDropped = 0;
  /** [K-1] the next psock id: ids are never reused. */
  private nextPsockId = 1;
  /** [K-5] attached psocks by id. */
  private readonly psockById = new Map<number, Psock>();
  private rxReadyDrops = 0;
  private psockAttach = 0;
  private psockUnattach = 0;
  private psockUnattachRsvd = 0;
  /** Counters of unattached psocks [ST-4]. */
  private readonly aggregate: PsockCounters = Object.fromEntries(counterNames.map((n) => [n, 0])) as PsockCounters;

  private depth = 0;
  private flushing = false;
  private destroyed = false;
  private readonly txWork: KcmSocket[] = [];
  private readonly pinnedWork: Psock[] = [];
  private readonly toResume: Psock[] = [];
  private readonly touched: KcmSocket[] = [];
  private readonly pendingErrors: [Psock, KcmError][] = [];
  private retryList: TxRetry[] = [];

  /** @internal Use {@link KcmSocket.create}. */
  private readonly selfRef = new WeakRef(this);

  constructor() {
    super();
    liveMuxes.add(this.selfRef);
    if (diag.muxCreateChannel.hasSubscribers || diag.debugEnabled) diag.onMuxCreate(this);
  }

  /**
   * @internal Set by a connector with `failAfter`: `true` holds new sends (they wait as
   * for buffer space) while no connection is up; an error fails waiting and new sends.
   */
  txGate: Error | true | undefined = undefined;

  /** @internal Holds (true), fails (an error) or lets through (undefined) the sends of every socket. */
  setTxGate(gate: Error | true | undefined): void {
    if (this.txGate === gate) return;
    this.txGate = gate;
    for (const k of this.socketList.slice()) k.tx.gateChanged();
  }

  /** The live KCM sockets of this multiplexor, in index order. */
  get sockets(): readonly KcmSocket[] {
    return this.socketList.slice();
  }

  /** The attached psocks, in index order. */
  get psocks(): readonly Psock[] {
    return this.psockList.slice();
  }

  /** False once its last KCM socket has closed [O-7]. */
  get alive(): boolean {
    return !this.destroyed;
  }

  /** Counters of the multiplexor, its sockets and its psocks [ST-3], exact. */
  stats(): MuxStats {
    const psocks = this.psockList.map((p) => p.stats());
    const sum = { ...this.aggregate };
    for (const p of psocks) for (const n of counterNames) sum[n] += p[n];
    return {
      rxMsgs: sum.rxMsgs,
      rxBytes: sum.rxBytes,
      txMsgs: sum.txMsgs,
      txBytes: sum.txBytes,
      txRetries: this.txRetries,
      txDropped: this.txDropped,
      rxReadyDrops: this.rxReadyDrops,
      psockAttach: this.psockAttach,
      psockUnattach: this.psockUnattach,
      psockUnattachRsvd: this.psockUnattachRsvd,
      rxHoldQueued: this.holdQueue.length,
      sockets: this.socketList.map(socketRow),
      psocks,
    };
  }

  /** The `/proc/net/kcm` table of this multiplexor [ST-7]. */
  override toString(): string {
    return formatKcmTable([this]);
  }

  /** The live multiplexors of this thread, oldest first (for `/proc/net/kcm`-style listings). */
  static live(): Multiplexor[] {
    const out: Multiplexor[] = [];
    for (const ref of liveMuxes) {
      const mux = ref.deref();
      if (mux === undefined) liveMuxes.delete(ref);
      else out.push(mux);
    }
    return out;
  }

  // ---------------------------------------------------------------- operations

  /** @internal Starts an operation; work it causes runs when the outermost one ends. */
  enter(): void {
    this.depth++;
  }

  /** @internal Ends an operation: runs queued transmit work, resumes psocks, then delivers. */
  leave(): void {
    if (this.depth > 1) {
      this.depth--;
      return;
    }
    if (this.txWork.length === 0 && this.pinnedWork.length === 0 && this.toResume.length === 0) {
      // Nothing queued (the common end of a send or a receive burst): no loop, no shifts.
      this.depth = 0;
      if (!this.flushing && (this.touched.length > 0 || this.pendingErrors.length > 0)) this.flush();
      return;
    }
    try {
      for (;;) {
        const k = this.txWork.length === 0 ? undefined : this.txWork.shift();
        if (k !== undefined) {
          k.txScheduled = false;
          k.txWork();
          continue;
        }
        // [K-4] replies made while messages are delivered go out together after the delivery.
        const pinned = this.flushing || this.pinnedWork.length === 0 ? undefined : this.pinnedWork.shift();
        if (pinned !== undefined) {
          pinned.pinnedScheduled = false;
          this.servePinned(pinned);
          continue;
        }
        const p = this.toResume.length === 0 ? undefined : this.toResume.shift();
        if (p !== undefined) {
          p.resumeRx();
          continue;
        }
        break;
      }
    } finally {
      this.depth = 0;
    }
    if (!this.flushing) this.flush();
  }

  /** Deliveries and events: user code runs here, outside every state change. */
  private flush(): void {
    if (this.touched.length === 0 && this.pendingErrors.length === 0) {
      // Nothing to deliver or report.
      if (this.pinnedWork.length > 0) this.flushLater();
      return;
    }
    this.flushing = true;
    let k: KcmSocket | undefined;
    try {
      for (;;) {
        k = this.touched.shift();
        if (k !== undefined) {
          k.rxTouched = false;
          k.rxFlush();
          continue;
        }
        const e = this.pendingErrors.shift();
        if (e !== undefined) {
          const [psock, err] = e;
          // Unattached by the application since (in a listener before this one): it emits
          // nothing more. The last close's unattach [O-7] is not the application's.
          if (!psock.attached && !this.destroyed) continue;
          if (diag.psockErrorChannel.hasSubscribers || diag.debugEnabled) diag.onPsockError(this, psock, err);
          if (psock.listenerCount('error') > 0) psock.emit('error', err);
          if (this.listenerCount('psockerror') > 0) this.emit('psockerror', err, psock);
          continue;
        }
        break;
      }
    } catch (err) {
      // A listener threw: the state is consistent; deliver the rest on the next tick,
      // the rest of the thrower's queue included (else a full socket never drains).
      if (k !== undefined && k.rx.length > 0) this.touch(k);
      if (this.touched.length > 0 || this.pendingErrors.length > 0) process.nextTick(muxOnFlush, this);
      throw err;
    } finally {
      this.flushing = false;
    }
    // Pinned messages queued by the listeners: one write per psock for the whole delivery.
    if (this.pinnedWork.length > 0) this.flushLater();
  }

  /** @internal Runs a flush outside any operation. */
  flushLater(): void {
    this.enter();
    this.leave();
  }

  /** @internal Marks a socket for delivery at the end of the operation. */
  touch(k: KcmSocket): void {
    if (!k.rxTouched) {
      k.rxTouched = true;
      this.touched.push(k);
    }
  }

  /** @internal Queues the transmit work of a socket [T-14]. */
  scheduleTx(k: KcmSocket): void {
    if (!k.txScheduled) {
      k.txScheduled = true;
      this.txWork.push(k);
    }
  }

  // ---------------------------------------------------------------- sockets

  /** @internal Adds a socket with the smallest free index [O-2]. */
  addSocket(k: KcmSocket): number {
    const index = insertByIndex(this.socketList, k);
    return index;
  }

  /** @internal A closed socket leaves the mux; the last one destroys it [O-6 step 7, O-7]. */
  removeSocket(k: KcmSocket): void {
    removeItem(this.socketList, k);
    removeItem(this.rxWaiters, k);
    removeItem(this.txWaiters, k);
    k.rxWait = false;
    k.txWait = false;
    if (this.socketList.length === 0) this.destroy();
  }

  private destroy(): void {
    // [O-7] every psock unattached as by U-*, the hold queue purged.
    for (const p of this.psockList.slice()) this.unattachPsock(p);
    this.holdQueue.clear();
    this.holdOrigins.clear();
    this.destroyed = true;
    liveMuxes.delete(this.selfRef);
    if (diag.muxDestroyChannel.hasSubscribers || diag.debugEnabled) diag.onMuxDestroy(this);
  }

  // ---------------------------------------------------------------- attach

  /** @internal [A-*] checks done by the caller; registers a psock. */
  attach(transport: net.Socket, options: ConstructorParameters<typeof Psock>[4]): Psock {
    const psock = new Psock(this, 0, this.nextPsockId++, transport, options);
    psock.index = insertByIndex(this.psockList, psock);
    this.psockById.set(psock.id, psock);
    this.enter();
    try {
      this.psockAttach++;
      this.psockChanged(psock);
      psock.hook();
      // available for transmit now, or once connected.
      if (!psock.connecting) this.makeAvailable(psock);
    } finally {
      this.leave();
    }
    if (diag.psockAttachChannel.hasSubscribers || diag.debugEnabled) diag.onPsockAttach(this, psock);
    return psock;
  }

  /** @internal [U-1] the psock of `transport` in this mux. */
  findPsock(transport: net.Socket): Psock | undefined {
    const p = (transport as net.Socket & { [kPsock]?: Psock })[kPsock];
    return p !== undefined && p.mux === this && p.attached ? p : undefined;
  }

  /** @internal [U-2 … U-5] synchronous unattach. */
  unattach(p: Psock): void {
    this.enter();
    try {
      this.unattachPsock(p);
    } finally {
      this.leave();
    }
  }

  private unattachPsock(p: Psock): void {
    p.attached = false;
    const unparsed = p.parser.stop();
    // [U-2 step 3] a held message is dropped.
    if (p.ready) {
      p.ready = false;
      removeItem(this.psocksReady, p);
      this.rxReadyDrops++;
    }
    removeItem(this.toResume, p);
    const bound = p.rxKcm;
    if (bound !== undefined) {
      p.rxKcm = undefined;
      bound.rxPsock = undefined;
      this.socketReady(bound);
    }
    removeItem(this.psocksAvail, p);
    this.psockById.delete(p.id);
    const k = p.txKcm;
    if (k !== undefined) {
      // [U-4] reserved: abort, release, restart the message elsewhere. [E-2] Linux posts
      // EPIPE on the TCP socket; the psock, no longer the application's, emits nothing.
      this.psockUnattachRsvd++;
      if (!p.txStopped) {
        p.txStopped = true;
        p.txAborts++;
        if (p.errored === undefined) p.errored = new KcmError('EPIPE', `psock-${p.index}: unattached while reserved for transmit`);
      }
      this.releaseAborted(p, k);
    }
    p.txStopped = true;
    // [K-6] pinned messages not handed whole are dropped, never sent elsewhere.
    this.dropPinned(p);
    p.unhook(unparsed);
    this.psockChanged(p);
    // [U-2 step 5, ST-4] fold its counters into the mux.
    this.psockUnattach++;
    const s = p.stats();
    for (const n of counterNames) this.aggregate[n] += s[n];
    removeItem(this.psockList, p);
    if (diag.psockUnattachChannel.hasSubscribers || diag.debugEnabled) diag.onPsockUnattach(this, p, k !== undefined);
  }

  // ---------------------------------------------------------------- receive

  /**
   * @internal [S-1] hands a finished message to a socket: the one bound to this burst,
   * else the head of the receive waiters. False when nobody can take it: the psock then
   * holds it and pauses its transport [S-4].
   */
  steer(p: Psock, message: Buffer): boolean {
    let k = p.rxKcm;
    if (k !== undefined) {
      if (k.rxCanTake()) {
        k.rxEnqueue(message, p);
        this.touch(k);
        return true;
      }
      // [S-1 step 4] full: unbind without putting it back on the waiters.
      p.rxKcm = undefined;
      k.rxPsock = undefined;
    }
    const waiters = this.rxWaiters;
    while (waiters.length > 0) {
      k = waiters.shift()!;
      k.rxWait = false;
      if (k.rxCanTake()) {
        // [S-2] bound for the rest of the burst.
        p.rxKcm = k;
        k.rxPsock = p;
        k.rxEnqueue(message, p);
        this.touch(k);
        return true;
      }
    }
    // [S-1 step 3] nobody can take it.
    p.ready = true;
    this.psocksReady.push(p);
    p.transport.pause();
    return false;
  }

  /**
   * @internal [S-1, S-2] {@link steer} for `count` whole messages cut from one chunk
   * (message `i` ends at `ends[i]`, the first starts at `start`), with the same outcome as
   * steering them one by one: the bound socket takes them while it has room [S-3], then
   * the next waiters in turn. Returns how many were taken; when fewer than `count`,
   * nobody could take the next one and the psock holds it [S-4].
   */
  steerRun(p: Psock, chunk: Buffer, start: number, ends: Uint32Array, count: number): number {
    let i = 0;
    let k = p.rxKcm;
    if (k !== undefined) {
      i = k.rx.enqueueRun(chunk, start, ends, 0, count, p);
      if (i > 0) this.touch(k);
      if (i === count) return count;
      // [S-1 step 4] full: unbind without putting it back on the waiters.
      p.rxKcm = undefined;
      k.rxPsock = undefined;
    }
    const waiters = this.rxWaiters;
    while (waiters.length > 0) {
      k = waiters.shift()!;
      k.rxWait = false;
      const from = i;
      i = k.rx.enqueueRun(chunk, from === 0 ? start : ends[from - 1]!, ends, from, count, p);
      if (i === from) continue;
      this.touch(k);
      if (i === count) {
        // [S-2] bound for the rest of the burst.
        p.rxKcm = k;
        k.rxPsock = p;
        return count;
      }
      // Full before the end of the run [S-1 step 4]: the next message goes to the next waiter.
    }
    // [S-1 step 3] nobody can take it.
    p.ready = true;
    this.psocksReady.push(p);
    p.transport.pause();
    return i;
  }

  /** @internal [S-2] end of a receive burst: the bound socket goes back to the waiters. */
  endBurst(p: Psock): void {
    const k = p.rxKcm;
    if (k === undefined) return;
    p.rxKcm = undefined;
    k.rxPsock = undefined;
    this.socketReady(k);
  }

  /**
   * @internal [S-5] a socket becomes ready: it takes from the hold queue, then the held
   * messages of ready psocks (which resume reading), then joins the receive waiters.
   */
  socketReady(k: KcmSocket): void {
    if (k.rxWait || k.rxPsock !== undefined || k.rxDisabled || k.closed) return;
    const hold = this.holdQueue;
    while (hold.length > 0) {
      if (!k.rxCanTake()) return;
      k.rxEnqueue(hold.shift()!, this.holdOrigins.shift()!);
      this.touch(k);
    }
    const ready = this.psocksReady;
    while (ready.length > 0) {
      if (!k.rxCanTake()) return;
      const p = ready.shift()!;
      p.ready = false;
      const message = p.parser.takeHeld();
      if (message !== undefined) {
        k.rxEnqueue(message, p);
        this.touch(k);
      }
      this.toResume.push(p);
    }
    if (!k.rxCanTake()) return;
    this.rxWaiters.push(k);
    k.rxWait = true;
  }

  /**
   * @internal [D-3, O-6 step 5] moves messages of a disabled or closing socket to others,
   * each with its origin [K-2] (`origins[i]` for `messages[i]`).
   */
  requeue(messages: readonly Buffer[], origins: readonly PsockRef[]): void {
    const waiters = this.rxWaiters;
    for (let i = 0; i < messages.length; i++) {
      const message = messages[i]!;
      const origin = origins[i]!;
      for (;;) {
        const w = waiters[0];
        if (w === undefined) {
          this.holdQueue.push(message);
          this.holdOrigins.push(origin);
          break;
        }
        if (w.rxCanTake()) {
          w.rxEnqueue(message, origin);
          this.touch(w);
          break;
        }
        waiters.shift();
        w.rxWait = false;
      }
    }
  }

  /** @internal A socket leaves the receive waiters (disable, close). */
  leaveRxWaiters(k: KcmSocket): void {
    if (k.rxWait) {
      removeItem(this.rxWaiters, k);
      k.rxWait = false;
    }
    const p = k.rxPsock;
    if (p !== undefined) {
      // Bound to a burst (a parser called in): the rest of the burst goes elsewhere.
      p.rxKcm = undefined;
      k.rxPsock = undefined;
    }
  }

  // ---------------------------------------------------------------- transmit

  /** @internal [T-13] the psock a socket writes on: its own, else the head of the available list. */
  reserve(k: KcmSocket): Psock | undefined {
    const p = this.psocksAvail.length === 0 ? undefined : this.psocksAvail.shift();
    if (p !== undefined) {
      p.txKcm = k;
      k.txPsock = p;
      p.reserved++;
      return p;
    }
    if (!k.txWait) {
      this.txWaiters.push(k);
      k.txWait = true;
    }
    return undefined;
  }

  /** @internal [T-15] releases a reservation. */
  release(p: Psock, k: KcmSocket): void {
    p.unreserved++;
    p.txKcm = undefined;
    k.txPsock = undefined;
    if (p.txDrain) p.txStopped = true;
    if (p.txStopped || !p.attached) return;
    this.makeAvailable(p);
  }

  /** @internal [T-11 step 1] the reserved psock was aborted: release it and restart the head message. */
  releaseAborted(p: Psock, k: KcmSocket): void {
    this.release(p, k);
    const q = k.tx.queue;
    if (q.length > 0) {
      q.rewindHead();
      this.txRetries++;
      this.scheduleTx(k);
    }
  }

  /**
   * @internal Takes a psock out of transmit rotation without aborting anything: a message
   * being written on it finishes there, the socket's next ones go elsewhere; it keeps
   * receiving. Used to drain a connection before closing it.
   */
  drainTx(p: Psock): void {
    if (p.txStopped || p.txDrain) return;
    p.txDrain = true;
    if (p.txKcm === undefined) {
      p.txStopped = true;
      removeItem(this.psocksAvail, p);
    }
  }

  /**
   * @internal [A-11, T-15] a psock becomes available: its own pinned messages first [K-4],
   * then the first transmit waiter, else the list.
   */
  private makeAvailable(p: Psock): void {
    if (p.pinned.length > 0) {
      p.pinnedBusy = true;
      this.schedulePinned(p);
      return;
    }
    const w = this.txWaiters.length === 0 ? undefined : this.txWaiters.shift();
    if (w !== undefined) {
      w.txWait = false;
      p.txKcm = w;
      w.txPsock = p;
      p.reserved++;
      this.scheduleTx(w);
      return;
    }
    this.psocksAvail.push(p);
  }

  /** @internal A connecting transport is connected. */
  psockConnected(p: Psock): void {
    this.enter();
    try {
      p.connecting = false;
      if (p.attached && !p.txStopped && !p.txDrain) this.makeAvailable(p);
    } finally {
      this.leave();
    }
  }

  /** @internal [T-14] write space on a psock. */
  psockDrained(p: Psock): void {
    p.stalled = false;
    const k = p.txKcm;
    if (k === undefined && !p.pinnedBusy) return;
    this.enter();
    try {
      if (k !== undefined) this.scheduleTx(k);
      else this.schedulePinned(p);
    } finally {
      this.leave();
    }
  }

  /** @internal Closing a socket that holds a reservation aborts the psock [O-6 step 4]. */
  abortOnClose(p: Psock, k: KcmSocket): void {
    let err: KcmError | undefined;
    const stopping = !p.txStopped;
    if (stopping) {
      p.txStopped = true;
      p.txAborts++;
      removeItem(this.psocksAvail, p);
      if (p.errored === undefined) {
        err = new KcmError('EPIPE', `psock-${p.index}: the KCM socket holding it for transmit closed`);
        p.errored = err;
      }
    }
    this.release(p, k);
    this.dropPinned(p);
    if (err !== undefined) this.failRx(p, err);
    if (stopping) this.psockChanged(p);
  }

  /**
   * @internal [E-1b] the transport ended cleanly. Messages parsed before the end are still
   * delivered: while the psock holds one for a full socket, its receive side ends only once
   * that message and the bytes behind it are through; its transmit side stops now.
   */
  psockEnded(p: Psock, err: KcmError): void {
    if (p.errored !== undefined || !p.attached) return;
    if (!p.ready) return this.psockFailed(p, err);
    if (p.endedError !== undefined) return;
    p.endedError = err;
    this.enter();
    try {
      this.stopTx(p);
    } finally {
      this.leave();
    }
  }

  /** Takes a psock out of transmit rotation for good; its in-flight message restarts elsewhere. */
  private stopTx(p: Psock): void {
    if (p.txStopped) return;
    p.txStopped = true;
    p.txAborts++;
    removeItem(this.psocksAvail, p);
    const k = p.txKcm;
    if (k !== undefined) this.releaseAborted(p, k);
    this.dropPinned(p);
    this.psockChanged(p);
  }

  /**
   * @internal [E-*, X-3] a psock fails: done both ways. Its partial message is dropped,
   * it leaves transmit rotation, and a message in flight on it restarts elsewhere at once
   * . `'error'` is emitted once.
   */
  psockFailed(p: Psock, err: KcmError): void {
    if (p.errored !== undefined || !p.attached) return;
    p.errored = err;
    this.enter();
    try {
      this.stopTx(p);
      this.failRx(p, err);
    } finally {
      this.leave();
    }
  }

  private failRx(p: Psock, err: KcmError): void {
    if (p.ready) {
      // [E-5, ST-3] stop() drops the held message: count it once, as unattach would.
      p.ready = false;
      removeItem(this.psocksReady, p);
      this.rxReadyDrops++;
    }
    const unparsed = p.parser.stop();
    if (unparsed !== undefined && !p.transport.readableEnded && !p.transport.destroyed) p.transport.unshift(unparsed);
    p.transport.pause();
    this.pendingErrors.push([p, err]);
  }

  /** @internal A message whose write failed restarts on another psock [T-16]: its bytes, by reference. */
  retryLater(owner: KcmSocket, buf: Buffer, start: number, len: number): void {
    this.retryList.push({ owner, buf, start, len, msg: undefined });
    if (this.retryList.length === 1) process.nextTick(muxOnRetry, this);
  }

  /**
   * @internal [T-21] A message whose write failed inside the call that wrote it: back at
   * the front of its socket's queue at once, ahead of what the socket sends next [T-17].
   * When the failed psock is still reserved by the socket, its abort counts the retry.
   */
  retryNow(k: KcmSocket, buf: Buffer, start: number, len: number, from: Psock): void {
    if (k.closed) return;
    k.txRequeue(buf, start, len, k.tx.queue.headWritten > 0 ? 1 : 0);
    if (k.txPsock !== from) this.txRetries++;
    this.scheduleTx(k);
  }

  /** @internal A pinned message whose write failed: dropped and counted, never restarted elsewhere [K-6]. */
  retryPinned(msg: TxMessage): void {
    this.retryList.push({ owner: msg.owner, buf: msg.parts[0]!, start: 0, len: msg.length, msg });
    if (this.retryList.length === 1) process.nextTick(muxOnRetry, this);
  }

  /** @internal */
  runRetries(): void {
    const list = this.retryList;
    this.retryList = [];
    this.enter();
    try {
      const placed = new Map<KcmSocket, number>();
      for (const r of list) {
        const k = r.owner;
        if (k.closed) continue;
        if (r.msg !== undefined) {
          // [K-6] a pinned message never restarts elsewhere: it is dropped and counted.
          this.countDropped(r.msg.pin as Psock, k);
          continue;
        }
        // In front of the queue, behind a message already partly written [T-17].
        let at = placed.get(k);
        if (at === undefined) at = k.tx.queue.headWritten > 0 ? 1 : 0;
        k.txRequeue(r.buf, r.start, r.len, at);
        placed.set(k, at + 1);
        this.txRetries++;
        this.scheduleTx(k);
      }
    } finally {
      this.leave();
    }
  }

  // ---------------------------------------------------------------- pinned transmit

  /**
   * @internal [K-5] the psock a pinned send names: a Psock of this multiplexor, or the
   * attached psock with that id.
   *
   * @throws KcmError `ENOENT` for a psock of another multiplexor or an id this one never
   * gave; `EPIPE` for a psock that is done (failed, stopped or unattached).
   */
  pinTarget(ref: PsockRef): Psock {
    let p: Psock | undefined;
    if (ref instanceof Psock) {
      if (ref.mux !== this) throw new KcmError('ENOENT', `psock ${ref.id} belongs to another multiplexor`);
      p = ref;
    } else {
      const id = ref.id;
      p = this.psockById.get(id);
      if (p === undefined) {
        if (Number.isInteger(id) && id >= 1 && id < this.nextPsockId) {
          throw new KcmError('EPIPE', `psock ${id} is unattached: a message pinned to it cannot be sent`);
        }
        throw new KcmError('ENOENT', `no psock with id ${String(id)} in this multiplexor`);
      }
    }
    if (p.done) {
      const why = !p.attached ? 'is unattached' : p.errored !== undefined ? `failed (${p.errored.code})` : 'left transmit rotation';
      throw new KcmError('EPIPE', `psock ${p.id} ${why}: a message pinned to it cannot be sent`);
    }
    return p;
  }

  /** @internal [K-3, K-4] queues a whole message for its psock, behind the others pinned there. */
  pin(p: Psock, msg: TxMessage): void {
    if (p.done) {
      // Done since the send was accepted (a batch held meanwhile): dropped [K-6].
      msg.owner.endpoint.freed(msg.owner, msg.length);
      this.countDropped(p, msg.owner);
      return;
    }
    p.pinned.push(msg);
    if (p.txKcm === undefined && !p.connecting) this.schedulePinned(p);
  }

  /** @internal */
  schedulePinned(p: Psock): void {
    if (!p.pinnedScheduled) {
      p.pinnedScheduled = true;
      this.pinnedWork.push(p);
    }
  }

  /**
   * [K-4] writes the messages pinned to a psock that no socket holds: out of the available
   * list while it writes, whole messages in call order, each one at most once [T-17]; a
   * stall keeps it busy until 'drain' [T-12]. Emptied, it becomes available again [T-15].
   */
  private servePinned(p: Psock): void {
    if (p.done) {
      this.dropPinned(p);
      return;
    }
    if (p.txKcm !== undefined || p.connecting) return; // at the release, at 'connect'
    const queue = p.pinned;
    if (!p.pinnedBusy) {
      if (queue.length === 0) return;
      const i = this.psocksAvail.indexOf(p);
      if (i < 0) return; // neither available, held nor busy: not in rotation
      this.psocksAvail.splice(i, 1);
      p.pinnedBusy = true;
    }
    while (queue.length > 0) {
      if (p.stalled) return;
      const msg = queue.peek()!;
      if (msg.owner.closed && msg.written === 0) {
        queue.shift(); // [O-6] discarded with its socket
        continue;
      }
      // A message of a closed socket already started is completed: the stream stays framed.
      if (!p.writeMessage(msg)) return;
      queue.shift();
      p.txMsgs++;
      p.txPinnedMsgs++;
      p.txPinnedBytes += msg.length;
      if (!msg.owner.closed) msg.owner.endpoint.freed(msg.owner, msg.length);
    }
    p.pinnedBusy = false;
    this.makeAvailable(p);
  }

  /** [K-6] a psock is done: the messages pinned to it that were not handed whole are dropped. */
  private dropPinned(p: Psock): void {
    p.pinnedBusy = false;
    const queue = p.pinned;
    while (queue.length > 0) {
      const msg = queue.shift()!;
      const k = msg.owner;
      if (k.closed) continue;
      k.endpoint.freed(k, msg.length);
      this.countDropped(p, k);
    }
  }

  private countDropped(p: Psock | undefined, k: KcmSocket): void {
    if (p !== undefined) p.txDropped++;
    this.txDropped++;
    k.endpoint.dropped(k);
  }

  /**
   * @internal [K-6] a pinned message that reached the multiplexor's thread after its psock
   * was done (sent from a worker): dropped and counted, never sent elsewhere.
   */
  dropArrived(k: KcmSocket, id: number): void {
    this.countDropped(this.psockById.get(id), k);
  }

  /** @internal [K-5] the attached psock with this id that can still send, if any. */
  livePsock(id: number): Psock | undefined {
    const p = this.psockById.get(id);
    return p === undefined || p.done ? undefined : p;
  }

  /** Tells the sockets that a psock was attached or is done (worker sockets mirror the list) [K-5]. */
  private psockChanged(p: Psock): void {
    for (const k of this.socketList) k.endpoint.psockChanged(k, p);
  }

  /** @internal [K-5] ids of the psocks that can send, and the next id to be given. */
  livePsockIds(): { live: number[]; next: number } {
    const live: number[] = [];
    for (const p of this.psockList) if (!p.done) live.push(p.id);
    return { live, next: this.nextPsockId };
  }

  /** @internal A psock was written to in this tick: its stage goes out at the end of the tick. */
  activated(p: Psock): void {
    activePsocks.push(p);
    if (activePsocks.length === 1) process.nextTick(endTick);
  }
}

/** A message to restart [T-16] (its earlier attempt's bytes, never copied again), or a pinned one to drop [K-6]. */
interface TxRetry {
  owner: KcmSocket;
  buf: Buffer;
  start: number;
  len: number;
  msg: TxMessage | undefined;
}

let activePsocks: Psock[] = [];

function endTick(): void {
  const list = activePsocks;
  activePsocks = [];
  for (const p of list) p.tickEnd();
}

function muxOnRetry(mux: Multiplexor): void {
  mux.runRetries();
}

function muxOnFlush(mux: Multiplexor): void {
  mux.flushLater();
}

/** A socket's row of the statistics [ST-7]: messages its endpoint holds (posted to a worker) count as queued. */
function socketRow(k: KcmSocket): KcmSocketMuxStats {
  const rx = k.rx;
  const tx = k.tx;
  // [ST-1] read in a worker, not yet acknowledged: read, not queued.
  const there = k.endpoint.readElsewhere(k);
  const readMsgs = there === undefined ? 0 : there.msgs;
  const readBytes = there === undefined ? 0 : there.bytes;
  return {
    index: k.index,
    rxMsgs: rx.msgs + readMsgs,
    rxBytes: rx.bytes + readBytes,
    txMsgs: tx.msgs,
    txBytes: tx.bytes,
    txDropped: k.endpoint.droppedCount(k),
    rxQueued: rx.length + k.endpoint.held - readMsgs,
    rxQueuedBytes: rx.rmem - readBytes,
    txQueued: tx.queue.length,
    txQueuedBytes: tx.smem,
    txPsock: k.txPsock === undefined ? -1 : k.txPsock.index,
    txWait: k.txWait,
    batchPending: tx.batchPending,
    rxWait: k.rxWait,
    rxDisabled: k.rxDisabled,
  };
}

/** Inserts `item` at the smallest free index of a list kept in index order; returns that index [O-2]. */
function insertByIndex<T extends { index: number }>(list: T[], item: T): number {
  let i = 0;
  while (i < list.length && list[i]!.index === i) i++;
  list.splice(i, 0, item);
  return i;
}

function removeItem<T>(list: T[], item: T): void {
  const i = list.indexOf(item);
  if (i >= 0) list.splice(i, 1);
}
