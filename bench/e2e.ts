/**
 * The end-to-end benchmark behind `npm run bench` and `kcm bench`: kcm against hand-written
 * `net` length framing, raw unframed TCP (the ceiling) and zeromq.js, over loopback, with
 * the sender and the receiver in two separate processes (`peer.ts`), every message
 * delivered to the receiving application as a Buffer.
 *
 * Throughput: for each size and connection count, the sender sends as fast as its
 * transport lets it; the receiver counts what it delivered during `--measure-ms` after
 * `--warmup-ms`. Cases run interleaved, one per contender in turn, for `--rounds` rounds;
 * the tables show the median round and the min–max. MB/s counts payload bytes
 * (1 MB = 10^6 bytes); kcm and net carry a 4-byte header more per message, zeromq its own
 * framing. Latency: a 64-byte ping-pong, one message in flight, p50 and p99.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { cpus } from 'node:os';
import { parseArgs, UsageError, type OptionSpec } from '../src/cli/args.js';
import { loadZeromq } from './contenders/zeromq.js';
import { formatCount, formatSize, formatTable, median } from './lib/format.js';

export const benchUsage =
  'usage: kcm bench [--quick] [--json] [--sizes 16,256,4k,64k] [--connections 1,4] [--contenders kcm,kcm-bpf,net,raw,zeromq] [--rounds N] [--measure-ms MS] [--warmup-ms MS] [--ping-count N] [--no-ping] [--kcm-receive message|many] [--kcm-send many|send] [--profile DIR]';

const help = `${benchUsage}

Compares kcm with hand-written net length framing, raw unframed TCP and zeromq.js
(PUSH/PULL, REQ/REP) end to end over 127.0.0.1, sender and receiver in separate processes.

options:
  --quick             a short run: 1 round of 200 ms per case, 1000 ping-pongs
  --json              print the results as JSON only
  --sizes LIST        payload sizes (default 16,256,4k,64k)
  --connections LIST  TCP connections per case (default 1,4)
  --contenders LIST   any of kcm,kcm-bpf,net,raw,zeromq (default all but kcm-bpf, the
                      Thrift framing as a compiled eBPF object; zeromq is skipped when it
                      cannot be loaded)
  --rounds N          rounds of every case (default 3)
  --measure-ms MS     measured time per case and round (default 600)
  --warmup-ms MS      unmeasured time before it (default 200)
  --ping-count N      round trips per ping-pong round (default 5000)
  --no-ping           skip the ping-pong latency test
  --kcm-receive M     kcm receiver: 'message' listener (default) or 'many' (receiveMany)
  --kcm-send M        kcm sender: 'many' (sendMany bursts, default) or 'send' (one at a time)
  --profile DIR       run the peer processes with --cpu-prof, writing profiles to DIR`;

const spec: Record<string, OptionSpec> = {
  quick: { type: 'boolean' },
  json: { type: 'boolean' },
  sizes: { type: 'list', min: 1, max: 8 * 1024 * 1024 - 4 },
  connections: { type: 'list', min: 1, max: 64 },
  contenders: { type: 'string' },
  rounds: { type: 'int', min: 1, max: 100 },
  measureMs: { type: 'int', min: 10, max: 600000 },
  warmupMs: { type: 'int', min: 0, max: 600000 },
  pingCount: { type: 'int', min: 1, max: 10_000_000 },
  ping: { type: 'boolean' },
  kcmReceive: { type: 'string', choices: ['message', 'many'] },
  kcmSend: { type: 'string', choices: ['many', 'send'] },
  profile: { type: 'string' },
};

const ALL = ['kcm', 'kcm-bpf', 'net', 'raw', 'zeromq'] as const;
/** kcm-bpf (the same framing as an eBPF object) runs only when asked for. */
const DEFAULT = ['kcm', 'net', 'raw', 'zeromq'] as const;
const PING_SIZE = 64;
/** Longest wait for a peer's answer before the case counts as failed. */
const COMMAND_TIMEOUT_MS = 30_000;

