/**
 * Sockets in worker threads: what a worker socket costs against a socket in the
 * multiplexor's thread, and what a second worker buys for CPU-heavy handlers.
 *
 * A raw TCP peer on 127.0.0.1 writes length-prefixed frames (4-byte big-endian length,
 * then the payload) as fast as the connection takes them; the multiplexor parses them
 * and steers them to the receiving sockets, which count them.
 *
 * - trivial: a handler that only touches the message. msgs/s delivered to one socket in
 *   the main thread, then to one worker socket (the main socket's receive disabled);
 *   the ratio worker / main (goal >= 0.5x).
 * - heavy: a handler spinning about `--spin-us` microseconds per message; one worker,
 *   then two; the ratio 2 / 1 (goal >= 1.6x on 2 cores).
 * - handoff: the thread hand-off alone, no sockets: bursts of messages from the main
 *   thread to a worker as one transferred ArrayBuffer per burst (what kcm does), as a
 *   structured clone of the burst's Buffers, and through a SharedArrayBuffer ring
 *   woken with Atomics.waitAsync.
 *
 * Rounds are interleaved and the median shown.
 *
 *   node dist/bench/workers.js [--sizes=64,4k] [--count=200k] [--heavy-count=20k]
 *     [--spin-us=100] [--rounds=3] [--sections=trivial,heavy,handoff]
 *   (or KCM_BENCH_SIZES=..., KCM_BENCH_COUNT=..., ...; KCM_BENCH_RCVBUF=bytes sets
 *   receiveBufferSize for the main-thread and worker sockets alike)
 */
import * as net from 'node:net';
import { once } from 'node:events';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { KcmSocket } from '../src/index.js';
import { lengthField } from '../src/parsers/length-field.js';
import { formatCount, formatSize, formatTable, median, parseOptions } from './lib/format.js';

const P4 = lengthField({ size: 4, adjust: 4 });
const self = new URL(import.meta.url);

interface WorkerArgs {
  role: 'socket' | 'handoff';
  port?: Parameters<typeof KcmSocket.adopt>[0];
  spinUs?: number;
  handoff?: string;
  ring?: SharedArrayBuffer;
}

const RCVBUF = process.env['KCM_BENCH_RCVBUF'] === undefined ? undefined : Number(process.env['KCM_BENCH_RCVBUF']);

// ------------------------------------------------------------------ worker side

function runWorker(args: WorkerArgs): void {
  const parent = parentPort!;
  if (args.role === 'handoff') return handoffWorker(args, parent);
  const sock = KcmSocket.adopt(args.port!);
  const spin = (args.spinUs ?? 0) / 1000;
  let count = 0;
  let check = 0;
  let scheduled = false;
  const report = (): void => {
    scheduled = false;
    parent.postMessage({ count, check });
  };
  sock.on('message', (m: Buffer) => {
    count++;
    check = (check + m[m.length - 1]!) | 0;
    if (spin > 0) {
      const end = performance.now() + spin;
      while (performance.now() < end);
    }
    if (!scheduled) {
      scheduled = true;
      setImmediate(report);
    }
  });
  parent.on('message', (cmd: string) => {
    if (cmd === 'close') sock.close();
  });
  parent.postMessage({ ready: true });
}

// ------------------------------------------------------------------ main side

