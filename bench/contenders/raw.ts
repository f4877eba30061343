/**
 * The ceiling: unframed TCP. The sender writes 64 KiB blocks of back-to-back frames and the
 * receiver only counts bytes, so this measures what loopback TCP and Node's stream layer
 * carry with no per-message work at all.
 */
import { closeServer, connect, listen, makeFrame, type Contender, type Endpoint, type ReceiveOptions, type Running, type SendOptions, type Tally, writeRoundRobin } from './contender.js';

export const rawContender: Contender = {
  name: 'raw',

  async receive(o: ReceiveOptions, tally: Tally): Promise<Endpoint> {
    void o;
    const s = await listen((socket) => {
      socket.on('data', (chunk: Buffer) => {
        tally.bytes += chunk.length;
        tally.check = (tally.check + chunk[chunk.length - 1]!) | 0;
      });
    });
    return { address: s.address, bytesOnly: true, close: () => closeServer(s) };
  },

  async send(o: SendOptions): Promise<Running> {
    const sockets = await connect(o.address, o.connections);
    const frame = makeFrame(o.size);
    const count = Math.max(1, Math.floor(65536 / frame.length));
    const block = Buffer.concat(new Array<Buffer>(count).fill(frame));
    return writeRoundRobin(sockets, block);
  },

  echo(): Promise<Endpoint> {
    return Promise.reject(new Error('raw TCP has no messages to echo'));
  },

  ping(): Promise<number[]> {
    return Promise.reject(new Error('raw TCP has no messages to echo'));
  },
};
