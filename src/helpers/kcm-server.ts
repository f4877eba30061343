import * as net from 'node:net';
import { once } from 'node:events';
import { KcmError, checkInteger, invalidArgType, invalidArgValue } from '../errors.js';
import type { Parser } from '../parsers/parser.js';
import { KcmSocket, type KcmSocketOptions, type Message } from '../mux/kcm-socket.js';
import type { Multiplexor } from '../mux/multiplexor.js';
import type { Psock, PsockRef } from '../mux/psock.js';
import { AbortError } from '../mux/abort-error.js';
import { detach, endTransport, liveSocket, waitTxIdle } from './graceful.js';
import { checkAttachOptions, type CheckedAttachOptions } from '../mux/attach-options.js';
import { noop } from '../mux/noop.js';

/**
 * A server's answer to one request: the reply (a message, or the parts of one) sent back
 * on the connection the request came from [K-3], or undefined for none. It may return a
 * promise of it. `origin` is the request's psock; `socket` the KCM socket it was steered to.
 */
export type ServerHandler = (message: Buffer, origin: PsockRef, socket: KcmSocket) => Message | undefined | PromiseLike<Message | undefined>;

/** Options of {@link KcmServer}. */
export interface KcmServerOptions {
  /** Finds message boundaries on each accepted connection [P-2]. */
  parser: Parser;
  /**
   * Answers every message steered to the server's sockets, replying to its origin
   * [K-2, K-3]: each client gets its own replies, on its own connection, whatever the
   * number of clients and sockets. A reply to a client already gone is not sent
   * (`repliesDropped`) [K-5]; one whose client goes before it leaves is dropped and
   * counted in `mux.stats().txDropped` [K-6]. Without it, add `'message'` listeners to
   * `server.sockets`. A handler that throws or rejects: `'error'` on the server.
   */
  handler?: ServerHandler;
  /** As in {@link KcmSocket.attach}: a longer message fails the connection with `EMSGSIZE` [P-6]. */
  maxMessageSize?: number;
  /** As in {@link KcmSocket.attach}: ms to assemble one message, else `ETIMEDOUT` [P-7]. */
  assemblyTimeout?: number;
  /** Attach to this socket's multiplexor instead of creating one; the server never closes it. */
  socket?: KcmSocket;
  /** KCM sockets to create on a new multiplexor (N), when `socket` is not given; default 1. */
  sockets?: number;
  /** Options of the KCM sockets it creates. */
  socketOptions?: KcmSocketOptions;
  /** Connections beyond this many are closed as soon as accepted (`'drop'`); default unlimited. */
  maxConnections?: number;
  /** Milliseconds `close()` waits for queued replies to leave and peers to close; default 2000. */
  closeTimeout?: number;
}

/** Options of {@link listen}. */
export interface ListenOptions extends KcmServerOptions {
  /** Default 0: a port chosen by the system (see `server.address()`). */
  port?: number;
  /** Default: every interface, as `net.Server.listen`. */
  host?: string;
  backlog?: number;
  /** Aborting it closes the server (before listening: `listen()` rejects with an `AbortError`). */
  signal?: AbortSignal;
}

/** Payload of the server's `'attach'` and `'disconnect'` events. */
export interface ServerConnectionEvent {
  transport: net.Socket;
  psock: Psock;
}

/** Payload of the server's `'disconnect'` event. */
export interface ServerDisconnectEvent extends ServerConnectionEvent {
  /** The psock's error. */
  error: KcmError;
}

/** Counters of a {@link KcmServer}. */
export interface KcmServerStats {
  /** Connections attached now. */
  connections: number;
  /** Connections accepted and attached since it started. */
  accepted: number;
  /** Connections closed at once because of `maxConnections`. */
  refused: number;
  /** Connections unattached and closed after their psock failed. */
  disconnects: number;
  /** Replies of `handler` not sent because their client was already gone [K-5]. */
  repliesDropped: number;
}

const kServer: unique symbol = Symbol('kcm.server');
const kHandler: unique symbol = Symbol('kcm.serverHandler');
type HandledSocket = KcmSocket & { [kHandler]?: KcmServer };
type ServerTransport = net.Socket & { [kServer]?: KcmServer };

