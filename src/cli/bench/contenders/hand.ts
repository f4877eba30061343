/**
 * The baseline: the 4-byte length framing a competent Node developer writes over `net`.
 * The sender copies small frames into ~64 KiB batch buffers, one `write()` per buffer,
 * large frames by reference under `cork()` ({@link FrameWriter}), one loop per connection
 * waiting for 'drain' when the socket asks; the receiver hands out `subarray`s of each
 * chunk ({@link FrameReader}), each message to a callback one by one.
 *
 * `naiveSender` is the per-frame `write()` sender (`net-naive`), kept to show what
 * batching buys.
 */
import type * as net from 'node:net';
import { FrameReader } from '../frame-reader.js';
import { FrameWriter } from '../frame-writer.js';
import { burstOf, closeServer, connect, Deadline, drained, ignore, listen, makeFrame, microsSince, YIELD_BYTES, yieldToLoop, type Tally } from '../wire.js';
import type { Endpoint, Pinger, ReceiveOptions, Receiver, Running, Sender, SendOptions } from './contender.js';

export const handReceiver: Receiver = {
  async receive(_o: ReceiveOptions, tally: Tally): Promise<Endpoint> {
    const onMessage = (m: Buffer): void => tally.onMessage(m);
    const s = await listen((socket) => {
      const reader = new FrameReader(onMessage);
      socket.on('data', (chunk: Buffer) => reader.push(chunk));
    });
    return { address: s.address, close: () => closeServer(s) };
  },
};

/** Runs `loop` on each socket, from the next turn of the event loop until stopped; stop destroys the sockets. */
function perSocket(sockets: net.Socket[], durationMs: number, loop: (s: net.Socket, running: Deadline) => Promise<void>): Running {
  const running = new Deadline(durationMs);
  const done = sockets.map(async (s) => {
    await yieldToLoop();
    await loop(s, running);
  });
  for (const d of done) d.catch(ignore);
  return {
    async stop() {
      running.stop();
      for (const s of sockets) s.destroy();
      await Promise.allSettled(done);
    },
  };
}

export const handSender: Sender = {
  async send(o: SendOptions): Promise<Running> {
    const sockets = await connect(o.address, o.connections);
    const frame = makeFrame(o.size);
    const burst = burstOf(frame.length);
    return perSocket(sockets, o.durationMs, async (socket, running) => {
      const writer = new FrameWriter(socket);
      let queued = 0;
      while (running.on()) {
        let ok = true;
        for (let i = 0; i < burst; i++) ok = writer.write(frame);
        queued += burst * frame.length;
        if (!ok || queued >= YIELD_BYTES) {
          // Out with the partial batch before waiting: the peer should not wait for it.
          queued = 0;
          if (writer.flush()) await yieldToLoop();
          else await drained(socket);
        }
      }
    });
  },
};

export const naiveSender: Sender = {
  async send(o: SendOptions): Promise<Running> {
    const sockets = await connect(o.address, o.connections);
    const frame = makeFrame(o.size);
    return perSocket(sockets, o.durationMs, async (socket, running) => {
      let queued = 0;
      while (running.on()) {
        queued += frame.length;
        if (!socket.write(frame)) {
          queued = 0;
          await drained(socket);
        } else if (queued >= YIELD_BYTES) {
          queued = 0;
          await yieldToLoop();
        }
      }
    });
  },
};

/** Counts bytes and frames nothing: the peer of the send-side section. */
export const discardReceiver: Receiver = {
  async receive(_o: ReceiveOptions, tally: Tally): Promise<Endpoint> {
    const s = await listen((socket) => {
      socket.on('data', (chunk: Buffer) => tally.onBytes(chunk));
    });
    return { address: s.address, bytesOnly: true, close: () => closeServer(s) };
  },
};

export const handPinger: Pinger = {
  async echo(): Promise<Endpoint> {
    const s = await listen((socket) => {
      const reader = new FrameReader((m) => socket.write(m));
      socket.on('data', (chunk: Buffer) => reader.push(chunk));
    });
    return { address: s.address, close: () => closeServer(s) };
  },

  async ping(o): Promise<number[]> {
    const [socket] = await connect(o.address, 1);
    const frame = makeFrame(o.size);
    let wake: (() => void) | undefined;
    const reader = new FrameReader(() => wake!());
    socket!.on('data', (chunk: Buffer) => reader.push(chunk));
    const rtts: number[] = [];
    for (let i = 0; i < o.warmup + o.count; i++) {
      const start = process.hrtime.bigint();
      const back = new Promise<void>((resolve) => (wake = resolve));
      socket!.write(frame);
      await back;
      if (i >= o.warmup) rtts.push(microsSince(start));
    }
    socket!.destroy();
    return rtts;
  },
};
