/**
 * Differential testing against the Linux verifier and interpreter/JIT: random socket-filter
 * programs are loaded by the kernel (bpf(BPF_PROG_LOAD), through `kernel-bpf.py`) and by
 * kcm's verifier; the verdicts must agree, except for the differences listed in
 * docs/bpf.md (each has a predicate in {@link KNOWN_DIFFERENCES}); where both accept, r0
 * of BPF_PROG_TEST_RUN must equal kcm's parser result, compiled and interpreted, on random
 * packets.
 *
 *   node dist/test/bpf/kernel-diff.js [--count=10000] [--seed=1]
 *
 * Needs python3 and a kernel that lets this process call bpf() (root, no seccomp filter).
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KcmError } from '../../src/errors.js';
import { compileParser } from '../../src/bpf/compiler.js';
import { Interpreter } from '../../src/bpf/interpreter.js';
import { rawProgram } from '../../src/bpf/linker.js';
import { encodeInsns, type Insn } from '../../src/bpf/opcodes.js';
import { verify, type BranchPolicy } from '../../src/bpf/verifier.js';
import * as A from './asm.js';

/** The tool lives beside the sources, not in dist/. */
export const TOOL = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'bpf', 'kernel-bpf.py');

/** A small deterministic generator (xorshift32), so a seed names a run. */
class Rng {
  constructor(private s: number) {
    if (this.s === 0) this.s = 0x9e3779b9;
  }
  next(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  int(n: number): number {
    return this.next() % n;
  }
  chance(p: number): boolean {
    return this.next() / 0x100000000 < p;
  }
  pick<T>(list: readonly T[]): T {
    return list[this.int(list.length)]!;
  }
  imm(): number {
    const r = this.int(8);
    if (r < 3) return this.int(16);
    if (r < 5) return this.pick([-1, 0x7fffffff, -0x80000000, 31, 32, 63, 64, 255, 0x10000]);
    return this.next() | 0;
  }
}

const ALU = [0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xa0, 0xb0, 0xc0];
const JMP = [0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0xa0, 0xb0, 0xc0, 0xd0];
const SIZES = ['b', 'h', 'w', 'dw'] as const;
/** Registers holding numbers: r6 keeps the context (packet loads need it), r10 the frame. */
const SCALARS = [0, 2, 3, 4, 5, 7, 8, 9];
const SURVIVORS = [0, 7, 8, 9];

/** What a generated program is meant to probe (for the report). */
export interface Generated {
  insns: Insn[];
  packets: Uint8Array[];
}

/**
 * One random program: a prologue giving every register and 32 bytes of stack a value, a
 * body of random operations (each taking one slot, so forward jumps land on instructions),
 * rare deliberate faults (a zero divisor, a wide shift, dead code, pointer `&=`, an
 * unwritten register, a deep call chain), and an epilogue folding registers into r0.
 */
export function generate(rng: Rng): Generated {
  const pro: Insn[] = [A.mov64r(6, 1)];
  for (const r of SCALARS) pro.push(rng.chance(0.3) ? A.lddw(r, BigInt.asUintN(64, BigInt(rng.next()) * 0x100000001n + BigInt(rng.next())))[0]! : A.mov64(r, rng.imm()));
  // lddw takes two slots: rebuild the prologue with both halves.
  const prologue: Insn[] = [];
  for (const insn of pro) {
    if (insn.code === 0x18) prologue.push(...A.lddw(insn.dst, BigInt.asUintN(64, (BigInt(rng.next()) << 32n) | BigInt(insn.imm >>> 0))));
    else prologue.push(insn);
  }
  for (let k = 1; k <= 4; k++) prologue.push(A.st('dw', 10, -8 * k, rng.imm()));
  const n = 4 + rng.int(24);
  const body: Insn[][] = [];
  let clobbered = false;
  const useCall = rng.chance(0.08);
  const calleeDepth = useCall ? rng.pick([0, 8, 64, 256, 480, 512]) : 0;
  for (let i = 0; i < n; i++) {
    const remaining = n - i - 1;
    // After a packet load or a helper call r1-r5 are unset: mostly use what survives.
    const pool = clobbered && !rng.chance(0.05) ? SURVIVORS : SCALARS;
    const d = rng.pick(pool);
    const s = rng.pick(pool);
    const k = rng.int(100);
    if (k < 40) {
      const op = rng.pick(ALU);
      const wide = rng.chance(0.6);
      if (op === 0x80) {
        body.push([wide ? A.alu64(op, d, 0) : A.alu32(op, d, 0)]);
        continue;
      }
      const off = (op === 0x30 || op === 0x90) && rng.chance(0.3) ? 1 : 0;
      if (rng.chance(0.5)) {
        body.push([wide ? A.alu64r(op, d, s, off) : A.alu32r(op, d, s, off)]);
        continue;
      }
      let imm = rng.imm();
      // Mostly what the kernel accepts; now and then a zero divisor or a wide shift.
      if ((op === 0x30 || op === 0x90) && imm === 0 && !rng.chance(0.2)) imm = 7;
      if ((op === 0x60 || op === 0x70 || op === 0xc0) && !rng.chance(0.1)) imm &= wide ? 63 : 31;
      body.push([wide ? A.alu64(op, d, imm, off) : A.alu32(op, d, imm, off)]);
    } else if (k < 46) {
      const w = rng.pick([8, 16, 32]);
      body.push([rng.chance(0.5) ? A.alu64r(0xb0, d, s, w) : A.alu32r(0xb0, d, s, w === 32 ? 16 : w)]);
    } else if (k < 50) {
      body.push([A.insn(rng.pick([0xd4, 0xdc, 0xd7]), d, 0, 0, rng.pick([16, 32, 64]))]);
    } else if (k < 66 && remaining > 0) {
      const op = rng.pick(JMP);
      const off = rng.int(remaining + 1);
      const wide = rng.chance(0.5);
      const x = rng.chance(0.5);
      if (wide) body.push([x ? A.jmpr(op, d, s, off) : A.jmp(op, d, rng.imm(), off)]);
      else body.push([x ? A.jmp32r(op, d, s, off) : A.jmp32(op, d, rng.imm(), off)]);
    } else if (k < 74) {
      const size = rng.pick(['b', 'h', 'w'] as const);
      if (rng.chance(0.5)) body.push([A.ldabs(size, rng.int(20))]);
      else body.push([A.ldind(size, rng.pick([7, 8, 9]), rng.int(12) - 2)]);
      clobbered = true;
    } else if (k < 84) {
      const size = rng.pick(SIZES);
      const bytes = size === 'b' ? 1 : size === 'h' ? 2 : size === 'w' ? 4 : 8;
      const off = -8 * (1 + rng.int(4)) + bytes * rng.int(8 / bytes);
      const r = rng.int(3);
      if (r === 0) body.push([A.ldx(size, d, 10, off)]);
      else if (r === 1) body.push([A.stx(size, 10, s, off)]);
      else body.push([A.st(size, 10, off, rng.imm())]);
    } else if (k < 88) {
      // skb->len, or cb[] read and written.
      const r = rng.int(3);
      if (r === 0) body.push([A.ldx('w', d, 6, 0)]);
      else if (r === 1) body.push([A.ldx('w', d, 6, 48 + 4 * rng.int(5))]);
      else body.push([A.stx('w', 6, s, 48 + 4 * rng.int(5))]);
    } else if (k < 92) {
      // bpf_skb_load_bytes(skb, off, r10 - 16, len): five slots, counted as one step each.
      body.push([A.mov64r(1, 6)], [A.mov64(2, rng.int(10))], [A.mov64r(3, 10)], [A.alu64(0x00, 3, -16)], [A.mov64(4, 1 + rng.int(16))], [A.call(26)]);
      clobbered = true;
      i += 5;
    } else if (k < 94) {
      // Pointer arithmetic: + and - are fine, anything else is refused.
      const op = rng.chance(0.6) ? rng.pick([0x00, 0x10]) : rng.pick([0x50, 0x20, 0x40, 0x60]);
      body.push([A.mov64r(d, 10)], [A.alu64(op, d, op === 0x00 || op === 0x10 ? -8 * rng.int(4) : rng.imm())], [A.mov64(d, rng.imm())]);
      i += 2;
    } else if (k < 95) {
      // A register the program never writes, or the frame pointer written.
      body.push([rng.chance(0.5) ? A.mov64r(d, 1) : A.mov64(10, 1)]);
    } else if (k < 96 && remaining > 0) {
      // An unconditional jump over the next instruction: dead code.
      body.push([A.ja(Math.min(1, remaining))]);
    } else {
      body.push([A.mov64(d, rng.imm())]);
    }
  }
  const insns: Insn[] = [...prologue];
  for (const b of body) insns.push(...b);
  let callAt = -1;
  if (useCall) {
    insns.push(A.mov64(1, rng.imm()));
    callAt = insns.length;
    insns.push(A.callLocal(0), A.alu64r(0x00, 7, 0)); // the offset is set once the callee is placed
  }
  const fold: Insn[] = [A.mov64r(0, 7), A.alu64r(0xa0, 0, 8), A.alu64r(0x00, 0, 9), A.ldx('dw', 1, 10, -8), A.alu64r(0x00, 0, 1)];
  if (!clobbered || rng.chance(0.1)) fold.push(A.alu64r(0xa0, 0, rng.pick([2, 3, 4, 5])));
  insns.push(...fold, A.exit());
  if (useCall) {
    const calleeAt = insns.length;
    insns[callAt] = A.callLocal(calleeAt - callAt - 1);
    if (calleeDepth > 0) insns.push(A.stx('dw', 10, 1, -calleeDepth));
    insns.push(A.mov64r(0, 1), A.alu64(0x00, 0, 1), A.exit());
    // The caller's own frame, so the chain's total varies.
    insns.splice(1, 0, A.st('dw', 10, -rng.pick([8, 64, 256]), 1));
    // The splice moved everything after slot 1 by one: fix the call's offset (both ends moved).
  }
  const packets: Uint8Array[] = [];
  for (let p = 0; p < 4; p++) {
    const len = rng.pick([0, 1, 2, 4, 8, 12, 16, 24, rng.int(40)]);
    packets.push(Uint8Array.from({ length: len }, () => rng.int(256)));
  }
  return { insns, packets };
}

/** What kcm says of a program: refused (with the reason), or its results on the packets. */
interface Ours {
  verdict: 'accepted' | 'refused';
  reason?: string;
  leaksPointers?: boolean;
  /** Refused again when following only the kernel's steps ('known' differences), or both sides of every jump. */
  alongKernel?: 'accepted' | 'refused';
  exploringAll?: 'accepted' | 'refused';
  compiled?: number[];
  interpreted?: number[];
}

function ours(g: Generated): Ours {
  const prog = rawProgram(encodeInsns(g.insns));
  let analysis;
  try {
    analysis = verify(prog, 'parser');
  } catch (e) {
    if (e instanceof KcmError) return { verdict: 'refused', reason: e.message };
    throw e;
  }
  const parse = compileParser(prog, analysis);
  const interpreter = new Interpreter(prog, analysis);
  return {
    verdict: 'accepted',
    leaksPointers: analysis.leaksPointers,
    compiled: g.packets.map((p) => parse(Buffer.from(p))),
    interpreted: g.packets.map((p) => interpreter.runParser(p)),
  };
}

interface Kernel {
  verdict: 'accepted' | 'refused';
  errno?: number;
  log?: string;
  results?: (number | { error: number })[];
  /** With a trace: the steps [from, to] the kernel's verifier walked. */
  edges?: [number, number][];
}

function verdictWith(g: Generated, branches: BranchPolicy): 'accepted' | 'refused' {
  try {
    verify(rawProgram(encodeInsns(g.insns)), 'parser', branches);
    return 'accepted';
  } catch (e) {
    if (e instanceof KcmError) return 'refused';
    throw e;
  }
}


/** A difference between kcm and the kernel that docs/bpf.md lists, with how to recognise it. */
export interface KnownDifference {
  readonly name: string;
  readonly matches: (g: Generated, ours: Ours, kernel: Kernel) => boolean;
}

export const KNOWN_DIFFERENCES: readonly KnownDifference[] = [
  {
    // kcm knows a register's value or nothing; the kernel also tracks ranges and known
    // bits, so it proves more branches one-sided and never walks what lies behind them.
    // Replaying the kernel's walk (only the branch sides it took), kcm accepts too.
    name: 'the kernel rules out, from value ranges, the path kcm refuses',
    matches: (_g, o, k) => o.verdict === 'refused' && k.verdict === 'accepted' && o.alongKernel === 'accepted',
  },
  {
    // kcm's analysis joins the paths that meet at an instruction; the kernel walks each
    // path with its own values (pruning one only when it is no better than one it has seen).
    // A register set on one path and not on another, or holding different kinds of pointer,
    // is refused by kcm where the kernel shows each path uses it only where it is fit.
    name: 'kcm joins paths the kernel keeps apart',
    matches: (_g, o, k) =>
      o.verdict === 'refused' && k.verdict === 'accepted' && o.alongKernel === 'refused' && /is read before it is written|holds different kinds of pointer/.test(o.reason ?? ''),
  },
  {
    // Some values kcm keeps the kernel loses (a product of negative numbers, a 32-bit
    // operation on a known 64-bit value); kcm then skips a branch side the kernel walks and
    // refuses. Following both sides of every jump, kcm refuses too.
    name: 'kcm rules out, from a value the kernel does not keep, the path the kernel refuses',
    matches: (_g, o, k) => o.verdict === 'accepted' && k.verdict === 'refused' && o.exploringAll === 'refused',
  },
  {
    // kcm lets a number of any range move a pointer (the access is checked at run time);
    // the kernel needs the number's range known and small.
    name: 'kcm moves a pointer by a number of unknown range; the kernel needs its range',
    matches: (_g, o, k) =>
      o.verdict === 'accepted' && k.verdict === 'refused' && /pointer and register with unbounded min value is not allowed|makes \w+ pointer be out of bounds|math between \w+ pointer and -?\d+ is not allowed/.test(k.log ?? ''),
  },
  {
    // [F-3b] a negative packet offset reaches the classic ancillary area in the kernel
    // (SKF_NET_OFF, SKF_LL_OFF: the network or link-layer header); kcm has no headers and
    // ends the run returning 0, as for any offset out of range.
    name: 'a packet load at a negative offset (the classic ancillary area)',
    matches: (g, o, k) =>
      o.verdict === 'accepted' && k.verdict === 'accepted' && g.insns.some((x) => x.code === 0x40 || x.code === 0x48 || x.code === 0x50) && o.compiled!.some((r, p) => r === 0 && k.results![p] !== 0),
  },
  {
    // Privileged programs may turn pointers into numbers (compare, subtract, copy 32 bits);
    // kcm's addresses are not the kernel's, so such numbers differ.
    name: 'the result depends on a pointer value',
    matches: (_g, o, k) => o.verdict === 'accepted' && k.verdict === 'accepted' && o.leaksPointers === true,
  },
];

export interface Report {
  programs: number;
  bothAccepted: number;
  bothRefused: number;
  packetsCompared: number;
  /** Disagreements by known difference. */
  known: Record<string, number>;
  /** Disagreements no known difference explains (each a failure). */
  unexplained: { insns: string; ours: Ours; kernel: Kernel }[];
}

/** Checks whether the tool can reach the kernel: undefined when it can, else why not. */
export function kernelUnavailable(): string | undefined {
  const res = spawnSync('python3', [TOOL], { input: '', encoding: 'utf8', timeout: 20_000 });
  if (res.error !== undefined) return `python3 cannot run: ${res.error.message}`;
  const first = res.stdout.split('\n')[0] ?? '';
  try {
    const msg = JSON.parse(first) as { ready?: boolean; unavailable?: string };
    return msg.ready === true ? undefined : (msg.unavailable ?? 'the tool did not start');
  } catch {
    return `the tool did not start: ${res.stderr.slice(0, 200)}`;
  }
}

/** Generates `count` programs from `seed` and compares kcm with the kernel. */
export function runDifferential(count: number, seed: number): Report {
  const rng = new Rng(seed);
  const programs: Generated[] = [];
  for (let i = 0; i < count; i++) programs.push(generate(rng));
  const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
  const input = programs.map((g) => JSON.stringify({ insns: hex(encodeInsns(g.insns)), packets: g.packets.map(hex) })).join('\n') + '\n';
  const res = spawnSync('python3', [TOOL], { input, encoding: 'utf8', maxBuffer: 1 << 28, timeout: 600_000 });
  if (res.status !== 0) throw new Error(`kernel-bpf.py failed: ${res.stderr.slice(0, 2000)}`);
  const lines = res.stdout.trim().split('\n');
  const ready = JSON.parse(lines.shift()!) as { ready?: boolean; unavailable?: string };
  if (ready.ready !== true) throw new Error(`the kernel is not available: ${ready.unavailable}`);
  const report: Report = { programs: count, bothAccepted: 0, bothRefused: 0, packetsCompared: 0, known: {}, unexplained: [] };
  const kernels = lines.map((l) => JSON.parse(l) as Kernel);
  const results = programs.map((g) => ours(g));
  // Where kcm refuses what the kernel accepts, ask the kernel which steps it walked, and
  // replay them; where kcm accepts what the kernel refuses, follow every branch side.
  const traced = programs.map((_, i) => i).filter((i) => results[i]!.verdict === 'refused' && kernels[i]!.verdict === 'accepted');
  if (traced.length > 0) {
    const again = spawnSync('python3', [TOOL], {
      input: traced.map((i) => JSON.stringify({ insns: hex(encodeInsns(programs[i]!.insns)), trace: true })).join('\n') + '\n',
      encoding: 'utf8',
      maxBuffer: 1 << 28,
      timeout: 600_000,
    });
    const out = again.stdout.trim().split('\n').slice(1);
    traced.forEach((i, k) => {
      const edges = (JSON.parse(out[k]!) as Kernel).edges ?? [];
      kernels[i]!.edges = edges;
      results[i]!.alongKernel = verdictWith(programs[i]!, new Set(edges.map(([a, b]) => `${a}>${b}`)));
    });
  }
  programs.forEach((g, i) => {
    if (results[i]!.verdict === 'accepted' && kernels[i]!.verdict === 'refused') results[i]!.exploringAll = verdictWith(g, 'all');
  });
  programs.forEach((g, i) => {
    const kernel = kernels[i]!;
    const o = results[i]!;
    let agree = o.verdict === kernel.verdict;
    if (agree && o.verdict === 'refused') report.bothRefused++;
    if (agree && o.verdict === 'accepted') {
      report.bothAccepted++;
      for (let p = 0; p < g.packets.length; p++) {
        report.packetsCompared++;
        if (o.compiled![p] !== kernel.results![p] || o.interpreted![p] !== kernel.results![p]) agree = false;
      }
    }
    if (agree) return;
    const known = KNOWN_DIFFERENCES.find((d) => d.matches(g, o, kernel));
    if (known !== undefined) report.known[known.name] = (report.known[known.name] ?? 0) + 1;
    else report.unexplained.push({ insns: hex(encodeInsns(g.insns)), ours: o, kernel });
  });
  return report;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const arg = (name: string, fallback: number): number => {
    const a = process.argv.find((x) => x.startsWith(`--${name}=`));
    return a === undefined ? fallback : Number(a.slice(name.length + 3));
  };
  const why = kernelUnavailable();
  if (why !== undefined) {
    process.stderr.write(`kernel differential skipped: ${why}\n`);
    process.exit(0);
  }
  const started = Date.now();
  const report = runDifferential(arg('count', 10_000), arg('seed', 1));
  const { unexplained, ...summary } = report;
  process.stdout.write(`${JSON.stringify(summary, null, 2)}\nunexplained: ${unexplained.length} (${((Date.now() - started) / 1000).toFixed(1)} s)\n`);
  for (const u of unexplained.slice(0, Number(process.env.KCM_DIFF_SHOW ?? 10))) process.stdout.write(`${JSON.stringify(u)}\n`);
  process.exit(unexplained.length === 0 ? 0 : 1);
}
