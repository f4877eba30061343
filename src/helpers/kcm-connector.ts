import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import type * as dns from 'node:dns';
import { KcmError, checkInteger, errnos, invalidArgType, type ErrnoName } from '../errors.js';
import type { Parser } from '../parsers/parser.js';
import type { KcmSocket } from '../mux/kcm-socket.js';
import type { Psock } from '../mux/psock.js';
import { Backoff, type BackoffOptions } from './backoff.js';
import { detach, endTransport, waitTxIdle } from './graceful.js';
import { checkAttachOptions, type CheckedAttachOptions } from '../mux/attach-options.js';
import { noop } from '../mux/noop.js';
import { checkResolver, parseEndpoints, resolveEndpoints, shareConnections, type Endpoint, type EndpointOption, type EndpointSource, type ResolverLike } from './endpoints.js';

export type { Endpoint, EndpointOption } from './endpoints.js';

/** Options of {@link KcmSocket.connect}. */
export interface ConnectOptions {
  /** The server's port (one endpoint; or give `endpoints`). */
  port?: number;
  /** The server's host; default `'localhost'`, as `net.connect`. */
  host?: string;
  /**
   * The servers: a list of `{ host, port, weight }`, `'dns:NAME:PORT'` (one endpoint per
   * A/AAAA address of NAME) or `'srv:_service._proto.NAME'` (one per SRV record: the
   * lowest priority first, connections shared by weight). Names are resolved again
   * every `refreshInterval` and after a connection fails.
   */
  endpoints?: Iterable<EndpointOption> | string;
  /** TCP connections per endpoint (M for one endpoint); default 1. Weights share them out. */
  connections?: number;
  /** Finds message boundaries on each connection [P-2]. */
  parser: Parser;
  /** As in {@link KcmSocket.attach}: a longer message fails the connection with `EMSGSIZE` [P-6]. */
  maxMessageSize?: number;
  /** As in {@link KcmSocket.attach}: ms to assemble one message, else `ETIMEDOUT` [P-7]. */
  assemblyTimeout?: number;
  /** Where `dns:` and `srv:` names are resolved; default the system's (`dns.promises`). */
  resolver?: dns.promises.Resolver;
  /** Milliseconds between re-resolutions of a `dns:`/`srv:` name; default 30000. */
  refreshInterval?: number;
  /**
   * Milliseconds a connection lives, less up to 20 % of jitter: it is then replaced, one
   * connection at a time, by a new one to the same endpoint; the old one is drained
   * (out of transmit rotation, its replies read) and closed. Default: forever.
   */
  maxConnectionAge?: number;
  /**
   * Milliseconds with no connection up after which sends fail: while no connection is up
   * sends wait (as for buffer space); after `failAfter` ms waiting and later sends reject
   * with `KcmError` `ECONNREFUSED` (or the errno of the last failure's cause) and
   * `'error'` is emitted, until a connection is up again. Default: never (sends queue
   * [T-18]).
   */
  failAfter?: number;
  /** Delays between attempts of one connection. */
  backoff?: BackoffOptions;
  /** Milliseconds a connection attempt may take before it counts as failed (`ETIMEDOUT`); default none. */
  connectTimeout?: number;
  /** Milliseconds {@link KcmConnector.close} (and a drain) waits for messages to leave and peers to close; default 2000. */
  closeTimeout?: number;
  /** Aborting it closes the connector. */
  signal?: AbortSignal;
  /**
   * Makes one transport (for TLS: `() => tls.connect(...)`); default `net.connect({ host, port })`.
   * It must return a TCP stream that is connected or connecting.
   */
  createConnection?: (endpoint: { host: string; port: number; name?: string }) => net.Socket;
}

/** Payload of the connector's `'connect'` event. */
export interface ConnectEvent {
  /** Which connection: a number unique within the connector (0 … M-1 for one endpoint). */
  slot: number;
  transport: net.Socket;
  psock: Psock;
  /** The endpoint it goes to. */
  endpoint: Endpoint;
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
  endpoint: Endpoint;
}

/** Payload of the connector's `'drain'` event: a connection leaves, without losing a message. */
export interface DrainEvent {
  slot: number;
  transport: net.Socket;
  psock: Psock;
  endpoint: Endpoint;
  /** `'removed'`: its endpoint is gone from the name's records; `'age'`: `maxConnectionAge`; `'shrink'`: fewer connections wanted. */
  reason: 'removed' | 'age' | 'shrink';
}

