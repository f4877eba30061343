/**
 * `kcm bench`: kcm against a hand-written framer over `net` (the baseline of every ratio),
 * a per-frame-write framer and zeromq.js, over 127.0.0.1 with the sender and the receiver
 * in separate processes. Sections (see `sections.ts`): `e2e` and `ping` by default; `send`,
 * `receive` and `bpf` on request (`--section all`).
 */
import { cpus } from 'node:os';
import { parseArgs, UsageError, type OptionSpec } from '../args.js';
import { kcmReceiveModes, kcmSendLoops, type KcmReceiveMode, type KcmSendLoop } from './contenders/kcm.js';
import { loadZeromq, zeromqMissing } from './contenders/zeromq.js';
import { formatCount, formatSize, formatTable, median, percentile, spread, type Spread } from './format.js';
import { PeerPair } from './rig.js';
import { caseLabel, defaultSections, NET, sections, type GoalSpec, type LatencySection, type SectionOptions, type ThroughputSection } from './sections.js';

const CONTENDERS = ['kcm', 'kcm-bpf', 'net', 'net-naive', 'zeromq'] as const;
/** kcm-bpf runs in the e2e section only when asked for (the bpf section compares it). */
const DEFAULT_CONTENDERS = ['kcm', 'net', 'net-naive', 'zeromq'] as const;
const SECTION_NAMES = sections.map((s) => s.name);

export const benchUsage =
  `usage: kcm bench [--quick] [--section ${SECTION_NAMES.join(',')}|all] [--json] [--goals [--strict]] [--sizes 16,256,4k,64k] [--connections 1,4] ` +
  `[--contenders ${CONTENDERS.join(',')}] [--rounds N] [--measure-ms MS] [--warmup-ms MS] [--ping-count N] [--kcm-send ${kcmSendLoops.join('|')}] [--kcm-receive ${kcmReceiveModes.join('|')}] [--profile DIR]`;

const help = `${benchUsage}

Compares kcm with the framing code it replaces, over 127.0.0.1, the sender and the
receiver in two separate processes:

  net        hand-written 4-byte length framing over node:net as a competent developer
             writes it: frames copied into 64 KiB buffers, one write() each; a reader
             handing out subarrays of each chunk. Every ratio is against it.
  net-naive  the same reader, one write() per frame.
  zeromq     zeromq.js PUSH/PULL and REQ/REP (optional: npm install zeromq).
  kcm        KCM sockets with a lengthField parser (kcm-bpf: the same framing as eBPF).

sections (default e2e,ping):
  e2e      messages/s and MB/s delivered to the receiving application one by one
  ping     64-byte ping-pong latency, one message in flight
  send     the send side alone: kcm's send loops and the hand-written sender, to a peer
           that discards
  receive  the receive side alone: kcm's 'message' and receiveMany() and the hand-written
           reader, fed by the hand-written sender
  bpf      the eBPF Thrift parser against lengthField, end to end

options:
  --quick             1 round of 200 ms per case, 1000 ping-pongs (the default: 5 rounds
                      of 600 ms, 5000 ping-pongs; medians and min-max of the rounds)
  --section LIST      sections to run, or 'all'
  --json              print the results as JSON only
  --goals             also print the project's performance goals, met or missed
  --strict            with --goals: exit 1 when a goal is missed
  --sizes LIST        payload sizes of every throughput section (default per section)
  --connections LIST  TCP connections per case (default 1,4 end to end, 1 elsewhere)
  --contenders LIST   e2e and ping contenders: ${CONTENDERS.join(',')}
                      (default ${DEFAULT_CONTENDERS.join(',')}; zeromq skipped when not installed)
  --rounds N          rounds of every case
  --measure-ms MS     measured time per case and round
  --warmup-ms MS      unmeasured time before it
  --ping-count N      round trips per ping-pong round
  --kcm-send LOOP     the e2e kcm sender's loop: ${kcmSendLoops.join(', ')} (default many:
                      for (;;) await sock.sendMany(batch))
  --kcm-receive M     the e2e kcm receiver: message (default) or many (receiveMany)
  --profile DIR       run the peer processes with --cpu-prof, writing profiles to DIR`;

