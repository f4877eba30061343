/**
 * Chaos soak: `npm run soak -- --seconds N [--seed S] [--slow-consumer-seconds 10] [--json]`
 * (`soak.test.ts` runs it for 5 s).
 *
 * A server multiplexor (`listen()`, 4 KCM sockets) and a client multiplexor (4 KCM
 * sockets, `sock.connect()` keeping 4 connections and reconnecting) send self-checking
 * messages both ways while faults are injected at random: connection resets, graceful
 * ends, receivers that pause, receivers that read slowly. Checked continuously:
 *
 * - no corrupt message (CRC-32 and tape comparison of every body);
 * - no duplicate (every (source, sequence) id is delivered at most once);
 * - order: per receiving socket, per connection and per source, sequences increase,
 *   except after a transmit restart (each inversion must be covered by a counted retry);
 * - losses only of messages whose last write went to a connection that then failed
 *   (API.md: a message handed to a transport that then fails can be lost);
 * - memory flat after warm-up (heap + array buffers after GC).
 *
 * Before the chaos it runs the slow-consumer check for 10 s (the reliability test runs it
 * for 2 s). Exits 1 when an invariant is violated.
 */
import * as net from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { KcmSocket } from '../../../src/index.js';
import { listen } from '../../../src/helpers/kcm-server.js';
import { lengthField } from '../../../src/parsers/length-field.js';
import type { KcmError } from '../../../src/errors.js';
import { HeaderScanner, checkFrame, key, makeFrame, rng, skewedSize } from './wire.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

// ------------------------------------------------------------------ options

function flag(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return dflt;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v < 0) throw new RangeError(`--${name} needs a non-negative number`);
  return v;
}
const SECONDS = flag('seconds', 30);
const SEED = flag('seed', (Date.now() % 1e9) | 0);
const SLOW_CONSUMER_SECONDS = flag('slow-consumer-seconds', 10);
/** Shorter runs report memory but do not judge whether it stays flat. */
const MEMORY_MIN_SECONDS = 20;
const JSON_OUT = process.argv.includes('--json');
const SOCKETS = 4;
const CONNECTIONS = 4;
const P16 = lengthField({ size: 4, adjust: 4, max: 1024 * 1024 });

const random = rng(SEED);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const MiB = (n: number): string => `${(n / 1048576).toFixed(1)} MiB`;

// ------------------------------------------------------------------ state

/** One TCP connection seen from one side; `failed` once its socket closed. */
interface Conn { id: number; side: 'client' | 'server'; socket: net.Socket; failed: boolean }
const conns = new Map<number, Conn>();
/** Ids of the connections that failed (a few bytes each, kept for the loss accounting). */
const failedConns = new Set<number>();
let nextConn = 0;
/** For each sent message not yet delivered: the connection its last write went to (-1: none yet). */
const outstanding = new Map<number, number>();
/** For each message whose header arrived on a connection: that connection. */
const arrivedOn = new Map<number, number>();
const seqOut: number[] = [];
const counters = {
  sent: 0, sentBytes: 0, received: 0, receivedBytes: 0, corrupt: 0, duplicates: 0, inversions: 0, unknown: 0,
};
const faults = { reset: 0, end: 0, pause: 0, slow: 0 };
const psockErrors = new Map<string, number>();
const violations: string[] = [];
function violation(what: string): void {
  if (violations.length < 20) violations.push(what);
}

/** Tracks a transport: which messages its writes carry, which its reads carry, when it fails. */
function tag(socket: net.Socket, side: 'client' | 'server'): net.Socket {
  const c: Conn = { id: nextConn++, side, socket, failed: false };
  conns.set(c.id, c);
  const out = new HeaderScanner((src, seq) => {
    const k = key(src, seq);
    if (outstanding.has(k)) outstanding.set(k, c.id);
  });
  const inbound = new HeaderScanner((src, seq) => arrivedOn.set(key(src, seq), c.id));
  const write = socket.write;
  socket.write = function (this: net.Socket, chunk: unknown, ...rest: unknown[]): boolean {
    if (chunk instanceof Uint8Array) out.push(chunk);
    return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
  } as typeof socket.write;
  const emit = socket.emit;
  socket.emit = function (this: net.Socket, event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'data' && args[0] instanceof Uint8Array) inbound.push(args[0]);
    return (emit as (...a: unknown[]) => boolean).call(this, event, ...args);
  } as typeof socket.emit;
  socket.on('close', () => {
    c.failed = true;
    failedConns.add(c.id);
    conns.delete(c.id);
  });
  socket.on('error', () => {});
  return socket;
}

