/**
 * zeromq.js over tcp: PUSH/PULL for throughput (one PUSH socket per connection, round-robin
 * by the sender, fair-queued by the PULL socket) and REQ/REP for ping-pong. zeromq frames
 * messages itself, so the payload goes without kcm's 4-byte header. Loaded on demand: it is
 * an optional dependency of the benchmark.
 */
import { makeFrame, microsSince, YIELD_BYTES, yieldToLoop, type Contender, type Endpoint, type PingOptions, type ReceiveOptions, type Running, type SendOptions, type Tally } from './contender.js';

type Zmq = typeof import('zeromq');

let loaded: Promise<Zmq> | undefined;

/** The zeromq module, or a rejection saying why it cannot be used here. */
export function loadZeromq(): Promise<Zmq> {
  loaded ??= import('zeromq');
  return loaded;
}

export const zeromqContender: Contender = {
  name: 'zeromq',

  async receive(o: ReceiveOptions, tally: Tally): Promise<Endpoint> {
    void o;
    const zmq = await loadZeromq();
    const pull = new zmq.Pull({ linger: 0 });
    await pull.bind('tcp://127.0.0.1:*');
    void (async () => {
      for await (const [m] of pull) tally.onMessage(m!);
    })().catch(() => undefined);
    return {
      address: pull.lastEndpoint!,
      async close() {
        pull.close();
      },
    };
  },

  async send(o: SendOptions): Promise<Running> {
    const zmq = await loadZeromq();
    const payload = makeFrame(o.size).subarray(4);
    const pushes: InstanceType<Zmq['Push']>[] = [];
    for (let i = 0; i < o.connections; i++) {
      const push = new zmq.Push({ linger: 0 });
      push.connect(o.address);
      pushes.push(push);
    }
    let running = true;
    const loop = async (push: InstanceType<Zmq['Push']>): Promise<void> => {
      let queued = 0;
      while (running) {
        await push.send(payload);
        queued += payload.length + 4;
        if (queued >= YIELD_BYTES) {
          queued = 0;
          await yieldToLoop();
        }
      }
    };
    const done = pushes.map((p) => loop(p).catch(() => undefined));
    return {
      async stop() {
        running = false;
        for (const p of pushes) p.close();
        void done;
      },
    };
  },

  async echo(): Promise<Endpoint> {
    const zmq = await loadZeromq();
    const rep = new zmq.Reply({ linger: 0 });
    await rep.bind('tcp://127.0.0.1:*');
    void (async () => {
      for await (const [m] of rep) await rep.send(m!);
    })().catch(() => undefined);
    return {
      address: rep.lastEndpoint!,
      async close() {
        rep.close();
      },
    };
  },

  async ping(o: PingOptions): Promise<number[]> {
    const zmq = await loadZeromq();
    const req = new zmq.Request({ linger: 0 });
    req.connect(o.address);
    const payload = makeFrame(o.size).subarray(4);
    const rtts: number[] = [];
    for (let i = 0; i < o.warmup + o.count; i++) {
      const start = process.hrtime.bigint();
      await req.send(payload);
      await req.receive();
      if (i >= o.warmup) rtts.push(microsSince(start));
    }
    req.close();
    return rtts;
  },
};
