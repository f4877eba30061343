/**
 * Memory over a long run at full speed: a kcm sender (`for (;;) await sock.sendMany(batch)`)
 * and a kcm receiver (`sock.on('message')`), each in a process of its own on 127.0.0.1,
 * sampling its heap (used heap plus array buffers, after a full GC) and its RSS once a
 * second. After warm-up the figures must stay flat: the median of the last quarter of the
 * run against the median of its second quarter, per process.
 *
 *   node dist/bench/memory.js [--seconds=30] [--size=16] [--connections=1]
 *   (or KCM_BENCH_SECONDS=..., KCM_BENCH_SIZE=..., KCM_BENCH_CONNECTIONS=...)
 *
 * Runs shorter than 20 s print the figures without judging them. Exits 1 when memory grew.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { KcmSocket, lengthField } from '../src/index.js';
import { burstOf, closeServer, connect, listen, makeFrame } from '../src/cli/bench/wire.js';
import { formatCount, formatTable, median, parseOptions } from './lib/format.js';

/** Heap growth (MiB) between the second and the last quarter that still counts as flat. */
const HEAP_SLACK_MIB = 8;
/** RSS growth (MiB) that still counts as flat: the allocator keeps freed pages a while. */
const RSS_SLACK_MIB = 16;
/** Runs shorter than this are reported, not judged. */
const JUDGED_SECONDS = 20;
const MIB = 1024 * 1024;

interface Sample {
  t: number;
  heap: number;
  rss: number;
  messages: number;
}

const parser = (): ReturnType<typeof lengthField> => lengthField({ size: 4, adjust: 4 });

// ------------------------------------------------------------------ the two processes

/** The receiving process: one KCM socket, every accepted connection attached. */
async function receiver(): Promise<void> {
  const sock = KcmSocket.create();
  sock.mux.on('psockerror', () => {});
  let messages = 0;
  sock.on('message', () => {
    messages++;
  });
  const server = await listen((c) => sock.attach(c, { parser: parser() }));
  process.send!({ port: Number(server.address) });
  sample(() => messages);
  process.on('message', (m: { stop?: boolean }) => {
    if (m.stop === true) {
      sock.close();
      void closeServer(server).then(() => process.exit(0));
    }
  });
}

/** The sending process: one KCM socket per connection, each in its own sendMany loop. */
async function sender(port: number, size: number, connections: number): Promise<void> {
  const first = KcmSocket.create();
  first.mux.on('psockerror', () => {});
  const socks = [first];
  for (let i = 1; i < connections; i++) socks.push(first.clone());
  for (const c of await connect(String(port), connections)) first.attach(c, { parser: parser() });
  const frame = makeFrame(size);
  const batch = new Array<Buffer>(burstOf(frame.length)).fill(frame);
  let sent = 0;
  let stopped = false;
  for (const s of socks) {
    void (async () => {
      while (!stopped) {
        await s.sendMany(batch);
        sent += batch.length;
      }
    })().catch(() => {});
  }
  sample(() => sent);
  process.on('message', (m: { stop?: boolean }) => {
    if (m.stop === true) {
      stopped = true;
      for (const s of socks) s.close();
      process.exit(0);
    }
  });
}

/** Posts a sample to the parent once a second, after a full GC. */
function sample(count: () => number): void {
  const t0 = Date.now();
  const gc = (globalThis as { gc?: () => void }).gc;
  const timer = setInterval(() => {
    gc?.();
    const m = process.memoryUsage();
    process.send!({ sample: { t: (Date.now() - t0) / 1000, heap: m.heapUsed + m.arrayBuffers, rss: m.rss, messages: count() } satisfies Sample });
  }, 1000);
  timer.unref();
}

// ------------------------------------------------------------------ the parent

function spawn(role: string, args: string[], samples: Sample[]): ChildProcess {
  const child = fork(fileURLToPath(import.meta.url), [role, ...args], { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  child.on('message', (m: { sample?: Sample }) => {
    if (m.sample !== undefined) samples.push(m.sample);
  });
  return child;
}

interface Verdict {
  row: string[];
  flat: boolean;
}

function judge(name: string, samples: Sample[], seconds: number, judged: boolean): Verdict {
  const warm = samples.filter((s) => s.t >= seconds / 4 && s.t < seconds / 2);
  const late = samples.filter((s) => s.t >= (seconds * 3) / 4);
  const heapGrowth = median(late.map((s) => s.heap)) - median(warm.map((s) => s.heap));
  const rssGrowth = median(late.map((s) => s.rss)) - median(warm.map((s) => s.rss));
  const flat = heapGrowth < HEAP_SLACK_MIB * MIB && rssGrowth < RSS_SLACK_MIB * MIB;
  const first = samples[0];
  const last = samples[samples.length - 1];
  const rate = first === undefined || last === undefined || last.t === first.t ? 0 : (last.messages - first.messages) / (last.t - first.t);
  const mib = (n: number): string => `${(n / MIB).toFixed(1)}`;
  return {
    flat,
    row: [
      name,
      `${formatCount(rate)}/s`,
      `${mib(median(warm.map((s) => s.heap)))} -> ${mib(median(late.map((s) => s.heap)))}`,
      `${mib(median(warm.map((s) => s.rss)))} -> ${mib(median(late.map((s) => s.rss)))}`,
      `${mib(Math.max(...samples.map((s) => s.rss)))}`,
      !judged ? 'not judged' : flat ? 'flat' : 'GROWING',
    ],
  };
}

async function main(): Promise<void> {
  const o = parseOptions({ seconds: 30, size: 16, connections: 1 });
  const seconds = o.seconds;
  const rxSamples: Sample[] = [];
  const txSamples: Sample[] = [];
  const rx = spawn('receiver', [], rxSamples);
  const port = await new Promise<number>((resolve, reject) => {
    rx.on('message', (m: { port?: number }) => {
      if (m.port !== undefined) resolve(m.port);
    });
    rx.once('exit', (code) => reject(new Error(`the receiver exited (${code})`)));
  });
  const tx = spawn('sender', [String(port), String(o.size), String(o.connections)], txSamples);
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000 + 500));
  tx.send({ stop: true });
  rx.send({ stop: true });
  const judged = seconds >= JUDGED_SECONDS;
  const verdicts = [judge('sender', txSamples, seconds, judged), judge('receiver', rxSamples, seconds, judged)];
  process.stdout.write(
    `memory: kcm sender (sendMany loop) and receiver ('message'), ${o.size}-byte payloads, ${o.connections} connection(s), ${seconds} s; ` +
      `heap = used heap + array buffers after a full GC, once a second; second quarter of the run -> last quarter (medians, MiB)\n\n`,
  );
  process.stdout.write(formatTable(['process', 'messages', 'heap MiB', 'rss MiB', 'rss peak', ''], verdicts.map((v) => v.row)) + '\n');
  if (judged) process.stdout.write(`\nflat: heap grew less than ${HEAP_SLACK_MIB} MiB and RSS less than ${RSS_SLACK_MIB} MiB\n`);
  else process.stdout.write(`\n(runs under ${JUDGED_SECONDS} s are not judged)\n`);
  process.exitCode = judged && verdicts.some((v) => !v.flat) ? 1 : 0;
}

const role = process.argv[2];
if (role === 'receiver') void receiver();
else if (role === 'sender') void sender(Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5]));
else await main();
