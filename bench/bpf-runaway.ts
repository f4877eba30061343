/**
 * The worst a program call can cost: programs that never end by themselves, each built to
 * spend its run budget as slowly as possible (a tight loop, a loop over thousands of tiny
 * blocks, bpf_trace_printk of a 4 KiB format, bpf_skb_load_bytes of 1 MiB on a 1 MiB
 * message, 64-bit division through BigInt, bpf-to-bpf calls, the clock). Each must end with
 * -ELOOP; the table shows the CPU time of the first call (before V8 optimises) and the
 * slowest of the next calls, compiled and interpreted.
 *
 *   node dist/bench/bpf-runaway.js [--calls=5] [--interpreter]
 */
import { compileParser } from '../src/bpf/compiler.js';
import { Interpreter } from '../src/bpf/interpreter.js';
import { rawProgram, type LinkedProgram } from '../src/bpf/linker.js';
import { encodeInsns, type Insn } from '../src/bpf/opcodes.js';
import { verify } from '../src/bpf/verifier.js';

const calls = Number(process.argv.find((a) => a.startsWith('--calls='))?.slice(8) ?? 5);
const withInterpreter = process.argv.includes('--interpreter');

const i = (code: number, dst = 0, src = 0, off = 0, imm = 0): Insn => ({ code, dst, src, off, imm });
const mapValue = (dst: number, region: number, offset: number): Insn[] => [i(0x18, dst, 2, 0, region), i(0, 0, 0, 0, offset)];

interface Case {
  name: string;
  insns: Insn[];
  regions?: LinkedProgram['regions'];
  message: Uint8Array;
}

function manyBlocks(n: number): Insn[] {
  // r0 = 1; then n blocks of one instruction each (each a jump target), looping forever.
  const out: Insn[] = [i(0xb7, 0, 0, 0, 1), i(0xb7, 1, 0, 0, 0)];
  for (let k = 0; k < n; k++) out.push(i(0x25, 1, 0, 0, 0x7fffffff)); // if r1 > big goto +0
  out.push(i(0x55, 0, 0, -(n + 1), 0), i(0x95));
  return out;
}

const format = new Uint8Array(4096).fill(0x61);
format.set(Buffer.from('%d %u %x'), 0);
format[4095] = 0;

const cases: Case[] = [
  { name: 'tight loop', insns: [i(0xb7, 0, 0, 0, 1), i(0x07, 0, 0, 0, 1), i(0x55, 0, 0, -2, 0), i(0x95)], message: new Uint8Array(4) },
  { name: '4096 one-insn blocks', insns: manyBlocks(4096), message: new Uint8Array(4) },
  { name: '16000 one-insn blocks', insns: manyBlocks(16000), message: new Uint8Array(4) },
  {
    name: 'printk 4 KiB format',
    insns: [...mapValue(6, 0, 0), i(0xbf, 1, 6), i(0xb7, 2, 0, 0, 4096), i(0xb7, 3, 0, 0, 1), i(0xb7, 4, 0, 0, 2), i(0xb7, 5, 0, 0, 3), i(0x85, 0, 0, 0, 6), i(0x55, 0, 0, -7, -1), i(0x95)],
    regions: [{ name: '.rodata', bytes: format, writable: false }],
    message: new Uint8Array(4),
  },
  {
    name: 'skb_load_bytes 1 MiB',
    insns: [i(0xbf, 6, 1), i(0xbf, 1, 6), i(0xb7, 2, 0, 0, 0), ...mapValue(3, 0, 0), i(0xb7, 4, 0, 0, 1 << 20), i(0x85, 0, 0, 0, 26), i(0x55, 0, 0, -7, 1), i(0x95)],
    regions: [{ name: '.bss', bytes: new Uint8Array(1 << 20), writable: true }],
    message: new Uint8Array(1 << 20),
  },
  {
    name: '64-bit division (BigInt)',
    insns: [i(0x18, 2, 0, 0, 0x12345), i(0, 0, 0, 0, 0x7), i(0x18, 1, 0, 0, -1), i(0, 0, 0, 0, 0x7fffffff), i(0xbf, 3, 1), i(0x3f, 3, 2), i(0x55, 3, 0, -3, 7), i(0xb7, 0, 0, 0, 0), i(0x95)],
    message: new Uint8Array(4),
  },
  { name: 'bpf-to-bpf calls', insns: [i(0x85, 0, 1, 0, 2), i(0x55, 0, 0, -2, 1), i(0x95), i(0x85, 0, 0, 0, 7), i(0x95)], message: new Uint8Array(4) },
  { name: 'bpf_ktime_get_ns', insns: [i(0x85, 0, 0, 0, 5), i(0x55, 0, 0, -2, 1), i(0x95)], message: new Uint8Array(4) },
];

function cpuMs(f: () => void): number {
  const start = process.cpuUsage();
  f();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
}

const rows: string[][] = [['case', 'engine', 'result', 'first ms', 'max next ms']];
let worst = 0;
for (const c of cases) {
  const prog: LinkedProgram = { ...rawProgram(encodeInsns(c.insns)), regions: c.regions ?? [] };
  const analysis = verify(prog, 'parser');
  const engines: [string, (d: Buffer) => number][] = [['compiled', compileParser(prog, analysis)]];
  if (withInterpreter) {
    const interpreter = new Interpreter(prog, analysis);
    engines.push(['interpreter', (d) => interpreter.runParser(d)]);
  }
  const message = Buffer.from(c.message.buffer, c.message.byteOffset, c.message.byteLength);
  for (const [engine, run] of engines) {
    let result = 0;
    const first = cpuMs(() => (result = run(message)));
    let next = 0;
    for (let k = 0; k < calls; k++) next = Math.max(next, cpuMs(() => run(message)));
    worst = Math.max(worst, first, next);
    rows.push([c.name, engine, String(result), first.toFixed(1), next.toFixed(1)]);
  }
}
const widths = rows[0]!.map((_, k) => Math.max(...rows.map((r) => r[k]!.length)));
for (const r of rows) process.stdout.write(`${r.map((v, k) => (k < 3 ? v.padEnd(widths[k]!) : v.padStart(widths[k]!))).join('  ')}\n`);
process.stdout.write(`\nworst call: ${worst.toFixed(1)} ms of CPU\n`);
