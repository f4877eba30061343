import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { Fifo } from '../mux/fifo.js';
import { KcmSocket } from '../mux/kcm-socket.js';
import type { KcmSocketMuxStats } from '../mux/multiplexor.js';
import type { TxMessage } from '../mux/tx-message.js';
import {
  FLAG_BURST_END, MSG_ACK, MSG_CREDIT, MSG_DATA, MSG_DISABLE, MSG_ENABLE, MSG_RETURN, MSG_SEND, SHARED_GONE, SHARED_SLOTS,
  packReceived, unpackSent, type WireMessage,
} from './protocol.js';
import type { KcmWorkerPort } from './worker-port.js';

const kProxy = Symbol('kcm.workerProxy');
const BATCH = { batch: true } as const;

type ProxyPort = MessagePort & { [kProxy]?: WorkerProxySocket };

/**
 * SIOCKCMCLONE for another thread: a new socket of `origin`'s multiplexor, same type and
 * options, whose user side lives wherever the returned port is adopted.
 */
export function cloneForWorker(origin: KcmSocket): KcmWorkerPort {
  const { port1, port2 } = new MessageChannel();
  const shared = new SharedArrayBuffer(4 * SHARED_SLOTS);
  const Proxy = proxySocketClass();
  const proxy = new Proxy(origin.mux, origin.type, origin.sendBufferSize, origin.receiveBufferSize);
  proxy.bindPort(port1, shared);
  return {
    kind: 'kcm-worker-port',
    port: port2,
    shared,
    type: proxy.type,
    sendBufferSize: proxy.sendBufferSize,
    receiveBufferSize: proxy.receiveBufferSize,
    index: proxy.index,
    transferList: [port2],
  };
}

/**
 * The class is made on first use: it extends KcmSocket, whose module imports this one,
 * so it cannot be defined while that module is still loading.
 */
