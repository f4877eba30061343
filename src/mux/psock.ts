import { EventEmitter } from 'node:events';
import type * as net from 'node:net';
import { KcmError } from '../errors.js';
import { StreamParser, type StreamParserStats } from '../parsers/stream-parser.js';
import type { Parser } from '../parsers/parser.js';
import { copyPool } from './copy-pool.js';
import { Fifo } from './fifo.js';
import { notTcpOnceConnected } from './transport-check.js';
import type { KcmSocket } from './kcm-socket.js';
import type { Multiplexor } from './multiplexor.js';
import type { TxMessage } from './tx-message.js';
import { WRITE_PIECE, chunkWritten, type TxChunk, type TxQueue } from './tx-queue.js';

/** Pinned messages up to this length, header included, are staged rather than written one by one. */
const STAGE_MESSAGE_MAX = 16 * 1024;
/** Staged bytes written at once, without waiting for the end of the tick. */
const STAGE_SIZE = 64 * 1024;

/** The property of a transport that names the psock it is attached to (the "user data" slot ). */
export const kPsock: unique symbol = Symbol('kcm.psock');

type Transport = net.Socket & { [kPsock]?: Psock };

/**
 * Where a message came from, and where a reply can be pinned [K-1, K-2]: a {@link Psock}
 * in the multiplexor's thread, a plain `{ id }` in a worker. Either is accepted back as
 * the `psock` option of the send calls.
 */
export interface PsockRef {
  /** The psock's id: unique within its multiplexor, never reused [K-1]. */
  readonly id: number;
}

/** Counters of one psock [ST-2], exact at the time of the call: its parser's and its own. */
export interface PsockStats extends StreamParserStats {
  /** The psock's index in its multiplexor [O-2]. */
  index: number;
  /** Its id: unique within the multiplexor, never reused [K-1]. */
  id: number;
  txMsgs: number;
  txBytes: number;
  reserved: number;
  unreserved: number;
  txAborts: number;
  /**
   * Messages lost with a failed transport: written whole, but the write failed in a way
   * that leaves unknown whether the peer got them, so they are not sent twice [E-5].
   */
  txUncertain: number;
  /** Index of the KCM socket holding it for transmit, or -1. */
  reservedBy: number;
  /** Taken out of transmit rotation for good [T-16]. */
  txStopped: boolean;
  /** Its stream parser stopped [P-8]. */
  rxStopped: boolean;
  /** Reading paused: it holds a message no socket could take [S-4]. */
  rxPaused: boolean;
  /** Waiting for the transport's 'drain' [T-12]. */
  txStalled: boolean;
  /** Bytes of a message under assembly. */
  rxPartialBytes: number;
  /** Bytes the transport holds for writing (its `writableLength`). */
  txQueuedBytes: number;
  /** Pinned messages handed whole to the transport [K-3]. */
  txPinnedMsgs: number;
  /** Bytes of those messages. */
  txPinnedBytes: number;
  /** Pinned messages dropped because this psock failed or was unattached first [K-6]. */
  txDropped: number;
  /** Pinned messages waiting for this psock (gauge) [K-4]. */
  txPinnedQueued: number;
}

/** Options of {@link KcmSocket.attach}. */
export interface AttachOptions {
  /** Finds message boundaries [P-2]. */
  parser: Parser;
  /** A longer message aborts receive with `EMSGSIZE` [P-6]; default 8 MiB. */
  maxMessageSize?: number;
  /** Milliseconds from a message's first incomplete chunk to its last byte, else `ETIMEDOUT` [P-7]; default none. */
  assemblyTimeout?: number;
}

/** The events of a {@link Psock}, with their listeners' arguments. */
export interface PsockEvents {
  /** Once, when its transport fails or its stream cannot be parsed [E-*]. */
  error: [error: KcmError];
}