/** Per receiving socket: the last sequence seen per (connection, source). */
const lastSeen = new Map<string, number>();

function deliver(sock: number, m: Buffer): void {
  const id = checkFrame(m);
  if (typeof id === 'string') {
    counters.corrupt++;
    violation(`corrupt message at socket ${sock}: ${id}`);
    return;
  }
  const k = key(id.src, id.seq);
  if (!outstanding.has(k)) {
    if (id.seq < (seqOut[id.src] ?? 0)) {
      counters.duplicates++;
      violation(`duplicate ${id.src}/${id.seq} at socket ${sock}`);
    } else {
      counters.unknown++;
      violation(`unknown message ${id.src}/${id.seq}`);
    }
    return;
  }
  outstanding.delete(k);
  counters.received++;
  counters.receivedBytes += m.length;
  const conn = arrivedOn.get(k) ?? -1;
  arrivedOn.delete(k);
  const lk = `${sock}/${conn}/${id.src}`;
  const last = lastSeen.get(lk) ?? -1;
  if (id.seq < last) counters.inversions++;
  else lastSeen.set(lk, id.seq);
}

// ------------------------------------------------------------------ receivers

type Mode = { pausedUntil: number; slowUntil: number };

function flowingReceiver(sock: KcmSocket, index: number, mode: Mode): void {
  sock.on('message', (m: Buffer) => {
    deliver(index, m);
    if (Date.now() < mode.slowUntil && !sock.isPaused()) {
      sock.pause();
      setTimeout(() => sock.resume(), 2);
    }
  });
}

async function loopReceiver(sock: KcmSocket, index: number, mode: Mode): Promise<void> {
  while (!sock.closed) {
    const now = Date.now();
    if (now < mode.pausedUntil) {
      await sleep(Math.min(20, mode.pausedUntil - now));
      continue;
    }
    try {
      if (now < mode.slowUntil) {
        deliver(index, await sock.receive());
        await sleep(2);
      } else {
        for (const m of await sock.receiveMany(256)) deliver(index, m);
      }
    } catch (err) {
      if ((err as KcmError).code === 'EBADF') return;
      throw err;
    }
  }
}

// ------------------------------------------------------------------ senders

let sending = true;

async function sender(sock: KcmSocket, src: number): Promise<void> {
  const r = rng(SEED ^ (src * 7919));
  seqOut[src] = 0;
  while (sending && !sock.closed) {
    const seq = seqOut[src]!;
    const parts = makeFrame(src, seq, skewedSize(r));
    outstanding.set(key(src, seq), -1);
    seqOut[src] = seq + 1;
    counters.sent++;
    counters.sentBytes += parts[0].length + parts[1].length;
    try {
      await sock.send(parts);
    } catch (err) {
      if ((err as KcmError).code === 'EBADF') return;
      throw err;
    }
    if (seq % 64 === 63) await new Promise((res) => setImmediate(res));
  }
}

// ------------------------------------------------------------------ memory

interface Sample { t: number; heap: number; rss: number }
const samples: Sample[] = [];

function sampleMemory(t0: number): void {
  gc();
  const m = process.memoryUsage();
  samples.push({ t: (Date.now() - t0) / 1000, heap: m.heapUsed + m.arrayBuffers, rss: m.rss });
}

function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  return s.length === 0 ? 0 : s[s.length >> 1]!;
}

// ------------------------------------------------------------------ slow consumer

function slowConsumer(seconds: number): Promise<Record<string, unknown> | undefined> {
  if (seconds <= 0) return Promise.resolve(undefined);
  const script = join(fileURLToPath(new URL('.', import.meta.url)), '..', 'fixtures', 'slow-consumer.js');
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--expose-gc', script, String(seconds)], { timeout: (seconds * 2 + 120) * 1000 }, (err, stdout) => {
      if (err !== null) return reject(err);
      resolve(JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, unknown>);
    });
  });
}

// ------------------------------------------------------------------ main