/** Payload of the connector's `'endpoints'` event, after a resolution changed the list. */
export interface EndpointsEvent {
  /** Every endpoint now. */
  endpoints: Endpoint[];
  added: Endpoint[];
  removed: Endpoint[];
}

/** Counters of one endpoint, in {@link KcmConnectorStats.endpoints}. */
export interface EndpointStats {
  /** `host:port`: the endpoint's label. */
  endpoint: string;
  host: string;
  port: number;
  /** The `dns:` name or SRV target it was found under (else its host). */
  name: string;
  weight: number;
  priority: number;
  /** Connections wanted now (0 once removed, while it drains). */
  connections: number;
  /** Connections up and in transmit rotation. */
  connected: number;
  /** Connections draining. */
  draining: number;
  connects: number;
  disconnects: number;
  connectFailures: number;
  /** Connections replaced for `maxConnectionAge`. */
  replaced: number;
  /** Messages sent and received on its connections, closed ones included. */
  txMsgs: number;
  rxMsgs: number;
  /** False once its record is gone. */
  listed: boolean;
}

/** Counters of a {@link KcmConnector}. */
export interface KcmConnectorStats {
  /** Connections wanted now, over every endpoint. */
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
  /** Resolutions of a `dns:`/`srv:` name done, and failed. */
  resolutions: number;
  resolveFailures: number;
  /** Connections drained and closed (endpoint removed, age, fewer wanted). */
  drained: number;
  /** Connections replaced for `maxConnectionAge`. */
  replaced: number;
  /** Per endpoint, labelled `host:port`. */
  endpoints: EndpointStats[];
}

/** The events of a {@link KcmConnector}, with their listeners' arguments. */
export interface KcmConnectorEvents {
  /** A failure (emitted only when listened to): a connection's (`slot`), or `failAfter`'s and the resolver's (slot -1). */
  error: [error: KcmError, slot: number];
  connect: [event: ConnectEvent];
  disconnect: [event: DisconnectEvent];
  reconnecting: [event: ReconnectingEvent];
  /** A connection starts leaving. */
  drain: [event: DrainEvent];
  /** A resolution changed the endpoints. */
  endpoints: [event: EndpointsEvent];
  /** Stopped, every transport closed. */
  close: [];
}

const kConn: unique symbol = Symbol('kcm.connector.connection');
type ConnTransport = net.Socket & { [kConn]?: Slot | Drain };

/** One endpoint and its connection slots. */
interface EndpointState {
  endpoint: Endpoint;
  slots: Slot[];
  wanted: number;
  listed: boolean;
  connects: number;
  disconnects: number;
  connectFailures: number;
  replaced: number;
  /** Counters of its closed connections' psocks. */
  txMsgs: number;
  rxMsgs: number;
  draining: number;
}

/** One connection kept to an endpoint: dialled, replaced when it fails or ages. */
interface Slot {
  readonly kind: 'slot';
  readonly owner: KcmConnector;
  readonly index: number;
  readonly ep: EndpointState;
  transport: ConnTransport | undefined;
  psock: Psock | undefined;
  connected: boolean;
  failures: number;
  retired: boolean;
  timer: NodeJS.Timeout | undefined;
  connectTimer: NodeJS.Timeout | undefined;
  ageTimer: NodeJS.Timeout | undefined;
  /** The connection being replaced for its age: in rotation until the new one is up. */
  previous: Drain | undefined;
}

/** A connection leaving: out of transmit rotation, then closed once quiet. */
interface Drain {
  readonly kind: 'drain';
  readonly owner: KcmConnector;
  readonly slot: number;
  readonly ep: EndpointState;
  readonly transport: ConnTransport;
  readonly psock: Psock;
  reason: DrainEvent['reason'];
  /** 0 standby (still in rotation), 1 draining, 2 ended (FIN sent), 3 done. */
  phase: number;
  started: number;
  lastRx: number;
  lastRxAt: number;
  timer: NodeJS.Timeout | undefined;
}

/** Quiet time after the last reply before a drained connection is ended. */
const DRAIN_QUIET = 50;
const DRAIN_POLL = 10;
/** Fewest milliseconds between two resolutions triggered by failures. */
const REFRESH_FLOOR = 1000;

