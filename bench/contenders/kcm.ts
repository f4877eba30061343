/**
 * kcm through its public API. The receiver is one KCM socket on a multiplexor with every
 * accepted connection attached; it takes messages with a 'message' listener (mode
 * `message`) or `receiveMany()` (mode `many`). The sender is one multiplexor with one KCM
 * socket per connection, each sending the same frame (send does not copy) with `sendMany`
 * bursts (mode `many`) or `trySend`/`send` one message at a time (mode `send`).
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KcmSocket, lengthField, loadBpf, type Parser } from '../../src/index.js';
import { closeServer, connect, ignore, listen, makeFrame, microsSince, YIELD_BYTES, yieldToLoop, type Contender, type Endpoint, type PingOptions, type ReceiveOptions, type Running, type SendOptions, type Tally } from './contender.js';

/** The Thrift framing parser built from C by clang, as committed with the tests. */
const thriftObject = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'fixtures', 'bpf', 'thrift.o');

/**
 * kcm with the given parser: `kcm` frames with `lengthField({ size: 4, adjust: 4 })`,
 * `kcm-bpf` with the same framing as a compiled eBPF object (`test/fixtures/bpf/thrift.o`).
 */
function kcmWith(name: string, makeParser: () => Parser): Contender {
  let cached: Parser | undefined;
  const parserOf = (): Parser => (cached ??= makeParser());
  return {
  name,

  async receive(o: ReceiveOptions, tally: Tally): Promise<Endpoint> {
    const sock = KcmSocket.create();
    sock.mux.on('psockerror', ignore);
    const s = await listen((socket) => sock.attach(socket, { parser: parserOf() }));
    if (o.mode === 'many') {
      void (async () => {
        for (;;) {
          const batch = await sock.receiveMany();
          for (let i = 0; i < batch.length; i++) tally.onMessage(batch[i]!);
        }
      })().catch(ignore);
    } else {
      sock.on('message', (m: Buffer) => tally.onMessage(m));
    }
    return {
      address: s.address,
      async close() {
        sock.close();
        await closeServer(s);
      },
    };
  },

  async send(o: SendOptions): Promise<Running> {
    const transports = await connect(o.address, o.connections);
    const first = KcmSocket.create();
    first.mux.on('psockerror', ignore);
    const socks = [first];
    for (let i = 1; i < o.connections; i++) socks.push(first.clone());
    for (const t of transports) first.attach(t, { parser: parserOf() });
    const frame = makeFrame(o.size);
    const burst = Math.max(1, Math.min(256, Math.floor(65536 / frame.length)));
    const batch = new Array<Buffer>(burst).fill(frame);
    let running = true;
    const loop = async (sock: KcmSocket): Promise<void> => {
      let queued = 0;
      if (o.mode === 'send') {
        while (running) {
          if (!sock.trySend(frame)) await sock.send(frame);
          queued += frame.length;
          if (queued >= YIELD_BYTES) {
            queued = 0;
            await yieldToLoop();
          }
        }
      } else {
        while (running) {
          await sock.sendMany(batch);
          queued += burst * frame.length;
          if (queued >= YIELD_BYTES) {
            queued = 0;
            await yieldToLoop();
          }
        }
      }
    };
    const done = socks.map((s) => loop(s).catch(ignore));
    return {
      async stop() {
        running = false;
        for (const s of socks) s.close();
        for (const t of transports) t.destroy();
        void done;
      },
    };
  },

  async echo(): Promise<Endpoint> {
    const sock = KcmSocket.create();
    sock.mux.on('psockerror', ignore);
    const s = await listen((socket) => sock.attach(socket, { parser: parserOf() }));
    sock.on('message', (m: Buffer) => {
      sock.send(m).catch(ignore);
    });
    return {
      address: s.address,
      async close() {
        sock.close();
        await closeServer(s);
      },
    };
  },

  async ping(o: PingOptions): Promise<number[]> {
    const [transport] = await connect(o.address, 1);
    const sock = KcmSocket.create();
    sock.mux.on('psockerror', ignore);
    sock.attach(transport!, { parser: parserOf() });
    const frame = makeFrame(o.size);
    const rtts: number[] = [];
    for (let i = 0; i < o.warmup + o.count; i++) {
      const start = process.hrtime.bigint();
      const back = sock.receive();
      await sock.send(frame);
      await back;
      if (i >= o.warmup) rtts.push(microsSince(start));
    }
    sock.close();
    transport!.destroy();
    return rtts;
  },
};
}

export const kcmContender: Contender = kcmWith('kcm', () => lengthField({ size: 4, adjust: 4 }));
export const kcmBpfContender: Contender = kcmWith('kcm-bpf', () => loadBpf(thriftObject));