/**
 * The handle of one attached transport socket (Linux: `struct kcm_psock`).
 *
 * Emits `'error'` once, with a {@link KcmError}, when its transport fails or its stream
 * cannot be parsed; from then on it is done in both directions [E-*, X-3]. The
 * application unattaches it and closes the transport [E-4].
 */
export class Psock extends EventEmitter<PsockEvents> implements PsockRef {
  /** The attached transport. */
  readonly transport: net.Socket;
  /** The multiplexor it belongs to. */
  readonly mux: Multiplexor;
  /** Its index in the multiplexor [O-2]: reused after an unattach (`psock-N`). */
  index: number;
  /**
   * Its id: unique within its multiplexor and never reused, unlike {@link index} [K-1].
   * The origin of every message parsed from this transport carries it, and a reply
   * pinned to it goes out on this transport only.
   */
  readonly id: number;

  /** @internal */ readonly parser: StreamParser;
  /** @internal The KCM socket holding it for transmit [T-13]. */ txKcm: KcmSocket | undefined = undefined;
  /** @internal The KCM socket bound to the current receive burst [S-2]. */ rxKcm: KcmSocket | undefined = undefined;
  /** @internal Aborted for transmit, never available again [T-16]. */ txStopped = false;
  /** @internal Leaving transmit rotation at its next message boundary, receiving on (a drain). */ txDrain = false;
  /** @internal Waiting for 'drain' [T-12]. */ stalled = false;
  /** @internal On the ready list, holding one message [S-4]. */ ready = false;
  /** @internal Still connecting: joins transmit rotation at 'connect'. */ connecting: boolean;
  /** @internal Written to in this tick: later small messages of the tick are staged. */ active = false;
  /** @internal */ attached = true;
  /** @internal */ errored: KcmError | undefined = undefined;
  /** @internal The transport ended while messages waited to be steered: the error that follows them [E-1b]. */ endedError: KcmError | undefined = undefined;

  // Transmit counters [ST-2].
  /** @internal */ txMsgs = 0;
  /** @internal */ txBytes = 0;
  /** @internal */ reserved = 0;
  /** @internal */ unreserved = 0;
  /** @internal */ txAborts = 0;
  /** @internal Messages in a failed write that may have reached the peer, so not retried. */ txUncertain = 0;
  /** @internal [K-3] */ txPinnedMsgs = 0;
  /** @internal */ txPinnedBytes = 0;
  /** @internal [K-6] */ txDropped = 0;

  /** @internal [K-4] messages pinned to this psock, in call order, not yet handed whole. */
  readonly pinned = new Fifo<TxMessage>();
  /** @internal [K-4] writing its pinned messages: out of the available list, held by nobody. */ pinnedBusy = false;
  /** @internal Pinned work queued. */ pinnedScheduled = false;

  /** Writes handed to the transport whose callback has not come yet, oldest first. */
  private readonly runs = new Fifo<TxRun>();
  /** Runs of this tick not written yet: written together at the end of the tick. */
  private readonly staged: TxRun[] = [];
  private stageBytes = 0;
  /** Write callbacks still to come for writes already known to have completed. */
  private staleCallbacks = 0;
  /** @internal Bound once per psock: the write callback. */ readonly onWritten: (err?: Error | null) => void;
  private savedData: ((...args: unknown[]) => void)[] = [];
  private savedReadable: ((...args: unknown[]) => void)[] = [];

  /** @internal Use {@link KcmSocket.attach}. */
  constructor(mux: Multiplexor, index: number, id: number, transport: net.Socket, options: Required<Pick<AttachOptions, 'parser' | 'maxMessageSize'>> & { assemblyTimeout: number }) {
    super();
    this.mux = mux;
    this.index = index;
    this.id = id;
    this.transport = transport;
    this.connecting = transport.connecting;
    this.parser = new StreamParser(options, this);
    this.onWritten = psockOnWritten.bind(undefined, this);
  }

