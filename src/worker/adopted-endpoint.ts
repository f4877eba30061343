import type { MessagePort } from 'node:worker_threads';
import { KcmError } from '../errors.js';
import { copyPool } from '../mux/copy-pool.js';
import { chunkWritten, type TxChunk } from '../mux/tx-queue.js';
import { KcmSocket } from '../mux/kcm-socket.js';
import type { SocketEndpoint, SocketHost } from '../mux/socket-endpoint.js';
import type { PsockRef } from '../mux/psock.js';
import type { TxMessage } from '../mux/tx-message.js';
import {
  FLAG_BURST_END, MSG_ACK, MSG_CREDIT, MSG_DATA, MSG_DISABLE, MSG_ENABLE, MSG_PSOCK, MSG_PSOCKS, MSG_RETURN, MSG_SEND, SHARED_DROPPED, SHARED_GONE,
  packSent, unpackReceived, type WireMessage,
} from './protocol.js';
import { checkWorkerPort, type KcmWorkerPort } from './worker-port.js';

const kEndpoint = Symbol('kcm.adoptedEndpoint');

type AdoptedPort = MessagePort & { [kEndpoint]?: AdoptedEndpoint };

/** Ports adopted in this thread: one socket per port. */
const adoptedPorts = new WeakSet<MessagePort>();

/**
 * The socket of a {@link KcmWorkerPort} in this thread (normally a worker).
 *
 * @throws TypeError when `value` is not a port from `cloneForWorker()`; KcmError
 * `EALREADY` when the port was adopted already.
 */
export function adoptWorkerPort(value: unknown): KcmSocket {
  const desc = checkWorkerPort(value);
  if (adoptedPorts.has(desc.port)) throw new KcmError('EALREADY', 'this port was already adopted');
  adoptedPorts.add(desc.port);
  const endpoint = new AdoptedEndpoint(desc);
  const sock = new KcmSocket({
    type: desc.type, sendBufferSize: desc.sendBufferSize, receiveBufferSize: desc.receiveBufferSize,
    index: desc.index, host: endpoint, endpoint,
  });
  endpoint.bind(sock);
  return sock;
}

/**
 * A KCM socket living in a worker: the endpoint, and the host, of a socket whose
 * multiplexor is in another thread. Its proxy there takes part in steering and transmit;
 * this side keeps the socket's own queue, readers and flowing mode, so every receive and
 * send call behaves as on any socket. As host it keeps the enter/leave discipline for
 * this one socket: work queued inside an operation runs when the outermost one ends, and
 * deliveries (user code) after it.
 *
 * - Each message read (or started, for a partial SEQPACKET read) is recorded in the
 *   shared counter before user code sees it; when the queue empties the count is
 *   posted, which frees the proxy's receive memory [S-5].
 * - Sent messages are posted once per tick, each transmit burst marked; they count
 *   against `sendBufferSize` until they leave the proxy's send queue [T-7].
 */
export class AdoptedEndpoint implements SocketEndpoint, SocketHost {
  readonly held = 0;
  /** The socket's queue is here: nothing is read elsewhere. */
  readElsewhere(): undefined {
    return undefined;
  }
  private readonly port: MessagePort;
  private readonly shared: Int32Array;
  private sock!: KcmSocket;
  /** Fully read count last posted. */
  private ackedMsgs = 0;
  ackScheduled = false;
  /** Messages taken for transmit, not yet posted. */
  private outMsgs: Buffer[][] = [];
  private outFlags: number[] = [];
  /** Psock ids the messages are pinned to (0: none) [K-3]. */
  private outPins: number[] = [];
  private outBytes = 0;
  /** Copy-pool buffers of large messages among them, given back once packed. */
  private outPooled: Buffer[] = [];
  /** The chunk of each small message among them, told once it is packed. */
  private outChunks: TxChunk[] = [];
  /** [K-5] ids of the psocks that can send, as the proxy last told. */
  private psockLive = new Set<number>();
  /** [K-5] the next id the multiplexor will give: ids below it and not live are done. */
  private psockNext = 1;
  /** [K-2] one frozen `{ id }` per psock, so origins cost no allocation per message. */
  private readonly origins = new Map<number, PsockRef>();
  outScheduled = false;
  portClosed = false;
  private depth = 0;
  private txPending = false;
  private touched = false;
  private flushing = false;

  constructor(desc: KcmWorkerPort) {
    this.port = desc.port;
    this.shared = new Int32Array(desc.shared);
  }

  bind(sock: KcmSocket): void {
    this.sock = sock;
    sock.rx.trackReads = true;
    (this.port as AdoptedPort)[kEndpoint] = this;
    this.port.on('message', adoptedPortOnMessage);
    this.port.on('close', adoptedPortOnClose);
  }

  // ------------------------------------------------------------ host

  enter(): void {
    this.depth++;
  }

  leave(): void {
    if (--this.depth > 0) return;
    this.depth = 0;
    if (this.txPending) {
      this.txPending = false;
      this.transmit(this.sock);
    }
    if (!this.flushing) this.flush();
  }

