import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import { KcmError, checkInteger, errnos, invalidArgType, type ErrnoName } from '../errors.js';
import type { Parser } from '../parsers/parser.js';
import type { KcmSocket } from '../mux/kcm-socket.js';
import type { Psock } from '../mux/psock.js';
import { Backoff, type BackoffOptions } from './backoff.js';
import { detach, endTransport, waitTxIdle } from './graceful.js';
import { checkAttachOptions, type CheckedAttachOptions } from '../mux/attach-options.js';
import { noop } from '../mux/noop.js';

/** Options of {@link KcmSocket.connect}. */
export interface ConnectOptions {
  /** The server's port. */
  port: number;
  /** The server's host; default `'localhost'`, as `net.connect`. */
  host?: string;
  /** How many TCP connections to keep attached (M); default 1. */
  connections?: number;
  /** Finds message boundaries on each connection [P-2]. */
  parser: Parser;
  /** As in {@link KcmSocket.attach}: a longer message fails the connection with `EMSGSIZE` [P-6]. */
  maxMessageSize?: number;
  /** As in {@link KcmSocket.attach}: ms to assemble one message, else `ETIMEDOUT` [P-7]. */
  assemblyTimeout?: number;
  /** Delays between attempts of one connection. */
  backoff?: BackoffOptions;
  /**
   * Milliseconds with no connection up after which sends fail: while no connection is up
   * sends wait (as for buffer space); after `failAfter` ms waiting and later sends reject
   * with `KcmError` `ECONNREFUSED` (or the errno of the last failure's cause) and
   * `'error'` is emitted, until a connection is up again. Default: never (sends queue
   * [T-18]).
   */
  failAfter?: number;
  /** Milliseconds a connection attempt may take before it counts as failed (`ETIMEDOUT`); default none. */
  connectTimeout?: number;
  /** Milliseconds {@link KcmConnector.close} waits for queued messages to leave and peers to close; default 2000. */
  closeTimeout?: number;
  /** Aborting it closes the connector. */
  signal?: AbortSignal;
  /**
   * Makes one transport (for TLS: `() => tls.connect(...)`); default `net.connect({ host, port })`.
   * It must return a TCP stream that is connected or connecting.
   */
  createConnection?: (options: { host: string; port: number }) => net.Socket;
}

/** Payload of the connector's `'connect'` event. */
export interface ConnectEvent {
  /** Which of the M connections (0 … M-1). */
  slot: number;
  transport: net.Socket;
  psock: Psock;
}

/** Payload of the connector's `'disconnect'` event. */
export interface DisconnectEvent extends ConnectEvent {
  /** The psock's error (`EPIPE` with the transport's error as `cause`, `EMSGSIZE`, …). */
  error: KcmError;
}

/** Payload of the connector's `'reconnecting'` event. */
export interface ReconnectingEvent {
  slot: number;
  /** Consecutive failures of this slot, 1 for the first retry. */
  attempt: number;
  /** Milliseconds until the attempt. */
  delay: number;
  /** The failure that caused it. */
  error: KcmError;
}

/** Counters of a {@link KcmConnector}. */
export interface KcmConnectorStats {
  /** Connections it keeps (M). */
  connections: number;
  /** Connections connected and attached now. */
  connected: number;
  /** Connections established since it started. */
  connects: number;
  /** Established connections that failed and were replaced. */
  disconnects: number;
  /** Attempts that failed before connecting. */
  connectFailures: number;
  /** Retries scheduled. */
  reconnects: number;
  /** Times `failAfter` ran out with no connection up. */
  failures: number;
  /** True while sends fail (`failAfter` ran out, no connection up since). */
  failing: boolean;
}

/** The events of a {@link KcmConnector}, with their listeners' arguments. */
export interface KcmConnectorEvents {
  /** A connection failed (emitted only when listened to); `slot` is which of the M. */
  error: [error: KcmError, slot: number];
  connect: [event: ConnectEvent];
  disconnect: [event: DisconnectEvent];
  reconnecting: [event: ReconnectingEvent];
  /** Stopped, every transport closed. */
  close: [];
}

const kSlot: unique symbol = Symbol('kcm.connector.slot');
type SlotTransport = net.Socket & { [kSlot]?: Slot };