  /** Counters of this psock [ST-2]. */
  stats(): PsockStats {
    const p = this.parser;
    return {
      index: this.index,
      id: this.id,
      rxMsgs: p.rxMsgs,
      rxBytes: p.rxBytes,
      txMsgs: this.txMsgs,
      txBytes: this.txBytes,
      reserved: this.reserved,
      unreserved: this.unreserved,
      txAborts: this.txAborts,
      txUncertain: this.txUncertain,
      rxMemFail: p.rxMemFail,
      rxNeedMoreHdr: p.rxNeedMoreHdr,
      rxMsgTooBig: p.rxMsgTooBig,
      rxMsgTimeouts: p.rxMsgTimeouts,
      rxBadHdrLen: p.rxBadHdrLen,
      rxAborted: p.rxAborted,
      rxInterrupted: p.rxInterrupted,
      rxUnrecovIntr: p.rxUnrecovIntr,
      reservedBy: this.txKcm === undefined ? -1 : this.txKcm.index,
      txStopped: this.txStopped,
      rxStopped: p.done,
      rxPaused: this.ready,
      txStalled: this.stalled,
      rxPartialBytes: p.partialBytes,
      txQueuedBytes: this.transport.writableLength,
      txPinnedMsgs: this.txPinnedMsgs,
      txPinnedBytes: this.txPinnedBytes,
      txDropped: this.txDropped,
      txPinnedQueued: this.pinned.length,
    };
  }

  /** The error that ended this psock, if any. */
  get error(): KcmError | undefined {
    return this.errored;
  }

  /**
   * True once the psock can send nothing more: failed, taken out of transmit rotation,
   * or unattached. A reply pinned to it then rejects with `EPIPE` [K-5].
   */
  get done(): boolean {
    return !this.attached || this.txStopped || this.errored !== undefined;
  }

  /** @internal Takes over the transport's receive path. */
  hook(): void {
    const t = this.transport as Transport;
    t[kPsock] = this;
    // The kernel replaces data-ready: the application's own readers stop while attached.
    this.savedData = t.listeners('data') as never;
    this.savedReadable = t.listeners('readable') as never;
    for (const l of this.savedData) t.removeListener('data', l);
    for (const l of this.savedReadable) t.removeListener('readable', l);
    t.on('data', transportOnData);
    t.on('drain', transportOnDrain);
    t.on('end', transportOnEnd);
    t.on('close', transportOnClose);
    t.on('error', transportOnError);
    if (this.connecting) t.once('connect', transportOnConnect);
    t.resume();
  }

  /** @internal Gives the transport back as a plain socket, paused, unread bytes first [U-2, U-5]. */
  unhook(unparsed: Buffer | undefined): void {
    const t = this.transport as Transport;
    delete t[kPsock];
    t.removeListener('data', transportOnData);
    t.removeListener('drain', transportOnDrain);
    t.removeListener('end', transportOnEnd);
    t.removeListener('close', transportOnClose);
    t.removeListener('error', transportOnError);
    t.removeListener('connect', transportOnConnect);
    // Staged messages go to the transport, which keeps them [U-2]; one that can no longer
    // write never had them, so they restart on another psock [U-4].
    if (t.writable) this.flushStage();
    else this.unstage();
    this.active = false;
    t.pause();
    if (unparsed !== undefined && unparsed.length > 0 && !t.readableEnded && !t.destroyed) t.unshift(unparsed);
    for (const l of this.savedReadable) t.on('readable', l);
    for (const l of this.savedData) t.on('data', l);
    this.savedData = [];
    this.savedReadable = [];
  }

  /** @internal [StreamParserSink] a whole message: steer it [S-1]. */
  onMessage(message: Buffer): boolean {
    // [S-2] the rest of a burst goes to the socket bound to it while it has room.
    const k = this.rxKcm;
    if (k !== undefined && k.rxCanTake()) {
      k.rxEnqueue(message, this);
      if (!k.rxTouched) this.mux.touch(k);
      return true;
    }
    return this.mux.steer(this, message);
  }