async function main(): Promise<void> {
  const options = parseOptions({
    sizes: [64, 4096],
    /** Messages per trivial round. */
    count: 200000,
    /** Messages per heavy round. */
    heavyCount: 20000,
    /** Handler work per message in the heavy section, in microseconds. */
    spinUs: 100,
    heavySize: 256,
    rounds: 3,
    sections: 'trivial,heavy,handoff',
    /**
     * transfer: one transferred ArrayBuffer per burst (what kcm does); clone: the burst's
     * Buffers structured-cloned; ring: a SharedArrayBuffer ring woken with
     * Atomics.waitAsync (a simple prototype, 64 B messages only: not robust at large sizes).
     */
    handoffKinds: 'transfer,clone',
    json: false,
  });
  const sections = new Set(options.sections.split(','));
  const results: Record<string, unknown>[] = [];
  if (sections.has('trivial')) {
    const rows: string[][] = [];
    for (const size of options.sizes) {
      const count = size >= 4096 ? Math.max(1000, Math.round(options.count / 8)) : options.count;
      const r = await compare(
        { main: { workers: 0, spinUs: 0 }, worker: { workers: 1, spinUs: 0 } },
        size, count, options.rounds,
      );
      const ratio = r.worker / r.main;
      rows.push([formatSize(size), formatCount(count), `${formatCount(r.main)}/s`, `${formatCount(r.worker)}/s`, `${ratio.toFixed(2)}x`]);
      results.push({ section: 'trivial', size, count, main: r.main, worker: r.worker, ratio });
    }
    print('trivial handler: messages/s to one socket (goal: worker/main >= 0.5x)', ['size', 'messages', 'main thread', '1 worker', 'worker/main'], rows);
  }
  if (sections.has('heavy')) {
    const size = options.heavySize;
    const count = options.heavyCount;
    const r = await compare(
      { one: { workers: 1, spinUs: options.spinUs }, two: { workers: 2, spinUs: options.spinUs } },
      size, count, options.rounds,
    );
    const ratio = r.two / r.one;
    print(`heavy handler (~${options.spinUs} us per message): messages/s (goal: 2 workers / 1 >= 1.6x)`,
      ['size', 'messages', '1 worker', '2 workers', '2/1'],
      [[formatSize(size), formatCount(count), `${formatCount(r.one)}/s`, `${formatCount(r.two)}/s`, `${ratio.toFixed(2)}x`]]);
    results.push({ section: 'heavy', size, count, spinUs: options.spinUs, one: r.one, two: r.two, ratio });
  }
  if (sections.has('handoff')) {
    const rows: string[][] = [];
    for (const size of options.sizes) {
      const count = size >= 4096 ? Math.max(1000, Math.round(options.count / 8)) : options.count;
      const burst = Math.max(1, Math.floor(65536 / (size + 4)));
      const r: Record<string, number> = {};
      for (const kind of options.handoffKinds.split(',')) {
        const times: number[] = [];
        for (let i = 0; i < options.rounds; i++) times.push(await handoff(kind, size, count, burst));
        r[kind] = count / median(times);
      }
      rows.push([formatSize(size), String(burst), ...Object.values(r).map((v) => `${formatCount(v)}/s`)]);
      results.push({ section: 'handoff', size, count, burst, ...r });
    }
    print('thread hand-off alone: messages/s main -> worker, one hand-off per burst', ['size', 'burst', ...options.handoffKinds.split(',')], rows);
  }
  if (options.json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
}

function print(title: string, headers: string[], rows: string[][]): void {
  process.stdout.write(`\n${title}\n${formatTable(headers, rows)}\n`);
}

interface Setup {
  workers: number;
  spinUs: number;
}

/** Runs each setup `rounds` times, interleaved; the median msgs/s of each. */
async function compare<K extends string>(setups: Record<K, Setup>, size: number, count: number, rounds: number): Promise<Record<K, number>> {
  const keys = Object.keys(setups) as K[];
  const rigs = new Map<K, Rig>();
  for (const k of keys) rigs.set(k, await Rig.open(setups[k]));
  const times = new Map<K, number[]>(keys.map((k) => [k, []]));
  try {
    for (let r = 0; r < rounds; r++) {
      for (const k of keys) times.get(k)!.push(await rigs.get(k)!.round(size, count));
    }
  } finally {
    for (const rig of rigs.values()) await rig.close();
  }
  const out = {} as Record<K, number>;
  for (const k of keys) out[k] = count / median(times.get(k)!);
  return out;
}

/** One multiplexor, one transport from a raw peer, and its receiving sockets. */
class Rig {
  private delivered = 0;
  private readonly counts: number[] = [];
  private waiter: (() => void) | undefined = undefined;
  private target = 0;

  private constructor(
    private readonly sock: KcmSocket,
    private readonly server: net.Server,
    private readonly local: net.Socket,
    private readonly remote: net.Socket,
    private readonly workers: Worker[],
  ) {}

  static async open(setup: Setup): Promise<Rig> {
    const server = net.createServer({ noDelay: true });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const local = net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', noDelay: true });
    const [remote] = (await once(server, 'connection')) as [net.Socket];
    if (local.connecting) await once(local, 'connect');
    // KCM_BENCH_RCVBUF sets receiveBufferSize (clones and worker sockets inherit it).
    const sock = KcmSocket.create(RCVBUF === undefined ? {} : { receiveBufferSize: RCVBUF });
    const workers: Worker[] = [];
    const rig = new Rig(sock, server, local, remote, workers);
    if (setup.workers === 0) {
      let check = 0;
      sock.on('message', (m: Buffer) => {
        check = (check + m[m.length - 1]!) | 0;
        rig.add(1);
      });
    } else {
      sock.setRecvDisable(true);
      for (let i = 0; i < setup.workers; i++) {
        const port = sock.cloneForWorker();
        const args: WorkerArgs = { role: 'socket', port, spinUs: setup.spinUs };
        const w = new Worker(self, { workerData: args, transferList: port.transferList });
        const slot = rig.counts.push(0) - 1;
        w.on('message', (m: { count?: number }) => {
          if (m.count === undefined) return;
          rig.add(m.count - rig.counts[slot]!);
          rig.counts[slot] = m.count;
        });
        await once(w, 'message');
        workers.push(w);
      }
    }
    sock.attach(local, { parser: P4 });
    return rig;
  }

  private add(n: number): void {
    this.delivered += n;
    if (this.delivered >= this.target && this.waiter !== undefined) {
      const w = this.waiter;
      this.waiter = undefined;
      w();
    }
  }

  /** Seconds from the first byte written to the last message counted. */
  async round(size: number, count: number): Promise<number> {
    const chunk = frames(size, Math.max(1, Math.floor(65536 / (size + 4))));
    const perChunk = chunk.count;
    this.target = this.delivered + count;
    const done = new Promise<void>((resolve) => (this.waiter = resolve));
    const start = performance.now();
    let written = 0;
    while (written < count) {
      const n = Math.min(perChunk, count - written);
      const data = n === perChunk ? chunk.data : chunk.data.subarray(0, n * (size + 4));
      written += n;
      if (!this.remote.write(data)) await once(this.remote, 'drain');
    }
    await done;
    return (performance.now() - start) / 1000;
  }

  async close(): Promise<void> {
    for (const w of this.workers) await w.terminate();
    this.sock.close();
    this.local.destroy();
    this.remote.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** `count` frames of `size` payload bytes, back to back. */
function frames(size: number, count: number): { data: Buffer; count: number } {
  const data = Buffer.alloc((size + 4) * count, 0x5a);
  for (let i = 0; i < count; i++) data.writeUInt32BE(size, i * (size + 4));
  return { data, count };
}

// ------------------------------------------------------------------ hand-off alone

/** Node 20 has it; the ES2023 lib used here does not declare it. */
interface AtomicsWaitAsync {
  waitAsync(array: Int32Array, index: number, value: number): { async: false } | { async: true; value: Promise<unknown> };
}

const RING_BYTES = 4 * 1024 * 1024;
/** Ring header (Int32 slots): 0 write position, 1 read position, 2 messages written, 3 wake counter. */
const RING_HEAD = 16;

/** Seconds to hand `count` messages of `size` bytes to a worker, `burst` per hand-off. */
async function handoff(kind: string, size: number, count: number, burst: number): Promise<number> {
  const ring = kind === 'ring' ? new SharedArrayBuffer(RING_HEAD + RING_BYTES) : undefined;
  const args: WorkerArgs = { role: 'handoff', handoff: kind, ring };
  const w = new Worker(self, { workerData: args });
  await once(w, 'message');
  const messages: Buffer[] = [];
  for (let i = 0; i < burst; i++) messages.push(Buffer.alloc(size, i & 0xff));
  let consumed = 0;
  let wake: (() => void) | undefined;
  w.on('message', (m: { consumed: number }) => {
    consumed = m.consumed;
    wake?.();
  });
  const waitConsumed = (n: number): Promise<void> => new Promise<void>((resolve) => {
    if (consumed >= n) return resolve();
    wake = () => {
      if (consumed >= n) resolve();
    };
  });
  const start = performance.now();
  let sent = 0;
  const head = ring === undefined ? undefined : new Int32Array(ring, 0, 4);
  const body = ring === undefined ? undefined : new Uint8Array(ring, RING_HEAD);
  while (sent < count) {
    const n = Math.min(burst, count - sent);
    const batch = messages.slice(0, n);
    if (kind === 'transfer') {
      let bytes = 0;
      for (const m of batch) bytes += m.length;
      const buf = new ArrayBuffer(4 * (n + 1) + bytes);
      const index = new Uint32Array(buf, 0, n + 1);
      const data = new Uint8Array(buf, 4 * (n + 1));
      index[0] = n;
      let pos = 0;
      for (let i = 0; i < n; i++) {
        data.set(batch[i]!, pos);
        pos += batch[i]!.length;
        index[i + 1] = pos;
      }
      w.postMessage(buf, [buf]);
    } else if (kind === 'clone') {
      w.postMessage(batch);
    } else {
      // Each message: u32 length then bytes; wait for room (bounded like a receive buffer).
      const need = n * (size + 4);
      while (Atomics.load(head!, 0) - Atomics.load(head!, 1) + need > RING_BYTES) await waitConsumed(sent - Math.floor(burst * 8));
      let wpos = Atomics.load(head!, 0);
      for (const m of batch) {
        const at = wpos % RING_BYTES;
        const lenBytes = [m.length >>> 24, (m.length >>> 16) & 0xff, (m.length >>> 8) & 0xff, m.length & 0xff];
        for (let j = 0; j < 4; j++) body![(at + j) % RING_BYTES] = lenBytes[j]!;
        const start2 = (at + 4) % RING_BYTES;
        const first = Math.min(m.length, RING_BYTES - start2);
        body!.set(m.subarray(0, first), start2);
        if (first < m.length) body!.set(m.subarray(first), 0);
        wpos += 4 + m.length;
      }
      Atomics.store(head!, 0, wpos);
      Atomics.add(head!, 2, n);
      Atomics.add(head!, 3, 1);
      Atomics.notify(head!, 3);
    }
    sent += n;
    // Bounded in flight, as a receive buffer bounds kcm: at most 8 bursts ahead.
    if (kind !== 'ring' && sent - consumed > burst * 8) await waitConsumed(sent - burst * 8);
  }
  await waitConsumed(count);
  const seconds = (performance.now() - start) / 1000;
  await w.terminate();
  return seconds;
}

function handoffWorker(args: WorkerArgs, parent: NonNullable<typeof parentPort>): void {
  let consumed = 0;
  let check = 0;
  let scheduled = false;
  const report = (): void => {
    scheduled = false;
    parent.postMessage({ consumed, check });
  };
  const touch = (m: Uint8Array): void => {
    consumed++;
    check = (check + m[m.length - 1]!) | 0;
    if (!scheduled) {
      scheduled = true;
      setImmediate(report);
    }
  };
  if (args.handoff === 'ring') {
    const head = new Int32Array(args.ring!, 0, 4);
    const body = new Uint8Array(args.ring!, RING_HEAD);
    let rpos = 0;
    const drain = (): void => {
      const wpos = Atomics.load(head, 0);
      while (rpos < wpos) {
        const at = rpos % RING_BYTES;
        let len = 0;
        for (let j = 0; j < 4; j++) len = (len << 8) | body[(at + j) % RING_BYTES]!;
        const start = (at + 4) % RING_BYTES;
        let m: Buffer;
        if (start + len <= RING_BYTES) m = Buffer.from(body.subarray(start, start + len));
        else m = Buffer.concat([body.subarray(start), body.subarray(0, len - (RING_BYTES - start))]);
        touch(m);
        rpos += 4 + len;
      }
      Atomics.store(head, 1, rpos);
    };
    const loop = (): void => {
      drain();
      const seen = Atomics.load(head, 3);
      const r = (Atomics as unknown as AtomicsWaitAsync).waitAsync(head, 3, seen);
      if (r.async) void r.value.then(loop);
      else setImmediate(loop);
    };
    // A pending Atomics.waitAsync does not keep a thread alive; a listening port does.
    parent.on('message', () => {});
    loop();
  } else if (args.handoff === 'transfer') {
    parent.on('message', (buf: ArrayBuffer) => {
      const n = new Uint32Array(buf, 0, 1)[0]!;
      const index = new Uint32Array(buf, 4, n);
      const head = 4 * (n + 1);
      let s = 0;
      for (let i = 0; i < n; i++) {
        touch(Buffer.from(buf, head + s, index[i]! - s));
        s = index[i]!;
      }
    });
  } else {
    parent.on('message', (batch: Uint8Array[]) => {
      for (const m of batch) touch(m);
    });
  }
  parent.postMessage({ ready: true });
}

if (!isMainThread) runWorker(workerData as WorkerArgs);
else await main();