interface Slot {
  readonly owner: KcmConnector;
  readonly index: number;
  transport: SlotTransport | undefined;
  psock: Psock | undefined;
  connected: boolean;
  failures: number;
  timer: NodeJS.Timeout | undefined;
  connectTimer: NodeJS.Timeout | undefined;
}

/**
 * Keeps M TCP connections attached to a KCM socket's multiplexor, doing the
 * application's duty of E-4 for it: when a psock reports an error it unattaches it
 * (SIOCKCMUNATTACH), destroys the transport and dials again with exponential backoff.
 * Made by {@link KcmSocket.connect}.
 *
 * Events, in this order for one failure: `'error'` `(error, slot)` (emitted only when
 * listened to: failures are handled here, never thrown), `'disconnect'`
 * {@link DisconnectEvent} (only if the connection had been established), then
 * `'reconnecting'` {@link ReconnectingEvent}; `'connect'` {@link ConnectEvent} when a
 * connection is established; `'close'` once stopped and every transport closed.
 */
export class KcmConnector extends EventEmitter<KcmConnectorEvents> {
  /** The KCM socket whose multiplexor the connections are attached to. */
  readonly socket: KcmSocket;
  /** Connections kept (M). */
  readonly connections: number;
  /** The backoff policy. */
  readonly backoff: Backoff;

  private readonly host: string;
  private readonly port: number;
  private readonly attachOptions: CheckedAttachOptions;
  private readonly connectTimeout: number;
  private readonly closeTimeout: number;
  private readonly create: (options: { host: string; port: number }) => net.Socket;
  private readonly signal: AbortSignal | undefined;
  private readonly slots: Slot[] = [];
  private closing: Promise<void> | undefined = undefined;
  private nConnected = 0;
  private nConnects = 0;
  private nDisconnects = 0;
  private nConnectFailures = 0;
  private nReconnects = 0;
  private readonly failAfter: number;
  private failTimer: NodeJS.Timeout | undefined = undefined;
  private lastError: KcmError | undefined = undefined;
  private failure: KcmError | undefined = undefined;
  private nFailures = 0;
  private readonly onAbort = (): void => void this.close();
  private readonly onSocketClose = (): void => void this.close();

  /** @internal Use {@link KcmSocket.connect}. */
  constructor(socket: KcmSocket, options: ConnectOptions) {
    super();
    if (options === null || typeof options !== 'object') throw invalidArgType('options', 'of type object', options);
    this.port = checkInteger('options.port', options.port, 0, 65535);
    const host = options.host ?? 'localhost';
    if (typeof host !== 'string') throw invalidArgType('options.host', 'of type string', host);
    this.host = host;
    this.connections = options.connections === undefined ? 1 : checkInteger('options.connections', options.connections, 1, 65535);
    this.attachOptions = checkAttachOptions(options);
    this.backoff = new Backoff(options.backoff);
    this.connectTimeout = options.connectTimeout === undefined ? 0 : checkInteger('options.connectTimeout', options.connectTimeout, 1, 0x7fffffff);
    this.closeTimeout = options.closeTimeout === undefined ? 2000 : checkInteger('options.closeTimeout', options.closeTimeout, 0, 0x7fffffff);
    this.failAfter = options.failAfter === undefined ? 0 : checkInteger('options.failAfter', options.failAfter, 1, 0x7fffffff);
    const create = options.createConnection ?? defaultCreateConnection;
    if (typeof create !== 'function') throw invalidArgType('options.createConnection', 'of type function', create);
    this.create = create;
    const signal = options.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalidArgType('options.signal', 'an instance of AbortSignal', signal);
    this.signal = signal;
    if (socket.closed) throw new KcmError('EBADF', 'connect: the KCM socket is closed');
    this.socket = socket;

    for (let i = 0; i < this.connections; i++) {
      this.slots.push({ owner: this, index: i, transport: undefined, psock: undefined, connected: false, failures: 0, timer: undefined, connectTimer: undefined });
    }
    if (signal?.aborted) {
      this.closing = Promise.resolve();
      process.nextTick(emitClose, this);
      return;
    }
    signal?.addEventListener('abort', this.onAbort, { once: true });
    socket.once('close', this.onSocketClose);
    // Nothing is up yet: with failAfter, sends wait for a connection or fail.
    if (this.failAfter > 0) this.down();
    // Started on the next tick, so that listeners added after connect() see every event.
    process.nextTick(startConnector, this);
  }