  touch(): void {
    this.touched = true;
  }

  scheduleTx(): void {
    this.txPending = true;
  }

  /** The proxy keeps the socket's place among the receive waiters; {@link taken} tells it. */
  socketReady(): void {}

  flushLater(): void {
    this.enter();
    this.leave();
  }

  private flush(): void {
    if (!this.touched) return;
    this.touched = false;
    this.flushing = true;
    try {
      this.sock.rx.flush();
    } catch (err) {
      // A listener threw: deliver the rest on the next tick.
      if (this.sock.rx.length > 0) {
        this.touched = true;
        process.nextTick(adoptedOnFlush, this);
      }
      throw err;
    } finally {
      this.flushing = false;
    }
  }

  // ------------------------------------------------------------ endpoint

  deliver(sock: KcmSocket): void {
    sock.rx.flush();
  }

  /**
   * Records what was read (a partly read message counts: it is never redelivered). When
   * the queue is empty, the proxy is told its memory is free, on the next turn of the
   * event loop: a thread busy with the message it just took (a listener, or the body of a
   * `for await`) takes no new one until it is done.
   */
  taken(sock: KcmSocket): void {
    const rx = sock.rx;
    // Reads resolved to callers that have not run yet are not gone: should the thread end
    // first, the proxy hands them on [O-6].
    Atomics.store(this.shared, SHARED_GONE, (rx.msgs + (rx.offset > 0 ? 1 : 0) - rx.unseen) | 0);
    if (!this.ackScheduled && rx.msgs !== this.ackedMsgs && rx.length === 0) {
      this.ackScheduled = true;
      setImmediate(adoptedOnAck, this);
    }
  }

  /** [S-5] the queue emptied: the proxy's receive memory is free. */
  ack(): void {
    this.ackScheduled = false;
    const rx = this.sock.rx;
    const read = rx.msgs - rx.unseen;
    if (read === this.ackedMsgs || rx.length > 0 || this.portClosed) return;
    this.ackedMsgs = read;
    this.port.postMessage({ t: MSG_ACK, consumed: read });
  }

  /** [T-11] here: the queued messages go to the proxy, one post per tick; one call is one burst. */
  transmit(sock: KcmSocket): void {
    const queue = sock.tx.queue;
    if (queue.length === 0 || sock.closed) return;
    // Views of the queue's copies, which nothing writes over; packed at the end of the tick.
    while (queue.length > 0) {
      const seg = queue.head()!;
      const pin = seg.pin;
      if (seg.pooled) this.outPooled.push(seg.buf);
      else if (seg.chunk !== undefined) this.outChunks.push(seg.chunk);
      const view = queue.takeView();
      this.outMsgs.push([view]);
      this.outPins.push(pin === undefined ? 0 : pin.id);
      this.outFlags.push(0);
      this.outBytes += view.length;
    }
    this.outFlags[this.outFlags.length - 1] = FLAG_BURST_END;
    if (!this.outScheduled) {
      this.outScheduled = true;
      process.nextTick(adoptedOnFlushOut, this);
    }
  }

  /** Never called: writes happen in the proxy. */
  requeue(): void {}

  flushOut(): void {
    this.outScheduled = false;
    const msgs = this.outMsgs;
    const pins = this.outPins;
    const flags = this.outFlags;
    const bytes = this.outBytes;
    this.outMsgs = [];
    this.outPins = [];
    this.outFlags = [];
    this.outBytes = 0;
    const pooled = this.outPooled;
    if (pooled.length > 0) this.outPooled = [];
    const chunks = this.outChunks;
    if (chunks.length > 0) this.outChunks = [];
    if (msgs.length === 0 || this.sock.closed) return;
    const buf = packSent(msgs, pins, flags, bytes);
    // Packed: nothing refers to the copies any more.
    for (let i = 0; i < pooled.length; i++) copyPool.give(pooled[i]!);
    for (let i = 0; i < chunks.length; i++) chunkWritten(chunks[i]!, 1);
    this.port.postMessage({ t: MSG_SEND, buf }, [buf]);
  }

  /**
   * KCM_RECV_DISABLE: disabling hands the queued messages (but a partly read one) and
   * any batch still on its way back to the proxy, which moves them to the other
   * sockets [D-3]; enabling lets the proxy take messages again [D-6].
   */
  recvDisable(sock: KcmSocket, disable: boolean): void {
    sock.rxDisabled = disable;
    if (disable) {
      const moved = sock.rx.takeAll(true, []);
      this.port.postMessage({ t: MSG_DISABLE, consumed: sock.rx.msgs, keep: sock.rx.length, n: moved.length });
    } else {
      this.port.postMessage({ t: MSG_ENABLE });
    }
  }

