/**
 * Requests and replies: `Requester` against the request map a competent developer
 * writes by hand, over the same client (4 KCM sockets on one multiplexor, 4 connections
 * on 127.0.0.1) and the same echo server (4 sockets, replies to the origin):
 *
 * - `hand` (the baseline): a `Map` of id → { resolve, reject, timer }, one `'message'`
 *   listener per socket matching replies, a `setTimeout` per request cleared at its
 *   reply, sends round-robin over the sockets with `trySend` (`send` when a queue is full);
 * - `requester`: `new Requester(sockets, { id, timeout })` and `request(message, id)`.
 *
 * Each keeps `--window` requests in flight until `--count` are answered; rounds are
 * interleaved and the median shown, with the ratio requester / hand.
 *
 *   node dist/bench/requester.js [--count=100k] [--window=256] [--rounds=5]
 *   (or KCM_BENCH_COUNT=..., KCM_BENCH_WINDOW=..., KCM_BENCH_ROUNDS=...)
 */
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { KcmSocket, Requester, lengthField, listen } from '../src/index.js';
import { parseOptions } from './lib/format.js';
import { formatCount, formatTable, median } from '../src/cli/bench/format.js';

const P4 = lengthField({ size: 4, adjust: 4 });
const TIMEOUT = 30_000;

const options = parseOptions({ count: 100_000, window: 256, rounds: 5 });

function request(id: number): Buffer[] {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(id >>> 0, 0);
  return P4.frame(b);
}
const idOf = (m: Buffer): number => m.readUInt32BE(4);

/** The hand-written request map. */
class HandClient {
  private readonly pending = new Map<number, { resolve: (m: Buffer) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private turn = 0;
  private readonly onMessage = (m: Buffer): void => {
    const p = this.pending.get(idOf(m));
    if (p === undefined) return;
    this.pending.delete(idOf(m));
    clearTimeout(p.timer);
    p.resolve(m);
  };

  constructor(private readonly sockets: KcmSocket[]) {
    for (const s of sockets) s.on('message', this.onMessage);
  }

  request(message: Buffer[], id: number): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error('timeout'));
      }, TIMEOUT);
      this.pending.set(id, { resolve, reject, timer });
      const sock = this.sockets[this.turn++ % this.sockets.length]!;
      if (!sock.trySend(message)) sock.send(message).catch(reject);
    });
  }

  close(): void {
    for (const s of this.sockets) s.removeListener('message', this.onMessage);
  }
}

/** Keeps `window` requests in flight until `count` are answered; returns requests/s. */
async function drive(call: (id: number) => Promise<Buffer>, base: number): Promise<number> {
  let next = 0;
  const started = performance.now();
  const lanes: Promise<void>[] = [];
  for (let w = 0; w < options.window; w++) {
    lanes.push(
      (async () => {
        while (next < options.count) {
          const id = base + next++;
          const reply = await call(id);
          if (idOf(reply) !== id >>> 0) throw new Error(`reply ${idOf(reply)} to request ${id}`);
        }
      })(),
    );
  }
  await Promise.all(lanes);
  return options.count / ((performance.now() - started) / 1000);
}

async function main(): Promise<void> {
  const server = await listen({ port: 0, host: '127.0.0.1', parser: P4, sockets: 4, handler: (m: Buffer) => m });
  const first = KcmSocket.create();
  const sockets = [first, first.clone(), first.clone(), first.clone()];
  const connector = first.connect({ host: '127.0.0.1', port: (server.address() as { port: number }).port, connections: 4, parser: P4 });
  while (connector.connected < 4) await once(connector, 'connect');
  const results: Record<'hand' | 'requester', number[]> = { hand: [], requester: [] };
  let base = 1;
  for (let r = 0; r < options.rounds; r++) {
    const hand = new HandClient(sockets);
    results.hand.push(await drive((id) => hand.request(request(id), id), base));
    hand.close();
    base += options.count;
    const requester = new Requester(sockets, { id: idOf, timeout: TIMEOUT });
    results.requester.push(await drive((id) => requester.request(request(id), id), base));
    requester.close();
    base += options.count;
  }
  const hand = median(results.hand);
  const req = median(results.requester);
  process.stdout.write(
    `requests and replies: ${formatCount(options.count)} requests per round, ${options.window} in flight, 4 sockets x 4 connections, ${options.rounds} rounds, median\n` +
      `${formatTable(
        ['contender', 'requests/s', 'vs hand'],
        [
          ['hand', formatCount(hand), ''],
          ['requester', formatCount(req), `${(req / hand).toFixed(2)}x`],
        ],
      )}\n`,
  );
  await connector.close();
  for (const s of sockets) s.close();
  await new Promise((r) => server.close(r));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
