/**
 * The baseline: hand-written framing over `net`. The sender writes each frame (header and
 * payload in one Buffer) with `socket.write()`, round-robin over its connections, and waits
 * for 'drain' when a socket's buffer is full; the receiver frames each connection with
 * {@link NetFramer}.
 */
import { NetFramer } from './net-framer.js';
import { closeServer, connect, listen, makeFrame, microsSince, type Contender, type Endpoint, type PingOptions, type ReceiveOptions, type Running, type SendOptions, type Tally, writeRoundRobin } from './contender.js';

export const netContender: Contender = {
  name: 'net',

  async receive(o: ReceiveOptions, tally: Tally): Promise<Endpoint> {
    void o;
    const onMessage = (m: Buffer): void => tally.onMessage(m);
    const s = await listen((socket) => {
      const framer = new NetFramer(onMessage);
      socket.on('data', (chunk: Buffer) => framer.push(chunk));
    });
    return { address: s.address, close: () => closeServer(s) };
  },

  async send(o: SendOptions): Promise<Running> {
    const sockets = await connect(o.address, o.connections);
    const frame = makeFrame(o.size);
    return writeRoundRobin(sockets, frame);
  },

  async echo(): Promise<Endpoint> {
    const s = await listen((socket) => {
      const framer = new NetFramer((m) => socket.write(m));
      socket.on('data', (chunk: Buffer) => framer.push(chunk));
    });
    return { address: s.address, close: () => closeServer(s) };
  },

  async ping(o: PingOptions): Promise<number[]> {
    const [socket] = await connect(o.address, 1);
    const frame = makeFrame(o.size);
    let wake: (() => void) | undefined;
    const framer = new NetFramer(() => wake!());
    socket!.on('data', (chunk: Buffer) => framer.push(chunk));
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
