/**
 * kcm through its public API, with a parser given by the caller (`lengthField` or the
 * Thrift framing as a compiled eBPF object).
 *
 * Receivers: one KCM socket on a multiplexor with every accepted connection attached,
 * taking messages with a 'message' listener (`message`) or `receiveMany()` (`many`).
 *
 * Senders: one multiplexor, one KCM socket per connection, each running one of the loops
 * a user writes, sending the same frame over and over:
 * - `many`:       `for (;;) await sock.sendMany(batch)`, no yields;
 * - `many-nocopy`: the same with `{ copy: false }`: large frames go by reference;
 * - `many-yield`: the same with a `setImmediate` after every batch;
 * - `send`:       `for (;;) await sock.send(frame)`, no yields;
 * - `try-send`:   `if (!sock.trySend(frame)) await sock.send(frame)`, no yields.
 */
import { KcmSocket, type Parser } from '../../../index.js';
import { burstOf, closeServer, connect, Deadline, ignore, listen, makeFrame, microsSince, yieldToLoop, type Tally } from '../wire.js';
import type { Endpoint, Pinger, ReceiveOptions, Receiver, Running, Sender, SendOptions } from './contender.js';

/** The loops of a kcm sender, by name. */
export const kcmSendLoops = ['many', 'many-nocopy', 'many-yield', 'send', 'try-send'] as const;
export type KcmSendLoop = (typeof kcmSendLoops)[number];
/** The ways a kcm receiver takes messages, by name. */
export const kcmReceiveModes = ['message', 'many'] as const;
export type KcmReceiveMode = (typeof kcmReceiveModes)[number];

export interface KcmParts {
  receivers: Record<KcmReceiveMode, Receiver>;
  senders: Record<KcmSendLoop, Sender>;
  pinger: Pinger;
}

/** The frame never changes: it can be handed over. */
const HANDED_OVER = { copy: false } as const;

async function sendLoop(sock: KcmSocket, loop: KcmSendLoop, frame: Buffer, batch: Buffer[], running: Deadline): Promise<void> {
  await yieldToLoop();
  switch (loop) {
    case 'many':
      while (running.on()) await sock.sendMany(batch);
      return;
    case 'many-nocopy':
      while (running.on()) await sock.sendMany(batch, HANDED_OVER);
      return;
    case 'many-yield':
      while (running.on()) {
        await sock.sendMany(batch);
        await yieldToLoop();
      }
      return;
    case 'send':
      while (running.on()) await sock.send(frame);
      return;
    case 'try-send':
      while (running.on()) if (!sock.trySend(frame)) await sock.send(frame);
      return;
  }
}

function sender(parserOf: () => Parser, loop: KcmSendLoop): Sender {
  return {
    async send(o: SendOptions): Promise<Running> {
      const transports = await connect(o.address, o.connections);
      const first = KcmSocket.create();
      first.mux.on('psockerror', ignore);
      const socks = [first];
      for (let i = 1; i < o.connections; i++) socks.push(first.clone());
      for (const t of transports) first.attach(t, { parser: parserOf() });
      const frame = makeFrame(o.size);
      const batch = new Array<Buffer>(burstOf(frame.length)).fill(frame);
      const running = new Deadline(o.durationMs);
      const done = socks.map((s) => sendLoop(s, loop, frame, batch, running).catch(ignore));
      return {
        async stop() {
          running.stop();
          for (const s of socks) s.close();
          for (const t of transports) t.destroy();
          await Promise.all(done);
        },
      };
    },
  };
}

function receiver(parserOf: () => Parser, mode: KcmReceiveMode): Receiver {
  return {
    async receive(_o: ReceiveOptions, tally: Tally): Promise<Endpoint> {
      const sock = KcmSocket.create();
      sock.mux.on('psockerror', ignore);
      const s = await listen((socket) => sock.attach(socket, { parser: parserOf() }));
      if (mode === 'many') {
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
  };
}

function pinger(parserOf: () => Parser): Pinger {
  return {
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

    async ping(o): Promise<number[]> {
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

/** kcm's senders, receivers and pinger with the parser `makeParser` builds (once, on first use). */
export function kcmParts(makeParser: () => Parser): KcmParts {
  let cached: Parser | undefined;
  const parserOf = (): Parser => (cached ??= makeParser());
  return {
    receivers: { message: receiver(parserOf, 'message'), many: receiver(parserOf, 'many') },
    senders: {
      many: sender(parserOf, 'many'),
      'many-nocopy': sender(parserOf, 'many-nocopy'),
      'many-yield': sender(parserOf, 'many-yield'),
      send: sender(parserOf, 'send'),
      'try-send': sender(parserOf, 'try-send'),
    },
    pinger: pinger(parserOf),
  };
}