function defineWorkerProxySocket() {
  /**
   * The multiplexor's side of a socket adopted in a worker: a real member of the mux.
   *
   * Receive: it is steered to as any socket [S-1 … S-6]. Its receive memory (`rmem`)
   * counts messages steered to it and not yet read in the worker: those queued here,
   * those posted, those queued there. So a slow worker is skipped once it holds
   * `receiveBufferSize` bytes (one message at least) [S-3], and the proxy rejoins the
   * waiters only when the worker has drained everything [S-5]. Each flush (one receive
   * burst) posts one batch. The proxy keeps the messages it posted until the worker
   * reports them read, so that a worker that disables receive or dies hands its unread
   * messages to the other sockets [D-3, O-6].
   *
   * Transmit: the worker's messages are queued here and written as this socket's own
   * [T-11 … T-19]; bytes leaving the send queue are credited back, so the worker's
   * `send()` waits while `sendBufferSize` bytes are between threads or queued here [T-7].
   */
  return class WorkerProxySocket extends KcmSocket {
    /** @internal */ port: MessagePort | undefined = undefined;
    /** @internal */ shared: Int32Array | undefined = undefined;
    /** @internal Messages posted to the worker, not yet known to be read there, oldest first. */
    readonly inflight = new Fifo<Buffer>();
    /** @internal Messages the worker has reported fully read. */
    acked = 0;
    /** @internal Send-queue bytes freed since the last credit (negative after a retry). */
    creditPending = 0;
    /** @internal */ creditScheduled = false;

    /** @internal */
    bindPort(port: MessagePort, shared: SharedArrayBuffer): void {
      this.port = port;
      this.shared = new Int32Array(shared);
      (port as ProxyPort)[kProxy] = this;
      port.on('message', proxyPortOnMessage);
      port.on('close', proxyPortOnClose);
      // The worker, not this port, keeps the thread alive: a proxy never holds the process.
      port.unref();
      // Messages taken while the constructor ran (hold queue, ready psocks) go now.
      if (this.rxQueue.length > 0) {
        this.mux.touch(this);
        this.mux.flushLater();
      }
    }

    /** @internal One burst, one batch posted to the worker; the bytes stay counted until read there. */
    override rxFlush(): void {
      const queue = this.rxQueue;
      const port = this.port;
      if (queue.length === 0 || port === undefined || this.closed) return;
      const messages = queue.drain();
      let bytes = 0;
      for (const m of messages) {
        bytes += m.length;
        this.inflight.push(m);
      }
      const buf = packReceived(messages, bytes);
      port.postMessage({ t: MSG_DATA, buf }, [buf]);
    }

    /** @internal [T-11] writes, then credits the worker with the bytes that left the queue. */
    override txWork(): void {
      const before = this.smem;
      super.txWork();
      this.credit(before - this.smem);
    }

    /** @internal [T-16] a message back in the queue counts against the worker again. */
    override txRequeue(msg: TxMessage, at: number): void {
      super.txRequeue(msg, at);
      this.credit(-msg.length);
    }

    /** @internal */
    credit(bytes: number): void {
      if (bytes === 0 || this.closed) return;
      this.creditPending += bytes;
      if (!this.creditScheduled) {
        this.creditScheduled = true;
        process.nextTick(proxyOnCredit, this);
      }
    }

    /** @internal */
    onWire(m: WireMessage): void {
      if (this.closed) return;
      switch (m.t) {
        case MSG_SEND:
          this.onSend(m.buf!);
          break;
        case MSG_ACK:
          this.onAck(m.consumed!);
          break;
        case MSG_DISABLE:
        case MSG_RETURN:
          this.onReturn(m.consumed!, m.keep!, m.n!, m.t === MSG_DISABLE);
          break;
        case MSG_ENABLE:
          this.onEnable();
          break;
      }
    }

    private onSend(buf: ArrayBuffer): void {
      unpackSent(buf, (message, flag) => {
        // The worker admitted it against the same sendBufferSize, so this never waits;
        // if it did (a closed socket), the rejection must not go unhandled.
        const waits = this.sendWaiters.length > 0 || (this.openMsg === undefined && this.smem >= this.sendBufferSize);
        const p = this.send(message, flag === FLAG_BURST_END ? undefined : BATCH);
        if (waits) p.catch(noop);
      });
    }

    /** The worker read every message up to `consumed`: their memory is free [S-5]. */
    private onAck(consumed: number): void {
      const count = consumed - this.acked;
      if (count <= 0) return;
      const mux = this.mux;
      mux.enter();
      try {
        this.takeRead(count);
        if (this.rmem === 0) mux.socketReady(this);
      } finally {
        mux.leave();
      }
    }

    /** [D-3] messages handed back by the worker move to other sockets, oldest first. */
    private onReturn(consumed: number, keep: number, n: number, disable: boolean): void {
      const mux = this.mux;
      mux.enter();
      try {
        if (disable) {
          this.rxDisabled = true;
          mux.leaveRxWaiters(this);
        }
        const skip = consumed - this.acked + keep;
        const all = this.inflight.drain();
        const moved = all.splice(skip, n);
        for (const m of all) this.inflight.push(m);
        for (const m of moved) this.rmem -= m.length;
        if (disable) {
          for (const m of this.rxQueue.drain()) {
            this.rmem -= m.length;
            moved.push(m);
          }
        }
        mux.requeue(moved);
        if (this.rmem === 0) mux.socketReady(this);
      } finally {
        mux.leave();
      }
    }

    /** [D-6] */
    private onEnable(): void {
      const mux = this.mux;
      mux.enter();
      try {
        this.rxDisabled = false;
        mux.socketReady(this);
      } finally {
        mux.leave();
      }
    }

    /** Drops the `count` oldest posted messages, read in the worker. */
    private takeRead(count: number): void {
      let bytes = 0;
      let n = 0;
      for (; n < count; n++) {
        const m = this.inflight.shift();
        if (m === undefined) break;
        bytes += m.length;
      }
      this.acked += count;
      this.rmem -= bytes;
      this.rxMsgs += n;
      this.rxBytes += bytes;
    }

    /**
     * close from this thread: stops steering and transmit at once [O-6]. Messages already
     * posted to the worker count as delivered (the worker may be reading them right now,
     * and no message may be read twice); the worker's socket closes when it sees the port
     * close.
     */
    override close(): void {
      this.shutdown(false);
    }

    /**
     * @internal The socket ends. `exact`: the worker is gone (closed, exited, crashed),
     * and the shared counter tells exactly which posted messages it never saw: those move
     * to the other sockets [O-6 step 5]; messages it had read are gone.
     */
    shutdown(exact: boolean): void {
      if (this.closed) return;
      const mux = this.mux;
      mux.enter();
      try {
        mux.leaveRxWaiters(this);
        this.rxDisabled = true;
        let unread: Buffer[] = [];
        if (exact && this.shared !== undefined) {
          const gone = (Atomics.load(this.shared, SHARED_GONE) - (this.acked | 0)) | 0;
          this.takeRead(Math.max(0, gone));
          unread = this.inflight.drain();
        } else {
          this.takeRead(this.inflight.length);
        }
        mux.requeue(unread);
        super.close();
      } finally {
        mux.leave();
      }
      const port = this.port;
      if (port !== undefined) {
        port.off('message', proxyPortOnMessage);
        port.off('close', proxyPortOnClose);
        if (!exact) port.close();
      }
    }

    /** @internal Its row in the mux statistics: messages in the worker count as queued. */
    override muxStats(): KcmSocketMuxStats {
      const s = super.muxStats();
      s.rxQueued += this.inflight.length;
      return s;
    }
  };
}

type WorkerProxySocketClass = ReturnType<typeof defineWorkerProxySocket>;
type WorkerProxySocket = InstanceType<WorkerProxySocketClass>;

let proxyClass: WorkerProxySocketClass | undefined;

function proxySocketClass(): WorkerProxySocketClass {
  return (proxyClass ??= defineWorkerProxySocket());
}

function proxyPortOnMessage(this: ProxyPort, m: WireMessage): void {
  this[kProxy]?.onWire(m);
}

/** The worker closed its socket, exited, crashed or was terminated. */
function proxyPortOnClose(this: ProxyPort): void {
  this[kProxy]?.shutdown(true);
}

function proxyOnCredit(proxy: WorkerProxySocket): void {
  proxy.creditScheduled = false;
  const bytes = proxy.creditPending;
  proxy.creditPending = 0;
  if (bytes !== 0 && !proxy.closed) proxy.port!.postMessage({ t: MSG_CREDIT, bytes });
}

function noop(): void {}