  /** @internal [StreamParserSink] whole messages cut from one chunk: steered as a run [S-1, S-2]. */
  onRun(chunk: Buffer, start: number, ends: Uint32Array, count: number): number {
    return this.mux.steerRun(this, chunk, start, ends, count);
  }

  /** @internal [StreamParserSink] the stream cannot be parsed [P-8]. */
  onError(error: KcmError): void {
    this.mux.psockFailed(this, error);
  }

  /** @internal One 'data' event: one receive burst [P-1, S-2]. */
  onData(chunk: Buffer): void {
    const mux = this.mux;
    mux.enter();
    try {
      this.parser.push(chunk);
      mux.endBurst(this);
    } finally {
      mux.leave();
    }
  }

  /** @internal Restarts reading after its held message was taken [S-5 step 2]. */
  resumeRx(): void {
    if (!this.attached || this.errored !== undefined) return;
    this.ready = false;
    const mux = this.mux;
    mux.enter();
    try {
      this.parser.resume();
      mux.endBurst(this);
    } finally {
      mux.leave();
    }
    if (!this.attached || this.ready || this.errored !== undefined) return;
    if (this.endedError !== undefined) this.mux.psockFailed(this, this.endedError);
    else this.transport.resume();
  }

  /**
   * @internal [T-11] hands messages from the head of `q` (the send queue of `owner`, which
   * holds this psock) to the transport, and returns the bytes of those handed whole; they
   * have left the queue. Stops early only when the transport asks to wait for 'drain'
   * (`stalled`) [T-12].
   *
   * The first burst of a tick is written at once (latency); later small messages are
   * staged and written together at the end of the tick, or once {@link STAGE_SIZE} bytes
   * wait, so that a burst of small messages costs one write call and one system call.
   * Staging copies nothing: the queue copied the messages at the call, back to back, and
   * a run of them is one `subarray` of that copy. Large messages go in pieces of
   * {@link WRITE_PIECE} bytes (the last one up to twice that), so that a stall can fall
   * mid-message.
   */
  writeFrom(q: TxQueue, owner: KcmSocket): number {
    let immediate = false;
    if (!this.active) {
      this.active = true;
      immediate = true;
      this.mux.activated(this);
    }
    let handed = 0;
    for (;;) {
      const seg = q.head();
      if (seg === undefined) break;
      if (this.txDrain && q.headWritten === 0) break; // leaving rotation: no new message here
      if (seg.lens !== undefined && q.headWritten === 0) {
        // A run of small messages: staged whole, by reference.
        const n = seg.count;
        const start = seg.start;
        const li = seg.li;
        const bytes = q.takeSegment(seg);
        this.txMsgs += n;
        this.txBytes += bytes;
        handed += bytes;
        this.stage(owner, seg.buf, start, start + bytes, n, seg.lens, li, seg.chunk);
        if (this.stageBytes >= STAGE_SIZE && !this.flushStage()) return handed;
        continue;
      }
      // A large message, or one partly written: the staged ones go first [T-17].
      if (this.stageBytes > 0 && !this.flushStage()) return handed;
      const t = this.transport;
      const len = q.headLength;
      const msgStart = seg.start; // a large message is a segment of its own
      const done = q.headWritten;
      const rest = len - done;
      // Pieces of 64 KiB; a rest of up to 128 KiB goes whole, so no tiny tail write follows.
      const piece = rest > 2 * WRITE_PIECE ? WRITE_PIECE : rest;
      const last = piece === rest;
      const run = newRun(owner, seg.buf, msgStart + done, msgStart + done + piece, last ? 1 : 0, undefined, 0);
      run.msgStart = msgStart;
      run.own = t.writableLength === 0;
      run.pooled = last && seg.pooled;
      this.txBytes += piece;
      if (last) {
        q.takeHead();
        this.txMsgs++;
        handed += len;
      } else {
        q.headWritten = done + piece;
      }
      this.runs.push(run);
      const ok = t.write(seg.buf.subarray(run.start, run.end), this.onWritten);
      if (this.failedInWrite(this.runs.length - 1)) return handed;
      if (!ok) {
        this.stalled = true;
        return handed;
      }
      if (t.writableLength === 0) this.settle();
    }
    if (immediate && this.stageBytes > 0) this.flushStage();
    return handed;
  }

