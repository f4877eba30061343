/**
 * One side of a benchmark case, in its own process (forked by `rig.ts`). It takes commands
 * over the IPC channel and answers each with one message:
 *
 *   { cmd: 'receive', receiver, size, connections }      -> { address }
 *   { cmd: 'measure', warmupMs, measureMs }               -> { messages, bytes, seconds, bytesOnly }
 *   { cmd: 'send', sender, size, connections, address }   -> {}
 *   { cmd: 'echo', pinger, size }                         -> { address }
 *   { cmd: 'ping', pinger, size, address, warmup, count } -> { rtts }
 *   { cmd: 'stop' }   stops the sender and closes every endpoint -> {}
 *
 * A failed command answers { error }. The process exits when its parent goes away.
 */
import { pingers, receivers, senders } from './contenders/index.js';
import type { Endpoint, Running } from './contenders/contender.js';
import { Tally } from './wire.js';

interface Command {
  id: number;
  cmd: string;
  sender?: string;
  receiver?: string;
  pinger?: string;
  size?: number;
  connections?: number;
  address?: string;
  warmupMs?: number;
  measureMs?: number;
  warmup?: number;
  count?: number;
  durationMs?: number;
}

let tally = new Tally();
let endpoint: Endpoint | undefined;
let running: Running | undefined;

function named<T>(kind: string, table: Readonly<Record<string, T>>, name: string | undefined): T {
  const found = name === undefined ? undefined : table[name];
  if (found === undefined) throw new Error(`unknown ${kind} '${name}'`);
  return found;
}

async function handle(c: Command): Promise<Record<string, unknown>> {
  switch (c.cmd) {
    case 'receive':
      tally = new Tally();
      endpoint = await named('receiver', receivers, c.receiver).receive({ size: c.size!, connections: c.connections! }, tally);
      return { address: endpoint.address };
    case 'measure': {
      await sleep(c.warmupMs!);
      const m0 = tally.messages;
      const b0 = tally.bytes;
      const t0 = process.hrtime.bigint();
      await sleep(c.measureMs!);
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      return { messages: tally.messages - m0, bytes: tally.bytes - b0, seconds, bytesOnly: endpoint?.bytesOnly === true };
    }
    case 'send':
      running = await named('sender', senders, c.sender).send({ size: c.size!, connections: c.connections!, address: c.address!, durationMs: c.durationMs! });
      return {};
    case 'echo':
      endpoint = await named('pinger', pingers, c.pinger).echo({ size: c.size! });
      return { address: endpoint.address };
    case 'ping':
      return { rtts: await named('pinger', pingers, c.pinger).ping({ address: c.address!, size: c.size!, warmup: c.warmup!, count: c.count! }) };
    case 'stop': {
      const s = running;
      const e = endpoint;
      running = undefined;
      endpoint = undefined;
      await s?.stop();
      await e?.close();
      return {};
    }
    default:
      throw new Error(`unknown command ${c.cmd}`);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Answers the parent unless it is gone (it may kill this process at any time). */
function reply(message: Record<string, unknown>): void {
  if (process.connected) process.send!(message, undefined, undefined, ignoreError);
}

function ignoreError(): void {}

process.on('message', (c: Command) => {
  handle(c).then(
    (r) => reply({ id: c.id, ...r }),
    (err: unknown) => reply({ id: c.id, error: err instanceof Error ? err.message : String(err) }),
  );
});
process.on('disconnect', () => process.exit(0));
