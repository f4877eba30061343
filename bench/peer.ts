/**
 * One side of the end-to-end benchmark, in its own process (forked by `e2e.ts`). It takes
 * commands over the IPC channel and answers each with one message:
 *
 *   { cmd: 'receive', contender, size, connections, mode }  -> { address }
 *   { cmd: 'measure', warmupMs, measureMs }                 -> { messages, bytes, seconds }
 *   { cmd: 'send', contender, size, connections, mode, address } -> {}
 *   { cmd: 'echo', contender, size }                         -> { address }
 *   { cmd: 'ping', contender, size, address, warmup, count } -> { rtts }
 *   { cmd: 'stop' }   stops the sender and closes every endpoint -> {}
 *
 * A failed command answers { error }. The process exits when its parent goes away.
 */
import { contenders } from './contenders/index.js';
import { Tally, type Endpoint, type Running } from './contenders/contender.js';

interface Command {
  id: number;
  cmd: string;
  contender?: string;
  size?: number;
  connections?: number;
  mode?: string;
  address?: string;
  warmupMs?: number;
  measureMs?: number;
  warmup?: number;
  count?: number;
}

let tally = new Tally();
let endpoint: Endpoint | undefined;
let sender: Running | undefined;

async function handle(c: Command): Promise<Record<string, unknown>> {
  const contender = c.contender === undefined ? undefined : contenders[c.contender];
  if (c.contender !== undefined && contender === undefined) throw new Error(`unknown contender ${c.contender}`);
  switch (c.cmd) {
    case 'receive':
      tally = new Tally();
      endpoint = await contender!.receive({ size: c.size!, connections: c.connections!, mode: c.mode ?? '' }, tally);
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
      sender = await contender!.send({ size: c.size!, connections: c.connections!, mode: c.mode ?? '', address: c.address! });
      return {};
    case 'echo':
      endpoint = await contender!.echo({ size: c.size! });
      return { address: endpoint.address };
    case 'ping':
      return { rtts: await contender!.ping({ address: c.address!, size: c.size!, warmup: c.warmup!, count: c.count! }) };
    case 'stop': {
      const s = sender;
      const e = endpoint;
      sender = undefined;
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

process.on('message', (c: Command) => {
  handle(c).then(
    (reply) => process.send!({ id: c.id, ...reply }),
    (err: unknown) => process.send!({ id: c.id, error: err instanceof Error ? err.message : String(err) }),
  );
});
process.on('disconnect', () => process.exit(0));