  /**
   * @internal [K-4] hands the rest of a pinned message (its bytes copied at the call, in
   * one buffer) to the transport, staged as {@link writeFrom} stages. Returns true when it
   * was handed whole; `stalled` tells whether to wait for 'drain' [T-12].
   */
  writeMessage(msg: TxMessage): boolean {
    let immediate = false;
    if (!this.active) {
      this.active = true;
      immediate = true;
      this.mux.activated(this);
    }
    const buf = msg.parts[0]!;
    const len = msg.length;
    if (!immediate && len <= STAGE_MESSAGE_MAX && msg.written === 0) {
      const run = newRun(msg.owner, buf, 0, len, 1, undefined, 0);
      run.msg = msg;
      this.staged.push(run);
      this.stageBytes += len;
      msg.written = len;
      msg.handed = true;
      this.txBytes += len;
      if (this.stageBytes >= STAGE_SIZE) this.flushStage();
      return true;
    }
    if (this.stageBytes > 0 && !this.flushStage()) return false;
    const t = this.transport;
    while (msg.written < len) {
      const done = msg.written;
      const rest = len - done;
      const piece = rest > 2 * WRITE_PIECE ? WRITE_PIECE : rest;
      const last = piece === rest;
      const run = newRun(msg.owner, buf, done, done + piece, last ? 1 : 0, undefined, 0);
      run.msg = msg;
      run.own = t.writableLength === 0;
      msg.written = done + piece;
      if (last) msg.handed = true;
      this.txBytes += piece;
      this.runs.push(run);
      const ok = t.write(buf.subarray(run.start, run.end), this.onWritten);
      if (this.failedInWrite(this.runs.length - 1)) return false;
      if (!ok) {
        this.stalled = true;
        return msg.handed;
      }
      if (t.writableLength === 0) this.settle();
    }
    return true;
  }

  /** Adds a run of whole messages to the stage, joining the previous run when it continues it. */
  private stage(owner: KcmSocket, buf: Buffer, start: number, end: number, n: number, lens: Uint16Array, li: number, chunk: TxChunk | undefined): void {
    const staged = this.staged;
    const prev = staged.length === 0 ? undefined : staged[staged.length - 1]!;
    if (prev !== undefined && prev.lens === lens && prev.buf === buf && prev.end === start && prev.owner === owner && prev.li + prev.count === li) {
      prev.end = end;
      prev.count += n;
    } else {
      const run = newRun(owner, buf, start, end, n, lens, li);
      run.chunk = chunk;
      staged.push(run);
    }
    this.stageBytes += end - start;
  }

  /**
   * @internal Writes the stage: one write for one run, one corked writev for several;
   * false when the transport asks to wait for 'drain'.
   */
  flushStage(): boolean {
    const staged = this.staged;
    const k = staged.length;
    if (k === 0) return true;
    const t = this.transport;
    // Only the last run of a system call may know its end unwritten when it fails.
    const own = t.writableLength === 0;
    const first = this.runs.length;
    let ok = true;
    if (k > 1) t.cork();
    for (let i = 0; i < k; i++) {
      const run = staged[i]!;
      run.own = own && i === k - 1;
      this.runs.push(run);
      ok = t.write(run.buf.subarray(run.start, run.end), this.onWritten);
    }
    if (k > 1) t.uncork();
    staged.length = 0;
    this.stageBytes = 0;
    if (this.failedInWrite(first)) return false;
    if (!ok) {
      this.stalled = true;
      return false;
    }
    if (t.writableLength === 0) this.settle();
    return true;
  }