  /** True once {@link close} was called, the signal aborted or the KCM socket closed. */
  get closed(): boolean {
    return this.closing !== undefined;
  }

  /** Connections connected and attached now. */
  get connected(): number {
    return this.nConnected;
  }

  /** The transports of the slots, connected or still connecting. */
  get transports(): net.Socket[] {
    const out: net.Socket[] = [];
    for (const s of this.slots) if (s.transport !== undefined) out.push(s.transport);
    return out;
  }

  /** Counters, exact at the time of the call. */
  stats(): KcmConnectorStats {
    return {
      connections: this.connections,
      connected: this.nConnected,
      connects: this.nConnects,
      disconnects: this.nDisconnects,
      connectFailures: this.nConnectFailures,
      reconnects: this.nReconnects,
      failures: this.nFailures,
      failing: this.failure !== undefined,
    };
  }

  /**
   * Stops: no more attempts; waits (up to `closeTimeout`) until the messages queued for
   * transmit have left, then unattaches every connection and ends it. Messages still
   * queued stay in the KCM socket [T-18]. Resolves once every transport is closed, with
   * `'close'`; later calls return the same promise.
   */
  close(): Promise<void> {
    if (this.closing !== undefined) return this.closing;
    this.signal?.removeEventListener('abort', this.onAbort);
    this.socket.removeListener('close', this.onSocketClose);
    if (this.failTimer !== undefined) clearTimeout(this.failTimer);
    this.failTimer = undefined;
    // Sends of the socket go back to queueing [T-18].
    if (this.failAfter > 0) this.socket.mux.setTxGate(undefined);
    for (const slot of this.slots) {
      if (slot.timer !== undefined) clearTimeout(slot.timer);
      if (slot.connectTimer !== undefined) clearTimeout(slot.connectTimer);
      slot.timer = undefined;
      slot.connectTimer = undefined;
    }
    this.closing = this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    const mux = this.socket.mux;
    if (this.nConnected > 0 && !this.socket.closed) await waitTxIdle(mux, this.closeTimeout);
    const ends: Promise<void>[] = [];
    for (const slot of this.slots) {
      const t = slot.transport;
      slot.transport = undefined;
      slot.psock = undefined;
      if (slot.connected) this.nConnected--;
      slot.connected = false;
      if (t === undefined) continue;
      delete t[kSlot];
      detach(mux, t, this.socket);
      ends.push(endTransport(t, this.closeTimeout));
    }
    await Promise.all(ends);
    this.emit('close');
  }

  /** Opens and attaches the transport of a slot; a socket still connecting is accepted [X-7]. */
  private dial(slot: Slot): void {
    slot.timer = undefined;
    if (this.closing !== undefined) return;
    let t: SlotTransport;
    try {
      t = this.create({ host: this.host, port: this.port });
      if (!(t instanceof net.Socket)) throw invalidArgType('createConnection()', 'to return a net.Socket', t);
    } catch (err) {
      this.failed(slot, asKcmError(err));
      return;
    }
    t.on('error', noop); // failures arrive through the psock
    let psock: Psock;
    try {
      psock = this.socket.attach(t, this.attachOptions);
    } catch (err) {
      t.destroy();
      this.failed(slot, asKcmError(err));
      return;
    }
    t.setNoDelay(true);
    t[kSlot] = slot;
    slot.transport = t;
    slot.psock = psock;
    slot.connected = false;
    psock.on('error', psockOnError);
    if (t.connecting) {
      t.once('connect', transportOnConnect);
      if (this.connectTimeout > 0) slot.connectTimer = setTimeout(slotOnConnectTimeout, this.connectTimeout, slot);
    } else {
      this.established(slot);
    }
  }

  /** @internal */
  established(slot: Slot): void {
    if (slot.connectTimer !== undefined) clearTimeout(slot.connectTimer);
    slot.connectTimer = undefined;
    slot.connected = true;
    slot.failures = 0;
    this.nConnected++;
    this.nConnects++;
    if (this.nConnected === 1 && this.failAfter > 0) this.up();
    this.emit('connect', { slot: slot.index, transport: slot.transport!, psock: slot.psock! } satisfies ConnectEvent);
  }