/**
 * Keeps TCP connections to one or several endpoints attached to a KCM socket's
 * multiplexor, doing the application's duty of E-4 for it: when a psock reports an
 * error it unattaches it (SIOCKCMUNATTACH), destroys the transport and dials again with
 * exponential backoff. Endpoints may come from DNS (`dns:` A/AAAA, `srv:` SRV records),
 * resolved again on a timer and after failures; endpoints that vanish are drained,
 * new ones dialled. Made by {@link KcmSocket.connect}.
 *
 * Events, in this order for one failure: `'error'` `(error, slot)` (emitted only when
 * listened to: failures are handled here, never thrown; slot `-1` for `failAfter` and
 * resolver errors), `'disconnect'` {@link DisconnectEvent} (only if the connection had
 * been established), then `'reconnecting'` {@link ReconnectingEvent}; `'connect'`
 * {@link ConnectEvent} when a connection is established; `'drain'` {@link DrainEvent}
 * when one starts leaving; `'endpoints'` {@link EndpointsEvent} when a resolution
 * changed the list; `'close'` once stopped and every transport closed.
 */
export class KcmConnector extends EventEmitter<KcmConnectorEvents> {
  /** The KCM socket whose multiplexor the connections are attached to. */
  readonly socket: KcmSocket;
  /** The backoff policy. */
  readonly backoff: Backoff;

  private readonly source: EndpointSource;
  private readonly perEndpoint: number;
  private readonly resolver: ResolverLike | undefined;
  private readonly refreshInterval: number;
  private readonly maxAge: number;
  private readonly attachOptions: CheckedAttachOptions;
  private readonly connectTimeout: number;
  private readonly closeTimeout: number;
  private readonly create: (endpoint: { host: string; port: number; name?: string }) => net.Socket;
  private readonly signal: AbortSignal | undefined;
  private readonly eps = new Map<string, EndpointState>();
  private readonly drains = new Set<Drain>();
  private closing: Promise<void> | undefined = undefined;
  private nextSlot = 0;
  private nConnects = 0;
  private nDisconnects = 0;
  private nConnectFailures = 0;
  private nReconnects = 0;
  private nResolutions = 0;
  private nResolveFailures = 0;
  private nDrained = 0;
  private nReplaced = 0;
  private readonly failAfter: number;
  private failTimer: NodeJS.Timeout | undefined = undefined;
  private failAt = 0;
  private lastError: KcmError | undefined = undefined;
  private failure: KcmError | undefined = undefined;
  private nFailures = 0;
  private refreshTimer: NodeJS.Timeout | undefined = undefined;
  private refreshAt = 0;
  private resolving = false;
  private refreshAgain = false;
  private lastResolveStart = -Infinity;
  private resolveFailuresInARow = 0;
  /**
   * The replacement for age under way, one at a time (the slot while its new connection
   * comes up, then the old connection while it drains); other aged slots wait in order.
   */
  private replacing: Slot | Drain | undefined = undefined;
  private readonly ageQueue: Slot[] = [];
  private readonly onAbort = (): void => void this.close();
  private readonly onSocketClose = (): void => void this.close();

