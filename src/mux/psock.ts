import { EventEmitter } from 'node:events';
import type * as net from 'node:net';
import { KcmError } from '../errors.js';
import { StreamParser, type StreamParserSink } from '../parsers/stream-parser.js';
import type { Parser } from '../parsers/parser.js';
import { Fifo } from './fifo.js';
import type { KcmSocket } from './kcm-socket.js';
import type { Multiplexor } from './multiplexor.js';
import { WRITE_PIECE, type TxMessage } from './tx-message.js';

/** The property of a transport that names the psock it is attached to (the "user data" slot ). */
export const kPsock: unique symbol = Symbol('kcm.psock');

type Transport = net.Socket & { [kPsock]?: Psock };

/** Counters of one psock [ST-2], exact at the time of the call. */
export interface PsockStats {
  /** The psock's index in its multiplexor [O-2]. */
  index: number;
  rxMsgs: number;
  rxBytes: number;
  txMsgs: number;
  txBytes: number;
  reserved: number;
  unreserved: number;
  txAborts: number;
  rxMemFail: number;
  rxNeedMoreHdr: number;
  rxMsgTooBig: number;
  rxMsgTimeouts: number;
  rxBadHdrLen: number;
  rxAborted: number;
  rxInterrupted: number;
  rxUnrecovIntr: number;
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

/**
 * The handle of one attached transport socket (Linux: `struct kcm_psock`).
 *
 * Emits `'error'` once, with a {@link KcmError}, when its transport fails or its stream
 * cannot be parsed; from then on it is done in both directions [E-*, X-3]. The
 * application unattaches it and closes the transport [E-4].
 */
export class Psock extends EventEmitter implements StreamParserSink {
  /** The attached transport. */
  readonly transport: net.Socket;
  /** The multiplexor it belongs to. */
  readonly mux: Multiplexor;
  /** Its index in the multiplexor [O-2]. */
  index: number;

  /** @internal */ readonly parser: StreamParser;
  /** @internal The KCM socket holding it for transmit [T-13]. */ txKcm: KcmSocket | undefined = undefined;
  /** @internal The KCM socket bound to the current receive burst [S-2]. */ rxKcm: KcmSocket | undefined = undefined;
  /** @internal Aborted for transmit, never available again [T-16]. */ txStopped = false;
  /** @internal Waiting for 'drain' [T-12]. */ stalled = false;
  /** @internal On the ready list, holding one message [S-4]. */ ready = false;
  /** @internal Still connecting: joins transmit rotation at 'connect'. */ connecting: boolean;
  /** @internal Corked until the end of the tick. */ corked = false;
  /** @internal */ attached = true;
  /** @internal */ errored: KcmError | undefined = undefined;

  // Transmit counters [ST-2].
  /** @internal */ txMsgs = 0;
  /** @internal */ txBytes = 0;
  /** @internal */ reserved = 0;
  /** @internal */ unreserved = 0;
  /** @internal */ txAborts = 0;

  /** Messages (one entry per write call) whose write has not completed yet, and their attempts. */
  private readonly inflight = new Fifo<TxMessage>();
  private readonly inflightAttempts = new Fifo<number>();
  /** @internal Bound once per psock: the write callback. */ readonly onWritten: (err?: Error | null) => void;
  private savedData: ((...args: unknown[]) => void)[] = [];
  private savedReadable: ((...args: unknown[]) => void)[] = [];
  private readonly wasFlowing: boolean | null;

  /** @internal Use {@link KcmSocket.attach}. */
  constructor(mux: Multiplexor, index: number, transport: net.Socket, options: Required<Pick<AttachOptions, 'parser' | 'maxMessageSize'>> & { assemblyTimeout: number }) {
    super();
    this.mux = mux;
    this.index = index;
    this.transport = transport;
    this.connecting = transport.connecting;
    this.parser = new StreamParser(options, this);
    this.onWritten = psockOnWritten.bind(undefined, this);
    this.wasFlowing = transport.readableFlowing;
  }

  /** Counters of this psock [ST-2]. */
  stats(): PsockStats {
    const p = this.parser;
    return {
      index: this.index,
      rxMsgs: p.rxMsgs,
      rxBytes: p.rxBytes,
      txMsgs: this.txMsgs,
      txBytes: this.txBytes,
      reserved: this.reserved,
      unreserved: this.unreserved,
      txAborts: this.txAborts,
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
    };
  }

  /** The error that ended this psock, if any. */
  get error(): KcmError | undefined {
    return this.errored;
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
    if (this.corked) {
      this.corked = false;
      t.uncork();
    }
    t.pause();
    if (unparsed !== undefined && unparsed.length > 0 && !t.readableEnded && !t.destroyed) t.unshift(unparsed);
    for (const l of this.savedReadable) t.on('readable', l);
    for (const l of this.savedData) t.on('data', l);
    this.savedData = [];
    this.savedReadable = [];
    void this.wasFlowing;
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
    if (this.attached && !this.ready && this.errored === undefined) this.transport.resume();
  }

  /**
   * @internal Hands the rest of `msg` to the transport [T-11]: pieces of at most
   * {@link WRITE_PIECE} bytes while the transport accepts them. Returns true when the
   * message was handed whole; `stalled` tells whether to wait for 'drain' [T-12].
   */
  writeMessage(msg: TxMessage): boolean {
    const t = this.transport;
    if (!this.corked) {
      this.corked = true;
      t.cork();
      this.mux.corked(this);
    }
    const parts = msg.parts;
    while (msg.part < parts.length) {
      const part = parts[msg.part]!;
      let piece = part;
      if (msg.offset > 0 || part.length > WRITE_PIECE) piece = part.subarray(msg.offset, msg.offset + WRITE_PIECE);
      msg.offset += piece.length;
      if (msg.offset === part.length) {
        msg.part++;
        msg.offset = 0;
      }
      msg.written += piece.length;
      this.txBytes += piece.length;
      this.inflight.push(msg);
      this.inflightAttempts.push(msg.attempt);
      if (msg.part === parts.length) msg.handed = true;
      if (!t.write(piece, this.onWritten)) {
        this.stalled = true;
        return msg.handed;
      }
    }
    return true;
  }

  /** @internal Removes the transport's cork at the end of the tick. */
  uncork(): void {
    if (!this.corked) return;
    this.corked = false;
    this.transport.uncork();
  }

  /** @internal A write completed: a message whose write failed restarts elsewhere [T-16]. */
  written(err: Error | null | undefined): void {
    const msg = this.inflight.shift();
    const attempt = this.inflightAttempts.shift();
    if (err === null || err === undefined || msg === undefined || !this.attached) return;
    if (msg.attempt !== attempt || !msg.handed) return;
    this.mux.retryLater(msg);
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
  if (psock !== undefined) psock.mux.psockConnected(psock);
}

function transportOnEnd(this: Transport): void {
  const psock = this[kPsock];
  if (psock !== undefined) psock.mux.psockFailed(psock, new KcmError('EPIPE', `psock-${psock.index}: transport ended by the peer`));
}

function transportOnClose(this: Transport): void {
  const psock = this[kPsock];
  if (psock !== undefined) psock.mux.psockFailed(psock, new KcmError('EPIPE', `psock-${psock.index}: transport closed`));
}

function transportOnError(this: Transport, err: Error): void {
  const psock = this[kPsock];
  if (psock !== undefined) {
    psock.mux.psockFailed(psock, new KcmError('EPIPE', `psock-${psock.index}: transport failed: ${err.message}`, { cause: err }));
  }
}