const spec: Record<string, OptionSpec> = {
  quick: { type: 'boolean' },
  section: { type: 'string' },
  sections: { type: 'string' },
  json: { type: 'boolean' },
  goals: { type: 'boolean' },
  strict: { type: 'boolean' },
  sizes: { type: 'list', min: 1, max: 8 * 1024 * 1024 - 4 },
  connections: { type: 'list', min: 1, max: 64 },
  contenders: { type: 'string' },
  rounds: { type: 'int', min: 1, max: 100 },
  measureMs: { type: 'int', min: 10, max: 600000 },
  warmupMs: { type: 'int', min: 0, max: 600000 },
  pingCount: { type: 'int', min: 1, max: 10_000_000 },
  ping: { type: 'boolean' },
  kcmReceive: { type: 'string', choices: kcmReceiveModes },
  kcmSend: { type: 'string', choices: kcmSendLoops },
  profile: { type: 'string' },
};

export interface BenchOptions extends SectionOptions {
  sections: string[];
  sizes: number[] | undefined;
  connections: number[] | undefined;
  rounds: number;
  measureMs: number;
  warmupMs: number;
  pingCount: number;
  pingWarmup: number;
  goals: boolean;
  profile: string | undefined;
}

export interface ThroughputResult {
  section: string;
  contender: string;
  size: number;
  connections: number;
  msgsPerSec: Spread;
  mbPerSec: Spread;
  /** msgs/s (or MB/s, the same ratio) over the section's baseline's, paired by round: the median of the rounds' ratios. */
  vsNet: number;
  rounds: number[];
  errors: string[];
  /** What went wrong around a round whose figure still stands (a sender slow to stop). */
  notes: string[];
}

export interface LatencyResult {
  section: string;
  contender: string;
  size: number;
  p50us: Spread;
  p99us: Spread;
  /** p50 over the baseline's p50, paired by round: the median of the rounds' ratios. */
  vsNet: number;
  errors: string[];
}

export interface Goal {
  section: string;
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
  /** Present with --goals. */
  goals?: Goal[];
}