  /** @internal [E-4] a psock failed: unattach it, close its transport, dial again later. */
  failed(slot: Slot, error: KcmError): void {
    if (slot.connectTimer !== undefined) clearTimeout(slot.connectTimer);
    slot.connectTimer = undefined;
    const t = slot.transport;
    const psock = slot.psock;
    const wasConnected = slot.connected;
    slot.transport = undefined;
    slot.psock = undefined;
    slot.connected = false;
    if (t !== undefined) {
      delete t[kSlot];
      detach(this.socket.mux, t, this.socket);
      t.destroy();
    }
    this.lastError = error;
    if (wasConnected) {
      this.nConnected--;
      this.nDisconnects++;
      if (this.nConnected === 0 && this.failAfter > 0 && this.closing === undefined) this.down();
    } else {
      this.nConnectFailures++;
    }
    if (this.listenerCount('error') > 0) this.emit('error', error, slot.index);
    if (wasConnected && t !== undefined && psock !== undefined) {
      this.emit('disconnect', { slot: slot.index, transport: t, psock, error } satisfies DisconnectEvent);
    }
    if (this.closing !== undefined) return;
    if (this.socket.closed) {
      void this.close();
      return;
    }
    slot.failures++;
    const delay = this.backoff.delay(slot.failures);
    this.nReconnects++;
    slot.timer = setTimeout(slotOnTimer, delay, slot);
    this.emit('reconnecting', { slot: slot.index, attempt: slot.failures, delay, error } satisfies ReconnectingEvent);
  }

  /** No connection is up: sends wait, and fail after `failAfter` ms. */
  private down(): void {
    this.socket.mux.setTxGate(true);
    if (this.failTimer === undefined) this.failTimer = setTimeout(connectorOnFailAfter, this.failAfter, this);
  }

  /** A connection is up: waiting sends proceed, failing ones stop failing. */
  private up(): void {
    if (this.failTimer !== undefined) clearTimeout(this.failTimer);
    this.failTimer = undefined;
    this.failure = undefined;
    this.socket.mux.setTxGate(undefined);
  }

  /** @internal `failAfter` ms without a connection: sends fail until one is up. */
  failNow(): void {
    this.failTimer = undefined;
    if (this.closing !== undefined || this.nConnected > 0) return;
    const cause = this.lastError;
    const code = causeErrno(cause);
    this.failure = new KcmError(code, `no connection for ${this.failAfter} ms${cause === undefined ? '' : `: ${messageOf(cause)}`}`, cause === undefined ? undefined : { cause });
    this.nFailures++;
    this.socket.mux.setTxGate(this.failure);
    if (this.listenerCount('error') > 0) this.emit('error', this.failure, -1);
  }

  /** @internal */
  redial(slot: Slot): void {
    this.dial(slot);
  }

  /** @internal */
  start(): void {
    for (const slot of this.slots) this.dial(slot);
  }
}

function defaultCreateConnection(options: { host: string; port: number }): net.Socket {
  return net.connect({ host: options.host, port: options.port, noDelay: true });
}

function psockOnError(this: Psock, err: KcmError): void {
  const slot = (this.transport as SlotTransport)[kSlot];
  if (slot !== undefined && slot.psock === this) slot.owner.failed(slot, err);
}

function transportOnConnect(this: SlotTransport): void {
  const slot = this[kSlot];
  if (slot !== undefined && slot.transport === this && !slot.connected) slot.owner.established(slot);
}

function slotOnTimer(slot: Slot): void {
  slot.owner.redial(slot);
}

function slotOnConnectTimeout(slot: Slot): void {
  slot.connectTimer = undefined;
  const t = slot.transport;
  if (t !== undefined && !slot.connected) {
    t.destroy(new KcmError('ETIMEDOUT', `connection attempt to ${t.remoteAddress ?? 'the server'} timed out`));
  }
}

function connectorOnFailAfter(c: KcmConnector): void {
  c.failNow();
}

/** The errno of a connection failure: the first known errno name down its cause chain, else ECONNREFUSED. */
function causeErrno(err: unknown): ErrnoName {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code !== 'EPIPE' && Object.hasOwn(errnos, code)) return code as ErrnoName;
  }
  return 'ECONNREFUSED';
}

function messageOf(err: Error): string {
  return err.cause instanceof Error ? err.cause.message : err.message;
}

function startConnector(c: KcmConnector): void {
  c.start();
}

function emitClose(c: KcmConnector): void {
  c.emit('close');
}

function asKcmError(err: unknown): KcmError {
  if (err instanceof KcmError) return err;
  return new KcmError('EPIPE', `connection failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}
