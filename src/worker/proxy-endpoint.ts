import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { Fifo } from '../mux/fifo.js';
import { KcmSocket } from '../mux/kcm-socket.js';
import { noop } from '../mux/noop.js';
import type { SocketEndpoint } from '../mux/socket-endpoint.js';
import type { Psock, PsockRef } from '../mux/psock.js';
import type { TxMessage } from '../mux/tx-message.js';
import {
  FLAG_BURST_END, MSG_ACK, MSG_CREDIT, MSG_DATA, MSG_DISABLE, MSG_ENABLE, MSG_PSOCK, MSG_PSOCKS, MSG_RETURN, MSG_SEND, SHARED_DROPPED, SHARED_GONE,
  SHARED_SLOTS, packReceived, unpackSent, type WireMessage,
} from './protocol.js';
import type { KcmWorkerPort } from './worker-port.js';

const kProxy = Symbol('kcm.workerProxy');
/** The proxy owns the buffer a batch arrived in: its large messages go by reference. */
const HANDED = { copy: false } as const;
const BATCH = { batch: true, copy: false } as const;
const EMPTY = Buffer.alloc(0);

type ProxyPort = MessagePort & { [kProxy]?: ProxyEndpoint };

/**
 * SIOCKCMCLONE for another thread: a new socket of `origin`'s multiplexor, same type and
 * options, whose user side lives wherever the returned port is adopted.
 */
export function cloneForWorker(origin: KcmSocket): KcmWorkerPort {
  const { port1, port2 } = new MessageChannel();
  const shared = new SharedArrayBuffer(4 * SHARED_SLOTS);
  const endpoint = new ProxyEndpoint(port1, shared);
  const sock = new KcmSocket({
    mux: origin.mux, type: origin.type, sendBufferSize: origin.sendBufferSize, receiveBufferSize: origin.receiveBufferSize, endpoint,
  });
  endpoint.bind(sock);
  return {
    kind: 'kcm-worker-port',
    port: port2,
    shared,
    type: sock.type,
    sendBufferSize: sock.sendBufferSize,
    receiveBufferSize: sock.receiveBufferSize,
    index: sock.index,
    transferList: [port2],
  };
}

/**
 * The multiplexor's side of a socket adopted in a worker: the endpoint of a real member
 * of the mux.
 *
 * Receive: the socket is steered to as any socket [S-1 … S-6]. Its receive memory (`rmem`)
 * counts messages steered to it and not yet read in the worker: those queued here,
 * those posted, those queued there. So a slow worker is skipped once it holds
 * `receiveBufferSize` bytes (one message at least) [S-3], and the socket rejoins the
 * waiters only when the worker has drained everything [S-5]. Each delivery (one receive
 * burst) posts one batch. The proxy keeps the messages it posted until the worker
 * reports them read, so that a worker that disables receive or dies hands its unread
 * messages to the other sockets [D-3, O-6].
 *
 * Transmit: the worker's messages are queued here and written as this socket's own
 * [T-11 … T-19]; bytes leaving the send queue are credited back, so the worker's
 * `send()` waits while `sendBufferSize` bytes are between threads or queued here [T-7].
 */
export class ProxyEndpoint implements SocketEndpoint {
  readonly port: MessagePort;
  readonly shared: Int32Array;
  /** Messages posted to the worker, not yet known to be read there, oldest first. */
  readonly inflight = new Fifo<Buffer>();
  /** [K-2] the origin of each posted message, in step with {@link inflight}. */
  readonly inflightOrigins = new Fifo<PsockRef>();
  /** Messages the worker has reported fully read. */
  acked = 0;
  /** Send-queue bytes freed since the last credit (negative after a retry). */
  creditPending = 0;
  creditScheduled = false;
  private sock: KcmSocket | undefined = undefined;

  constructor(port: MessagePort, shared: SharedArrayBuffer) {
    this.port = port;
    this.shared = new Int32Array(shared);
  }

  get held(): number {
    return this.inflight.length;
  }

  /**
   * The posted messages the worker's code has taken, read from the counter it stores
   * before its code sees each one, whatever its acknowledgement's delay; oldest first, as
   * reads go. A SEQPACKET message read in parts counts once its first part is read.
   */
  readElsewhere(): { msgs: number; bytes: number } | undefined {
    const gone = (Atomics.load(this.shared, SHARED_GONE) - (this.acked | 0)) | 0;
    const msgs = Math.min(Math.max(0, gone), this.inflight.length);
    if (msgs === 0) return undefined;
    let bytes = 0;
    for (let i = 0; i < msgs; i++) bytes += this.inflight.at(i)!.length;
    return { msgs, bytes };
  }