/** The server's own events, typed; those of `net.Server` keep their types. */
export interface KcmServer {
  on(event: 'attach', listener: (event: ServerConnectionEvent) => void): this;
  on(event: 'disconnect', listener: (event: ServerDisconnectEvent) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
  once(event: 'attach', listener: (event: ServerConnectionEvent) => void): this;
  once(event: 'disconnect', listener: (event: ServerDisconnectEvent) => void): this;
  once(event: string | symbol, listener: (...args: any[]) => void): this;
}

/**
 * A `net.Server` that attaches every accepted TCP connection to one multiplexor
 * (SIOCKCMATTACH), and does the application's duty of E-4: a connection whose psock
 * reports an error is unattached (SIOCKCMUNATTACH) and destroyed.
 *
 * Events besides those of `net.Server` (`'listening'`, `'connection'`, `'drop'`,
 * `'close'`, `'error'` for listen errors only): `'attach'` {@link ServerConnectionEvent}
 * when a connection joins the multiplexor, `'disconnect'` `{ transport, psock, error }`
 * when one is dropped after its psock failed.
 */
export class KcmServer extends net.Server {
  /** The KCM sockets messages are read from and written to: the ones it created, or `[options.socket]`. */
  readonly sockets: readonly KcmSocket[];
  /** The multiplexor the connections are attached to. */
  readonly mux: Multiplexor;

  private readonly owned: boolean;
  private readonly attachOptions: CheckedAttachOptions;
  private readonly closeTimeout: number;
  private readonly conns = new Set<ServerTransport>();
  private closing = false;
  private nAccepted = 0;
  private nRefused = 0;
  private nDisconnects = 0;
  /** @internal */ nRepliesDropped = 0;
  /** @internal */ readonly handler: ServerHandler | undefined;
  private signal: AbortSignal | undefined = undefined;
  private readonly onAbort = (): void => void this.close();

  constructor(options: KcmServerOptions) {
    if (options === null || typeof options !== 'object') throw invalidArgType('options', 'of type object', options);
    const attachOptions = checkAttachOptions(options);
    const maxConnections = options.maxConnections === undefined ? undefined : checkInteger('options.maxConnections', options.maxConnections, 1);
    const closeTimeout = options.closeTimeout === undefined ? 2000 : checkInteger('options.closeTimeout', options.closeTimeout, 0, 0x7fffffff);
    if (options.handler !== undefined && typeof options.handler !== 'function') throw invalidArgType('options.handler', 'of type function', options.handler);
    let sockets: KcmSocket[];
    let owned: boolean;
    if (options.socket !== undefined) {
      if (!(options.socket instanceof KcmSocket)) throw invalidArgType('options.socket', 'an instance of KcmSocket', options.socket);
      if (options.sockets !== undefined) throw invalidArgValue('options.sockets', 'cannot be combined with options.socket', options.sockets);
      if (options.socket.closed) throw new KcmError('EBADF', 'listen: the KCM socket is closed');
      sockets = [options.socket];
      owned = false;
    } else {
      const n = options.sockets === undefined ? 1 : checkInteger('options.sockets', options.sockets, 1, 65535);
      const first = KcmSocket.create(options.socketOptions);
      sockets = [first];
      for (let i = 1; i < n; i++) sockets.push(first.clone());
      owned = true;
    }
    super({ noDelay: true });
    this.sockets = sockets;
    this.mux = sockets[0]!.mux;
    this.owned = owned;
    this.attachOptions = attachOptions;
    this.closeTimeout = closeTimeout;
    if (maxConnections !== undefined) this.maxConnections = maxConnections;
    this.on('connection', serverOnConnection);
    this.on('drop', serverOnDrop);
    this.handler = options.handler;
    if (options.handler !== undefined) {
      for (const k of sockets) {
        (k as HandledSocket)[kHandler] = this;
        k.on('message', socketOnRequest);
      }
    }
  }

  /** The first of {@link sockets}. */
  get socket(): KcmSocket {
    return this.sockets[0]!;
  }

  /** The transports attached now. */
  get transports(): net.Socket[] {
    return [...this.conns];
  }

  /** Counters, exact at the time of the call. */
  stats(): KcmServerStats {
    return {
      connections: this.conns.size, accepted: this.nAccepted, refused: this.nRefused, disconnects: this.nDisconnects,
      repliesDropped: this.nRepliesDropped,
    };
  }

  /**
   * Graceful close: stops accepting at once; waits (up to `closeTimeout`) until the
   * messages queued for transmit have left; unattaches every connection and ends it
   * (destroyed if the peer has not closed within `closeTimeout`); closes the KCM sockets
   * it created (their unread messages are dropped). `callback` and `'close'` come once
   * every connection is closed, as with `net.Server.close`.
   */
  override close(callback?: (err?: Error) => void): this {
    super.close(callback);
    if (!this.closing) {
      this.closing = true;
      this.signal?.removeEventListener('abort', this.onAbort);
      void this.shutdown();
    }
    return this;
  }