async function main(): Promise<void> {
  const slow = await slowConsumer(SLOW_CONSUMER_SECONDS);
  const slowOk = slow === undefined || (slow['fatal'] === undefined
    && (slow['receive'] as { peak: number; bound: number }).peak <= (slow['receive'] as { bound: number }).bound + 8 * 1048576
    && (slow['send'] as { peak: number; bound: number }).peak <= (slow['send'] as { bound: number }).bound + 8 * 1048576);
  if (!slowOk) violation(`slow consumer: ${JSON.stringify(slow)}`);

  const server = await listen({ port: 0, host: '127.0.0.1', parser: P16, sockets: SOCKETS, closeTimeout: 500 });
  // Tagged before the server attaches it: attaching can write queued messages at once [A-11].
  server.prependListener('connection', (t: net.Socket) => tag(t, 'server'));
  server.mux.on('psockerror', (err: KcmError) => psockErrors.set(`server ${err.code}`, (psockErrors.get(`server ${err.code}`) ?? 0) + 1));
  const { port } = server.address() as net.AddressInfo;
  const c0 = KcmSocket.create();
  const clients = [c0];
  for (let i = 1; i < SOCKETS; i++) clients.push(c0.clone());
  c0.mux.on('psockerror', (err: KcmError) => psockErrors.set(`client ${err.code}`, (psockErrors.get(`client ${err.code}`) ?? 0) + 1));
  const connector = c0.connect({
    port, host: '127.0.0.1', connections: CONNECTIONS, parser: P16, closeTimeout: 500,
    backoff: { initial: 5, max: 100 },
    createConnection: (o) => tag(net.connect({ ...o, noDelay: true }), 'client'),
  });

  const all = [...clients, ...server.sockets];
  const modes: Mode[] = all.map(() => ({ pausedUntil: 0, slowUntil: 0 }));
  const loops: Promise<void>[] = [];
  all.forEach((s, i) => {
    if (i < SOCKETS) loops.push(loopReceiver(s, i, modes[i]!));
    else flowingReceiver(s, i, modes[i]!);
  });
  const senders = all.map((s, i) => sender(s, i));

  const t0 = Date.now();
  const end = t0 + SECONDS * 1000;
  let nextSample = t0;
  let nextProgress = t0 + 10000;
  while (Date.now() < end) {
    await sleep(20 + random() * 150);
    const x = random();
    const live = [...conns.values()].filter((c) => !c.failed && !c.socket.connecting);
    if (x < 0.35 && live.length > 0) {
      live[(random() * live.length) | 0]!.socket.resetAndDestroy();
      faults.reset++;
    } else if (x < 0.5 && live.length > 0) {
      live[(random() * live.length) | 0]!.socket.end();
      faults.end++;
    } else if (x < 0.75) {
      const i = (random() * all.length) | 0;
      const s = all[i]!;
      const d = 50 + random() * 400;
      modes[i]!.pausedUntil = Date.now() + d;
      if (i >= SOCKETS) {
        s.pause();
        setTimeout(() => s.resume(), d);
      }
      faults.pause++;
    } else {
      modes[(random() * all.length) | 0]!.slowUntil = Date.now() + 200 + random() * 800;
      faults.slow++;
    }
    if (Date.now() >= nextSample) {
      sampleMemory(t0);
      nextSample = Date.now() + Math.max(250, SECONDS * 1000 / 40);
    }
    if (!JSON_OUT && Date.now() >= nextProgress && Date.now() < end) {
      nextProgress += 10000;
      process.stderr.write(`  ${Math.round((Date.now() - t0) / 1000)} s: sent ${counters.sent}, received ${counters.received}, faults ${faults.reset + faults.end + faults.pause + faults.slow}\n`);
    }
  }
  sampleMemory(t0);

  // Quiesce: no more faults or new messages; every receiver reads; wait for the rest.
  sending = false;
  for (const [i, m] of modes.entries()) {
    m.pausedUntil = 0;
    m.slowUntil = 0;
    all[i]!.resume();
  }
  await Promise.race([Promise.all(senders), sleep(10000)]);
  const unexplained = (): number[] => {
    const out: number[] = [];
    for (const [k, conn] of outstanding) if (!failedConns.has(conn)) out.push(k);
    return out;
  };
  const quiesceEnd = Date.now() + 20000;
  while (unexplained().length > 0 && Date.now() < quiesceEnd) await sleep(50);
  const left = unexplained();
  for (const k of left.slice(0, 5)) {
    violation(`lost ${Math.floor(k / 0x100000000)}/${k % 0x100000000}: last written on ${outstanding.get(k) === -1 ? 'no connection' : `connection ${outstanding.get(k)} (alive)`}`);
  }
  const lost = outstanding.size - left.length;
  const retries = c0.mux.stats().txRetries + server.mux.stats().txRetries;
  if (counters.inversions > retries) violation(`${counters.inversions} order inversions but only ${retries} transmit restarts`);
  const cstats = connector.stats();
  const sstats = server.stats();
  sampleMemory(t0);

  // Memory: after warm-up (the first quarter), the level must stay flat.
  const warm = samples.filter((s) => s.t >= SECONDS / 4 && s.t < SECONDS / 2).map((s) => s.heap);
  const late = samples.filter((s) => s.t >= (SECONDS * 3) / 4).map((s) => s.heap);
  const growth = median(late) - median(warm);
  // Judged on runs of MEMORY_MIN_SECONDS or more: in a shorter run the buffers in flight
  // (paused readers, stalled connections) swing by more than any leak could add.
  const judged = SECONDS >= MEMORY_MIN_SECONDS && warm.length > 0 && late.length > 0;
  const memoryFlat = !judged || growth < 16 * 1048576;
  if (!memoryFlat) violation(`memory grew by ${MiB(growth)} after warm-up`);

  await connector.close();
  await new Promise<void>((r) => server.close(() => r()));
  for (const s of clients) s.close();
  await Promise.race([Promise.all(loops), sleep(2000)]);

  const peakHeap = Math.max(...samples.map((s) => s.heap));
  const peakRss = Math.max(...samples.map((s) => s.rss));
  const final = samples[samples.length - 1]!;
  const summary = {
    seconds: SECONDS, seed: SEED,
    messages: { sent: counters.sent, received: counters.received, sentBytes: counters.sentBytes, receivedBytes: counters.receivedBytes },
    faults,
    connections: { clientConnects: cstats.connects, clientDisconnects: cstats.disconnects, connectFailures: cstats.connectFailures, serverAccepted: sstats.accepted, serverDisconnects: sstats.disconnects },
    psockErrors: Object.fromEntries(psockErrors),
    invariants: { corrupt: counters.corrupt, duplicates: counters.duplicates, unknown: counters.unknown, inversions: counters.inversions, txRetries: retries, lostExplained: lost, lostUnexplained: left.length, memoryFlat },
    memory: { peakHeap, finalHeap: final.heap, peakRss, finalRss: final.rss, warmMedian: median(warm), lateMedian: median(late) },
    slowConsumer: slow === undefined ? undefined : {
      seconds: slow['seconds'],
      receivePeak: (slow['receive'] as { peak: number }).peak, receiveBound: (slow['receive'] as { bound: number }).bound,
      sendPeak: (slow['send'] as { peak: number }).peak, sendBound: (slow['send'] as { bound: number }).bound,
    },
    violations,
  };
  if (JSON_OUT) {
    console.log(JSON.stringify(summary));
  } else {
    const lines = [
      `kcm soak: ${SECONDS} s, seed ${SEED}, ${SOCKETS}x${SOCKETS} sockets, ${CONNECTIONS} connections reconnecting`,
      `messages   sent ${counters.sent} (${MiB(counters.sentBytes)}), received ${counters.received} (${MiB(counters.receivedBytes)})`,
      `faults     reset ${faults.reset}, end ${faults.end}, pause ${faults.pause}, slow reads ${faults.slow}`,
      `conns      client connects ${cstats.connects}, disconnects ${cstats.disconnects}, connect failures ${cstats.connectFailures}; server accepted ${sstats.accepted}, disconnects ${sstats.disconnects}`,
      `psock err  ${[...psockErrors].map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}`,
      `corrupt ${counters.corrupt}, duplicates ${counters.duplicates}, unknown ${counters.unknown}`,
      `order      ${counters.inversions} inversions per (socket, connection, source), ${retries} transmit restarts`,
      `losses     ${lost}, all last written to a connection that then failed (API.md: a message handed to a failed transport can be lost); unexplained ${left.length}`,
      `memory     heap+buffers peak ${MiB(peakHeap)}, final ${MiB(final.heap)}; rss peak ${MiB(peakRss)}, final ${MiB(final.rss)}; after warm-up ${MiB(median(warm))} -> ${MiB(median(late))} (${!judged ? 'not judged under ' + MEMORY_MIN_SECONDS + ' s' : memoryFlat ? 'flat' : 'GROWING'})`,
    ];
    if (slow !== undefined) {
      const r = slow['receive'] as { peak: number; bound: number };
      const s = slow['send'] as { peak: number; bound: number };
      lines.push(`slow cons. ${slow['seconds']} s: receive peak ${MiB(r.peak)} (buffers ${MiB(r.bound)}), send peak ${MiB(s.peak)} (buffers ${MiB(s.bound)})`);
    }
    lines.push(violations.length === 0 ? 'result     OK' : `result     FAILED\n  ${violations.join('\n  ')}`);
    console.log(lines.join('\n'));
  }
  process.exitCode = violations.length === 0 ? 0 : 1;
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 2;
});