  /** Starts listening to the worker, once the socket exists. */
  bind(sock: KcmSocket): void {
    this.sock = sock;
    const port = this.port;
    (port as ProxyPort)[kProxy] = this;
    port.on('message', proxyPortOnMessage);
    port.on('close', proxyPortOnClose);
    // The worker, not this port, keeps the thread alive: a proxy never holds the process.
    port.unref();
    // [K-5] the psocks able to send now; then one post per change.
    const { live, next } = sock.mux.livePsockIds();
    port.postMessage({ t: MSG_PSOCKS, live, next });
    // Messages taken while the constructor ran (hold queue, ready psocks) go now.
    if (sock.rx.length > 0) {
      sock.mux.touch(sock);
      sock.mux.flushLater();
    }
  }

  /** One burst, one batch posted to the worker; the bytes stay counted until read there. */
  deliver(sock: KcmSocket): void {
    const queue = sock.rx.queue;
    if (queue.length === 0 || this.sock === undefined || sock.closed) return;
    const messages: Buffer[] = [];
    const origins: PsockRef[] = [];
    // The bytes stay counted (rmem) until read there.
    const bytes = queue.drain(messages, origins);
    const ids: number[] = new Array(origins.length);
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i]!;
      this.inflight.push(m);
      this.inflightOrigins.push(origins[i]!);
      ids[i] = origins[i]!.id;
    }
    const buf = packReceived(messages, ids, bytes);
    this.port.postMessage({ t: MSG_DATA, buf }, [buf]);
  }

  /** [K-5] pinned sends of the worker are checked against the list it gets from here. */
  pinTarget(sock: KcmSocket, ref: PsockRef): PsockRef {
    return sock.mux.pinTarget(ref);
  }

  /** [K-4] */
  pinned(sock: KcmSocket, msg: TxMessage): void {
    sock.mux.pin(msg.pin as Psock, msg);
  }

  /** [K-4] bytes of pinned messages left the send queue: credited to the worker. */
  freed(sock: KcmSocket, bytes: number): void {
    sock.tx.freed(bytes);
    this.credit(sock, bytes);
  }

  /** [K-6] the worker's `txDropped` is read from the shared counters. */
  dropped(sock: KcmSocket): void {
    sock.tx.dropped++;
    Atomics.add(this.shared, SHARED_DROPPED, 1);
  }

  droppedCount(sock: KcmSocket): number {
    return sock.tx.dropped;
  }

  /** [K-5] the worker mirrors which psocks can send. */
  psockChanged(sock: KcmSocket, psock: Psock): void {
    if (this.sock === undefined || sock.closed) return;
    this.port.postMessage({ t: MSG_PSOCK, id: psock.id, up: !psock.done });
  }

  /** [T-11] writes, then credits the worker with the bytes that left the queue. */
  transmit(sock: KcmSocket): void {
    const before = sock.tx.smem;
    sock.tx.work();
    this.credit(sock, before - sock.tx.smem);
  }

  /** [T-16] a message back in the queue counts against the worker again. */
  requeue(sock: KcmSocket, buf: Buffer, start: number, len: number, at: number): void {
    sock.tx.requeue(buf, start, len, at);
    this.credit(sock, -len);
  }

  /** Only the worker disables its socket's receive (through the port). */
  recvDisable(): void {}

  taken(): void {}

  /**
   * close from this thread: stops steering and transmit at once [O-6]. Messages already
   * posted to the worker count as delivered (the worker may be reading them right now,
   * and no message may be read twice); the worker's socket closes when it sees the port
   * close.
   */
  close(sock: KcmSocket): void {
    this.shutdown(sock, false);
  }

  private credit(sock: KcmSocket, bytes: number): void {
    if (bytes === 0 || sock.closed) return;
    this.creditPending += bytes;
    if (!this.creditScheduled) {
      this.creditScheduled = true;
      process.nextTick(proxyOnCredit, this);
    }
  }

  /** Posts the credit gathered in this tick. */
  sendCredit(): void {
    this.creditScheduled = false;
    const bytes = this.creditPending;
    this.creditPending = 0;
    if (bytes !== 0 && this.sock !== undefined && !this.sock.closed) this.port.postMessage({ t: MSG_CREDIT, bytes });
  }

  onWire(m: WireMessage): void {
    const sock = this.sock;
    if (sock === undefined || sock.closed) return;
    switch (m.t) {
      case MSG_SEND:
        this.onSend(sock, m.buf!);
        break;
      case MSG_ACK:
        this.onAck(sock, m.consumed!);
        break;
      case MSG_DISABLE:
      case MSG_RETURN:
        this.onReturn(sock, m.consumed!, m.keep!, m.n!, m.t === MSG_DISABLE);
        break;
      case MSG_ENABLE:
        this.onEnable(sock);
        break;
    }
  }

  private onSend(sock: KcmSocket, buf: ArrayBuffer): void {
    const tx = sock.tx;
    unpackSent(buf, (message, flag, pin) => {
      // The worker admitted it against the same sendBufferSize, so this never waits;
      // if it did (a closed socket), the rejection must not go unhandled.
      const waits = tx.waiters.length > 0 || !tx.admits();
      if (pin === 0) {
        const p = sock.send(message, flag === FLAG_BURST_END ? HANDED : BATCH);
        if (waits) p.catch(noop);
        return;
      }
      // [K-6] pinned to a psock done since the worker's call: dropped, never sent elsewhere.
      const psock = sock.mux.livePsock(pin);
      if (psock === undefined) {
        this.dropArrived(sock, pin, message.length);
        return;
      }
      const p = sock.send(message, { psock, batch: flag !== FLAG_BURST_END, copy: false });
      if (waits) p.catch(() => this.dropArrived(sock, pin, message.length));
    });
    // Messages held for a burst whose last message was dropped go out now.
    if (tx.batchPending) sock.send(EMPTY).catch(noop);
  }

  private dropArrived(sock: KcmSocket, pin: number, bytes: number): void {
    sock.mux.dropArrived(sock, pin);
    this.credit(sock, bytes);
  }

  /** The worker read every message up to `consumed`: their memory is free [S-5]. */
  private onAck(sock: KcmSocket, consumed: number): void {
    const count = consumed - this.acked;
    if (count <= 0) return;
    const mux = sock.mux;
    mux.enter();
    try {
      this.takeRead(sock, count);
      if (sock.rx.rmem === 0) mux.socketReady(sock);
    } finally {
      mux.leave();
    }
  }

  /** [D-3] messages handed back by the worker move to other sockets, oldest first. */
  private onReturn(sock: KcmSocket, consumed: number, keep: number, n: number, disable: boolean): void {
    const mux = sock.mux;
    const rx = sock.rx;
    mux.enter();
    try {
      if (disable) {
        sock.rxDisabled = true;
        mux.leaveRxWaiters(sock);
      }
      const skip = consumed - this.acked + keep;
      const all = this.inflight.drain();
      const allOrigins = this.inflightOrigins.drain();
      const moved = all.splice(skip, n);
      const movedOrigins = allOrigins.splice(skip, n);
      for (const m of all) this.inflight.push(m);
      for (const o of allOrigins) this.inflightOrigins.push(o);
      for (const m of moved) rx.rmem -= m.length;
      if (disable) rx.rmem -= rx.queue.drain(moved, movedOrigins);
      mux.requeue(moved, movedOrigins);
      if (rx.rmem === 0) mux.socketReady(sock);
    } finally {
      mux.leave();
    }
  }

  /** [D-6] */
  private onEnable(sock: KcmSocket): void {
    const mux = sock.mux;
    mux.enter();
    try {
      sock.rxDisabled = false;
      mux.socketReady(sock);
    } finally {
      mux.leave();
    }
  }

  /** Drops the `count` oldest posted messages, read in the worker. */
  private takeRead(sock: KcmSocket, count: number): void {
    let bytes = 0;
    let n = 0;
    for (; n < count; n++) {
      const m = this.inflight.shift();
      if (m === undefined) break;
      this.inflightOrigins.shift();
      bytes += m.length;
    }
    this.acked += count;
    const rx = sock.rx;
    rx.rmem -= bytes;
    rx.msgs += n;
    rx.bytes += bytes;
  }

  /**
   * The socket ends. `exact`: the worker is gone (closed, exited, crashed), and the
   * shared counter tells exactly which posted messages it never saw: those move to the
   * other sockets [O-6 step 5]; messages it had read are gone.
   */
  shutdown(sock: KcmSocket, exact: boolean): void {
    if (sock.closed) return;
    const mux = sock.mux;
    mux.enter();
    try {
      mux.leaveRxWaiters(sock);
      sock.rxDisabled = true;
      let unread: Buffer[] = [];
      let unreadOrigins: PsockRef[] = [];
      if (exact) {
        const gone = (Atomics.load(this.shared, SHARED_GONE) - (this.acked | 0)) | 0;
        this.takeRead(sock, Math.max(0, gone));
        unread = this.inflight.drain();
        unreadOrigins = this.inflightOrigins.drain();
      } else {
        this.takeRead(sock, this.inflight.length);
      }
      mux.requeue(unread, unreadOrigins);
      sock.finishClose();
    } finally {
      mux.leave();
    }
    const port = this.port;
    port.off('message', proxyPortOnMessage);
    port.off('close', proxyPortOnClose);
    if (!exact) port.close();
  }

  /** The worker closed its socket, exited, crashed or was terminated. */
  portClosed(): void {
    if (this.sock !== undefined) this.shutdown(this.sock, true);
  }
}

function proxyPortOnMessage(this: ProxyPort, m: WireMessage): void {
  this[kProxy]?.onWire(m);
}

function proxyPortOnClose(this: ProxyPort): void {
  this[kProxy]?.portClosed();
}

function proxyOnCredit(endpoint: ProxyEndpoint): void {
  endpoint.sendCredit();
}
