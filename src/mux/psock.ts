import { EventEmitter } from 'node:events';
import type * as net from 'node:net';
import { KcmError } from '../errors.js';
import { StreamParser, type StreamParserStats } from '../parsers/stream-parser.js';
import type { Parser } from '../parsers/parser.js';
import { Fifo } from './fifo.js';
import { notTcpOnceConnected } from './transport-check.js';
import type { KcmSocket } from './kcm-socket.js';
import type { Multiplexor } from './multiplexor.js';
import { WRITE_PIECE, type TxMessage } from './tx-message.js';

/** Messages up to this size are copied into the stage rather than written one by one. */
const STAGE_MESSAGE_MAX = 4096;
/** Size of a stage buffer. */
const STAGE_SIZE = 256 * 1024;

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

  /**
   * Messages handed to the transport whose write has not completed yet. For each entry:
   * the attempt it was written in, times two, plus one when the write held the message's
   * last byte. For each write call: the number of entries it covers, negative when the
   * write may share a system call with earlier writes (it was queued behind them).
   */
  private readonly inflight = new Fifo<TxMessage>();
  private readonly inflightAttempts = new Fifo<number>();
  private readonly inflightCounts = new Fifo<number>();
  /** Small messages of this tick, copied back to back, written once at the end of the tick. */
  private stage: Buffer | undefined = undefined;
  private stageLen = 0;
  private stageMsgs = 0;
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
    return this.mux.steer(this, message);
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
   * @internal Hands the rest of `msg` to the transport [T-11]. Returns true when the
   * message was handed whole; `stalled` tells whether to wait for 'drain' [T-12].
   *
   * The first message of a tick is written at once (latency); later small ones are copied
   * into a stage written once at the end of the tick, so a burst of small messages costs
   * one write call and one system call. Large messages go in pieces of {@link WRITE_PIECE}
   * bytes (the last one up to twice that), so that a stall can fall mid-message.
   */
  writeMessage(msg: TxMessage): boolean {
    if (!this.active) {
      this.active = true;
      this.mux.activated(this);
    } else if (msg.length <= STAGE_MESSAGE_MAX && msg.written === 0) {
      this.stageMessage(msg);
      return true;
    } else if (this.stageLen > 0 && !this.flushStage()) {
      return false; // stalled before the message started
    }
    const t = this.transport;
    const parts = msg.parts;
    while (msg.part < parts.length) {
      const part = parts[msg.part]!;
      let piece = part;
      // Pieces of 64 KiB; a rest of up to 128 KiB goes whole, so no tiny tail write follows.
      const rest = part.length - msg.offset;
      if (rest > 2 * WRITE_PIECE) piece = part.subarray(msg.offset, msg.offset + WRITE_PIECE);
      else if (msg.offset > 0) piece = part.subarray(msg.offset);
      msg.offset += piece.length;
      if (msg.offset === part.length) {
        msg.part++;
        msg.offset = 0;
      }
      msg.written += piece.length;
      this.txBytes += piece.length;
      if (msg.part === parts.length) msg.handed = true;
      this.inflight.push(msg);
      this.inflightAttempts.push(msg.attempt * 2 + (msg.handed ? 1 : 0));
      this.inflightCounts.push(t.writableLength === 0 ? 1 : -1);
      if (!t.write(piece, this.onWritten)) {
        this.stalled = true;
        return msg.handed;
      }
    }
    return true;
  }

  /** Copies a small message into the stage; it counts as handed to the transport. */
  private stageMessage(msg: TxMessage): void {
    const len = msg.length;
    let stage = this.stage;
    if (stage === undefined || this.stageLen + len > stage.length) {
      this.flushStage();
      stage = this.stage = Buffer.allocUnsafe(STAGE_SIZE);
    }
    let at = this.stageLen;
    for (const part of msg.parts) {
      stage.set(part, at); // TypedArray#set: cheaper than Buffer#copy for small parts
      at += part.length;
    }
    this.stageLen = at;
    this.stageMsgs++;
    msg.part = msg.parts.length;
    msg.offset = 0;
    msg.written = len;
    msg.handed = true;
    this.txBytes += len;
    this.inflight.push(msg);
    this.inflightAttempts.push(msg.attempt * 2 + 1);
  }

  /** @internal Writes the stage; false when the transport asks to wait for 'drain'. */
  flushStage(): boolean {
    const n = this.stageLen;
    if (n === 0) return true;
    const stage = this.stage!;
    // The written bytes stay untouched; the rest of the buffer serves the next stage.
    this.stage = stage.length - n >= STAGE_MESSAGE_MAX ? stage.subarray(n) : undefined;
    this.stageLen = 0;
    this.inflightCounts.push(this.transport.writableLength === 0 ? this.stageMsgs : -this.stageMsgs);
    this.stageMsgs = 0;
    if (this.transport.write(stage.subarray(0, n), this.onWritten)) return true;
    this.stalled = true;
    return false;
  }

  /** The staged messages never reached the transport: they restart elsewhere [T-16]. */
  private unstage(): void {
    const inflight = this.inflight;
    for (let i = inflight.length - this.stageMsgs; i < inflight.length; i++) {
      const msg = inflight.at(i)!;
      if (msg.handed && msg.attempt === this.inflightAttempts.at(i)! >> 1) this.mux.retryLater(msg);
    }
    this.stageLen = 0;
    this.stageMsgs = 0;
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
    const count = this.inflightCounts.shift() ?? 0;
    const n = count < 0 ? -count : count;
    const code = err === null || err === undefined ? undefined : (err as NodeJS.ErrnoException).code ?? '';
    // Bytes that never left the process restart even after unattach: the transport was
    // destroyed or ended before writing them, so nobody can have them.
    const unsent = code === 'ERR_STREAM_DESTROYED' || code === 'ERR_STREAM_WRITE_AFTER_END';
    const failed = code !== undefined && (this.attached || unsent);
    for (let i = 0; i < n; i++) {
      const msg = this.inflight.shift()!;
      const tag = this.inflightAttempts.shift()!;
      if (!failed || (tag & 1) === 0 || tag >> 1 !== msg.attempt || !msg.handed) continue;
      if (unsent || (count > 0 && i === n - 1)) this.mux.retryLater(msg);
      else this.txUncertain++;
    }
  }
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