  private async shutdown(): Promise<void> {
    if (this.conns.size > 0) await waitTxIdle(this.mux, this.closeTimeout);
    const ends: Promise<void>[] = [];
    for (const t of this.conns) {
      delete t[kServer];
      detach(this.mux, t, this.socket);
      ends.push(endTransport(t, this.closeTimeout));
    }
    this.conns.clear();
    if (this.owned) for (const k of this.sockets) k.close();
    await Promise.all(ends);
  }

  /** @internal */
  accept(t: ServerTransport): void {
    const sock = this.closing ? undefined : liveSocket(this.mux, this.socket);
    if (sock === undefined) {
      t.destroy();
      return;
    }
    t.on('error', noop); // failures arrive through the psock
    let psock: Psock;
    try {
      psock = sock.attach(t, this.attachOptions);
    } catch {
      t.destroy();
      return;
    }
    t.setNoDelay(true);
    t[kServer] = this;
    this.conns.add(t);
    this.nAccepted++;
    psock.on('error', psockOnError);
    this.emit('attach', { transport: t, psock } satisfies ServerConnectionEvent);
  }

  /** @internal [E-4] unattach, destroy. */
  failed(psock: Psock, error: KcmError): void {
    const t = psock.transport as ServerTransport;
    if (t[kServer] !== this) return;
    delete t[kServer];
    this.conns.delete(t);
    detach(this.mux, t, this.socket);
    t.destroy();
    this.nDisconnects++;
    this.emit('disconnect', { transport: t, psock, error } satisfies ServerDisconnectEvent);
  }

  /** @internal */
  refused(): void {
    this.nRefused++;
  }

  /** @internal */
  watch(signal: AbortSignal): void {
    this.signal = signal;
    signal.addEventListener('abort', this.onAbort, { once: true });
  }
}

/** [K-2, K-3] a request steered to a server socket: the handler's reply goes back to its origin. */
function socketOnRequest(this: HandledSocket, message: Buffer, origin: PsockRef): void {
  const server = this[kHandler];
  if (server === undefined) return;
  let reply: ReturnType<ServerHandler>;
  try {
    reply = server.handler!(message, origin, this);
  } catch (err) {
    server.emit('error', err);
    return;
  }
  if (reply === undefined) return;
  if (typeof (reply as PromiseLike<unknown>).then === 'function') {
    (reply as PromiseLike<Message | undefined>).then((r) => sendReply(server, this, r, origin), (err: unknown) => server.emit('error', err));
    return;
  }
  sendReply(server, this, reply as Message, origin);
}

function sendReply(server: KcmServer, sock: KcmSocket, reply: Message | undefined, origin: PsockRef): void {
  if (reply === undefined || sock.closed) return;
  sock.send(reply, { psock: origin }).catch((err: unknown) => replyFailed(server, err));
}

/** [K-5] the client is gone (EPIPE) or the server closed (EBADF): nobody else gets the reply. */
function replyFailed(server: KcmServer, err: unknown): void {
  if (err instanceof KcmError && (err.code === 'EPIPE' || err.code === 'EBADF')) {
    server.nRepliesDropped++;
    return;
  }
  server.emit('error', err);
}

function serverOnConnection(this: KcmServer, t: net.Socket): void {
  this.accept(t);
}

function serverOnDrop(this: KcmServer): void {
  this.refused();
}

function psockOnError(this: Psock, err: KcmError): void {
  const server = (this.transport as ServerTransport)[kServer];
  if (server !== undefined) server.failed(this, err);
}

/**
 * Creates a {@link KcmServer} and resolves once it listens (`server.address()` is set).
 * Rejects with the listen error (and closes the server), or an `AbortError`.
 */
export async function listen(options: ListenOptions): Promise<KcmServer> {
  if (options === null || typeof options !== 'object') throw invalidArgType('options', 'of type object', options);
  const port = options.port === undefined ? 0 : checkInteger('options.port', options.port, 0, 65535);
  if (options.host !== undefined && typeof options.host !== 'string') throw invalidArgType('options.host', 'of type string', options.host);
  const backlog = options.backlog === undefined ? undefined : checkInteger('options.backlog', options.backlog, 0);
  const signal = options.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalidArgType('options.signal', 'an instance of AbortSignal', signal);
  if (signal?.aborted) throw new AbortError(signal.reason);
  const server = new KcmServer(options);
  const listenOptions: net.ListenOptions = { port };
  if (options.host !== undefined) listenOptions.host = options.host;
  if (backlog !== undefined) listenOptions.backlog = backlog;
  try {
    server.listen(listenOptions);
    await once(server, 'listening', signal === undefined ? {} : { signal });
  } catch (err) {
    server.close();
    if (signal?.aborted) throw new AbortError(signal.reason);
    throw err;
  }
  if (signal !== undefined) server.watch(signal);
  return server;
}