  /**
   * [T-21, T-16] Whether the transport failed inside the write that just pushed the runs
   * from `first` on (its peer had reset it while the psock was idle). Node marks the
   * stream errored at once and reports it a tick later; Linux fails the TCP send inside
   * `sendmsg`. So the failure is handled now, as the write's callback would: the message
   * whose end the failed call left unwritten goes back to the front of its socket's
   * queue, and the psock is aborted, before the sender's call returns and ahead of its
   * next message [T-17]. The callbacks still to come find their runs done.
   */
  private failedInWrite(first: number): boolean {
    const t = this.transport;
    if (t.errored === null && !t.destroyed) return false;
    const mux = this.mux;
    mux.enter();
    try {
      const runs = this.runs;
      for (let i = first; i < runs.length; i++) {
        const run = runs.at(i)!;
        run.pooled = false; // a restart may take its bytes
        if (run.chunk !== undefined) run.chunk.lost = true;
        if (run.count === 0) continue;
        if (run.own) this.restart(run, false, true);
        else this.txUncertain += run.count;
        run.count = 0;
      }
      const cause = t.errored ?? undefined;
      const what = cause instanceof Error ? cause.message : 'destroyed';
      mux.psockFailed(this, new KcmError('EPIPE', `psock-${this.index}: transport failed: ${what}`, cause === undefined ? undefined : { cause }));
    } finally {
      mux.leave();
    }
    return true;
  }

  /**
   * Every write so far has completed (the transport holds nothing): their records go, and
   * their callbacks, still to come, are skipped. Keeps a sender that never yields from
   * piling up records.
   */
  private settle(): void {
    const runs = this.runs;
    const n = runs.length;
    if (n === 0) return;
    // The copies of large messages written whole are free again.
    for (let i = 0; i < n; i++) {
      const run = runs.at(i)!;
      if (run.pooled) copyPool.give(run.buf);
      else if (run.chunk !== undefined) chunkWritten(run.chunk, run.count);
    }
    this.staleCallbacks += n;
    runs.skip(n);
  }

  /** The staged messages never reached the transport: they restart elsewhere [T-16]. */
  private unstage(): void {
    for (const run of this.staged) this.restart(run, true);
    this.staged.length = 0;
    this.stageBytes = 0;
  }

  /** Restarts the messages of a run that did not reach the peer: all of them, or the last one [T-16]. */
  private restart(run: TxRun, all: boolean, now = false): void {
    if (run.chunk !== undefined) run.chunk.lost = true; // its bytes go elsewhere
    const n = run.count;
    const lens = run.lens;
    if (run.msg !== undefined) {
      // [K-6] pinned: never restarted elsewhere, dropped and counted there.
      if (n === 1) this.mux.retryPinned(run.msg);
      return;
    }
    if (lens === undefined) {
      // A piece holding the last byte of a message of its own: the message is all before `end`.
      if (n === 1 && now) this.mux.retryNow(run.owner, run.buf, run.msgStart, run.end - run.msgStart, this);
      else if (n === 1) this.mux.retryLater(run.owner, run.buf, run.msgStart, run.end - run.msgStart);
      return;
    }
    let s = run.start;
    for (let i = 0; i < n; i++) {
      const len = lens[run.li + i]!;
      if (now && i === n - 1) this.mux.retryNow(run.owner, run.buf, s, len, this);
      else if (all || i === n - 1) this.mux.retryLater(run.owner, run.buf, s, len);
      else this.txUncertain++;
      s += len;
    }
  }

  /** @internal End of the tick: the stage goes out. */
  tickEnd(): void {
    this.active = false;
    if (this.attached) this.flushStage();
  }