/** Runs `kcm bench` with command-line `argv`; resolves to the exit status. */
export async function benchCommand(argv: readonly string[]): Promise<number> {
  const v = parseArgs(argv, spec);
  if (v.help === true) {
    process.stdout.write(`${help}\n`);
    return 0;
  }
  const o = benchOptions(v);
  const json = v.json === true;
  const results = await runBench(o, json || process.stderr.isTTY !== true ? undefined : (text) => process.stderr.write(text));
  if (json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
  else process.stdout.write(formatResults(results));
  return exitStatus(results, v.strict === true);
}

/** 1 when a case failed, or with `strict` when a goal was missed; else 0. */
export function exitStatus(results: BenchResults, strict: boolean): number {
  const failed = results.throughput.some((r) => r.errors.length > 0) || results.latency.some((r) => r.errors.length > 0);
  if (failed) return 1;
  if (strict && (results.goals ?? []).some((g) => !g.met)) return 1;
  return 0;
}

function benchOptions(v: ReturnType<typeof parseArgs>): BenchOptions {
  const quick = v.quick === true;
  if (v.strict === true && v.goals !== true) throw new UsageError('--strict applies to --goals: give both');
  const list = (text: string): string[] => text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const contenders = list((v.contenders as string | undefined) ?? DEFAULT_CONTENDERS.join(','));
  for (const c of contenders) if (!(CONTENDERS as readonly string[]).includes(c)) throw new UsageError(`--contenders: unknown contender '${c}' (use ${CONTENDERS.join(', ')})`);
  if (contenders.length === 0) throw new UsageError('--contenders needs at least one contender');
  const sectionText = (v.section as string | undefined) ?? (v.sections as string | undefined);
  let chosen = sectionText === undefined ? [...defaultSections] as string[] : list(sectionText);
  if (chosen.includes('all')) chosen = [...SECTION_NAMES];
  for (const s of chosen) if (!SECTION_NAMES.includes(s)) throw new UsageError(`--section: unknown section '${s}' (use ${SECTION_NAMES.join(', ')} or all)`);
  if (chosen.length === 0) throw new UsageError('--section needs at least one section');
  if (v.ping === false) chosen = chosen.filter((s) => s !== 'ping');
  return {
    sections: SECTION_NAMES.filter((s) => chosen.includes(s)),
    contenders,
    kcmSend: ((v.kcmSend as string | undefined) ?? 'many') as KcmSendLoop,
    kcmReceive: ((v.kcmReceive as string | undefined) ?? 'message') as KcmReceiveMode,
    sizes: v.sizes as number[] | undefined,
    connections: v.connections as number[] | undefined,
    rounds: (v.rounds as number | undefined) ?? (quick ? 1 : 5),
    measureMs: (v.measureMs as number | undefined) ?? (quick ? 200 : 600),
    warmupMs: (v.warmupMs as number | undefined) ?? (quick ? 100 : 200),
    pingCount: (v.pingCount as number | undefined) ?? (quick ? 1000 : 5000),
    pingWarmup: quick ? 200 : 500,
    goals: v.goals === true,
    profile: v.profile as string | undefined,
  };
}

/** Runs the chosen sections; `progress` gets short notes while it runs. */
export async function runBench(o: BenchOptions, progress?: (text: string) => void): Promise<BenchResults> {
  const skipped: Record<string, string> = {};
  let contenders = o.contenders;
  if (contenders.includes('zeromq') && o.sections.some((s) => s === 'e2e' || s === 'ping')) {
    try {
      await loadZeromq();
    } catch (err) {
      skipped.zeromq = zeromqMissing(err);
      contenders = contenders.filter((c) => c !== 'zeromq');
    }
  }
  const so: SectionOptions = { contenders, kcmSend: o.kcmSend, kcmReceive: o.kcmReceive };
  const pair = new PeerPair(o.profile);
  const throughput: ThroughputResult[] = [];
  const latency: LatencyResult[] = [];
  try {
    for (const section of sections) {
      if (!o.sections.includes(section.name)) continue;
      if (section.kind === 'throughput') throughput.push(...(await runThroughput(section, so, o, pair, progress)));
      else latency.push(...(await runLatency(section, so, o, pair, progress)));
    }
  } finally {
    pair.kill();
  }
  const res: BenchResults = { node: process.version, cpus: cpus().length, options: { ...o, contenders }, skipped, throughput, latency };
  if (o.goals) res.goals = goals(res);
  return res;
}

async function runThroughput(section: ThroughputSection, so: SectionOptions, o: BenchOptions, pair: PeerPair, progress?: (text: string) => void): Promise<ThroughputResult[]> {
  const rows = section.rows(so);
  const cases: { row: (typeof rows)[number]; r: ThroughputResult }[] = [];
  for (const size of o.sizes ?? section.sizes) {
    for (const connections of o.connections ?? section.connections) {
      for (const row of rows) {
        cases.push({ row, r: { section: section.name, contender: row.name, size, connections, msgsPerSec: spread([]), mbPerSec: spread([]), vsNet: Number.NaN, rounds: [], errors: [], notes: [] } });
      }
    }
  }
  // Each round's figure per case, NaN for a failed one: rounds pair the contenders run back to back.
  const byRound = new Map<ThroughputResult, number[]>();
  for (const c of cases) {
    const figures: number[] = [];
    byRound.set(c.r, figures);
    roundFigures.set(c.r, figures);
  }
  for (let round = 0; round < o.rounds; round++) {
    progress?.(`${section.name} ${round + 1}/${o.rounds} `);
    for (const { row, r } of cases) {
      byRound.get(r)!.push(Number.NaN);
      try {
        const { rate, stalled } = await pair.throughput(row.sender, row.receiver, r.size, r.connections, o);
        r.rounds.push(rate);
        byRound.get(r)![round] = rate;
        if (stalled !== undefined) {
          r.notes.push(stalled);
          await pair.restart();
        }
      } catch (err) {
        r.errors.push((err as Error).message);
        await pair.restart();
      }
      progress?.('.');
    }
    progress?.('\n');
  }
  const out = cases.map((c) => c.r);
  for (const r of out) {
    r.msgsPerSec = spread(r.rounds);
    r.mbPerSec = spread(r.rounds.map((m) => (m * r.size) / 1e6));
  }
  for (const r of out) {
    const base = out.find((b) => b.contender === section.baseline && b.size === r.size && b.connections === r.connections);
    if (base !== undefined) r.vsNet = ratioOf(r, base);
  }
  return out;
}

/** Each result's figure (msgs/s, or p50) per round, NaN for a failed round. */
const roundFigures = new WeakMap<ThroughputResult | LatencyResult, readonly number[]>();

/** `row` over `base`, paired by round ({@link pairedRatio}) when the rounds are known. */
function ratioOf(row: ThroughputResult | LatencyResult, base: ThroughputResult | LatencyResult): number {
  const a = roundFigures.get(row);
  const b = roundFigures.get(base);
  if (a !== undefined && b !== undefined) return pairedRatio(a, b);
  return 'p50us' in row && 'p50us' in base ? row.p50us.median / base.p50us.median : (row as ThroughputResult).msgsPerSec.median / (base as ThroughputResult).msgsPerSec.median;
}

/**
 * The median over rounds of a row's figure divided by the baseline's in the same round,
 * the two run back to back: a machine whose speed drifts between rounds moves both. The
 * ratio of the medians when no round has both.
 */
export function pairedRatio(row: readonly number[], base: readonly number[]): number {
  const ratios: number[] = [];
  for (let i = 0; i < row.length && i < base.length; i++) {
    const a = row[i]!;
    const b = base[i]!;
    if (Number.isFinite(a) && Number.isFinite(b) && b > 0) ratios.push(a / b);
  }
  if (ratios.length > 0) return median(ratios);
  const rows = row.filter(Number.isFinite);
  const bases = base.filter(Number.isFinite);
  return rows.length === 0 || bases.length === 0 ? Number.NaN : median(rows) / median(bases);
}

async function runLatency(section: LatencySection, so: SectionOptions, o: BenchOptions, pair: PeerPair, progress?: (text: string) => void): Promise<LatencyResult[]> {
  const rows = section.rows(so);
  const p50s = rows.map((): number[] => []);
  const p99s = rows.map((): number[] => []);
  const errors = rows.map((): string[] => []);
  const p50ByRound = rows.map((): number[] => []);
  for (let round = 0; round < o.rounds; round++) {
    progress?.(`${section.name} ${round + 1}/${o.rounds} `);
    for (let i = 0; i < rows.length; i++) {
      p50ByRound[i]!.push(Number.NaN);
      try {
        const rtts = await pair.pingPong(rows[i]!.pinger, section.size, o.pingWarmup, o.pingCount);
        p50ByRound[i]![round] = percentile(rtts, 0.5);
        p50s[i]!.push(percentile(rtts, 0.5));
        p99s[i]!.push(percentile(rtts, 0.99));
      } catch (err) {
        errors[i]!.push((err as Error).message);
        await pair.restart();
      }
      progress?.('.');
    }
    progress?.('\n');
  }
  const out = rows.map((row, i): LatencyResult => ({
    section: section.name,
    contender: row.name,
    size: section.size,
    p50us: spread(p50s[i]!),
    p99us: spread(p99s[i]!),
    vsNet: Number.NaN,
    errors: errors[i]!,
  }));
  for (let i = 0; i < out.length; i++) roundFigures.set(out[i]!, p50ByRound[i]!);
  const base = out.find((l) => l.contender === section.baseline);
  if (base !== undefined) for (const l of out) l.vsNet = ratioOf(l, base);
  return out;
}

/** The project's goals that the run has the numbers to judge. */
export function goals(res: BenchResults): Goal[] {
  const out: Goal[] = [];
  const judge = (section: string, g: GoalSpec, what: string, ratio: number): void => {
    if (!Number.isFinite(ratio)) return;
    const met = g.min !== undefined ? ratio >= g.min : ratio <= g.max!;
    out.push({ section, what, ratio, target: g.min !== undefined ? `>= ${g.min}x` : `<= ${g.max}x`, met });
  };
  for (const section of sections) {
    for (const g of section.goals) {
      if (section.kind === 'latency') {
        const row = res.latency.find((l) => l.section === section.name && l.contender === g.row);
        const base = res.latency.find((l) => l.section === section.name && l.contender === g.against);
        if (row !== undefined && base !== undefined) judge(section.name, g, `${section.name}: ${section.size} B ${g.row} / ${g.against} p50`, ratioOf(row, base));
        continue;
      }
      for (const r of res.throughput) {
        if (r.section !== section.name || r.contender !== g.row) continue;
        if (g.sizes !== undefined && !g.sizes.includes(r.size)) continue;
        const base = res.throughput.find((b) => b.section === r.section && b.contender === g.against && b.size === r.size && b.connections === r.connections);
        if (base === undefined) continue;
        // MB/s and msgs/s give the same ratio: one size.
        const ratio = ratioOf(r, base);
        judge(section.name, g, `${section.name}: ${caseLabel(r.size, r.connections)} ${g.row} / ${g.against} ${g.measure}`, ratio);
      }
    }
  }
  return out;
}

const ratioText = (x: number): string => (Number.isFinite(x) ? `${x.toFixed(2)}x` : '');
const rangeText = (s: Spread, f: (n: number) => string): string => `${f(s.min)}-${f(s.max)}`;
const mb = (n: number): string => n.toFixed(n >= 100 ? 0 : 1);

/** The results as labelled plain-text tables. */
export function formatResults(res: BenchResults): string {
  const o = res.options;
  const lines: string[] = [
    `kcm bench: node ${res.node}, ${res.cpus} CPUs, 127.0.0.1, sender and receiver in separate processes`,
    `${o.rounds} round${o.rounds === 1 ? '' : 's'} of ${o.measureMs} ms per case after ${o.warmupMs} ms warm-up; ` +
      `figures are the median round (min-max); MB/s = payload bytes / 10^6 per second; ratios ("vs ${NET}") are the median over rounds ` +
      `of a row's figure over the other's in the same round, the two run back to back`,
  ];
  for (const why of Object.values(res.skipped)) lines.push(`note: ${why}`);
  for (const section of sections) {
    if (!o.sections.includes(section.name)) continue;
    lines.push('', `== ${section.name}: ${section.title}`);
    // The legend: what each row runs.
    const legend: readonly { name: string; what: string }[] = section.rows(o);
    const width = Math.max(...legend.map((r) => r.name.length));
    for (const row of legend) lines.push(`  ${row.name.padEnd(width)}  ${row.what}`);
    if (section.kind === 'throughput') {
      lines.push(`  counted: ${section.counted}`, '');
      const also = section.alsoVs;
      const table = res.throughput.filter((r) => r.section === section.name).map((r) => {
        const failed = r.rounds.length === 0;
        const err = r.errors.length > 0 ? `(${r.errors.length} failed: ${r.errors[0]})` : r.notes.length > 0 ? `(${r.notes.length} of ${r.rounds.length}: ${r.notes[0]})` : '';
        let vsAlso = '';
        if (also !== undefined) {
          const b = res.throughput.find((x) => x.section === r.section && x.contender === also && x.size === r.size && x.connections === r.connections);
          if (b !== undefined && b !== r) vsAlso = ratioText(ratioOf(r, b));
        }
        return [
          formatSize(r.size),
          String(r.connections),
          r.contender,
          failed ? 'failed' : formatCount(r.msgsPerSec.median),
          failed ? '' : rangeText(r.msgsPerSec, formatCount),
          failed ? '' : mb(r.mbPerSec.median),
          failed ? '' : rangeText(r.mbPerSec, mb),
          r.contender === section.baseline ? '' : ratioText(r.vsNet),
          ...(also === undefined ? [] : [vsAlso]),
          err,
        ];
      });
      lines.push(formatTable(['size', 'conns', 'contender', 'msgs/s', '(min-max)', 'MB/s', '(min-max)', `vs ${section.baseline}`, ...(also === undefined ? [] : [`vs ${also}`]), ''], table));
    } else {
      lines.push(`  ${o.pingCount} round trips per round; microseconds`, '');
      const us = (n: number): string => n.toFixed(1);
      const table = res.latency.filter((l) => l.section === section.name).map((l) => {
        const failed = !Number.isFinite(l.p50us.median);
        return [
          l.contender,
          failed ? 'failed' : us(l.p50us.median),
          failed ? '' : rangeText(l.p50us, us),
          failed ? '' : us(l.p99us.median),
          failed ? '' : rangeText(l.p99us, us),
          l.contender === section.baseline ? '' : ratioText(l.vsNet),
          l.errors.length > 0 ? `(${l.errors.length} failed: ${l.errors[0]})` : '',
        ];
      });
      lines.push(formatTable(['contender', 'p50 us', '(min-max)', 'p99 us', '(min-max)', `p50 vs ${section.baseline}`, ''], table));
    }
  }
  if (res.goals !== undefined) {
    lines.push('', "== goals: the project's own targets for kcm, on these medians");
    if (res.goals.length === 0) lines.push('  (none of the goals applies to the sections run)');
    else lines.push(formatTable(['goal', 'ratio', 'target', ''], res.goals.map((g) => [g.what, `${g.ratio.toFixed(2)}x`, g.target, g.met ? 'met' : 'missed'])));
  }
  return `${lines.join('\n')}\n`;
}