export interface BenchOptions {
  sizes: number[];
  connections: number[];
  contenders: string[];
  rounds: number;
  measureMs: number;
  warmupMs: number;
  pingCount: number;
  pingWarmup: number;
  ping: boolean;
  kcmReceive: string;
  kcmSend: string;
  profile: string | undefined;
}

/** min, median, max of the rounds. */
export interface Spread {
  median: number;
  min: number;
  max: number;
}

export interface ThroughputResult {
  contender: string;
  size: number;
  connections: number;
  msgsPerSec: Spread;
  mbPerSec: Spread;
  rounds: number[];
  errors: string[];
}

export interface LatencyResult {
  contender: string;
  size: number;
  p50us: Spread;
  p99us: Spread;
  errors: string[];
}

export interface Goal {
  what: string;
  ratio: number;
  target: string;
  met: boolean;
}

export interface BenchResults {
  node: string;
  cpus: number;
  options: BenchOptions;
  skipped: Record<string, string>;
  throughput: ThroughputResult[];
  latency: LatencyResult[];
  goals: Goal[];
}

/** Runs `kcm bench` / `npm run bench` with command-line `argv`; resolves to the exit status. */
export async function benchCommand(argv: readonly string[]): Promise<number> {
  const v = parseArgs(argv, spec);
  if (v.help === true) {
    process.stdout.write(`${help}\n`);
    return 0;
  }
  const quick = v.quick === true;
  const contenders = ((v.contenders as string | undefined) ?? DEFAULT.join(',')).split(',').filter((s) => s !== '');
  for (const c of contenders) if (!(ALL as readonly string[]).includes(c)) throw new UsageError(`--contenders: unknown contender '${c}' (use ${ALL.join(', ')})`);
  const o: BenchOptions = {
    sizes: (v.sizes as number[] | undefined) ?? [16, 256, 4096, 65536],
    connections: (v.connections as number[] | undefined) ?? [1, 4],
    contenders,
    rounds: (v.rounds as number | undefined) ?? (quick ? 1 : 3),
    measureMs: (v.measureMs as number | undefined) ?? (quick ? 200 : 600),
    warmupMs: (v.warmupMs as number | undefined) ?? (quick ? 100 : 200),
    pingCount: (v.pingCount as number | undefined) ?? (quick ? 1000 : 5000),
    pingWarmup: quick ? 200 : 500,
    ping: (v.ping as boolean | undefined) ?? true,
    kcmReceive: (v.kcmReceive as string | undefined) ?? 'message',
    kcmSend: (v.kcmSend as string | undefined) ?? 'many',
    profile: v.profile as string | undefined,
  };
  const json = v.json === true;
  const results = await runBench(o, json || process.stderr.isTTY !== true ? undefined : (text) => process.stderr.write(text));
  if (json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
  else process.stdout.write(formatResults(results));
  const failed = results.throughput.some((r) => r.errors.length > 0) || results.latency.some((r) => r.errors.length > 0);
  return failed ? 1 : 0;
}

/** Runs every case; `progress` gets short notes while it runs. */
export async function runBench(o: BenchOptions, progress?: (text: string) => void): Promise<BenchResults> {
  const skipped: Record<string, string> = {};
  let contenders = o.contenders;
  if (contenders.includes('zeromq')) {
    try {
      await loadZeromq();
    } catch (err) {
      skipped.zeromq = `zeromq cannot be loaded: ${(err as Error).message.split('\n')[0]}`;
      contenders = contenders.filter((c) => c !== 'zeromq');
      progress?.(`skipping zeromq: ${skipped.zeromq}\n`);
    }
  }
  const pair = new PeerPair(o.profile);
  const throughput: ThroughputResult[] = [];
  for (const size of o.sizes) {
    for (const connections of o.connections) {
      for (const contender of contenders) {
        throughput.push({ contender, size, connections, msgsPerSec: spread([]), mbPerSec: spread([]), rounds: [], errors: [] });
      }
    }
  }
  const latency: LatencyResult[] = [];
  const pingers = o.ping ? contenders.filter((c) => c !== 'raw') : [];
  const p50s = new Map<string, number[]>();
  const p99s = new Map<string, number[]>();
  for (const c of pingers) {
    latency.push({ contender: c, size: PING_SIZE, p50us: spread([]), p99us: spread([]), errors: [] });
    p50s.set(c, []);
    p99s.set(c, []);
  }
  try {
    for (let round = 0; round < o.rounds; round++) {
      progress?.(`round ${round + 1}/${o.rounds}: `);
      for (const r of throughput) {
        try {
          r.rounds.push(await pair.throughput(r.contender, r.size, r.connections, o));
        } catch (err) {
          r.errors.push((err as Error).message);
          await pair.restart();
        }
        progress?.('.');
      }
      for (const l of latency) {
        try {
          const rtts = await pair.pingPong(l.contender, o);
          p50s.get(l.contender)!.push(percentile(rtts, 0.5));
          p99s.get(l.contender)!.push(percentile(rtts, 0.99));
        } catch (err) {
          l.errors.push((err as Error).message);
          await pair.restart();
        }
        progress?.('.');
      }
      progress?.('\n');
    }
  } finally {
    pair.kill();
  }
  for (const r of throughput) {
    r.msgsPerSec = spread(r.rounds);
    r.mbPerSec = spread(r.rounds.map((m) => (m * r.size) / 1e6));
  }
  for (const l of latency) {
    l.p50us = spread(p50s.get(l.contender)!);
    l.p99us = spread(p99s.get(l.contender)!);
  }
  return {
    node: process.version,
    cpus: cpus().length,
    options: { ...o, contenders },
    skipped,
    throughput,
    latency,
    goals: goals(throughput, latency),
  };
}

/** The goals of the project, where the run has the numbers to judge them. */
function goals(throughput: ThroughputResult[], latency: LatencyResult[]): Goal[] {
  const out: Goal[] = [];
  const find = (c: string, size: number, n: number): ThroughputResult | undefined =>
    throughput.find((r) => r.contender === c && r.size === size && r.connections === n && r.rounds.length > 0);
  for (const r of throughput) {
    if (r.contender === 'kcm-bpf' && r.rounds.length > 0) {
      const kcm = find('kcm', r.size, r.connections);
      if (kcm !== undefined) {
        const ratio = r.msgsPerSec.median / kcm.msgsPerSec.median;
        out.push({ what: `${formatSize(r.size)} x${r.connections} kcm-bpf/kcm msgs/s`, ratio, target: '>= 0.95x', met: ratio >= 0.95 });
      }
    }
    if (r.contender !== 'kcm' || r.rounds.length === 0) continue;
    const net = find('net', r.size, r.connections);
    const zmq = find('zeromq', r.size, r.connections);
    const label = `${formatSize(r.size)} x${r.connections}`;
    if (r.size <= 256) {
      if (net !== undefined) {
        const ratio = r.msgsPerSec.median / net.msgsPerSec.median;
        out.push({ what: `${label} kcm/net msgs/s`, ratio, target: '>= 0.5x', met: ratio >= 0.5 });
      }
      if (zmq !== undefined) {
        const ratio = r.msgsPerSec.median / zmq.msgsPerSec.median;
        out.push({ what: `${label} kcm/zeromq msgs/s`, ratio, target: '>= 10x', met: ratio >= 10 });
      }
    } else if (r.size >= 4096 && net !== undefined) {
      const ratio = r.mbPerSec.median / net.mbPerSec.median;
      out.push({ what: `${label} kcm/net MB/s`, ratio, target: '>= 0.8x', met: ratio >= 0.8 });
    }
  }
  const kcm = latency.find((l) => l.contender === 'kcm' && l.errors.length === 0);
  const net = latency.find((l) => l.contender === 'net' && l.errors.length === 0);
  if (kcm !== undefined && net !== undefined && Number.isFinite(kcm.p50us.median)) {
    const ratio = kcm.p50us.median / net.p50us.median;
    out.push({ what: `${PING_SIZE} B ping-pong kcm/net p50`, ratio, target: '<= 1.1x', met: ratio <= 1.1 });
  }
  return out;
}

/** The results as plain-text tables. */
export function formatResults(res: BenchResults): string {
  const o = res.options;
  const lines: string[] = [];
  lines.push(
    `kcm bench: end to end over 127.0.0.1, sender and receiver in separate processes; node ${res.node}, ${res.cpus} CPUs`,
    `${o.rounds} round${o.rounds === 1 ? '' : 's'} of ${o.measureMs} ms per case (after ${o.warmupMs} ms warm-up); median (min-max); ` +
      `MB/s = payload bytes, 10^6; kcm: receive '${o.kcmReceive}', send '${o.kcmSend}'`,
  );
  for (const [name, why] of Object.entries(res.skipped)) lines.push(`skipped ${name}: ${why}`);
  lines.push('');
  const rows: string[][] = [];
  for (const r of res.throughput) {
    const err = r.errors.length > 0 ? `  (${r.errors.length} failed: ${r.errors[0]})` : '';
    const ratio = (base: string): string => {
      const b = res.throughput.find((x) => x.contender === base && x.size === r.size && x.connections === r.connections);
      if (b === undefined || r.contender === base || r.rounds.length === 0 || b.rounds.length === 0) return '';
      return `${(r.msgsPerSec.median / b.msgsPerSec.median).toFixed(2)}x`;
    };
    rows.push([
      formatSize(r.size),
      String(r.connections),
      r.contender,
      r.rounds.length === 0 ? 'failed' : formatCount(r.msgsPerSec.median),
      r.rounds.length === 0 ? '' : `${formatCount(r.msgsPerSec.min)}-${formatCount(r.msgsPerSec.max)}`,
      r.rounds.length === 0 ? '' : r.mbPerSec.median.toFixed(1),
      r.rounds.length === 0 ? '' : `${r.mbPerSec.min.toFixed(1)}-${r.mbPerSec.max.toFixed(1)}`,
      ratio('net'),
      ratio('zeromq'),
      err,
    ]);
  }
  lines.push(formatTable(['size', 'conns', 'contender', 'msgs/s', '(min-max)', 'MB/s', '(min-max)', 'vs net', 'vs zeromq', ''], rows));
  if (res.latency.length > 0) {
    lines.push('', `ping-pong: ${PING_SIZE}-byte messages, one in flight, ${o.pingCount} round trips per round; microseconds`);
    const net = res.latency.find((l) => l.contender === 'net');
    const lrows = res.latency.map((l) => [
      l.contender,
      l.errors.length > 0 && !Number.isFinite(l.p50us.median) ? 'failed' : l.p50us.median.toFixed(1),
      `${l.p50us.min.toFixed(1)}-${l.p50us.max.toFixed(1)}`,
      l.p99us.median.toFixed(1),
      `${l.p99us.min.toFixed(1)}-${l.p99us.max.toFixed(1)}`,
      net === undefined || l === net ? '' : `${(l.p50us.median / net.p50us.median).toFixed(2)}x`,
      l.errors.length > 0 ? `(${l.errors.length} failed: ${l.errors[0]})` : '',
    ]);
    lines.push(formatTable(['contender', 'p50 us', '(min-max)', 'p99 us', '(min-max)', 'p50 vs net', ''], lrows));
  }
  if (res.goals.length > 0) {
    lines.push('', 'goals:');
    lines.push(formatTable(['goal', 'ratio', 'target', ''], res.goals.map((g) => [g.what, `${g.ratio.toFixed(2)}x`, g.target, g.met ? 'met' : 'MISSED'])));
  }
  return `${lines.join('\n')}\n`;
}

function spread(values: number[]): Spread {
  if (values.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN };
  return { median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

interface Reply {
  id: number;
  error?: string;
  [key: string]: unknown;
}

/** One forked peer process and its pending commands. */
class Peer {
  private readonly child: ChildProcess;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private exited = false;

  constructor(role: string, profile: string | undefined) {
    const execArgv = profile === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', profile, '--cpu-prof-name', `${role}-${process.pid}-${Date.now()}.cpuprofile`];
    this.child = fork(new URL('./peer.js', import.meta.url), [role], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child.on('message', (r: Reply) => {
      const p = this.pending.get(r.id);
      if (p === undefined) return;
      this.pending.delete(r.id);
      clearTimeout(p.timer);
      if (r.error !== undefined) p.reject(new Error(r.error));
      else p.resolve(r);
    });
    this.child.on('exit', (code, signal) => {
      this.exited = true;
      for (const p of this.pending.values()) {
        clearTimeout(p.timer);
        p.reject(new Error(`the ${role} process exited (${signal ?? code})`));
      }
      this.pending.clear();
    });
  }

  request(command: Record<string, unknown>, timeoutMs = COMMAND_TIMEOUT_MS): Promise<Reply> {
    if (this.exited) return Promise.reject(new Error('the peer process is gone'));
    const id = this.nextId++;
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`no answer to '${String(command.cmd)}' within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.child.send({ id, ...command });
    });
  }

  /** Ends the process: its IPC channel first (it exits then), a kill if it stays. */
  kill(): void {
    if (this.exited) return;
    if (this.child.connected) this.child.disconnect();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 2000);
    timer.unref();
    this.child.once('exit', () => clearTimeout(timer));
  }
}

/** The receiver and the sender processes, kept for the whole run and replaced after a failure. */
class PeerPair {
  private receiver: Peer;
  private sender: Peer;

  constructor(private readonly profile: string | undefined) {
    this.receiver = new Peer('receiver', profile);
    this.sender = new Peer('sender', profile);
  }

  /** Messages per second delivered to the receiving application in one measured run. */
  async throughput(contender: string, size: number, connections: number, o: BenchOptions): Promise<number> {
    const mode = contender.startsWith('kcm') ? o.kcmReceive : '';
    const { address } = await this.receiver.request({ cmd: 'receive', contender, size, connections, mode });
    try {
      await this.sender.request({ cmd: 'send', contender, size, connections, address, mode: contender.startsWith('kcm') ? o.kcmSend : '' });
      const m = await this.receiver.request({ cmd: 'measure', warmupMs: o.warmupMs, measureMs: o.measureMs });
      const seconds = m.seconds as number;
      const messages = m.bytesOnly === true ? (m.bytes as number) / (size + 4) : (m.messages as number);
      if (messages === 0) throw new Error('no message arrived while measuring');
      return messages / seconds;
    } finally {
      await this.sender.request({ cmd: 'stop' });
      await this.receiver.request({ cmd: 'stop' });
    }
  }

  /** Round-trip times in microseconds. */
  async pingPong(contender: string, o: BenchOptions): Promise<number[]> {
    const { address } = await this.receiver.request({ cmd: 'echo', contender, size: PING_SIZE });
    try {
      const r = await this.sender.request({ cmd: 'ping', contender, address, size: PING_SIZE, warmup: o.pingWarmup, count: o.pingCount });
      return r.rtts as number[];
    } finally {
      await this.sender.request({ cmd: 'stop' });
      await this.receiver.request({ cmd: 'stop' });
    }
  }

  async restart(): Promise<void> {
    this.kill();
    await new Promise((r) => setTimeout(r, 100));
    this.receiver = new Peer('receiver', this.profile);
    this.sender = new Peer('sender', this.profile);
  }

  kill(): void {
    this.receiver.kill();
    this.sender.kill();
  }
}