  /**
   * @internal A write completed. A message whose write failed restarts elsewhere [T-16]
   * when it surely did not reach the peer whole: its last byte was in a write that never
   * left the process (the transport was destroyed first), or was the last byte of a
   * failed system call of its own (a failed call leaves its end unwritten). Any other
   * message of a failed write may have reached the peer, and is not sent twice: like a
   * message TCP had accepted in Linux, it is lost with its transport [E-5].
   */
  written(err: Error | null | undefined): void {
    if (this.staleCallbacks > 0) {
      this.staleCallbacks--;
      return;
    }
    const run = this.runs.shift();
    if (run === undefined) return;
    if (err === null || err === undefined) {
      // Written whole: nothing refers to its copy any more.
      if (run.pooled) copyPool.give(run.buf);
      else if (run.chunk !== undefined) chunkWritten(run.chunk, run.count);
      return;
    }
    if (run.chunk !== undefined) run.chunk.lost = true;
    if (run.count === 0) return;
    const code = (err as NodeJS.ErrnoException).code ?? '';
    // Bytes that never left the process restart even after unattach: the transport was
    // destroyed or ended before writing them, so nobody can have them.
    const unsent = code === 'ERR_STREAM_DESTROYED' || code === 'ERR_STREAM_WRITE_AFTER_END';
    if (unsent) this.restart(run, true);
    else if (!this.attached) return;
    else if (run.own) this.restart(run, false);
    else this.txUncertain += run.count;
  }
}

/**
 * One write handed to a transport: `count` whole messages of one socket ending at `end`,
 * their lengths `lens[li]` on; or a piece of a large message (`lens` undefined), holding
 * its last byte (count 1; the message starts at `msgStart`) or not (count 0). `own`: the
 * write is the last of its system call, which then fails with its end unwritten.
 */
interface TxRun {
  owner: KcmSocket;
  buf: Buffer;
  start: number;
  end: number;
  count: number;
  lens: Uint16Array | undefined;
  li: number;
  msgStart: number;
  own: boolean;
  /**
   * The last piece of a large message copied into a buffer of the copy pool: `buf` goes
   * back to the pool once this write completes without error.
   */
  pooled: boolean;
  /** The chunk `buf` is, for a run of small messages: told when they were written whole. */
  chunk: TxChunk | undefined;
  /** A pinned message [K-3], which is dropped rather than restarted [K-6]. */
  msg: TxMessage | undefined;
}

function newRun(owner: KcmSocket, buf: Buffer, start: number, end: number, count: number, lens: Uint16Array | undefined, li: number): TxRun {
  return { owner, buf, start, end, count, lens, li, msgStart: start, own: false, pooled: false, chunk: undefined, msg: undefined };
}

function psockOnWritten(psock: Psock, err?: Error | null): void {
  psock.written(err);
}

function transportOnData(this: Transport, chunk: Buffer): void {
  const psock = this[kPsock];
  if (psock !== undefined) psock.onData(chunk);
}

function transportOnDrain(this: Transport): void {
  const psock = this[kPsock];
  if (psock !== undefined) psock.mux.psockDrained(psock);
}

function transportOnConnect(this: Transport): void {
  const psock = this[kPsock];
  if (psock === undefined) return;
  // attached while connecting: only now does the socket say whether it is TCP.
  const reason = notTcpOnceConnected(this);
  if (reason !== undefined) psock.mux.psockFailed(psock, new KcmError('EOPNOTSUPP', `psock-${psock.index}: ${reason}`));
  else psock.mux.psockConnected(psock);
}

function transportOnEnd(this: Transport): void {
  const psock = this[kPsock];
  if (psock !== undefined) psock.mux.psockEnded(psock, new KcmError('EPIPE', `psock-${psock.index}: transport ended by the peer`));
}

function transportOnClose(this: Transport, hadError: boolean): void {
  const psock = this[kPsock];
  if (psock === undefined) return;
  // A close that follows a clean end waits for the messages parsed before it [E-1b].
  if (psock.endedError !== undefined && !hadError) return;
  psock.mux.psockFailed(psock, new KcmError('EPIPE', `psock-${psock.index}: transport closed`));
}

function transportOnError(this: Transport, err: Error): void {
  const psock = this[kPsock];
  if (psock !== undefined) {
    psock.mux.psockFailed(psock, new KcmError('EPIPE', `psock-${psock.index}: transport failed: ${err.message}`, { cause: err }));
  }
}
