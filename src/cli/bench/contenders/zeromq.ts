/**
 * zeromq.js over tcp: PUSH/PULL for throughput (one PUSH socket per connection, each
 * `await push.send()` in a loop, fair-queued by the PULL socket) and REQ/REP for
 * ping-pong. zeromq frames messages itself, so the payload goes without the 4-byte
 * header. An optional contender: loaded on demand, skipped with a hint when absent.
 */
import { Deadline, ignore, makeFrame, microsSince, YIELD_BYTES, yieldToLoop, type Tally } from '../wire.js';
import type { Endpoint, Pinger, ReceiveOptions, Receiver, Running, Sender, SendOptions } from './contender.js';

type Zmq = typeof import('zeromq');

let loaded: Promise<Zmq> | undefined;

/** The zeromq module, or a rejection saying why it cannot be used here. */
export function loadZeromq(): Promise<Zmq> {
  loaded ??= import('zeromq');
  return loaded;
}

/** Why zeromq cannot run, in words for the user (`err` from {@link loadZeromq}). */
export function zeromqMissing(err: unknown): string {
  const e = err as { code?: string; message?: string };
  if (e.code === 'ERR_MODULE_NOT_FOUND' || /Cannot find (package|module) 'zeromq'/.test(e.message ?? '')) {
    return 'zeromq is not installed: npm install zeromq to compare against ZeroMQ';
  }
  return `zeromq cannot be loaded (${(e.message ?? String(err)).split('\n')[0]}): reinstall it with npm install zeromq to compare against ZeroMQ`;
}

export const zeromqReceiver: Receiver = {
  async receive(_o: ReceiveOptions, tally: Tally): Promise<Endpoint> {
    const zmq = await loadZeromq();
    const pull = new zmq.Pull({ linger: 0 });
    await pull.bind('tcp://127.0.0.1:*');
    void (async () => {
      for await (const [m] of pull) tally.onMessage(m!);
    })().catch(ignore);
    return {
      address: pull.lastEndpoint!,
      async close() {
        pull.close();
      },
    };
  },
};

export const zeromqSender: Sender = {
  async send(o: SendOptions): Promise<Running> {
    const zmq = await loadZeromq();
    const payload = makeFrame(o.size).subarray(4);
    const pushes: InstanceType<Zmq['Push']>[] = [];
    for (let i = 0; i < o.connections; i++) {
      const push = new zmq.Push({ linger: 0 });
      push.connect(o.address);
      pushes.push(push);
    }
    const running = new Deadline(o.durationMs);
    const loop = async (push: InstanceType<Zmq['Push']>): Promise<void> => {
      let queued = 0;
      while (running.on()) {
        await push.send(payload);
        queued += payload.length + 4;
        if (queued >= YIELD_BYTES) {
          queued = 0;
          await yieldToLoop();
        }
      }
    };
    const done = pushes.map((p) => loop(p).catch(ignore));
    return {
      async stop() {
        running.stop();
        for (const p of pushes) p.close();
        await Promise.all(done);
      },
    };
  },
};

export const zeromqPinger: Pinger = {
  async echo(): Promise<Endpoint> {
    const zmq = await loadZeromq();
    const rep = new zmq.Reply({ linger: 0 });
    await rep.bind('tcp://127.0.0.1:*');
    void (async () => {
      for await (const [m] of rep) await rep.send(m!);
    })().catch(ignore);
    return {
      address: rep.lastEndpoint!,
      async close() {
        rep.close();
      },
    };
  },

  async ping(o): Promise<number[]> {
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
