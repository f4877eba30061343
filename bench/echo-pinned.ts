/**
 * Replies to the origin against unpinned replies (docs/replies.md): an echo server with 4
 * KCM sockets, one client multiplexor with 1 socket over 4 connections on 127.0.0.1
 * keeping `--window` messages in flight in `sendMany` bursts of 64. Server variants:
 *
 * - `unpinned-many`: the best unpinned echo, `receiveMany()` then `sendMany()` of the
 *   batch (the baseline: one call per burst each way);
 * - `unpinned`: a `'message'` listener, `trySend(m)` (`send` when the queue is full);
 * - `pinned`: the same listener replying to the origin, `trySend(m, { psock: origin })`,
 *   what a server with many independent clients must do.
 *
 * Rounds are interleaved and the median shown, with the ratios pinned / unpinned and
 * pinned / unpinned-many (goal >= 0.9x).
 *
 *   node dist/bench/echo-pinned.js [--sizes=256,4k] [--count=100k] [--window=512] [--rounds=3]
 *   (or KCM_BENCH_SIZES=..., KCM_BENCH_COUNT=..., ...)
 */
import * as net from 'node:net';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { KcmSocket } from '../src/mux/kcm-socket.js';
import type { PsockRef } from '../src/mux/psock.js';
import { lengthField } from '../src/parsers/length-field.js';
import { parseOptions } from './lib/format.js';
import { formatCount, formatSize, formatTable, median } from '../src/cli/bench/format.js';

const P4 = lengthField({ size: 4, adjust: 4 });
const CONNECTIONS = 4;
const SERVER_SOCKETS = 4;
const BURST = 64;
const MODES = ['unpinned-many', 'unpinned', 'pinned'] as const;
type Mode = (typeof MODES)[number];

/** Server sockets echoing as `mode` says, until they close. */
function serve(sock: KcmSocket, mode: Mode): void {
  if (mode === 'unpinned-many') {
    void (async () => {
      for (;;) {
        try {
          await sock.sendMany(await sock.receiveMany());
        } catch {
          return; // closed
        }
      }
    })();
    return;
  }
  const resume = (): void => void sock.resume();
  const closed = (): void => {};
  if (mode === 'unpinned') {
    sock.on('message', (m: Buffer) => {
      if (sock.trySend(m)) return;
      sock.pause();
      sock.send(m).then(resume, closed);
    });
    return;
  }
  sock.on('message', (m: Buffer, origin: PsockRef) => {
    if (sock.trySend(m, { psock: origin })) return;
    sock.pause();
    sock.send(m, { psock: origin }).then(resume, closed);
  });
}

/** One round: `count` echoes of `size`-byte messages; resolves with seconds taken. */
async function round(mode: Mode, size: number, count: number, window: number): Promise<number> {
  const server = KcmSocket.create();
  const ss = [server];
  for (let i = 1; i < SERVER_SOCKETS; i++) ss.push(server.clone());
  for (const s of ss) serve(s, mode);
  const client = KcmSocket.create();
  const listener = net.createServer({ noDelay: true });
  const transports: net.Socket[] = [];
  listener.on('connection', (c) => {
    transports.push(c);
    server.attach(c, { parser: P4 });
  });
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  const { port } = listener.address() as net.AddressInfo;
  for (let i = 0; i < CONNECTIONS; i++) {
    const t = net.connect({ port, host: '127.0.0.1', noDelay: true });
    transports.push(t);
    await once(t, 'connect');
    client.attach(t, { parser: P4 });
  }
  await new Promise((r) => setTimeout(r, 20)); // every connection attached on both sides
  const message = Buffer.alloc(size, 0x61);
  message.writeUInt32BE(size - 4, 0);
  const burst: Buffer[] = new Array(BURST).fill(message);
  let sent = 0;
  let got = 0;
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  const pump = (): void => {
    while (sent < count && sent - got < window) {
      const n = Math.min(BURST, count - sent, window - (sent - got));
      void client.sendMany(n === BURST ? burst : burst.slice(0, n));
      sent += n;
    }
  };
  client.on('message', () => {
    got++;
    if (got === count) done();
    else if (sent - got <= window / 2) pump();
  });
  const start = performance.now();
  pump();
  const limit = setTimeout(() => done(), 120000);
  await finished;
  clearTimeout(limit);
  const seconds = (performance.now() - start) / 1000;
  if (got !== count) throw new Error(`${mode}: ${got} of ${count} echoes in 120 s`);
  const pinned = server.mux.stats().psocks.reduce((n, p) => n + p.txPinnedMsgs, 0);
  if (mode === 'pinned' && pinned !== count) throw new Error(`pinned: ${pinned} of ${count} replies were pinned`);
  client.close();
  for (const s of ss) s.close();
  for (const t of transports) t.destroy();
  await new Promise((r) => listener.close(r));
  return seconds;
}

async function main(): Promise<void> {
  const o = parseOptions({ sizes: [256, 4096], count: 100_000, window: 512, rounds: 3 });
  const rows: string[][] = [];
  for (const size of o.sizes) {
    const count = size >= 4096 ? Math.max(1000, Math.floor(o.count / 2)) : o.count;
    const times = new Map<Mode, number[]>(MODES.map((m) => [m, []]));
    await round('pinned', size, Math.min(count, 10_000), o.window); // warm-up
    for (let r = 0; r < o.rounds; r++) for (const mode of MODES) times.get(mode)!.push(await round(mode, size, count, o.window));
    const rate = (mode: Mode): number => count / median(times.get(mode)!);
    for (const mode of MODES) {
      const msgs = rate(mode);
      rows.push([formatSize(size), mode, formatCount(msgs), ((msgs * size) / 1e6).toFixed(1),
        mode === 'pinned' ? `${(msgs / rate('unpinned')).toFixed(2)}x / ${(msgs / rate('unpinned-many')).toFixed(2)}x` : '']);
    }
  }
  process.stdout.write(`echo to the origin: ${SERVER_SOCKETS} server sockets, 1 client over ${CONNECTIONS} connections, ` +
    `window ${o.window}, median of ${o.rounds} rounds\n`);
  process.stdout.write(formatTable(['size', 'server replies', 'msgs/s', 'MB/s', 'pinned / unpinned / unpinned-many (goal >= 0.9x)'], rows));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