  /** @internal Use {@link KcmSocket.connect}. */
  constructor(socket: KcmSocket, options: ConnectOptions) {
    super();
    if (options === null || typeof options !== 'object') throw invalidArgType('options', 'of type object', options);
    this.source = parseEndpoints(options.endpoints, options.host, options.port);
    this.perEndpoint = options.connections === undefined ? 1 : checkInteger('options.connections', options.connections, 1, 65535);
    this.attachOptions = checkAttachOptions(options);
    this.resolver = checkResolver(options.resolver);
    this.refreshInterval = options.refreshInterval === undefined ? 30000 : checkInteger('options.refreshInterval', options.refreshInterval, 1, 0x7fffffff);
    this.maxAge = options.maxConnectionAge === undefined ? 0 : checkInteger('options.maxConnectionAge', options.maxConnectionAge, 1, 0x7fffffff);
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

  /** Connections wanted now, over every endpoint (M for one endpoint). */
  get connections(): number {
    let n = 0;
    for (const s of this.eps.values()) n += s.wanted;
    return this.eps.size === 0 && this.source.kind === 'static' ? this.perEndpoint * this.source.endpoints.length : n;
  }

  /** Connections connected, attached and in transmit rotation now. */
  get connected(): number {
    let n = 0;
    for (const s of this.eps.values()) for (const slot of s.slots) if (slot.connected || slot.previous !== undefined) n++;
    return n;
  }

  /** The endpoints known now (listed ones). */
  get endpoints(): Endpoint[] {
    const out: Endpoint[] = [];
    for (const s of this.eps.values()) if (s.listed) out.push(s.endpoint);
    return out;
  }

  /** The transports of the slots, connected or still connecting (not those draining). */
  get transports(): net.Socket[] {
    const out: net.Socket[] = [];
    for (const s of this.eps.values()) {
      for (const slot of s.slots) {
        if (slot.previous !== undefined) out.push(slot.previous.transport);
        if (slot.transport !== undefined) out.push(slot.transport);
      }
    }
    return out;
  }

  /** Counters, exact at the time of the call. */
  stats(): KcmConnectorStats {
    const endpoints: EndpointStats[] = [];
    for (const s of this.eps.values()) {
      let connected = 0;
      let tx = s.txMsgs;
      let rx = s.rxMsgs;
      for (const slot of s.slots) {
        if (slot.connected || slot.previous !== undefined) connected++;
        if (slot.psock !== undefined) {
          tx += slot.psock.txMsgs;
          rx += slot.psock.stats().rxMsgs;
        }
        if (slot.previous !== undefined) {
          tx += slot.previous.psock.txMsgs;
          rx += slot.previous.psock.stats().rxMsgs;
        }
      }
      for (const d of this.drains) {
        if (d.ep === s && d.phase > 0) {
          tx += d.psock.txMsgs;
          rx += d.psock.stats().rxMsgs;
        }
      }
      const e = s.endpoint;
      endpoints.push({
        endpoint: e.key,
        host: e.host,
        port: e.port,
        name: e.name,
        weight: e.weight,
        priority: e.priority,
        connections: s.wanted,
        connected,
        draining: s.draining,
        connects: s.connects,
        disconnects: s.disconnects,
        connectFailures: s.connectFailures,
        replaced: s.replaced,
        txMsgs: tx,
        rxMsgs: rx,
        listed: s.listed,
      });
    }
    return {
      connections: this.connections,
      connected: this.connected,
      connects: this.nConnects,
      disconnects: this.nDisconnects,
      connectFailures: this.nConnectFailures,
      reconnects: this.nReconnects,
      failures: this.nFailures,
      failing: this.failure !== undefined,
      resolutions: this.nResolutions,
      resolveFailures: this.nResolveFailures,
      drained: this.nDrained,
      replaced: this.nReplaced,
      endpoints,
    };
  }

  /**
   * Resolves the `dns:`/`srv:` name now (at most once per second when called often),
   * instead of waiting for `refreshInterval`. Does nothing for a fixed list.
   */
  refresh(): void {
    this.scheduleRefresh(0);
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
    if (this.refreshTimer !== undefined) clearTimeout(this.refreshTimer);
    this.refreshTimer = undefined;
    // Sends of the socket go back to queueing [T-18].
    if (this.failAfter > 0) this.socket.mux.setTxGate(undefined);
    for (const s of this.eps.values()) for (const slot of s.slots) clearSlotTimers(slot);
    this.closing = this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    const mux = this.socket.mux;
    if (this.connected > 0 && !this.socket.closed) await waitTxIdle(mux, this.closeTimeout);
    const ends: Promise<void>[] = [];
    const finish = (t: ConnTransport | undefined): void => {
      if (t === undefined) return;
      delete t[kConn];
      detach(mux, t, this.socket);
      ends.push(endTransport(t, this.closeTimeout));
    };
    for (const s of this.eps.values()) {
      for (const slot of s.slots) {
        finish(slot.transport);
        if (slot.previous !== undefined) finish(slot.previous.transport);
        slot.transport = undefined;
        slot.psock = undefined;
        slot.previous = undefined;
        slot.connected = false;
      }
    }
    for (const d of this.drains) {
      if (d.timer !== undefined) clearTimeout(d.timer);
      d.phase = 3;
      finish(d.transport);
    }
    this.drains.clear();
    await Promise.all(ends);
    this.emit('close');
  }

  // ------------------------------------------------------------ endpoints

  /** @internal */
  start(): void {
    if (this.closing !== undefined) return;
    if (this.source.kind === 'static') this.reconcile(this.source.endpoints);
    else void this.resolve();
  }

  /** Asks for a resolution in `delay` ms, no sooner than the floor after the last one. */
  private scheduleRefresh(delay: number): void {
    if (this.source.kind === 'static' || this.closing !== undefined) return;
    if (this.resolving) {
      this.refreshAgain = true;
      return;
    }
    const floor = Math.min(REFRESH_FLOOR, this.refreshInterval);
    const at = Math.max(performance.now() + delay, this.lastResolveStart + floor);
    if (this.refreshTimer !== undefined) {
      if (this.refreshAt <= at) return;
      clearTimeout(this.refreshTimer);
    }
    this.refreshAt = at;
    this.refreshTimer = setTimeout(connectorOnRefresh, Math.max(0, Math.ceil(at - performance.now())), this);
  }

  /** @internal Resolves the name and reconciles the connections with what it names now. */
  async resolve(): Promise<void> {
    this.refreshTimer = undefined;
    if (this.closing !== undefined || this.resolving) return;
    this.resolving = true;
    this.refreshAgain = false;
    this.lastResolveStart = performance.now();
    let list: Endpoint[] | undefined;
    let error: unknown;
    try {
      list = await resolveEndpoints(this.source, this.resolver);
    } catch (err) {
      error = err;
    }
    this.resolving = false;
    if (this.closing !== undefined) return;
    this.nResolutions++;
    if (list !== undefined) {
      this.resolveFailuresInARow = 0;
      this.reconcile(list);
      this.scheduleRefresh(this.refreshAgain ? 0 : this.refreshInterval);
      return;
    }
    // Keep the endpoints known; try again with backoff, never later than refreshInterval.
    this.nResolveFailures++;
    this.resolveFailuresInARow++;
    const name = this.source.kind === 'static' ? '' : this.source.name;
    const kerr = new KcmError(causeErrno(error, 'EHOSTUNREACH'), `resolving ${name}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    if (this.eps.size === 0) this.lastError = kerr;
    if (this.listenerCount('error') > 0) this.emit('error', kerr, -1);
    this.scheduleRefresh(Math.min(this.refreshInterval, this.backoff.delay(this.resolveFailuresInARow)));
  }

  /** Brings the connections in line with `list`: new endpoints dialled, vanished ones drained. */
  private reconcile(list: readonly Endpoint[]): void {
    const active = this.activeEndpoints(list);
    const counts = shareConnections(active, this.perEndpoint);
    const wanted = new Map<string, number>();
    for (let i = 0; i < active.length; i++) wanted.set(active[i]!.key, counts[i]!);
    const listed = new Set(list.map((e) => e.key));
    const added: Endpoint[] = [];
    const removed: Endpoint[] = [];
    for (const e of list) {
      let s = this.eps.get(e.key);
      if (s === undefined) {
        s = { endpoint: e, slots: [], wanted: 0, listed: true, connects: 0, disconnects: 0, connectFailures: 0, replaced: 0, txMsgs: 0, rxMsgs: 0, draining: 0 };
        this.eps.set(e.key, s);
        added.push(e);
      } else {
        if (!s.listed) added.push(e);
        s.endpoint = e;
        s.listed = true;
      }
    }
    for (const s of this.eps.values()) {
      if (s.listed && !listed.has(s.endpoint.key)) {
        s.listed = false;
        removed.push(s.endpoint);
      }
      this.resize(s, wanted.get(s.endpoint.key) ?? 0, s.listed ? 'shrink' : 'removed');
    }
    for (const [key, s] of this.eps) if (!s.listed && s.slots.length === 0 && s.draining === 0) this.eps.delete(key);
    if ((added.length > 0 || removed.length > 0) && this.source.kind !== 'static') {
      this.emit('endpoints', { endpoints: this.endpoints, added, removed } satisfies EndpointsEvent);
    }
  }

  /**
   * SRV priority: the endpoints of the lowest priority, and of the next ones while every
   * endpoint of the lower ones is failing. Other sources: all.
   */
  private activeEndpoints(list: readonly Endpoint[]): Endpoint[] {
    if (this.source.kind !== 'srv') return [...list];
    const priorities = [...new Set(list.map((e) => e.priority))].sort((a, b) => a - b);
    const out: Endpoint[] = [];
    for (const p of priorities) {
      const group = list.filter((e) => e.priority === p);
      out.push(...group);
      const healthy = group.some((e) => {
        const s = this.eps.get(e.key);
        return s === undefined || s.slots.length === 0 || s.slots.some((slot) => slot.connected || slot.failures === 0);
      });
      if (healthy) break;
    }
    return out;
  }

  private resize(s: EndpointState, wanted: number, reason: DrainEvent['reason']): void {
    s.wanted = wanted;
    while (s.slots.length < wanted) {
      const slot: Slot = {
        kind: 'slot',
        owner: this,
        index: this.nextSlot++,
        ep: s,
        transport: undefined,
        psock: undefined,
        connected: false,
        failures: 0,
        retired: false,
        timer: undefined,
        connectTimer: undefined,
        ageTimer: undefined,
        previous: undefined,
      };
      s.slots.push(slot);
      this.dial(slot);
    }
    while (s.slots.length > wanted) this.retire(s.slots.pop()!, reason);
  }

  /** A slot is no longer wanted: no more dialling; its connection drains. */
  private retire(slot: Slot, reason: DrainEvent['reason']): void {
    slot.retired = true;
    clearSlotTimers(slot);
    removeItem(this.ageQueue, slot);
    if (this.replacing === slot) this.replaceDone();
    if (slot.previous !== undefined) {
      this.startDrain(slot.previous, reason);
      slot.previous = undefined;
    }
    const t = slot.transport;
    const psock = slot.psock;
    slot.transport = undefined;
    slot.psock = undefined;
    if (t === undefined || psock === undefined) return;
    if (slot.connected) {
      slot.connected = false;
      this.startDrain(this.drainOf(slot, t, psock, reason), reason);
    } else {
      this.drop(slot.ep, t);
    }
    this.checkDown();
  }

  // ---------------------------------------------------------- connections

  /** Opens and attaches the transport of a slot; a socket still connecting is accepted [X-7]. */
  private dial(slot: Slot): void {
    slot.timer = undefined;
    if (this.closing !== undefined || slot.retired) return;
    const e = slot.ep.endpoint;
    let t: ConnTransport;
    try {
      t = this.create({ host: e.host, port: e.port, name: e.name });
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
    t[kConn] = slot;
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
    slot.ep.connects++;
    this.nConnects++;
    if (this.failAfter > 0) this.up();
    if (this.maxAge > 0) {
      // Jitter: up to 20 % younger, so that connections made together do not all leave together.
      const age = Math.max(1, Math.round(this.maxAge * (1 - 0.2 * Math.random())));
      slot.ageTimer = setTimeout(slotOnAge, age, slot);
    }
    this.emit('connect', { slot: slot.index, transport: slot.transport!, psock: slot.psock!, endpoint: slot.ep.endpoint } satisfies ConnectEvent);
    // Replaced for its age: the old connection leaves now that this one carries traffic.
    if (slot.previous !== undefined) {
      const old = slot.previous;
      slot.previous = undefined;
      slot.ep.replaced++;
      this.nReplaced++;
      if (this.replacing === slot) this.replacing = old;
      this.startDrain(old, 'age');
    } else if (this.replacing === slot) {
      this.replaceDone();
    }
  }

  /** @internal [E-4] a psock failed: unattach it, close its transport, dial again later. */
  failed(slot: Slot, error: KcmError): void {
    if (slot.connectTimer !== undefined) clearTimeout(slot.connectTimer);
    slot.connectTimer = undefined;
    if (slot.ageTimer !== undefined) clearTimeout(slot.ageTimer);
    slot.ageTimer = undefined;
    const t = slot.transport;
    const psock = slot.psock;
    const wasConnected = slot.connected;
    slot.transport = undefined;
    slot.psock = undefined;
    slot.connected = false;
    if (t !== undefined) this.drop(slot.ep, t);
    this.lastError = error;
    if (wasConnected) {
      this.nDisconnects++;
      slot.ep.disconnects++;
    } else {
      this.nConnectFailures++;
      slot.ep.connectFailures++;
    }
    this.checkDown();
    if (this.listenerCount('error') > 0) this.emit('error', error, slot.index);
    if (wasConnected && t !== undefined && psock !== undefined) {
      this.emit('disconnect', { slot: slot.index, transport: t, psock, error, endpoint: slot.ep.endpoint } satisfies DisconnectEvent);
    }
    if (this.closing !== undefined) return;
    if (this.socket.closed) {
      void this.close();
      return;
    }
    // A failure may mean the name now points elsewhere.
    this.scheduleRefresh(0);
    if (slot.retired) return;
    slot.failures++;
    const delay = this.backoff.delay(slot.failures);
    this.nReconnects++;
    slot.timer = setTimeout(slotOnTimer, delay, slot);
    this.emit('reconnecting', { slot: slot.index, attempt: slot.failures, delay, error, endpoint: slot.ep.endpoint } satisfies ReconnectingEvent);
  }

  /** Unattaches and destroys a transport, keeping its psock's counters for the endpoint. */
  private drop(s: EndpointState, t: ConnTransport): void {
    const owner = t[kConn];
    if (owner !== undefined && owner.kind === 'slot' && owner.psock !== undefined) {
      s.txMsgs += owner.psock.txMsgs;
      s.rxMsgs += owner.psock.stats().rxMsgs;
    } else {
      const p = this.socket.mux.psocks.find((q) => q.transport === t);
      if (p !== undefined) {
        s.txMsgs += p.txMsgs;
        s.rxMsgs += p.stats().rxMsgs;
      }
    }
    delete t[kConn];
    detach(this.socket.mux, t, this.socket);
    t.destroy();
  }

  // ------------------------------------------------------------- draining

  private drainOf(slot: Slot, t: ConnTransport, psock: Psock, reason: DrainEvent['reason']): Drain {
    const d: Drain = { kind: 'drain', owner: this, slot: slot.index, ep: slot.ep, transport: t, psock, reason, phase: 0, started: 0, lastRx: 0, lastRxAt: 0, timer: undefined };
    t[kConn] = d;
    return d;
  }

  /**
   * Drains a connection: out of transmit rotation at its next message boundary (nothing
   * queued is lost: the rest goes on other connections), then, once it has nothing left
   * to write and no reply has arrived for a moment, FIN; closed when the peer closes or
   * after `closeTimeout`.
   */
  private startDrain(d: Drain, reason: DrainEvent['reason']): void {
    if (d.phase !== 0) return;
    d.reason = reason;
    d.phase = 1;
    d.started = performance.now();
    d.lastRx = d.psock.stats().rxMsgs;
    d.lastRxAt = d.started;
    d.ep.draining++;
    this.drains.add(d);
    this.socket.mux.drainTx(d.psock);
    this.emit('drain', { slot: d.slot, transport: d.transport, psock: d.psock, endpoint: d.ep.endpoint, reason } satisfies DrainEvent);
    d.timer = setTimeout(drainOnTimer, DRAIN_POLL, d);
  }

  /** @internal */
  drainStep(d: Drain): void {
    d.timer = undefined;
    if (d.phase === 3 || this.closing !== undefined) return;
    const now = performance.now();
    const p = d.psock;
    if (d.phase === 1) {
      if (p.stats().rxMsgs !== d.lastRx) {
        d.lastRx = p.stats().rxMsgs;
        d.lastRxAt = now;
      }
      const s = p.stats();
      const idle = s.reservedBy < 0 && d.transport.writableLength === 0 && s.rxPartialBytes === 0 && now - d.lastRxAt >= DRAIN_QUIET;
      if (idle || now - d.started >= this.closeTimeout) {
        // FIN: the peer sees the end after every byte sent; replies it still writes are read.
        d.phase = 2;
        d.transport.end();
        d.started = now;
      }
      d.timer = setTimeout(drainOnTimer, DRAIN_POLL, d);
      return;
    }
    // Ended: waiting for the peer to close (the psock then reports EPIPE), bounded.
    if (d.transport.destroyed || now - d.started >= this.closeTimeout) this.drainDone(d);
    else d.timer = setTimeout(drainOnTimer, DRAIN_POLL, d);
  }

  /** @internal The drained connection's psock reported its end (or an error). */
  drainDone(d: Drain): void {
    if (d.phase === 3) return;
    const standby = d.phase === 0;
    if (d.timer !== undefined) clearTimeout(d.timer);
    d.timer = undefined;
    d.phase = 3;
    if (!standby) {
      this.drains.delete(d);
      d.ep.draining--;
      this.nDrained++;
    }
    this.drop(d.ep, d.transport);
    if (this.replacing === d) this.replaceDone();
    const s = d.ep;
    if (!s.listed && s.slots.length === 0 && s.draining === 0 && this.eps.get(s.endpoint.key) === s) this.eps.delete(s.endpoint.key);
  }

  /** @internal A standby connection (being replaced for age) failed before its replacement was up. */
  standbyFailed(d: Drain): void {
    for (const s of this.eps.values()) for (const slot of s.slots) if (slot.previous === d) slot.previous = undefined;
    this.drainDone(d);
    this.checkDown();
  }

  // ------------------------------------------------------------------ age

  /** @internal A connection reached its age: replace it, one connection at a time. */
  aged(slot: Slot): void {
    slot.ageTimer = undefined;
    if (this.closing !== undefined || slot.retired || !slot.connected) return;
    if (this.replacing !== undefined) {
      if (!this.ageQueue.includes(slot)) this.ageQueue.push(slot);
      return;
    }
    this.replacing = slot;
    // Make before break: the old connection stays in rotation until the new one is up.
    slot.previous = this.drainOf(slot, slot.transport!, slot.psock!, 'age');
    slot.transport = undefined;
    slot.psock = undefined;
    slot.connected = false;
    this.dial(slot);
  }

  private replaceDone(): void {
    this.replacing = undefined;
    const next = this.ageQueue.shift();
    if (next !== undefined) process.nextTick(slotOnAge, next);
  }

  // ----------------------------------------------------------- failAfter

  /** No connection is up any more: with failAfter, sends wait and fail later. */
  private checkDown(): void {
    if (this.failAfter > 0 && this.closing === undefined && this.connected === 0) this.down();
  }

  /** No connection is up: sends wait, and fail after `failAfter` ms. */
  private down(): void {
    if (this.failure === undefined) this.socket.mux.setTxGate(true);
    if (this.failTimer === undefined && this.failure === undefined) {
      this.failAt = performance.now() + this.failAfter;
      this.failTimer = setTimeout(connectorOnFailAfter, this.failAfter, this);
    }
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
    if (this.closing !== undefined || this.connected > 0) return;
    // Never early: a timer may fire up to a millisecond before performance.now() says.
    const early = this.failAt - performance.now();
    if (early > 0) {
      this.failTimer = setTimeout(connectorOnFailAfter, Math.ceil(early), this);
      return;
    }
    const cause = this.lastError;
    const code = causeErrno(cause, 'ECONNREFUSED');
    this.failure = new KcmError(code, `no connection for ${this.failAfter} ms${cause === undefined ? '' : `: ${messageOf(cause)}`}`, cause === undefined ? undefined : { cause });
    this.nFailures++;
    this.socket.mux.setTxGate(this.failure);
    if (this.listenerCount('error') > 0) this.emit('error', this.failure, -1);
  }

  /** @internal */
  redial(slot: Slot): void {
    this.dial(slot);
  }
}

function clearSlotTimers(slot: Slot): void {
  if (slot.timer !== undefined) clearTimeout(slot.timer);
  if (slot.connectTimer !== undefined) clearTimeout(slot.connectTimer);
  if (slot.ageTimer !== undefined) clearTimeout(slot.ageTimer);
  slot.timer = undefined;
  slot.connectTimer = undefined;
  slot.ageTimer = undefined;
}

function removeItem<T>(list: T[], item: T): void {
  const at = list.indexOf(item);
  if (at >= 0) list.splice(at, 1);
}

function defaultCreateConnection(options: { host: string; port: number }): net.Socket {
  return net.connect({ host: options.host, port: options.port, noDelay: true });
}

function psockOnError(this: Psock, err: KcmError): void {
  const owner = (this.transport as ConnTransport)[kConn];
  if (owner === undefined) return;
  if (owner.kind === 'slot') {
    if (owner.psock === this) owner.owner.failed(owner, err);
  } else if (owner.psock === this) {
    if (owner.phase === 0) owner.owner.standbyFailed(owner);
    else owner.owner.drainDone(owner);
  }
}

function transportOnConnect(this: ConnTransport): void {
  const slot = this[kConn];
  if (slot !== undefined && slot.kind === 'slot' && slot.transport === this && !slot.connected) slot.owner.established(slot);
}

function slotOnTimer(slot: Slot): void {
  slot.owner.redial(slot);
}

function slotOnAge(slot: Slot): void {
  slot.owner.aged(slot);
}

function drainOnTimer(d: Drain): void {
  d.owner.drainStep(d);
}

function connectorOnRefresh(c: KcmConnector): void {
  void c.resolve();
}

function slotOnConnectTimeout(slot: Slot): void {
  slot.connectTimer = undefined;
  const t = slot.transport;
  if (t !== undefined && !slot.connected) {
    t.destroy(new KcmError('ETIMEDOUT', `connection attempt to ${slot.ep.endpoint.key} timed out`));
  }
}

function connectorOnFailAfter(c: KcmConnector): void {
  c.failNow();
}

/** The errno of a failure: the first known errno name down its cause chain, else `dflt`. */
function causeErrno(err: unknown, dflt: ErrnoName): ErrnoName {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code !== 'EPIPE' && Object.hasOwn(errnos, code)) return code as ErrnoName;
  }
  return dflt;
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