  /**
   * close: unsent messages are dropped; unread ones (including any still on their way)
   * move to the other sockets of the multiplexor, by the proxy [O-6]. Pending calls
   * reject with `EBADF`; iterators end.
   */
  close(sock: KcmSocket): void {
    const rx = sock.rx;
    Atomics.store(this.shared, SHARED_GONE, (rx.msgs + (rx.offset > 0 ? 1 : 0)) | 0);
    this.outMsgs = [];
    this.outPins = [];
    this.outFlags = [];
    this.outBytes = 0;
    this.outPooled = [];
    this.outChunks = [];
    sock.finishClose();
    this.closePort();
  }

  closePort(): void {
    if (this.portClosed) return;
    this.portClosed = true;
    this.port.off('message', adoptedPortOnMessage);
    this.port.off('close', adoptedPortOnClose);
    this.port.close();
  }

  onWire(m: WireMessage): void {
    const sock = this.sock;
    if (sock.closed) return;
    if (m.t === MSG_DATA) this.onData(sock, m.buf!);
    else if (m.t === MSG_CREDIT) sock.tx.credit(m.bytes!);
    else if (m.t === MSG_PSOCK) this.onPsock(m.id!, m.up!);
    else if (m.t === MSG_PSOCKS) this.onPsocks(m.live!, m.next!);
  }

  /** [K-5] the proxy's list of psocks that can send. */
  private onPsocks(live: number[], next: number): void {
    this.psockLive = new Set(live);
    if (next > this.psockNext) this.psockNext = next;
    for (const id of this.origins.keys()) if (!this.psockLive.has(id)) this.origins.delete(id);
  }

  /** [K-5] one psock attached, or done. */
  private onPsock(id: number, up: boolean): void {
    if (up) {
      this.psockLive.add(id);
      if (id >= this.psockNext) this.psockNext = id + 1;
    } else {
      this.psockLive.delete(id);
      this.origins.delete(id);
    }
  }

  /** [K-2] the origin object of a psock id. */
  private originOf(id: number): PsockRef {
    let ref = this.origins.get(id);
    if (ref === undefined) {
      ref = Object.freeze({ id });
      this.origins.set(id, ref);
      // Announced before its messages; this only guards the order of the two.
      if (id >= this.psockNext) {
        this.psockLive.add(id);
        this.psockNext = id + 1;
      }
    }
    return ref;
  }

  /**
   * [K-5] checked against the proxy's list: a psock that was attached and is done is
   * `EPIPE`, an id never given is `ENOENT`. One that fails after the call is dropped in
   * the multiplexor's thread and counted [K-6].
   */
  pinTarget(sock: KcmSocket, ref: PsockRef): PsockRef {
    void sock;
    const id = ref.id;
    if (this.psockLive.has(id)) return ref;
    if (Number.isInteger(id) && id >= 1 && id < this.psockNext) {
      throw new KcmError('EPIPE', `psock ${id} is done: a message pinned to it cannot be sent`);
    }
    throw new KcmError('ENOENT', `no psock with id ${String(id)} in this multiplexor`);
  }

  /** [K-4] pinned messages go to the proxy with the others, in call order. */
  pinned(sock: KcmSocket, msg: TxMessage): void {
    sock.tx.queue.pushPinned(msg.parts[0]!, msg.pin!);
    this.scheduleTx();
  }

  /** Never called: pinned bytes are credited by the proxy. */
  freed(): void {}

  /** Never called: drops happen in the multiplexor's thread. */
  dropped(): void {}

  /** [K-6] what the multiplexor's thread dropped of this socket's messages. */
  droppedCount(): number {
    return Atomics.load(this.shared, SHARED_DROPPED);
  }

  /** Never called: the proxy posts the changes. */
  psockChanged(): void {}

  /** A batch from the proxy. */
  private onData(sock: KcmSocket, buf: ArrayBuffer): void {
    const rx = sock.rx;
    if (sock.rxDisabled) {
      // [D-3] disabled meanwhile: the batch goes back whole.
      const n = new Uint32Array(buf, 0, 1)[0]!;
      this.port.postMessage({ t: MSG_RETURN, consumed: rx.msgs, keep: rx.length, n });
      return;
    }
    this.enter();
    try {
      unpackReceived(buf, (data, ends, from, to, id) => rx.enqueueAll(data, from === 0 ? 0 : ends[from - 1]!, ends, from, to, this.originOf(id)));
      this.touched = true;
    } finally {
      this.leave();
    }
  }

  /** The proxy closed (from the multiplexor's thread, or that thread ended). */
  onPortClose(): void {
    this.portClosed = true;
    this.sock.close();
  }
}

function adoptedPortOnMessage(this: AdoptedPort, m: WireMessage): void {
  this[kEndpoint]?.onWire(m);
}

function adoptedPortOnClose(this: AdoptedPort): void {
  this[kEndpoint]?.onPortClose();
}

function adoptedOnAck(endpoint: AdoptedEndpoint): void {
  endpoint.ack();
}

function adoptedOnFlushOut(endpoint: AdoptedEndpoint): void {
  endpoint.flushOut();
}

function adoptedOnFlush(endpoint: AdoptedEndpoint): void {
  endpoint.flushLater();
}
