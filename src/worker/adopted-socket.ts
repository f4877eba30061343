import type { MessagePort } from 'node:worker_threads';
import type * as net from 'node:net';
import { KcmError } from '../errors.js';
import { KcmSocket, type ReceiveIntoResult, type ReceiveOptions } from '../mux/kcm-socket.js';
import { Multiplexor } from '../mux/multiplexor.js';
import type { Psock } from '../mux/psock.js';
import {
  FLAG_BURST_END, MSG_ACK, MSG_CREDIT, MSG_DATA, MSG_DISABLE, MSG_ENABLE, MSG_RETURN, MSG_SEND, SHARED_GONE,
  packSent, unpackReceived, type WireMessage,
} from './protocol.js';
import { checkWorkerPort, type KcmWorkerPort } from './worker-port.js';

const kSocket = Symbol('kcm.adoptedSocket');

type AdoptedPort = MessagePort & { [kSocket]?: AdoptedKcmSocket };

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
  return new (adoptedSocketClass())(desc);
}

/**
 * The class is made on first use: it extends KcmSocket, whose module imports this one,
 * so it cannot be defined while that module is still loading.
 */
function defineAdoptedKcmSocket() {
  /**
   * A KCM socket living in a worker; its proxy in the multiplexor's thread takes part in
   * steering and transmit. The socket keeps its own queue, readers and flowing mode (on a
   * private multiplexor of this thread, which has no transports), so every receive and
   * send call behaves as on any socket.
   *
   * - Each message read (or started, for a partial SEQPACKET read) is recorded in the
   *   shared counter before user code sees it; when the queue empties the count is
   *   posted, which frees the proxy's receive memory [S-5].
   * - Sent messages are posted once per tick, each transmit burst marked; they count
   *   against `sendBufferSize` until they leave the proxy's send queue [T-7].
   */
  return class AdoptedKcmSocket extends KcmSocket {
    /** @internal */ readonly port: MessagePort;
    /** @internal */ readonly shared: Int32Array;
    /** @internal Fully read count last posted. */ ackedMsgs = 0;
    /** @internal */ ackScheduled = false;
    /** @internal Messages taken for transmit, not yet posted. */ outMsgs: Buffer[][] = [];
    /** @internal */ outFlags: number[] = [];
    /** @internal */ outBytes = 0;
    /** @internal */ outScheduled = false;
    /** @internal */ portClosed = false;

    /** @internal Use {@link KcmSocket.adopt}. */
    constructor(desc: KcmWorkerPort) {
      super(new Multiplexor(), desc.type, desc.sendBufferSize, desc.receiveBufferSize);
      this.index = desc.index;
      this.port = desc.port;
      this.shared = new Int32Array(desc.shared);
      (this.port as AdoptedPort)[kSocket] = this;
      this.port.on('message', adoptedPortOnMessage);
      this.port.on('close', adoptedPortOnClose);
    }

    /** Not available in a worker: the transports stay in the multiplexor's thread. @throws KcmError `EOPNOTSUPP` */
    override attach(transport: net.Socket, options: Parameters<KcmSocket['attach']>[1]): Psock {
      void transport;
      void options;
      throw this.unsupported('attach');
    }

    /** Not available in a worker. @throws KcmError `EOPNOTSUPP` */
    override unattach(transport: net.Socket): void {
      void transport;
      throw this.unsupported('unattach');
    }

    /** Not available in a worker: clone in the multiplexor's thread. @throws KcmError `EOPNOTSUPP` */
    override clone(): KcmSocket {
      throw this.unsupported('clone');
    }

    /** Not available in a worker: clone in the multiplexor's thread. @throws KcmError `EOPNOTSUPP` */
    override cloneForWorker(): KcmWorkerPort {
      throw this.unsupported('cloneForWorker');
    }

    private unsupported(what: string): KcmError {
      if (this.closed) return new KcmError('EBADF', `${what}: the KCM socket is closed`);
      return new KcmError('EOPNOTSUPP', `${what} is not available on a socket adopted in a worker: use the multiplexor's thread`);
    }

    // -------------------------------------------------------------- receive

    override receive(options?: ReceiveOptions): Promise<Buffer> {
      const p = super.receive(options);
      this.consumed();
      return p;
    }

    override tryReceive(): Buffer | undefined {
      const m = super.tryReceive();
      if (m !== undefined) this.consumed();
      return m;
    }

    override receiveMany(max?: number, options?: ReceiveOptions): Promise<Buffer[]> {
      const p = super.receiveMany(max, options);
      this.consumed();
      return p;
    }

    override receiveInto(target: Uint8Array, options?: ReceiveOptions): Promise<ReceiveIntoResult> {
      const p = super.receiveInto(target, options);
      this.consumed();
      return p;
    }

    /** @internal Waiting readers settle here; `'message'` listeners go through {@link emit}. */
    override rxFlush(): void {
      super.rxFlush();
      this.consumed();
    }

    /** Records a message read before its `'message'` listeners run. */
    override emit(event: string | symbol, ...args: unknown[]): boolean {
      if (event === 'message') this.consumed();
      return super.emit(event, ...args);
    }

    /**
     * @internal Records what was read (a partly read message counts: it is never
     * redelivered). When the queue is empty, the proxy is told its memory is free, on the
     * next turn of the event loop: a thread busy with the message it just took (a
     * listener, or the body of a `for await`) takes no new one until it is done.
     */
    consumed(): void {
      Atomics.store(this.shared, SHARED_GONE, (this.rxMsgs + (this.rxOffset > 0 ? 1 : 0)) | 0);
      if (!this.ackScheduled && this.rxMsgs !== this.ackedMsgs && this.rxQueue.length === 0) {
        this.ackScheduled = true;
        setImmediate(adoptedOnAck, this);
      }
    }

    /** @internal [S-5] the queue emptied: the proxy's receive memory is free. */
    ack(): void {
      this.ackScheduled = false;
      const read = this.rxMsgs;
      if (read === this.ackedMsgs || this.rxQueue.length > 0 || this.portClosed) return;
      this.ackedMsgs = read;
      this.port.postMessage({ t: MSG_ACK, consumed: read });
    }

    /** @internal A batch from the proxy. */
    onData(buf: ArrayBuffer): void {
      if (this.closed) return;
      if (this.rxDisabled) {
        // [D-3] disabled meanwhile: the batch goes back whole.
        const n = new Uint32Array(buf, 0, 1)[0]!;
        this.port.postMessage({ t: MSG_RETURN, consumed: this.rxMsgs, keep: this.rxQueue.length, n });
        return;
      }
      const mux = this.mux;
      mux.enter();
      try {
        unpackReceived(buf, (m) => this.rxEnqueue(m));
        mux.touch(this);
      } finally {
        mux.leave();
      }
    }

    /**
     * KCM_RECV_DISABLE: disabling hands the queued messages (but a partly read one) and
     * any batch still on its way back to the proxy, which moves them to the other
     * sockets [D-3]; enabling lets the proxy take messages again [D-6].
     */
    override setRecvDisable(disable: boolean): void {
      if (typeof disable !== 'boolean' || this.closed || disable === this.rxDisabled) {
        super.setRecvDisable(disable); // argument and EBADF checks, or the no-op [D-1]
        return;
      }
      this.rxDisabled = disable;
      if (disable) {
        const moved = this.rxTakeAll(true);
        this.port.postMessage({ t: MSG_DISABLE, consumed: this.rxMsgs, keep: this.rxQueue.length, n: moved.length });
      } else {
        this.port.postMessage({ t: MSG_ENABLE });
      }
    }

    // -------------------------------------------------------------- transmit

    /** @internal [T-11] here: the queued messages go to the proxy, one post per tick; one call is one burst. */
    override txWork(): void {
      const queue = this.txQueue;
      if (queue.length === 0 || this.closed) return;
      while (queue.length > 0) {
        const msg = queue.shift()!;
        this.outMsgs.push(msg.parts);
        this.outFlags.push(0);
        this.outBytes += msg.length;
      }
      this.outFlags[this.outFlags.length - 1] = FLAG_BURST_END;
      if (!this.outScheduled) {
        this.outScheduled = true;
        process.nextTick(adoptedOnFlushOut, this);
      }
    }

    /** @internal */
    flushOut(): void {
      this.outScheduled = false;
      const msgs = this.outMsgs;
      const flags = this.outFlags;
      const bytes = this.outBytes;
      this.outMsgs = [];
      this.outFlags = [];
      this.outBytes = 0;
      if (msgs.length === 0 || this.closed) return;
      const buf = packSent(msgs, flags, bytes);
      this.port.postMessage({ t: MSG_SEND, buf }, [buf]);
    }

    /** @internal Bytes left the proxy's send queue: waiting sends proceed [T-9]. */
    onCredit(bytes: number): void {
      if (this.closed) return;
      this.smem -= bytes;
      this.pumpSenders();
    }

    // -------------------------------------------------------------- close

    /**
     * close: unsent messages are dropped; unread ones (including any still on their way)
     * move to the other sockets of the multiplexor [O-6]. Pending calls reject with
     * `EBADF`; iterators end.
     */
    override close(): void {
      if (this.closed) return;
      Atomics.store(this.shared, SHARED_GONE, (this.rxMsgs + (this.rxOffset > 0 ? 1 : 0)) | 0);
      this.outMsgs = [];
      this.outFlags = [];
      this.outBytes = 0;
      super.close();
      this.closePort();
    }

    /** @internal */
    closePort(): void {
      if (this.portClosed) return;
      this.portClosed = true;
      this.port.off('message', adoptedPortOnMessage);
      this.port.off('close', adoptedPortOnClose);
      this.port.close();
    }

    /** @internal */
    onWire(m: WireMessage): void {
      if (m.t === MSG_DATA) this.onData(m.buf!);
      else if (m.t === MSG_CREDIT) this.onCredit(m.bytes!);
    }
  };
}

type AdoptedKcmSocketClass = ReturnType<typeof defineAdoptedKcmSocket>;
type AdoptedKcmSocket = InstanceType<AdoptedKcmSocketClass>;

let adoptedClass: AdoptedKcmSocketClass | undefined;

function adoptedSocketClass(): AdoptedKcmSocketClass {
  return (adoptedClass ??= defineAdoptedKcmSocket());
}

function adoptedPortOnMessage(this: AdoptedPort, m: WireMessage): void {
  this[kSocket]?.onWire(m);
}

/** The proxy closed (from the multiplexor's thread, or that thread ended). */
function adoptedPortOnClose(this: AdoptedPort): void {
  const sock = this[kSocket];
  if (sock === undefined) return;
  sock.portClosed = true;
  sock.close();
}

function adoptedOnAck(sock: AdoptedKcmSocket): void {
  sock.ack();
}

function adoptedOnFlushOut(sock: AdoptedKcmSocket): void {
  sock.flushOut();
}
